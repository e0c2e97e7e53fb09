;; The bounds-checks lab's "defence off" comparison: asks a naive host function env.fill to
;; write 16 bytes that start 8 bytes before the end of its memory (the same request attack-bounds
;; makes with ENTROPY_GET). A host that writes without checking first writes part of the result,
;; then throws out of the host function.
(module
  (import "env" "fill" (func $fill (param i32 i32)))
  (memory (export "memory") 1 1)
  (func (export "_start")
    (i64.store (i32.const 65528) (i64.const 0xa5a5a5a5a5a5a5a5))
    (call $fill (i32.const 65528) (i32.const 16))))
