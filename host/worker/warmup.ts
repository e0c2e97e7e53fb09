import { CallKind, type WorkerInit } from '../channel/protocol.ts';
import { SharedRing } from '../channel/ring.ts';
import { allocateStats } from '../channel/stats.ts';
import { CONSOLE_DEFAULTS } from '../devices/resolved.ts';

/**
 * Two guests of 138 bytes each (their sources are below) that a worker runs while it waits in
 * the warm pool, so the code a partition's start goes through (devices, dispatcher, channels,
 * the call path, a command's exit and the end-of-run cleanup) is compiled, and has feedback,
 * before the first real partition arrives: a warm worker's first start is then as fast as it
 * can be on a fresh thread.
 *
 *   (module                                ;; WARM_REACTOR
 *     (import "hv" "hypercall" (func $hc (param i32 i32 i32 i32 i32) (result i32)))
 *     (memory (export "memory") 1)
 *     (func (export "_initialize"))
 *     (func (export "warm") (result i32)   ;; INPUT_SIZE, INPUT_READ 16, OUTPUT_WRITE 16
 *       ...))
 *   (module                                ;; WARM_COMMAND
 *     (import "hv" "hypercall" (func $hc (param i32 i32 i32 i32 i32) (result i32)))
 *     (memory (export "memory") 1)
 *     (func (export "_start")              ;; ARGS_SIZE, ARGS_GET, CONSOLE_WRITE 4, EXIT 0
 *       ...))
 */
const WARM_REACTOR = 'AGFzbQEAAAABEQNgBX9/f39/AX9gAABgAAF/AhABAmh2CWh5cGVyY2FsbAAAAwMCAQIFAwEAAQcfAwZtZW1vcnkCAAtfaW5pdGlhbGl6ZQABBHdhcm0AAgowAgIACysAQQZBAEEAQQBBABAAGkEHQQBBAEEAQRAQABpBCEEAQRBBAEEAEAAaQQAL';
const WARM_COMMAND =
  'AGFzbQEAAAABDQJgBX9/f39/AX9gAAACEAECaHYJaHlwZXJjYWxsAAADAgEBBQMBAAEHEwIGbWVtb3J5AgAGX3N0YXJ0AAEKQQE/AEEEQQBBAEEAQQAQABpBBUEAQQBBAEHAABAAGkGAAkEAQQRBAEEAEAAaQQBBADYCAEECQQBBBEEAQQAQABoL';

let modules: { reactor: WebAssembly.Module; command: WebAssembly.Module } | null = null;

/**
 * Runs the warm-up reactor through one call, and the command to its exit, on this thread, with
 * nothing shared with the root. `run` runs one of them to its end: the worker's own assignment
 * path (host/worker/main.ts), reporting nothing.
 */
export function warmUp(run: (init: WorkerInit) => void): void {
  modules ??= { reactor: new WebAssembly.Module(Buffer.from(WARM_REACTOR, 'base64')), command: new WebAssembly.Module(Buffer.from(WARM_COMMAND, 'base64')) };
  const ring = (bytes: number) => SharedRing.allocate(bytes);
  const calls = ring(4096);
  const call = new Uint8Array(10 + 4 + 16);
  call[8] = 4;
  call.set(new TextEncoder().encode('warm'), 10);
  const callRing = new SharedRing(calls);
  callRing.tryWrite(CallKind.CALL, call);
  callRing.close();
  const init: WorkerInit = {
    name: 'warm-up',
    module: modules.reactor,
    args: [],
    devices: { console: CONSOLE_DEFAULTS, clock: { resolutionNs: 1_000_000, deterministic: null }, entropy: { seed: 'warm-up' }, block: null, net: null, attestation: null },
    stats: allocateStats(),
    events: ring(65536),
    input: ring(64),
    stdio: new SharedArrayBuffer(8),
    calls,
    violationsPerSecond: 1,
    kind: 'reactor',
    maxInputBytes: 16,
    maxOutputBytes: 16,
    spinMicros: 0,
    wasi: null,
    fuel: null,
    cpu: null,
    hypercallRate: null,
    block: null,
    net: null,
  };
  run(init);
  run({ ...init, module: modules.command, args: ['warm-up'], kind: 'command', stats: allocateStats(), events: ring(65536), calls: ring(64) });
}
