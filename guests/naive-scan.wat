;; The memory-isolation lab's "defence off" comparison: the same byte-by-byte scan as
;; attack-scan, written for a naive plugin host that links every plugin to one shared memory
;; (env.memory). Under Wasmvisor this module is refused at load (ERR_IMPORT_DENIED): a partition
;; never imports memory. scan(needle, len) counts copies of the needle outside the needle itself.
(module
  (import "env" "memory" (memory 1))
  (func (export "scan") (param $np i32) (param $nl i32) (result i32)
    (local $p i32) (local $last i32) (local $i i32) (local $found i32)
    (local.set $last (i32.sub (i32.mul (memory.size) (i32.const 65536)) (local.get $nl)))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (local.get $p) (local.get $last)))
        (if (i32.or (i32.ge_u (local.get $p) (i32.add (local.get $np) (local.get $nl)))
                    (i32.le_u (i32.add (local.get $p) (local.get $nl)) (local.get $np)))
          (then
            (local.set $i (i32.const 0))
            (block $miss
              (loop $cmp
                (br_if $miss (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i)))
                                     (i32.load8_u (i32.add (local.get $np) (local.get $i)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $cmp (i32.lt_u (local.get $i) (local.get $nl)))
                (local.set $found (i32.add (local.get $found) (i32.const 1)))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (local.get $found)))
