import {
  HV_NET_HEADER_SIZE,
  HV_NET_POLL_READABLE,
  HV_NET_POLL_WRITABLE,
  HV_NET_RECV_NONBLOCK,
  HvCall,
  HvDevice,
  HvStatus,
} from '../abi/codes.ts';
import { SharedRing } from '../channel/ring.ts';
import { threadBlocker, type Blocker } from '../channel/blocker.ts';
import { RateLimiter } from '../limits/rate-limiter.ts';
import { readU32, readU32Arg, writeU32, type Device, type Handler } from './device.ts';

/**
 * Network interface front-end, in the partition's worker. The NIC is two bounded SPSC rings
 * shared with the root's virtual switch (host/net/switch.ts) and a block of counters:
 *
 *   tx ring  worker → root  records (kind FRAME): u32 destination, payload. No source field:
 *            the switch stamps the source from the ring a frame came on (anti-spoofing by
 *            construction, the guest has nothing to forge).
 *   rx ring  root → worker  records (kind FRAME): u32 source, u32 destination, payload. Its
 *            capacity is the NIC's receive queue bound; the switch drops at the tail when full.
 *
 * Send limits (bytes and frames) are applied here, before a frame enters the tx ring, so a
 * flooding guest spends only its own budget; receive limits are applied by the switch.
 * Receive blocks this worker only (Atomics.wait on the rx ring), never the root.
 */

/** Record kind on both NIC rings. */
export const NET_FRAME_KIND = 1;

/** Counter slots of a NIC (Float64 in a SharedArrayBuffer). Each slot has one writer: the worker or the root. */
export const NetStat = {
  // Written by the worker.
  TX_FRAMES: 0,
  TX_BYTES: 1,
  /** Sends refused by the NIC's send budget (RATE_LIMITED). */
  TX_RATE_LIMITED: 2,
  /** Sends refused because the root did not drain the tx ring in time (WOULD_BLOCK). */
  TX_RING_FULL: 3,
  RX_FRAMES: 4,
  RX_BYTES: 5,
  // Written by the root's switch.
  /** Frames for this NIC dropped because its receive queue was full (drop-tail). */
  RX_QUEUE_DROPS: 8,
  /** Frames for this NIC dropped by its receive budget. */
  RX_RATE_LIMITED: 9,
  /** Frames for this NIC dropped because they exceed its MTU. */
  RX_OVERSIZE: 10,
  /** Frames from this NIC dropped: unknown address, another segment, or a host endpoint it may not reach. */
  TX_NO_ROUTE: 11,
  /** Frames from this NIC the switch forwarded (a broadcast counts once). */
  SWITCHED: 12,
} as const;
export const NET_STAT_SLOTS = 16;

/** What a worker needs to drive its NIC: plain data and shared buffers. */
export interface NetInit {
  address: number;
  mtu: number;
  tx: SharedArrayBuffer;
  rx: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  sendBytesPerSecond: number;
  sendFramesPerSecond: number;
}

/** Counters of a NIC, as `partition.metrics().net` shows them. */
export interface NetMetrics {
  address: string;
  segment: string;
  txFrames: number;
  txBytes: number;
  txRateLimited: number;
  txRingFull: number;
  txNoRoute: number;
  switched: number;
  rxFrames: number;
  rxBytes: number;
  rxQueueDrops: number;
  rxRateLimited: number;
  rxOversize: number;
}

export function readNetMetrics(stats: Float64Array, address: number, segment: string): NetMetrics {
  return {
    address: formatAddress(address),
    segment,
    txFrames: stats[NetStat.TX_FRAMES]!,
    txBytes: stats[NetStat.TX_BYTES]!,
    txRateLimited: stats[NetStat.TX_RATE_LIMITED]!,
    txRingFull: stats[NetStat.TX_RING_FULL]!,
    txNoRoute: stats[NetStat.TX_NO_ROUTE]!,
    switched: stats[NetStat.SWITCHED]!,
    rxFrames: stats[NetStat.RX_FRAMES]!,
    rxBytes: stats[NetStat.RX_BYTES]!,
    rxQueueDrops: stats[NetStat.RX_QUEUE_DROPS]!,
    rxRateLimited: stats[NetStat.RX_RATE_LIMITED]!,
    rxOversize: stats[NetStat.RX_OVERSIZE]!,
  };
}

