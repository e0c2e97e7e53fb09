/**
 * A shared worker's doorbell: how the root tells one thread hosting thousands of partitions
 * *which* of them has something new (a call, console input, a frame, room freed in a ring, a
 * control message), so the worker neither polls every ring nor misses a wake-up.
 *
 * Layout (Int32 words in a SharedArrayBuffer): SEQ, a counter bumped by every ring (the worker
 * sleeps on it with Atomics.wait); TOP, one bit per summary word that has bits; WAITERS, the
 * threads asleep on SEQ; then SUMMARY_WORDS summary words, then one bit per slot. `ring(slot)`
 * sets the slot's bit, then its summary bit (which word has bits), then its top bit, then bumps
 * SEQ and wakes the worker if it sleeps. `take()` swaps TOP to zero, then the summary words it
 * points at, then the words they point at, so a slot rung twice before the worker looks is
 * reported once, and a bit set while the worker takes is seen on the next take (set from the
 * bottom up on one side, cleared from the top down on the other). A take with one slot rung costs
 * three atomic swaps, not one per summary word.
 *
 * A ring notifies only when the worker counts itself asleep (Atomics.notify takes the engine's
 * futex lock every time): the worker raises WAITERS before its wait checks SEQ, and a ring bumps
 * SEQ before it reads WAITERS, so one of the two always sees the other (as SharedRing's waits).
 *
 * Slot 0 is the control slot: a message waits on the worker's control port.
 */

const SEQ = 0;
const TOP = 1;
const WAITERS = 2;
const SUMMARY = 4;
/** Slots per doorbell: 32 summary words of 32 bits, each bit a word of 32 slots. */
export const DOORBELL_SLOTS = 32 * 32 * 32;
const SUMMARY_WORDS = DOORBELL_SLOTS / 32 / 32;
const BITS = SUMMARY + SUMMARY_WORDS;
const WORDS = BITS + DOORBELL_SLOTS / 32;

/** The slot that says "a control message is queued". */
export const CONTROL_SLOT = 0;

export class Doorbell {
  readonly sab: SharedArrayBuffer;
  private readonly w: Int32Array;

  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(WORDS * 4);
  }

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.w = new Int32Array(sab);
  }

  /** Root side: marks `slot` as having news and wakes the worker. */
  ring(slot: number): void {
    const w = this.w;
    const word = slot >>> 5;
    Atomics.or(w, BITS + word, 1 << (slot & 31));
    Atomics.or(w, SUMMARY + (word >>> 5), 1 << (word & 31));
    Atomics.or(w, TOP, 1 << (word >>> 5));
    Atomics.add(w, SEQ, 1);
    if (Atomics.load(w, WAITERS) !== 0) Atomics.notify(w, SEQ, 1);
  }

  /** The wake-up counter: read it before `take()`, and wait on it with `wait(seq)`. */
  get seq(): number {
    return Atomics.load(this.w, SEQ);
  }

  /** Worker side: calls `fn` once for each slot rung since the last take. */
  take(fn: (slot: number) => void): void {
    const w = this.w;
    let top = Atomics.exchange(w, TOP, 0);
    while (top !== 0) {
      const s = 31 - Math.clz32(top & -top);
      top &= top - 1;
      let summary = Atomics.exchange(w, SUMMARY + s, 0);
      while (summary !== 0) {
        const bit = 31 - Math.clz32(summary & -summary);
        summary &= summary - 1;
        const word = (s << 5) | bit;
        let bits = Atomics.exchange(w, BITS + word, 0);
        while (bits !== 0) {
          const b = 31 - Math.clz32(bits & -bits);
          bits &= bits - 1;
          fn((word << 5) | b);
        }
      }
    }
  }

  /** Worker side: sleeps until the counter moves from `seq`, or `timeoutMs` passes. */
  wait(seq: number, timeoutMs?: number): void {
    const w = this.w;
    Atomics.add(w, WAITERS, 1);
    try {
      Atomics.wait(w, SEQ, seq, timeoutMs);
    } finally {
      Atomics.sub(w, WAITERS, 1);
    }
  }
}
