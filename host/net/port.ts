import { SharedRing } from '../channel/ring.ts';
import { rxRecordBytes } from '../devices/resolved.ts';
import { RATE_LIMITER_SLOTS, RateLimiter } from '../limits/rate-limiter.ts';

/**
 * A NIC's port: its receiving side as every producer of frames for it sees it. The receive queue
 * is an SPSC SharedRing whose one consumer is the NIC's own worker; the producers are the root's
 * switch and, for unicast frames between NICs of one segment, the sending NICs' workers, which
 * deliver here directly instead of through the root (see host/net/switch.ts for who may hold a
 * port, which is the whole of the access control).
 *
 * Producers serialize on the port's lock, a word in shared memory holding the owner's address
 * (0 when free; the root is ROOT_OWNER). Under the lock a producer does what the switch always
 * did for a delivery, in this order: refuse a port that is down, drop a frame above the port's
 * MTU (counted on the receiver), pass the receive budget, append the record whole to the queue,
 * and only then charge the budget. The budget's state lives in the port's control block, so every
 * producer charges the same buckets. Nothing is ever held while waiting: a producer that finds
 * no room lets go of the lock first.
 *
 * A worker can die holding the lock (the watchdog terminates it between any two statements):
 * its partition's run end makes the root release every lock that address holds (`release`).
 * A record is published by the ring's head store, so a producer that died mid-write left
 * nothing visible.
 *
 * Control block: Int32 slots, then the receive budget's Float64 state at byte BUDGET_OFFSET.
 */

/** Record kind on a NIC's rings: a frame. */
export const NET_FRAME_KIND = 1;
/** Record kind on a NIC's tx ring: the worker asks the root for its current peer table (empty payload). */
export const NET_SYNC_KIND = 2;

/** Int32 slots of a port's control block. */
export const PortSlot = {
  /** Owner of the producer lock (an address, or ROOT_OWNER), 0 when free. */
  LOCK: 0,
  /** Producers waiting for the lock (unlock notifies only when there are some). */
  WAITERS: 1,
  /** 0 while the NIC's partition can receive; 1 once it is down or unplugged (frames are dropped). */
  STATE: 2,
  /** Generation of this NIC's peer table, as a sender: bumped by the root when its segment changes. */
  GEN: 3,
  /** Frames this NIC's worker has put on its tx ring (it is the one writer). */
  TX_WRITTEN: 4,
  /** Of those, the frames the root is done with (delivered or dropped): equal when none is with the root. */
  TX_DONE: 5,
} as const;
const CTL_INTS = 8;
const BUDGET_OFFSET = CTL_INTS * 4;
/** Bytes of a port's control block. */
export const PORT_CTL_BYTES = BUDGET_OFFSET + RATE_LIMITER_SLOTS * 8;

/** The lock owner that stands for the root's switch (the broadcast address: never a NIC's). */
export const ROOT_OWNER = -1;

/** Counter slots of a NIC (Float64 in a SharedArrayBuffer). Each slot has one writer at a time. */
export const NetStat = {
  // Written by the NIC's worker.
  TX_FRAMES: 0,
  TX_BYTES: 1,
  /** Sends refused by the NIC's send budget (RATE_LIMITED). */
  TX_RATE_LIMITED: 2,
  /** Sends refused because the root did not drain the tx ring in time (WOULD_BLOCK). */
  TX_RING_FULL: 3,
  RX_FRAMES: 4,
  RX_BYTES: 5,
  /** Sends refused (WOULD_BLOCK) because the destination's queue or receive budget had no room: flow control. Since 1.3. */
  TX_WOULD_BLOCK: 6,
  /** Frames this NIC's worker delivered straight into another NIC's port (part of `switched`). */
  SWITCHED_DIRECT: 7,
  // Written by whoever holds this NIC's port lock (the root or a sender's worker).
  /** Frames for this NIC dropped because its receive queue was full (drop-tail). */
  RX_QUEUE_DROPS: 8,
  /** Frames for this NIC dropped by its receive budget. */
  RX_RATE_LIMITED: 9,
  /** Frames for this NIC dropped because they exceed its MTU. */
  RX_OVERSIZE: 10,
  // Written by the root's switch.
  /** Frames from this NIC dropped: unknown address, another segment, or a host endpoint it may not reach. */
  TX_NO_ROUTE: 11,
  /** Frames from this NIC the root's switch forwarded (a broadcast counts once). */
  SWITCHED: 12,
} as const;
export const NET_STAT_SLOTS = 16;

