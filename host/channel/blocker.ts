import type { SharedRing } from './ring.ts';

/**
 * How an operation of a partition waits: for something to read on a ring, for room on a ring,
 * or for a time. Devices, WASI and rate limits wait only through a Blocker, never with
 * Atomics.wait of their own, because where a partition runs decides what waiting means:
 *
 * - in a dedicated worker (`threadBlocker`) the thread blocks: it is the partition's own;
 * - in a shared worker (host/worker/suspend.ts) the wait throws a `Suspend` carrying the
 *   condition: the guest is unwound (Asyncify), the worker runs other partitions, and when the
 *   condition holds the guest is rewound and the operation runs again from its start.
 *
 * So an operation that may wait must have done nothing it cannot do again when it reaches the
 * wait (take no tokens, consume no input), and must compute its timeouts from `deadline(ms)`,
 * which is fixed at the operation's first start however often it is run again.
 */
export interface Blocker {
  /** The deadline (performance.now() scale) of a wait of `ms` that began when the current operation first started. */
  deadline(ms: number): number;
  /** Waits until `ring`'s write counter moved from `seq` (a record, or the ring closed), or until `deadline`. */
  readable(ring: SharedRing, seq: number, deadline: number): void;
  /** Waits until `ring`'s read counter moved from `seq` (room was freed), or until `deadline`. */
  writable(ring: SharedRing, seq: number, deadline: number): void;
  /** Waits until `deadline`. */
  sleep(deadline: number): void;
}

/** What a suspended partition waits for before it runs again. */
export type WaitCondition =
  | { what: 'readable'; ring: SharedRing; seq: number; deadline: number }
  | { what: 'writable'; ring: SharedRing; seq: number; deadline: number }
  | { what: 'time'; deadline: number };

/**
 * Thrown by a shared worker's Blocker instead of waiting; it unwinds the host code of the
 * operation (which has done nothing it cannot redo) up to the import boundary, where the guest
 * itself is unwound. Never reaches the guest, never a Wasm exception.
 */
export class Suspend {
  constructor(readonly wait: WaitCondition) {}
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function left(deadline: number): number | undefined {
  const ms = deadline - performance.now();
  return ms === Infinity ? undefined : Math.max(0, ms);
}

/** The Blocker of a dedicated worker: blocks the partition's own thread (never the root's). */
export const threadBlocker: Blocker = {
  deadline: (ms) => performance.now() + ms,
  readable(ring, seq, deadline) {
    // An idle reactor waits for its next call without a deadline: no clock read (two per call).
    if (deadline === Infinity) ring.waitWritten(seq);
    else if (deadline > performance.now()) ring.waitWritten(seq, left(deadline));
  },
  writable(ring, seq, deadline) {
    if (deadline > performance.now()) ring.waitRead(seq, left(deadline));
  },
  sleep(deadline) {
    const ms = left(deadline);
    if (ms === undefined || ms > 0) Atomics.wait(sleeper, 0, 0, ms);
  },
};
