import { CallKind, type WorkerInit } from '../channel/protocol.ts';
import { SharedRing } from '../channel/ring.ts';
import { allocateStats } from '../channel/stats.ts';
import { CONSOLE_DEFAULTS } from '../devices/resolved.ts';
import { runDedicated } from './context.ts';

/**
 * A reactor of 138 bytes (its source is below) that the worker runs once while it waits in the
 * warm pool, so the code a partition's start goes through (devices, dispatcher, channels, the
 * call path) is compiled before the first real partition arrives: a warm worker's first start
 * is then as fast as its hundredth.
 *
 *   (module
 *     (import "hv" "hypercall" (func $hc (param i32 i32 i32 i32 i32) (result i32)))
 *     (memory (export "memory") 1)
 *     (func (export "_initialize"))
 *     (func (export "warm") (result i32)   ;; INPUT_SIZE, INPUT_READ 16, OUTPUT_WRITE 16
 *       ...))
 */
const WARM_MODULE = 'AGFzbQEAAAABEQNgBX9/f39/AX9gAABgAAF/AhABAmh2CWh5cGVyY2FsbAAAAwMCAQIFAwEAAQcfAwZtZW1vcnkCAAtfaW5pdGlhbGl6ZQABBHdhcm0AAgowAgIACysAQQZBAEEAQQBBABAAGkEHQQBBAEEAQRAQABpBCEEAQRBBAEEAEAAaQQAL';

/** Runs the warm-up reactor through one call, on this thread, with nothing shared with the root. */
export function warmUp(): void {
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
    module: new WebAssembly.Module(Buffer.from(WARM_MODULE, 'base64')),
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
  runDedicated(init, () => {});
}
