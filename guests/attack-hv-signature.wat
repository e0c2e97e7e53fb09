;; Attacks the hypercall import check: imports hv.hypercall with a wrong signature (i32) -> i32.
;; Expected: refused at load with ERR_IMPORT_DENIED.
(module
  (import "hv" "hypercall" (func $hypercall (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $hypercall (i32.const 0)))))
