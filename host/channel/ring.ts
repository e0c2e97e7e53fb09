/**
 * A bounded single-producer / single-consumer ring of records in a SharedArrayBuffer: the
 * channel between a partition's worker and the root. It is shared memory between *host*
 * threads only; a guest's linear memory is never part of it.
 *
 * Why not postMessage: a worker that the watchdog terminates loses every message still in
 * flight, and a port has no bound. A ring keeps what was written (the root drains it after the
 * worker is gone), has a fixed size, and lets the worker block in `Atomics.wait` (e.g. a guest
 * reading console input) without ever blocking the root's event loop, which waits with
 * `Atomics.waitAsync`.
 *
 * Layout: an Int32 control block, then `capacity` data bytes (a power of two).
 * Records: a u32 header (kind << 24 | length), the payload, padding to 4 bytes. Head and tail are
 * free-running u32 byte counters; `head - tail` (mod 2^32) is the bytes in use. The producer
 * writes data, then publishes `head` (Atomics.store orders it); the consumer reads data, then
 * publishes `tail`. Wake-ups use event counters (WSEQ bumped by writes and close, RSEQ by reads)
 * so that a wake between "check" and "wait" is never lost. A waiter counts itself in WWAIT or
 * RWAIT before it waits, and a write or read notifies only when someone waits: Atomics.notify
 * takes the engine's futex lock every time, which a busy pair of threads would otherwise pay per
 * record. (The counter is raised before the wait checks its event counter, and a writer bumps
 * the event counter before it reads the waiter count, so one of the two always sees the other.
 * A waiter killed mid-wait leaves its count behind: writers then notify needlessly, no more.)
 */

const HEAD = 0;
const TAIL = 1;
const CLOSED = 2;
const WSEQ = 3;
const RSEQ = 4;
/** Threads waiting on WSEQ (readers waiting for a record). */
const WWAIT = 5;
/** Threads waiting on RSEQ (writers waiting for room). */
const RWAIT = 6;
/** Bits a suspended consumer or producer in a shared worker sets to be woken through its doorbell. */
const WANT = 7;
const WANT_RECORD = 1;
const WANT_ROOM = 2;
const CONTROL_INTS = 8;
const CONTROL_BYTES = CONTROL_INTS * 4;
const HEADER = 4;
const RESOLVED: Promise<void> = Promise.resolve();
/**
 * Atomics' functions, taken once: `Atomics.load(...)` is a global load, a property load and a
 * call; through a module constant, a call. The worker of a reactor called now and then runs its
 * ring operations in V8's interpreter or baseline tier, where each load is an inline-cache
 * builtin (docs/PERFORMANCE.md, "Session 13: row 3"); optimized code calls the same builtins.
 */
const { load: atomicLoad, store: atomicStore, add: atomicAdd, sub: atomicSub, wait: atomicWait, notify: atomicNotify } = Atomics;

/** Largest payload a single record may carry. */
export const RING_MAX_RECORD = (1 << 24) - 1;

export interface RingRecord {
  kind: number;
  bytes: Uint8Array;
}

export class SharedRing {
  readonly sab: SharedArrayBuffer;
  readonly capacity: number;
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;
  /**
   * Largest payload that can ever fit. A field, not a getter: every write tests it, and a
   * reactor's worker writes each result in V8's interpreter when it is called rarely
   * (docs/PERFORMANCE.md, row 3), where a getter is one more call.
   */
  readonly maxRecord: number;
  /**
   * Root side only: called after a write, read or close of this ring that the other side, a
   * partition suspended in a shared worker, asked to hear about (`wantRecord`, `wantRoom`): a
   * shared worker sleeps on one doorbell for all its partitions, not on each ring, so the root
   * tells it which partition's ring moved. Null for a dedicated partition's rings.
   */
  onMove: (() => void) | null = null;
  /**
   * Consumer side: true when the last record takeOne consumed was the last one in the ring at
   * its look, and the ring was open; `takenSeq` is the write counter read before that look. A
   * consumer that has done with the record may then wait with waitWritten(takenSeq) without
   * looking at the ring again: anything written or a close after the look moved the counter, so
   * the wait returns at once, and nothing written before it is left unread. (Stale values, after
   * records read otherwise, only make that wait return at once.) A reactor's worker waits so
   * after each call (docs/PERFORMANCE.md, "Session 13: row 3").
   */
  drained = false;
  takenSeq = 0;
  /**
   * Bytes this thread moved through the ring (records written, or consumed), headers and padding
   * included: a plain number that never wraps, so `scrub` knows how far the ring was ever used.
   */
  private passed = 0;

