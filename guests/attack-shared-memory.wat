;; Attacks the no-shared-memory rule: declares a shared memory (threads), a side channel and a
;; way to share state. Expected: refused at load with ERR_FEATURE_DENIED.
(module
  (memory (export "memory") 1 1 shared)
  (func (export "_start")))
