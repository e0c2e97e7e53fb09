;; The memory-isolation lab's "defence off" comparison: a plugin that keeps a secret, for a
;; naive host that links every plugin to one shared memory (env.memory). hold(src, len, dst, n)
;; keeps n copies of the secret, 256 bytes apart, from dst on.
(module
  (import "env" "memory" (memory 1))
  (func (export "hold") (param $src i32) (param $len i32) (param $dst i32) (param $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (memory.copy (local.get $dst) (local.get $src) (local.get $len))
        (local.set $dst (i32.add (local.get $dst) (i32.const 256)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))))