/** An address as a dotted quad, e.g. 10.0.0.2 (broadcast: 255.255.255.255). */
export function formatAddress(a: number): string {
  return `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/**
 * The NIC's send (and the switch's per-port receive) budget: the shared RateLimiter in reject
 * mode, with bytes and frames buckets of a one-second burst; the byte bucket holds at least one
 * frame of `mtu` bytes, so every legal frame can pass eventually.
 */
export class FrameBudget extends RateLimiter {
  constructor(bytesPerSecond: number, framesPerSecond: number, mtu: number, now?: () => number) {
    super(
      {
        bytes: { perSecond: bytesPerSecond, burst: Math.max(bytesPerSecond, mtu), oneTimeBurst: 0 },
        ops: { perSecond: framesPerSecond, burst: Math.max(1, framesPerSecond), oneTimeBurst: 0 },
        mode: 'reject',
      },
      now ? { now } : {},
    );
  }

  /** Takes one frame of `n` bytes if both buckets admit it; otherwise takes nothing. */
  take(n: number): boolean {
    return this.admit(n) === 'ok';
  }

  /** Whether one frame of `n` bytes would pass now (takes nothing). */
  admits(n: number): boolean {
    return this.wouldAdmit(n);
  }
}

export interface NetDeviceOptions {
  /** Monotonic milliseconds for the send budget. Default performance.now. */
  now?: () => number;
  /** How long a send waits for room in the tx ring (the root drains it) before WOULD_BLOCK. Default 1000 ms. */
  txWaitMs?: number;
  /** How sends and receives wait (default: block the thread). */
  blocker?: Blocker;
}

/** u32 little-endian at `at`. */


export class NetDevice implements Device {
  readonly name = 'net';
  readonly record;
  readonly handlers: ReadonlyMap<number, Handler>;
  private readonly tx: SharedRing;
  private readonly rx: SharedRing;
  private readonly stats: Float64Array;
  private readonly budget: FrameBudget;
  private readonly txWaitMs: number;
  private readonly blocker: Blocker;

  constructor(
    private readonly init: NetInit,
    options: NetDeviceOptions = {},
  ) {
    this.tx = new SharedRing(init.tx);
    this.rx = new SharedRing(init.rx);
    this.stats = new Float64Array(init.stats);
    this.budget = new FrameBudget(init.sendBytesPerSecond, init.sendFramesPerSecond, init.mtu, options.now);
    this.txWaitMs = options.txWaitMs ?? 1000;
    this.blocker = options.blocker ?? threadBlocker;
    this.record = { id: HvDevice.NET, version: 1, param0: init.address, param1: init.mtu };
    this.handlers = new Map<number, Handler>([
      [HvCall.NET_INFO, (_i, inLen, out, outCap) => this.info(inLen, out, outCap)],
      [HvCall.NET_SEND, (input, inLen) => this.send(input, inLen)],
      [HvCall.NET_RECV, (input, inLen, out, outCap) => this.recv(input, inLen, out, outCap)],
      [HvCall.NET_POLL, (input, inLen) => this.poll(input, inLen)],
    ]);
  }

  private info(inLen: number, out: Uint8Array, outCap: number): number {
    if (inLen !== 0) return -HvStatus.INVALID_ARGUMENT;
    if (outCap < 8) return -HvStatus.BUFFER_TOO_SMALL;
    writeU32(out, 0, this.init.address);
    writeU32(out, 4, this.init.mtu);
    return 8;
  }

  private send(input: Uint8Array, inLen: number): number {
    if (inLen < 4) return -HvStatus.INVALID_ARGUMENT;
    const length = inLen - 4;
    if (length > this.init.mtu) return -HvStatus.TOO_LARGE;
    const s = this.stats;
    if (!this.budget.admits(length)) {
      s[NetStat.TX_RATE_LIMITED]!++;
      return -HvStatus.RATE_LIMITED;
    }
    // Wait for room first, so a send that waits has taken nothing yet (it may be redone, see Blocker).
    const deadline = this.blocker.deadline(this.txWaitMs);
    for (;;) {
      const seq = this.tx.readSeq;
      if (this.tx.writable >= inLen || this.tx.closed) break;
      if (performance.now() >= deadline) break;
      this.blocker.writable(this.tx, seq, deadline);
    }
    // The input already has the tx record's layout (destination, payload): no copy, no source.
    if (this.tx.writable < inLen || !this.budget.take(length) || !this.tx.tryWrite(NET_FRAME_KIND, input, inLen)) {
      s[NetStat.TX_RING_FULL]!++;
      return -HvStatus.WOULD_BLOCK;
    }
    s[NetStat.TX_FRAMES]!++;
    s[NetStat.TX_BYTES]! += length;
    return length;
  }

  private recv(input: Uint8Array, inLen: number, out: Uint8Array, outCap: number): number {
    let flags = 0;
    let timeoutMs = Infinity;
    if (inLen === 8) {
      flags = readU32(input, 0);
      const t = readU32(input, 4);
      timeoutMs = t === 0xffffffff ? Infinity : t;
    } else if (inLen !== 0) {
      return -HvStatus.INVALID_ARGUMENT;
    }
    if ((flags & ~HV_NET_RECV_NONBLOCK) !== 0) return -HvStatus.INVALID_ARGUMENT;
    if ((flags & HV_NET_RECV_NONBLOCK) !== 0) timeoutMs = 0;
    const deadline = this.blocker.deadline(timeoutMs);
    for (;;) {
      const seq = this.rx.writeSeq;
      const length = this.rx.peekLength();
      if (length >= 0) {
        // The frame stays queued when it does not fit, so the guest can retry with a larger buffer.
        if (length > outCap) return -HvStatus.BUFFER_TOO_SMALL;
        // Straight into the dispatcher's zeroed scratch: the bytes after the frame stay zero and
        // the whole output window is copied back, so no earlier frame's bytes can show through.
        this.rx.readInto(out);
        this.stats[NetStat.RX_FRAMES]!++;
        this.stats[NetStat.RX_BYTES]! += length - HV_NET_HEADER_SIZE;
        return length;
      }
      if (this.rx.closed) return -HvStatus.END_OF_STREAM;
      if (performance.now() >= deadline) return -HvStatus.WOULD_BLOCK;
      // Blocks (or suspends) this partition only; the watchdog still bounds an endless wait.
      this.blocker.readable(this.rx, seq, deadline);
    }
  }

  private poll(input: Uint8Array, inLen: number): number {
    let timeoutMs = 0;
    if (inLen === 4) {
      const t = readU32Arg(input, inLen);
      timeoutMs = t === 0xffffffff ? Infinity : t;
    } else if (inLen !== 0) {
      return -HvStatus.INVALID_ARGUMENT;
    }
    if (timeoutMs > 0) {
      const deadline = this.blocker.deadline(timeoutMs);
      for (let seq = this.rx.writeSeq; this.rx.peekLength() < 0 && !this.rx.closed && performance.now() < deadline; seq = this.rx.writeSeq) {
        this.blocker.readable(this.rx, seq, deadline);
      }
    }
    let bits = 0;
    if (this.rx.peekLength() >= 0) bits |= HV_NET_POLL_READABLE;
    const mtu = this.init.mtu;
    if (this.tx.capacity - this.tx.used >= 4 + ((4 + mtu + 3) & ~3) && this.budget.admits(mtu)) bits |= HV_NET_POLL_WRITABLE;
    return bits;
  }
}
