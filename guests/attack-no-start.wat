;; Attacks the entry-point contract: exports memory but no _start (only a "main").
;; Expected: refused at load with ERR_MODULE_INVALID.
(module
  (memory (export "memory") 1)
  (func (export "main")))
