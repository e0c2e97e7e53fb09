;; Attacks the CPU limit before _start: a wasm start function that loops forever, so it runs
;; during instantiation. Expected: stopped with ERR_LIMIT_CPU (fuel or the watchdog).
(module
  (memory (export "memory") 1)
  (func $spin
    (loop $forever
      (br $forever)))
  (start $spin)
  (func (export "_start")))