/**
 * A clock every thread reads alike (milliseconds): a budget charged from several threads needs
 * one time line, and each thread's performance.now() counts from its own start.
 */
export function processClock(): number {
  return TIME_ORIGIN + performance.now();
}
/** This thread's time origin (reading performance.timeOrigin is a native call each time). */
const TIME_ORIGIN = performance.timeOrigin;

/**
 * The NIC's send (and per-port receive) budget: the shared RateLimiter in reject mode, with
 * bytes and frames buckets of a one-second burst; the byte bucket holds at least one frame of
 * `mtu` bytes, so every legal frame can pass eventually. `state` puts the buckets in shared
 * memory (a port's receive budget); `attach` uses state another thread initialized.
 */
export class FrameBudget extends RateLimiter {
  constructor(bytesPerSecond: number, framesPerSecond: number, mtu: number, now?: () => number, state?: { state: Float64Array; attach: boolean }) {
    super(
      {
        bytes: { perSecond: bytesPerSecond, burst: Math.max(bytesPerSecond, mtu), oneTimeBurst: 0 },
        ops: { perSecond: framesPerSecond, burst: Math.max(1, framesPerSecond), oneTimeBurst: 0 },
        // Stryker disable next-line StringLiteral: equivalent: a FrameBudget only takes, asks and measures (tryTake, wouldAdmit, waitTimeMs), which never read the mode
        mode: 'reject',
      },
      { ...(now ? { now } : {}), ...(state ?? {}) },
    );
  }

  /** Takes one frame of `n` bytes if both buckets admit it at `t` (default now); otherwise takes nothing. */
  take(n: number, t?: number): boolean {
    return this.tryTake(n, t);
  }

  /** Whether one frame of `n` bytes would pass at `t` (default now); takes nothing. */
  admits(n: number, t?: number): boolean {
    return this.wouldAdmit(n, t);
  }
}

/** A port as plain data: what the root hands to a worker that may deliver into it. */
export interface PortInit {
  address: number;
  mtu: number;
  rx: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  recvBytesPerSecond: number;
  recvFramesPerSecond: number;
}

/** Outcome of one delivery attempt into a port. */
export type PortOutcome = 'delivered' | 'full' | 'rate-limited' | 'oversize' | 'down';

/** How many times a producer retries the lock before it sleeps on it. */
const LOCK_SPINS = 64;

export class NicPort {
  readonly address: number;
  readonly mtu: number;
  readonly rx: SharedRing;
  readonly stats: Float64Array;
  private readonly ctl: Int32Array;
  private readonly budget: FrameBudget;
  /** The receive budget's clock: the same time line in every thread (processClock, or a test's). */
  private readonly now: () => number;

  /** `initialize`: the root, when the NIC is plugged in, sets up the budget's state. */
  constructor(init: PortInit, now: () => number, initialize = false) {
    this.now = now;
    this.address = init.address;
    this.mtu = init.mtu;
    this.rx = new SharedRing(init.rx);
    this.stats = new Float64Array(init.stats);
    this.ctl = new Int32Array(init.ctl, 0, CTL_INTS);
    const state = new Float64Array(init.ctl, BUDGET_OFFSET, RATE_LIMITER_SLOTS);
    this.budget = new FrameBudget(init.recvBytesPerSecond, init.recvFramesPerSecond, init.mtu, now, { state, attach: !initialize });
  }

  /** Allocates a port's control block. */
  static allocateCtl(): SharedArrayBuffer {
    return new SharedArrayBuffer(PORT_CTL_BYTES);
  }

  /** Whether the port takes no more frames (its partition is down or the NIC unplugged). */
  get down(): boolean {
    return Atomics.load(this.ctl, PortSlot.STATE) !== 0 || this.rx.closed;
  }

  /** Root: the port takes no more frames. Producers check under the lock. */
  markDown(): void {
    Atomics.store(this.ctl, PortSlot.STATE, 1);
  }

  /** Takes the lock if it is free; never waits (the root's thread must not). */
  tryLock(owner: number): boolean {
    return Atomics.compareExchange(this.ctl, PortSlot.LOCK, 0, owner | 0) === 0;
  }

