/**
 * What a shared worker keeps of a suspended guest's memory, and for how long. Suspending a guest
 * (host/worker/suspend.ts) copies the first 64 KiB of its memory into the thread's scratch, lets
 * Asyncify write the guest's frames there, and keeps the bytes under the frames to put back at
 * the rewind. The scratch then held the guest's bytes while other partitions ran (until the next
 * suspension overwrote them), and the kept bytes of a guest killed while suspended stayed in the
 * heap unzeroed, as did the last hypercall's input and output in the dispatcher's scratch. Driven
 * in this thread with a real context over a suspendable WASI module.
 */
import { describe, expect, it } from 'vitest';
import { HvCall } from '../../host/abi/codes.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { resolveWasi } from '../../host/wasi/config.ts';
import { PartitionContext } from '../../host/worker/context.ts';
import { SUSPEND_BYTES, SuspendingPlacement } from '../../host/worker/suspend.ts';
import { loadSuspendable, workerInit } from './worker-init.ts';

/** 8 bytes the guest writes just past the suspend header (under its frames) and far past them. */
const SECRET = 0x5ec2e7_5ec2e7n;
const NEAR = 8;
const FAR = 40_000;

/**
 * Writes the secret twice and to its console (the hypercall's input passes through the
 * dispatcher's scratch), then polls stdin (no timeout): it suspends at once, nothing being there.
 */
const HOLDER = `(module
  (import "hv" "hypercall" (func $hc (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const ${NEAR}) (i64.const ${SECRET}))
    (i64.store (i32.const ${FAR}) (i64.const ${SECRET}))
    (drop (call $hc (i32.const ${HvCall.CONSOLE_WRITE}) (i32.const ${FAR}) (i32.const 8) (i32.const 0) (i32.const 0)))
    (i32.store8 offset=1008 (i32.const 0) (i32.const 1))   ;; subscription at 1000: fd_read
    (i32.store offset=1016 (i32.const 0) (i32.const 0))    ;; fd 0
    (drop (call $poll (i32.const 1000) (i32.const 2000) (i32.const 1) (i32.const 2100)))))`;

/** Where the secret's 8 bytes stand in `bytes`, or -1. */
function find(bytes: Uint8Array): number {
  const needle = new Uint8Array(new BigUint64Array([SECRET]).buffer);
  outer: for (let i = 0; i + 8 <= bytes.length; i++) {
    for (let j = 0; j < 8; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

describe('a suspended guest’s bytes in a shared worker', () => {
  it('leave the thread’s scratch when it suspends, and the heap when it is killed suspended (the dispatcher’s scratch too)', async () => {
    const loaded = await loadSuspendable(HOLDER);
    const scratch = new Uint8Array(SUSPEND_BYTES);
    const placement = new SuspendingPlacement({ shouldYield: () => false }, scratch);
    const init = workerInit('holder', loaded.module, { wasi: await resolveWasi({}, []), input: SharedRing.allocate(4096), sliceFuel: 200_000 });
    const context = new PartitionContext(init, placement, () => {});
    const step = context.resume();
    expect(step.kind).toBe('wait');

    // Suspended: the bytes under its frames are kept for the rewind (the near secret's first bytes),
    // and nothing of its memory is left in the scratch the next partition's suspension will use.
    const saved = (placement as unknown as { saved: Uint8Array | null }).saved;
    expect(saved).not.toBeNull();
    const secret = new Uint8Array(new BigUint64Array([SECRET]).buffer);
    expect(saved!.length).toBeGreaterThan(NEAR);
    expect(Array.from(saved!.subarray(NEAR))).toEqual(Array.from(secret.subarray(0, saved!.length - NEAR)));
    expect(find(scratch)).toBe(-1);
    expect(scratch.every((b) => b === 0)).toBe(true);

    // The console write's input is still in the dispatcher's scratch while the run lasts.
    const dispatcher = (context as unknown as { dispatcher: { inBuf: Uint8Array; outBuf: Uint8Array } }).dispatcher;
    expect(find(dispatcher.inBuf)).toBe(0);

    // Killed while suspended: it never rewinds, and what was kept for it is zeroed, as is the
    // dispatcher's scratch.
    context.kill({ kind: 'error', error: 'ERR_KILLED', message: 'test over' });
    expect(saved!.every((b) => b === 0)).toBe(true);
    expect(dispatcher.inBuf.every((b) => b === 0) && dispatcher.outBuf.every((b) => b === 0)).toBe(true);
    expect((placement as unknown as { saved: Uint8Array | null }).saved).toBeNull();
  }, 60_000);
});
