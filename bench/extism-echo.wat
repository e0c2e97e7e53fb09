;; The Extism counterpart of transform.wasm's `echo`, for bench/plugin.mjs: it copies the input
;; into its own memory and the output back out through the Extism kernel, as a PDK plugin does
;; (input_load_u64 in, alloc + store_u64 + output_set out), so both sides pay for two copies.
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 2)
  (func (export "echo") (result i32)
    (local $len i64) (local $i i64) (local $off i64)
    (local.set $len (call $input_length))
    (block $in_done
      (loop $in
        (br_if $in_done (i64.ge_u (local.get $i) (local.get $len)))
        (i64.store (i32.wrap_i64 (local.get $i)) (call $input_load_u64 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $in)))
    (local.set $off (call $alloc (local.get $len)))
    (local.set $i (i64.const 0))
    (block $out_done
      (loop $out
        (br_if $out_done (i64.ge_u (local.get $i) (local.get $len)))
        (call $store_u64 (i64.add (local.get $off) (local.get $i)) (i64.load (i32.wrap_i64 (local.get $i))))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $out)))
    (call $output_set (local.get $off) (local.get $len))
    (i32.const 0)))