  /**
   * Takes the lock, spinning briefly and then sleeping on it (a worker thread only), for up to
   * `timeoutMs`. False if that passed.
   */
  lock(owner: number, timeoutMs: number): boolean {
    // Stryker disable next-line EqualityOperator: timing only: one spin more or none before the wait loop, which takes a free lock the same way
    for (let i = 0; i < LOCK_SPINS; i++) if (this.tryLock(owner)) return true;
    const deadline = performance.now() + timeoutMs;
    const ctl = this.ctl;
    Atomics.add(ctl, PortSlot.WAITERS, 1);
    try {
      for (;;) {
        const held = Atomics.load(ctl, PortSlot.LOCK);
        if (held === 0 && this.tryLock(owner)) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        // Woken by unlock or release; the slice bounds a wait on a holder that vanished.
        // Stryker disable next-line all: timing only: whether and how long to sleep between two looks at the lock (unlock and release wake a sleeper; the deadline is checked on every look)
        if (held !== 0) Atomics.wait(ctl, PortSlot.LOCK, held, Math.min(left, 5));
      }
    } finally {
      Atomics.sub(ctl, PortSlot.WAITERS, 1);
    }
  }

  unlock(): void {
    Atomics.store(this.ctl, PortSlot.LOCK, 0);
    if (Atomics.load(this.ctl, PortSlot.WAITERS) !== 0) Atomics.notify(this.ctl, PortSlot.LOCK, 1);
  }

  /** Root: frees the lock if `owner` (whose worker is gone) holds it. */
  release(owner: number): boolean {
    if (Atomics.compareExchange(this.ctl, PortSlot.LOCK, owner | 0, 0) !== (owner | 0)) return false;
    Atomics.notify(this.ctl, PortSlot.LOCK);
    this.rx.wakeAll(); // a record it published without its wake-up still reaches the reader
    return true;
  }

  /**
   * Under the lock: delivers a frame from `src`: `body` holds the u32 destination then the
   * payload of `payloadLength` bytes (the layout of a tx record and of NET_SEND's input); the
   * source is stamped in front of it as the record is written. With `drop`, a frame that cannot be taken now is dropped and
   * counted on this NIC (best effort: broadcast, and what the switch cannot hold back); without,
   * the caller keeps it and nothing is counted (flow control). A frame above the MTU never fits
   * and is always dropped and counted. `t`: the receive budget's clock, read by the caller.
   */
  put(src: number, body: Uint8Array, payloadLength: number, drop: boolean, t: number = this.now()): PortOutcome {
    const s = this.stats;
    if (this.down) {
      if (drop) s[NetStat.RX_QUEUE_DROPS]!++;
      return 'down';
    }
    if (payloadLength > this.mtu) {
      s[NetStat.RX_OVERSIZE]!++;
      return 'oversize';
    }
    if (!this.budget.admits(payloadLength, t)) {
      if (drop) s[NetStat.RX_RATE_LIMITED]!++;
      return 'rate-limited';
    }
    if (!this.rx.tryWritePrefixed(NET_FRAME_KIND, src, body, 4 + payloadLength)) {
      if (drop) s[NetStat.RX_QUEUE_DROPS]!++;
      return 'full';
    }
    // Charged only for frames that were queued: a full queue does not also eat the budget.
    this.budget.take(payloadLength, t);
    return 'delivered';
  }

  /** Under the lock: milliseconds until the receive budget admits a frame of `payloadLength` bytes. */
  budgetWaitMs(payloadLength: number, t: number = this.now()): number {
    return this.budget.waitTimeMs(payloadLength, t);
  }

  /** Whether a frame of `payloadLength` bytes would be taken now: an estimate without the lock. */
  wouldTake(payloadLength: number): boolean {
    return !this.down && payloadLength <= this.mtu && this.rx.capacity - this.rx.used >= rxRecordBytes(payloadLength) && this.budget.admits(payloadLength);
  }

  /** This NIC's peer-table generation (see PortSlot.GEN). */
  get generation(): number {
    return Atomics.load(this.ctl, PortSlot.GEN);
  }

  /** Root: the NIC's segment changed; its worker fetches a new peer table before its next direct send. */
  bumpGeneration(): void {
    Atomics.add(this.ctl, PortSlot.GEN, 1);
  }

  /** Worker: one more frame is on the tx ring. */
  frameWritten(): void {
    Atomics.add(this.ctl, PortSlot.TX_WRITTEN, 1);
  }

  /** Root: one more frame from the tx ring is done with (delivered or dropped). */
  frameDone(): void {
    Atomics.add(this.ctl, PortSlot.TX_DONE, 1);
  }

  /** Whether every frame this NIC put on its tx ring is done with: then a direct delivery cannot overtake one. */
  get txIdle(): boolean {
    return Atomics.load(this.ctl, PortSlot.TX_WRITTEN) === Atomics.load(this.ctl, PortSlot.TX_DONE);
  }
}
