/**
 * A shared worker's timer heap stays bounded by its partitions, however often a partition waits
 * with a far deadline and is woken before it. Each such wait left an entry in the heap until its
 * deadline passed: a guest polling stdin with a one-hour timeout and fed one line at a time (or
 * two partitions trading frames, each receive with a timeout of days) grew the worker's heap by
 * an entry per wake, for as long as the deadline, until the worker and every partition on it ran
 * out of memory. Driven in this thread, turn by turn, as test/scheduler/shared-news.test.ts does:
 * a real scheduler, a real context over a suspendable WASI module, real rings and doorbell.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { InputKind } from '../../host/channel/protocol.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { Stat } from '../../host/channel/stats.ts';
import { resolveWasi } from '../../host/wasi/config.ts';
import { inThreadScheduler, loadSuspendable, workerInit } from './worker-init.ts';

/**
 * Polls (a monotonic clock subscription an hour away, and fd 0 readable), reads one byte, and
 * again, until end of input. Each byte fed to it wakes it long before the clock's deadline.
 */
const POLLER = `(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 offset=8 (i32.const 0) (i32.const 0))          ;; subscription 0: clock
    (i32.store offset=16 (i32.const 0) (i32.const 1))          ;; monotonic
    (i64.store offset=24 (i32.const 0) (i64.const 3600000000000)) ;; one hour, relative
    (i32.store8 offset=56 (i32.const 0) (i32.const 1))         ;; subscription 1: fd_read
    (i32.store offset=64 (i32.const 0) (i32.const 0))          ;; fd 0
    (i32.store (i32.const 200) (i32.const 300))                ;; iovec: 1 byte at 300
    (i32.store (i32.const 204) (i32.const 1))
    (block $eof
      (loop $next
        (drop (call $poll (i32.const 0) (i32.const 400) (i32.const 2) (i32.const 500)))
        (drop (call $read (i32.const 0) (i32.const 200) (i32.const 1) (i32.const 504)))
        (br_if $eof (i32.eqz (i32.load (i32.const 504))))
        (br $next)))))`;

const BYTES_FED = 1000;

let closeScheduler: (() => void) | null = null;
afterEach(() => {
  closeScheduler?.();
  closeScheduler = null;
});

describe('a shared worker’s timers', () => {
  it('a partition woken before its deadline again and again leaves no trail of timer entries', async () => {
    const loaded = await loadSuspendable(POLLER);
    const { sched, doorbell, events, close } = inThreadScheduler();
    closeScheduler = close;
    const init = workerInit('poller', loaded.module, {
      devices: { console: workerInit('x', loaded.module).devices.console, clock: { resolutionNs: 1_000_000, deterministic: null }, entropy: null, block: null, net: null, attestation: null },
      wasi: await resolveWasi({}, []),
      input: SharedRing.allocate(4096),
      sliceFuel: 200_000,
    });
    // The root's side of the console input ring: a record the suspended partition asked to hear
    // about rings its doorbell slot (host/partition/run.ts wires it so for shared placement).
    const input = new SharedRing(init.input);
    input.onMove = () => doorbell.ring(1);
    sched.control({ type: 'add', slot: 1, init });
    const stats = new Float64Array(init.stats);
    const settle = (): void => {
      for (let turns = 0; sched.step(); turns++) expect(turns).toBeLessThan(20);
    };
    settle();
    expect(events.map((e) => e.message.type)).toEqual(['running']);
    expect(stats[Stat.SCHED_WAITS]).toBe(1);

    for (let i = 0; i < BYTES_FED; i++) {
      expect(input.tryWrite(InputKind.BYTES, Uint8Array.of(0x61))).toBe(true);
      settle();
      // Woken by the byte, read it, and waiting again (with the same hour-long deadline ahead).
      expect(stats[Stat.SCHED_WAITS]).toBe(i + 2);
      expect(sched.timerEntries).toBeLessThanOrEqual(2 * sched.size + 64);
    }
    expect(events.map((e) => e.message.type)).toEqual(['running']);

    // End of input: the guest's read returns 0 bytes and it exits; it is gone from the worker.
    input.close();
    doorbell.ring(1);
    settle();
    expect(events.at(-1)?.message).toEqual({ type: 'done', outcome: { kind: 'exit', code: 0 } });
    expect(sched.size).toBe(0);
  }, 60_000);
});