  /** Allocates the shared buffer for a ring of `capacity` data bytes (a power of two, >= 64). */
  static allocate(capacity: number): SharedArrayBuffer {
    if (!Number.isInteger(capacity) || capacity < 64 || (capacity & (capacity - 1)) !== 0 || capacity > 1 << 30) {
      throw new RangeError(`ring capacity must be a power of two between 64 and 2^30, got ${capacity}`);
    }
    return new SharedArrayBuffer(CONTROL_BYTES + capacity);
  }

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.capacity = sab.byteLength - CONTROL_BYTES;
    this.ctl = new Int32Array(sab, 0, CONTROL_INTS);
    this.data = new Uint8Array(sab, CONTROL_BYTES, this.capacity);
    this.mask = this.capacity - 1;
    this.maxRecord = Math.min(RING_MAX_RECORD, this.capacity - HEADER);
  }

  /** Bytes in use, headers and padding included. */
  get used(): number {
    return (Atomics.load(this.ctl, HEAD) - Atomics.load(this.ctl, TAIL)) >>> 0;
  }

  /** Largest payload a `tryWrite` would accept now (0 when full or closed). */
  get writable(): number {
    if (this.closed) return 0;
    const free = this.capacity - this.used - HEADER;
    return free <= 0 ? 0 : Math.min(this.maxRecord, free & ~3);
  }

  get closed(): boolean {
    return Atomics.load(this.ctl, CLOSED) !== 0;
  }

  /** Marks the ring closed: the consumer sees end-of-stream after draining; writes are refused. */
  close(): void {
    Atomics.store(this.ctl, CLOSED, 1);
    Atomics.add(this.ctl, WSEQ, 1);
    Atomics.notify(this.ctl, WSEQ);
    Atomics.add(this.ctl, RSEQ, 1);
    Atomics.notify(this.ctl, RSEQ);
    this.moved(WANT_RECORD | WANT_ROOM);
  }

  /** Worker side: asks the root to ring this partition's doorbell at the next write (or close). */
  wantRecord(): void {
    Atomics.or(this.ctl, WANT, WANT_RECORD);
  }

  /** Worker side: asks the root to ring this partition's doorbell at the next read (room freed) or close. */
  wantRoom(): void {
    Atomics.or(this.ctl, WANT, WANT_ROOM);
  }

  /**
   * The ask is cleared when it is answered. It names no wait: read before a partition that ran
   * meanwhile asked again, it clears that newer ask too; so the shared worker asks again whenever
   * a ring finds its wait unsatisfied (host/worker/shared.ts, `ask`).
   */
  private moved(bits: number): void {
    if (this.onMove === null || (Atomics.load(this.ctl, WANT) & bits) === 0) return;
    Atomics.and(this.ctl, WANT, ~bits);
    this.onMove();
  }

  /**
   * Appends one record, whole or not at all. Returns false when there is no room now
   * (or the ring is closed). Throws RangeError only for a record that can never fit.
   */
  tryWrite(kind: number, payload: Uint8Array, length: number = payload.length): boolean {
    if (length > payload.length) this.unfit(kind, length);
    const head = this.reserve(kind, length);
    if (head < 0) return false;
    this.copyIn(head + HEADER, payload, length);
    this.commit(head, length);
    return true;
  }

  /**
   * tryWrite of a record whose payload is the u32 `prefix` (little-endian) followed by
   * payload[0, length), without assembling it in a buffer first (a frame's source stamped in
   * front of what the guest sent).
   */
  tryWritePrefixed(kind: number, prefix: number, payload: Uint8Array, length: number = payload.length): boolean {
    // reserve(), copyIn() and commit(), inline: a reactor's worker writes each call's result here,
    // in V8's interpreter or baseline tier when it is called now and then (docs/PERFORMANCE.md,
    // "Session 13: row 3"), where every function called and every property loaded costs.
    const size = 4 + length;
    if (length > payload.length || size > this.maxRecord || kind < 0 || kind > 255) this.unfit(kind, size);
    const ctl = this.ctl;
    if (atomicLoad(ctl, CLOSED) !== 0) return false;
    const head = atomicLoad(ctl, HEAD) >>> 0;
    const used = HEADER + ((size + 3) & ~3);
    const capacity = this.capacity;
    if (((head - (atomicLoad(ctl, TAIL) >>> 0)) >>> 0) + used > capacity) return false;
    // The header word and the prefix, little-endian; both 4-aligned (the capacity is a multiple
    // of 4), so neither wraps.
    const word = ((kind << 24) | size) >>> 0;
    const mask = this.mask;
    const d = this.data;
    let i = head & mask;
    d[i] = word & 0xff;
    d[i + 1] = (word >>> 8) & 0xff;
    d[i + 2] = (word >>> 16) & 0xff;
    d[i + 3] = word >>> 24;
    i = (head + HEADER) & mask;
    d[i] = prefix & 0xff;
    d[i + 1] = (prefix >>> 8) & 0xff;
    d[i + 2] = (prefix >>> 16) & 0xff;
    d[i + 3] = (prefix >>> 24) & 0xff;
    i = (head + HEADER + 4) & mask;
    const first = capacity - i;
    if (length <= first) d.set(length === payload.length ? payload : payload.subarray(0, length), i);
    else {
      d.set(payload.subarray(0, first), i);
      d.set(payload.subarray(first, length), 0);
    }
    atomicStore(ctl, HEAD, (head + used) | 0);
    this.passed += used;
    atomicAdd(ctl, WSEQ, 1);
    if (atomicLoad(ctl, WWAIT) !== 0) atomicNotify(ctl, WSEQ);
    if (this.onMove !== null) this.moved(WANT_RECORD);
    return true;
  }

  /**
   * tryWrite of a record whose payload is `parts` one after another, without assembling them in
   * a buffer first (a message of a header and a body that fits one record).
   */
  tryWriteParts(kind: number, parts: readonly Uint8Array[]): boolean {
    // Indexed loops, not for-of: a reactor's worker runs this once per call, mostly in V8's
    // interpreter and baseline tier (docs/PERFORMANCE.md, row 3), where for-of makes an iterator.
    let length = 0;
    for (let i = 0; i < parts.length; i++) length += parts[i]!.length;
    const head = this.reserve(kind, length);
    if (head < 0) return false;
    let at = head + HEADER;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      this.copyIn(at, part, part.length);
      at += part.length;
    }
    this.commit(head, length);
    return true;
  }

  private unfit(kind: number, length: number): never {
    throw new RangeError(`ring record of ${length} bytes (kind ${kind}) cannot fit a ${this.capacity}-byte ring`);
  }

  /**
   * The start of room for a record of `length` payload bytes, with its header written, or -1 when
   * there is none now (or the ring is closed). The record is not visible until commit().
   */
  private reserve(kind: number, length: number): number {
    // The control block directly, not through the `closed` getter (nor `put`): a reactor's worker
    // writes each result through here, in V8's interpreter when it is called rarely
    // (docs/PERFORMANCE.md, row 3), where every call of a function costs.
    if (length > this.maxRecord || kind < 0 || kind > 255) this.unfit(kind, length);
    const ctl = this.ctl;
    if (Atomics.load(ctl, CLOSED) !== 0) return -1;
    const head = Atomics.load(ctl, HEAD) >>> 0;
    const tail = Atomics.load(ctl, TAIL) >>> 0;
    if (((head - tail) >>> 0) + HEADER + ((length + 3) & ~3) > this.capacity) return -1;
    // The header word, little-endian. Header words are 4-aligned and the capacity is a multiple
    // of 4, so a header never wraps.
    const word = ((kind << 24) | length) >>> 0;
    const i = head & this.mask;
    const d = this.data;
    d[i] = word & 0xff;
    d[i + 1] = (word >>> 8) & 0xff;
    d[i + 2] = (word >>> 16) & 0xff;
    d[i + 3] = word >>> 24;
    return head;
  }

  /** Publishes the record reserve() began at `head` and wakes a waiting reader. */
  private commit(head: number, length: number): void {
    const size = HEADER + ((length + 3) & ~3);
    const ctl = this.ctl;
    Atomics.store(ctl, HEAD, (head + size) | 0);
    this.passed += size;
    Atomics.add(ctl, WSEQ, 1);
    if (Atomics.load(ctl, WWAIT) !== 0) Atomics.notify(ctl, WSEQ);
    if (this.onMove !== null) this.moved(WANT_RECORD);
  }

  /**
   * Blocking append for a worker thread: waits up to `timeoutMs` for room.
   * Returns false on timeout or when the ring is closed. Never call on the root's thread.
   */
  write(kind: number, payload: Uint8Array, length: number = payload.length, timeoutMs = Infinity): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const seq = Atomics.load(this.ctl, RSEQ);
      if (this.tryWrite(kind, payload, length)) return true;
      if (this.closed) return false;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      this.block(RWAIT, RSEQ, seq, left);
    }
  }

  /** Length of the next record's payload, or -1 if the ring is empty. */
  peekLength(): number {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    if (head === tail) return -1;
    return this.header(head, tail) & 0xffffff;
  }

  /**
   * The next record's header word (kind << 24 | length, checked like every read), or -1 if the
   * ring is empty: peekKind and peekLength in one look.
   */
  peekHeader(): number {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    if (head === tail) return -1;
    return this.header(head, tail);
  }

  /** Kind of the next record, or -1 if the ring is empty. */
  peekKind(): number {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    if (head === tail) return -1;
    return this.header(head, tail) >>> 24;
  }

  /**
   * Consumes the next record into `dst` (which must hold its payload: see peekLength) and
   * returns its length, or -1 if the ring is empty. Allocation-free.
   */
  readInto(dst: Uint8Array): number {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    if (head === tail) return -1;
    const length = this.header(head, tail) & 0xffffff;
    if (length > dst.length) throw new RangeError(`ring record of ${length} bytes does not fit a ${dst.length}-byte buffer`);
    this.copyOut(tail + HEADER, dst, length);
    this.release(tail, length);
    return length;
  }

  /**
   * Consumes the next record into `dst`, given its header word as peekHeader just returned it
   * (checked there): readInto without a second look at the header. Only the consumer moves the
   * tail, and the producer only adds records after it, so the record peeked is still the next
   * one and still whole. Throws like readInto when `dst` is too small. For a reader that peeks
   * anyway (MessageReader.readReusing, a reactor's worker reading each call: one call here
   * instead of four, docs/PERFORMANCE.md, row 3).
   */
  takeInto(dst: Uint8Array, word: number): void {
    const length = word & 0xffffff;
    if (length > dst.length) throw new RangeError(`ring record of ${length} bytes does not fit a ${dst.length}-byte buffer`);
    const ctl = this.ctl;
    const tail = Atomics.load(ctl, TAIL) >>> 0;
    const i = (tail + HEADER) & this.mask;
    const first = Math.min(length, this.capacity - i);
    const data = this.data;
    dst.set(data.subarray(i, i + first), 0);
    if (first < length) dst.set(data.subarray(0, length - first), first);
    // release(tail, length), inline.
    const size = HEADER + ((length + 3) & ~3);
    Atomics.store(ctl, TAIL, (tail + size) | 0);
    this.passed += size;
    Atomics.add(ctl, RSEQ, 1);
    if (Atomics.load(ctl, RWAIT) !== 0) Atomics.notify(ctl, RSEQ);
    if (this.onMove !== null) this.moved(WANT_ROOM);
  }

  /**
   * The consumer's look and read of a message of one record, for a reader that expects `kind`
   * (MessageReader.readOne): when the next record is of `kind` exactly (MORE clear, so a whole
   * message), its payload at most `max` bytes and `dst` long enough, copies the payload into
   * `dst`, consumes the record and returns its length. -1 when the ring is empty; -2, with
   * nothing consumed, for any other record (the caller reads it the general way, which checks it
   * again and throws what it must). The header is checked as every read checks it. peekHeader
   * and takeInto in one call, with no other function called: a reactor's worker reads each call
   * here, in V8's interpreter or baseline tier when it is called now and then
   * (docs/PERFORMANCE.md, "Session 13: row 3").
   */
  takeOne(dst: Uint8Array, kind: number, max: number): number {
    const ctl = this.ctl;
    // Before the look (see `drained`).
    const seq = atomicLoad(ctl, WSEQ);
    const head = atomicLoad(ctl, HEAD) >>> 0;
    const tail = atomicLoad(ctl, TAIL) >>> 0;
    if (head === tail) return -1;
    // header(head, tail), inline.
    const used = (head - tail) >>> 0;
    const mask = this.mask;
    const capacity = this.capacity;
    const d = this.data;
    let i = tail & mask;
    const word = (d[i]! | (d[i + 1]! << 8) | (d[i + 2]! << 16) | (d[i + 3]! << 24)) >>> 0;
    const length = word & 0xffffff;
    const size = HEADER + ((length + 3) & ~3);
    if (used > capacity || (tail & 3) !== 0 || size > used) throw new RangeError(`corrupt ring: a record of ${length} bytes with ${used} bytes in use`);
    if (word >>> 24 !== kind || length > max || length > dst.length) {
      this.drained = false;
      return -2;
    }
    i = (tail + HEADER) & mask;
    const first = capacity - i;
    if (length <= first) dst.set(d.subarray(i, i + length), 0);
    else {
      dst.set(d.subarray(i, capacity), 0);
      dst.set(d.subarray(0, length - first), first);
    }
    // release(tail, length), inline.
    atomicStore(ctl, TAIL, (tail + size) | 0);
    this.passed += size;
    atomicAdd(ctl, RSEQ, 1);
    if (atomicLoad(ctl, RWAIT) !== 0) atomicNotify(ctl, RSEQ);
    if (this.onMove !== null) this.moved(WANT_ROOM);
    this.takenSeq = seq;
    this.drained = ((tail + size) >>> 0) === head && atomicLoad(ctl, CLOSED) === 0;
    return length;
  }

  /** Consumes the next record into a fresh buffer, or returns null if the ring is empty. */
  tryRead(): RingRecord | null {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    if (head === tail) return null;
    const word = this.header(head, tail);
    const length = word & 0xffffff;
    const bytes = new Uint8Array(length);
    this.copyOut(tail + HEADER, bytes, length);
    this.release(tail, length);
    return { kind: word >>> 24, bytes };
  }

  /**
   * Blocks a worker thread until a record is available, the ring is closed and drained, or the
   * timeout passes. Returns 'ready', 'closed' or 'timeout'. Never call on the root's thread.
   */
  waitReadable(timeoutMs = Infinity): 'ready' | 'closed' | 'timeout' {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const seq = Atomics.load(this.ctl, WSEQ);
      if (this.peekLength() >= 0) return 'ready';
      if (this.closed) return 'closed';
      const left = deadline - performance.now();
      if (left <= 0) return 'timeout';
      this.block(WWAIT, WSEQ, seq, left);
    }
  }

  /**
   * For a worker thread: blocks until the write counter moves from `seq` (a record, or the ring
   * closed) or `timeoutMs` passes (counted as a waiter meanwhile, so the writer notifies). Never
   * call on the root's thread.
   */
  waitWritten(seq: number, timeoutMs = Infinity): void {
    // block(WWAIT, WSEQ, ...), inline: an idle reactor's worker waits here for each call.
    const ctl = this.ctl;
    atomicAdd(ctl, WWAIT, 1);
    try {
      atomicWait(ctl, WSEQ, seq, timeoutMs === Infinity ? undefined : timeoutMs);
    } finally {
      atomicSub(ctl, WWAIT, 1);
    }
  }

  /** For the root's thread: resolves when something may have been written (or the ring closed) since `seq`. */
  whenWritten(seq: number): Promise<void> {
    return this.blockAsync(WWAIT, WSEQ, seq);
  }

  /** For the root's thread: resolves when something may have been consumed (room freed) since `seq`. */
  whenRead(seq: number): Promise<void> {
    return this.blockAsync(RWAIT, RSEQ, seq);
  }

  /**
   * For a worker thread: blocks until something may have been consumed (room freed) since `seq`
   * (a readSeq read before the write that found no room), or `timeoutMs` passes. Never call on
   * the root's thread.
   */
  waitRead(seq: number, timeoutMs = Infinity): void {
    this.block(RWAIT, RSEQ, seq, timeoutMs);
  }

  /** Atomics.wait on an event counter, counted in `waiters` meanwhile (see the header). */
  private block(waiters: number, event: number, seq: number, timeoutMs: number): void {
    Atomics.add(this.ctl, waiters, 1);
    try {
      Atomics.wait(this.ctl, event, seq, timeoutMs === Infinity ? undefined : timeoutMs);
    } finally {
      Atomics.sub(this.ctl, waiters, 1);
    }
  }

  /**
   * Atomics.waitAsync on an event counter, counted in `waiters` until it resolves. Not an async
   * function: the root takes every reactor reply through here, and the wait's own promise with
   * one `then` is one promise (and one microtask) less than an async wrapper around it.
   */
  private blockAsync(waiters: number, event: number, seq: number): Promise<void> {
    Atomics.add(this.ctl, waiters, 1);
    let result: ReturnType<typeof Atomics.waitAsync>;
    try {
      result = Atomics.waitAsync(this.ctl, event, seq);
    } catch (error) {
      Atomics.sub(this.ctl, waiters, 1);
      return Promise.reject(error);
    }
    if (!result.async) {
      Atomics.sub(this.ctl, waiters, 1);
      return RESOLVED;
    }
    // The wait's promise only ever resolves ('ok' or 'timed-out'), never rejects.
    return result.value.then(waiters === WWAIT ? this.leaveWriteWait : this.leaveReadWait);
  }

  private readonly leaveWriteWait = (): void => {
    Atomics.sub(this.ctl, WWAIT, 1);
  };

  private readonly leaveReadWait = (): void => {
    Atomics.sub(this.ctl, RWAIT, 1);
  };

  /** True while a thread waits in `waitWritten` for a record (a dedicated worker asleep on its call ring). */
  get readerWaiting(): boolean {
    return Atomics.load(this.ctl, WWAIT) !== 0;
  }

  /** Current write event counter (pass to whenWritten). */
  get writeSeq(): number {
    return Atomics.load(this.ctl, WSEQ);
  }

  /** Current read event counter (pass to whenRead). */
  get readSeq(): number {
    return Atomics.load(this.ctl, RSEQ);
  }

  /**
   * Mirroring (a partition in another process, host/channel/mirror.ts): the producer's side keeps
   * each record in its ring until the far copy's consumer has taken it, so both copies agree on
   * how full the channel is. These read records past the consumer's position without consuming
   * them, and consume records that were already delivered without copying them again.
   */

  /** The consumer's free-running byte position (the oldest record). */
  get tailPosition(): number {
    return Atomics.load(this.ctl, TAIL) >>> 0;
  }

  /** The producer's free-running byte position (after the newest record). */
  get headPosition(): number {
    return Atomics.load(this.ctl, HEAD) >>> 0;
  }

  /**
   * The record at byte position `pos` (from tailPosition up to headPosition, on a record
   * boundary), copied, without consuming it; with the position of the record after it. Null at
   * headPosition. A position outside the records in use is a RangeError.
   */
  recordAt(pos: number): { kind: number; bytes: Uint8Array; next: number } | null {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    pos >>>= 0;
    if (pos === head) return null;
    if (((pos - tail) >>> 0) >= ((head - tail) >>> 0)) throw new RangeError(`ring position ${pos} is outside the records in use`);
    const word = this.header(head, pos);
    const length = word & 0xffffff;
    const bytes = new Uint8Array(length);
    this.copyOut(pos + HEADER, bytes, length);
    return { kind: word >>> 24, bytes, next: (pos + HEADER + ((length + 3) & ~3)) >>> 0 };
  }

  /**
   * Consumes the oldest records, `bytes` of them (headers and padding included), without copying
   * them. False, and nothing consumed, unless `bytes` ends exactly on a record boundary within
   * what is in use.
   */
  discard(bytes: number): boolean {
    if (!Number.isInteger(bytes) || bytes < 0) return false;
    if (bytes === 0) return true;
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    if (bytes > ((head - tail) >>> 0)) return false;
    let at = 0;
    while (at < bytes) at += HEADER + (((this.header(head, (tail + at) >>> 0) & 0xffffff) + 3) & ~3);
    if (at !== bytes) return false;
    Atomics.store(this.ctl, TAIL, (tail + bytes) | 0);
    this.passed += bytes;
    Atomics.add(this.ctl, RSEQ, 1);
    Atomics.notify(this.ctl, RSEQ);
    this.moved(WANT_ROOM);
    return true;
  }

  /**
   * Zeroes the ring once neither side will use it again: its control block, and the data bytes
   * that were ever written. One side of a ring knows how far it reached: what this thread wrote
   * or consumed, plus what is in use now, bounds every byte written (the other side's writes
   * are what this side consumed, or still in use). While that stays within the capacity the
   * ring never wrapped, and only that prefix holds anything; a ring used further is zeroed
   * whole. `complete`: every write of the other side finished (it reported its end); a writer
   * that was stopped mid-record may have left bytes past what it published, so without that
   * the whole ring is zeroed too. The saving is the pages never touched: zeroing them would
   * fault each one in only to write zeros over zeros.
   */
  scrub(complete: boolean): void {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    const reach = this.passed + ((head - tail) >>> 0);
    const prefix = complete && reach <= this.capacity && head <= reach;
    this.data.fill(0, 0, prefix ? reach : this.capacity);
    this.ctl.fill(0);
  }

  /** Wakes any waiter (used when the root gives up on a ring, so no async wait stays pending). */
  wakeAll(): void {
    Atomics.add(this.ctl, WSEQ, 1);
    Atomics.notify(this.ctl, WSEQ);
    Atomics.add(this.ctl, RSEQ, 1);
    Atomics.notify(this.ctl, RSEQ);
  }

  /**
   * The header word at `tail`, checked against what the producer published: a record never
   * claims more bytes than are in use. The other side is host code, but a ring is shared memory,
   * so a reader trusts nothing it did not check (a corrupt ring is a RangeError, never a read
   * past the record).
   */
  private header(head: number, tail: number): number {
    const used = (head - tail) >>> 0;
    // get(tail), inline: every read of a record checks its header here.
    const i = tail & this.mask;
    const d = this.data;
    const word = (d[i]! | (d[i + 1]! << 8) | (d[i + 2]! << 16) | (d[i + 3]! << 24)) >>> 0;
    if (used > this.capacity || (tail & 3) !== 0 || HEADER + (((word & 0xffffff) + 3) & ~3) > used) {
      throw new RangeError(`corrupt ring: a record of ${word & 0xffffff} bytes with ${used} bytes in use`);
    }
    return word;
  }

  private release(tail: number, length: number): void {
    const size = HEADER + ((length + 3) & ~3);
    const ctl = this.ctl;
    Atomics.store(ctl, TAIL, (tail + size) | 0);
    this.passed += size;
    Atomics.add(ctl, RSEQ, 1);
    if (Atomics.load(ctl, RWAIT) !== 0) Atomics.notify(ctl, RSEQ);
    if (this.onMove !== null) this.moved(WANT_ROOM);
  }

  private copyIn(pos: number, src: Uint8Array, length: number): void {
    const i = pos & this.mask;
    const first = Math.min(length, this.capacity - i);
    // The common case, all of `src` before the wrap: no view made (a call's record is two parts,
    // its answer two more, each copied here).
    if (first === src.length) {
      this.data.set(src, i);
      return;
    }
    this.data.set(src.subarray(0, first), i);
    if (first < length) this.data.set(src.subarray(first, length), 0);
  }

  private copyOut(pos: number, dst: Uint8Array, length: number): void {
    const i = pos & this.mask;
    const first = Math.min(length, this.capacity - i);
    dst.set(this.data.subarray(i, i + first), 0);
    if (first < length) dst.set(this.data.subarray(0, length - first), first);
  }
}
