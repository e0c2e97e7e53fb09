;; Attacks the import allow-list: asks for env.system, a host function no partition may have.
;; Expected: refused at load with ERR_IMPORT_DENIED (the module never runs).
(module
  (import "env" "system" (func $system (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $system (i32.const 0)))))
