import { BroadcastChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import {
  HV_NET_BROADCAST,
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
import { sleepSync } from '../limits/rate-limiter.ts';
import { FrameBudget, NET_FRAME_KIND, NET_SYNC_KIND, NetStat, NicPort, processClock, type PortInit, type PortOutcome } from '../net/port.ts';
import { readU32, writeU32, writesPrefix, type Device, type Handler } from './device.ts';

export { FrameBudget, NET_FRAME_KIND, NET_STAT_SLOTS, NetStat } from '../net/port.ts';

/**
 * Network interface front-end, in the partition's worker. The NIC has a tx ring to the root's
 * virtual switch (host/net/switch.ts), its own port (host/net/port.ts: its receive queue, lock,
 * receive budget, counters) and a peer table:
 *
 *   tx ring  worker → root  records (kind FRAME): u32 destination, payload. No source field:
 *            the switch stamps the source from the ring a frame came on. Also SYNC requests.
 *   rx ring  producers → worker  records (kind FRAME): u32 source, u32 destination, payload.
 *            Its capacity is the NIC's receive queue bound.
 *
 * Unicast to another NIC of the segment goes straight into that NIC's port (no round trip
 * through the root) when the root has listed that NIC among this one's peers; everything else
 * (broadcast, host endpoints, any address not listed) goes through the root. The direct path does
 * exactly what the switch does, in host code the guest cannot reach: it stamps this NIC's own
 * address as the source (the guest's frame has no source field), can only name ports the root
 * handed out (NICs of its own segment), and passes the destination's MTU, receive budget and
 * bounded queue under the port's lock. See docs/THREAT-MODEL.md.
 *
 * Flow control (ABI 1.3): a unicast frame the destination cannot take now (queue full, receive
 * budget spent) is not sent: NET_SEND waits up to `txWaitMs` for room, NET_TRY_SEND not at all,
 * then WOULD_BLOCK. A sender that retries on WOULD_BLOCK loses nothing. Frames to one
 * destination keep their order: while a frame this NIC sent is still with the root, unicast takes
 * the root path too.
 *
 * Send limits (bytes and frames) are applied here, before a frame leaves, so a flooding guest
 * spends only its own budget. Waiting (receive, flow control) blocks this worker only, never the
 * root.
 */

/** What a worker needs to drive its NIC: plain data and shared buffers. */
export interface NetInit {
  address: number;
  mtu: number;
  tx: SharedArrayBuffer;
  /** This NIC's own port: its receive queue (this worker reads it), counters and control words. */
  port: PortInit;
  sendBytesPerSecond: number;
  sendFramesPerSecond: number;
  /** The NICs this one may deliver to directly, as of `gen` (when it was plugged in). */
  peers: PortInit[];
  gen: number;
  /** BroadcastChannel name on which the root answers this NIC's SYNC requests with a PeerTable. */
  channel: string;
  /**
   * Whether this NIC sends straight into its peers' ports (and is one of theirs). False for a
   * partition in a shared worker: its waits suspend it rather than block its thread, and the
   * root wakes it through the worker's doorbell, which only the root's own deliveries ring; so
   * all its frames, both ways, go through the root. (`peers` is then empty.)
   */
  direct: boolean;
}

/** A NIC's peer table, as the root posts it on the NIC's channel. */
export interface PeerTable {
  gen: number;
  peers: PortInit[];
}

/** Counters of a NIC, as `partition.metrics().net` shows them. */
export interface NetMetrics {
  address: string;
  segment: string;
  txFrames: number;
  txBytes: number;
  txRateLimited: number;
  txRingFull: number;
  /** Sends refused with WOULD_BLOCK because the destination had no room (flow control). Since 1.3. */
  txWouldBlock: number;
  txNoRoute: number;
  /** Frames forwarded: by the root's switch, or straight into the destination's port. */
  switched: number;
  /** Of `switched`, the frames delivered straight into another NIC's port (no root round trip). */
  switchedDirect: number;
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
    txWouldBlock: stats[NetStat.TX_WOULD_BLOCK]!,
    txNoRoute: stats[NetStat.TX_NO_ROUTE]!,
    switched: stats[NetStat.SWITCHED]! + stats[NetStat.SWITCHED_DIRECT]!,
    switchedDirect: stats[NetStat.SWITCHED_DIRECT]!,
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

export interface NetDeviceOptions {
  /**
   * Milliseconds: the clock of the send budget and of the peers' receive budgets, which the
   * root's switch and every sender charge: one time line for all threads. Default processClock.
   */
  now?: () => number;
  /** How long NET_SEND waits for room (the destination's queue or budget, or the tx ring) before WOULD_BLOCK. Default 1000 ms. */
  txWaitMs?: number;
  /**
   * How sends, receives and polls wait for a ring (default: block the thread). In a shared
   * worker the wait suspends the partition, and the operation runs again from its start when it
   * is resumed (host/channel/blocker.ts): each one takes nothing before its wait.
   */
  blocker?: Blocker;
}

/** Receive coalescing: a receive-only NIC whose last frame came less than RX_STREAM_GAP_MS ago naps RX_COALESCE_MS before it asks to be woken. */
const RX_STREAM_GAP_MS = 0.1;
const RX_COALESCE_MS = 0.05;
/** Transmit coalescing: a sender that finds the destination's queue full naps TX_NAP_MS up to TX_NAPS times before it asks to be woken. */
const TX_NAP_MS = 0.1;
const TX_NAPS = 10;

/** The payload of a SYNC request. */
const NO_BYTES = new Uint8Array(0);

/** NET_POLL with a destination waits in slices this long, checking both readiness bits in between (ms). */
const POLL_SLICE_MS = 1;

function isPeerTable(v: unknown): v is PeerTable {
  if (typeof v !== 'object' || v === null) return false;
  const t = v as { gen?: unknown; peers?: unknown };
  return (
    typeof t.gen === 'number' &&
    Array.isArray(t.peers) &&
    t.peers.every((p: unknown) => typeof p === 'object' && p !== null && (p as PortInit).rx instanceof SharedArrayBuffer && (p as PortInit).ctl instanceof SharedArrayBuffer)
  );
}

export class NetDevice implements Device {
  readonly name = 'net';
  readonly record;
  readonly handlers: ReadonlyMap<number, Handler>;
  private readonly tx: SharedRing;
  private readonly rx: SharedRing;
  private readonly stats: Float64Array;
  /** This NIC's own port, for its control words (peer-table generation, frames with the root). */
  private readonly own: NicPort;
  private readonly budget: FrameBudget;
  private readonly txWaitMs: number;
  private readonly blocker: Blocker;
  private readonly now: () => number;
  /** Ports this NIC may deliver into directly, by address. */
  private peers = new Map<number, NicPort>();
  /** Generation of `peers`; the root's current one is in this NIC's port (PortSlot.GEN). */
  private gen: number;
  /** The newest table received and not yet applied. */
  private offered: PeerTable | null = null;
  /** The generation a SYNC request was last sent for. */
  private requested = -1;
  /** Where the root answers SYNC requests; null for a NIC without the direct path. */
  private readonly channel: BroadcastChannel | null;
  /** Receive coalescing: when the last frame came (performance.now()), whether this NIC sent since, whether it napped since. */
  private lastFrameAt = -Infinity;
  private sentSinceFrame = false;
  private napped = false;
  /** A private cell nobody notifies: a nap (receive or transmit coalescing) always runs to its timeout. */
  private readonly nap = new Int32Array(new SharedArrayBuffer(4));

  constructor(
    private readonly init: NetInit,
    options: NetDeviceOptions = {},
  ) {
    this.now = options.now ?? processClock;
    this.tx = new SharedRing(init.tx);
    this.own = new NicPort(init.port, this.now);
    this.rx = this.own.rx;
    this.stats = this.own.stats;
    this.budget = new FrameBudget(init.sendBytesPerSecond, init.sendFramesPerSecond, init.mtu, this.now);
    this.txWaitMs = options.txWaitMs ?? 1000;
    this.blocker = options.blocker ?? threadBlocker;
    this.gen = init.gen;
    this.apply(init.peers);
    if (init.direct) {
      const channel = new BroadcastChannel(init.channel);
      // Tables are taken synchronously (receiveMessageOnPort) when the generation moved; one the
      // event loop dispatches meanwhile is kept too. The channel never keeps the worker alive.
      channel.onmessage = (e: unknown) => this.offer((e as { data?: unknown }).data);
      channel.unref();
      this.channel = channel;
    } else {
      this.channel = null;
    }
    this.record = { id: HvDevice.NET, version: 1, param0: init.address, param1: init.mtu };
    this.handlers = new Map<number, Handler>([
      [HvCall.NET_INFO, writesPrefix((_i, inLen, out, outCap) => this.info(inLen, out, outCap))],
      [HvCall.NET_SEND, (input, inLen) => this.send(input, inLen, true)],
      // A frame (header and payload) is written whole: a 64 KiB window for a 64-byte frame costs
      // the dispatcher one memset of the rest, not a scratch round trip of 64 KiB.
      [HvCall.NET_RECV, writesPrefix((input, inLen, out, outCap) => this.recv(input, inLen, out, outCap))],
      [HvCall.NET_POLL, (input, inLen) => this.poll(input, inLen)],
      [HvCall.NET_TRY_SEND, (input, inLen) => this.send(input, inLen, false)],
    ]);
  }

  /** Leaves the peer tables' channel. */
  close(): void {
    this.channel?.close();
  }

  private info(inLen: number, out: Uint8Array, outCap: number): number {
    if (inLen !== 0) return -HvStatus.INVALID_ARGUMENT;
    if (outCap < 8) return -HvStatus.BUFFER_TOO_SMALL;
    writeU32(out, 0, this.init.address);
    writeU32(out, 4, this.init.mtu);
    return 8;
  }

  private send(input: Uint8Array, inLen: number, wait: boolean): number {
    if (inLen < 4) return -HvStatus.INVALID_ARGUMENT;
    const length = inLen - 4;
    if (length > this.init.mtu) return -HvStatus.TOO_LARGE;
    const s = this.stats;
    this.sentSinceFrame = true;
    const t = this.now(); // one clock read for this NIC's budget and the destination's
    if (!this.budget.admits(length, t)) {
      s[NetStat.TX_RATE_LIMITED]!++;
      return -HvStatus.RATE_LIMITED;
    }
    const dst = readU32(input, 0);
    const peer = dst === HV_NET_BROADCAST ? undefined : this.directPeer(dst);
    if (peer !== undefined) {
      const outcome = this.deliver(peer, input, inLen, length, wait, t);
      if (outcome === 'full' || outcome === 'rate-limited') {
        s[NetStat.TX_WOULD_BLOCK]!++;
        return -HvStatus.WOULD_BLOCK;
      }
      if (outcome !== 'down') {
        // Delivered, or above the destination's MTU (dropped and counted on the receiver, as the
        // switch does): either way the frame left this NIC.
        this.budget.take(length, t);
        s[NetStat.TX_FRAMES]!++;
        s[NetStat.TX_BYTES]! += length;
        s[NetStat.SWITCHED_DIRECT]!++;
        return length;
      }
      // The destination went down or was unplugged: the root decides (and reports) from here on.
      this.peers.delete(dst);
    }
    // Through the root. The input already has the tx record's layout (destination, payload).
    if (!this.tx.tryWrite(NET_FRAME_KIND, input, inLen) && !(wait && this.writeWaiting(input, inLen))) {
      s[NetStat.TX_RING_FULL]!++;
      return -HvStatus.WOULD_BLOCK;
    }
    this.own.frameWritten();
    this.budget.take(length, this.now());
    s[NetStat.TX_FRAMES]!++;
    s[NetStat.TX_BYTES]! += length;
    return length;
  }

  /**
   * Writes a tx record, waiting up to txWaitMs for room through the Blocker. Until the record is
   * written the send has taken nothing (no budget, no counter), so a suspended send that runs
   * again from its start does nothing twice.
   */
  private writeWaiting(input: Uint8Array, inLen: number): boolean {
    const tx = this.tx;
    const deadline = this.blocker.deadline(this.txWaitMs);
    for (;;) {
      const seq = tx.readSeq;
      if (tx.tryWrite(NET_FRAME_KIND, input, inLen)) return true;
      if (tx.closed || performance.now() >= deadline) return false;
      this.blocker.writable(tx, seq, deadline);
    }
  }

  /**
   * The port to deliver a frame for `dst` into directly, or undefined for the root path: `dst`
   * is not a listed peer, or a frame this NIC sent is still with the root (order per destination).
   */
  private directPeer(dst: number): NicPort | undefined {
    if (this.channel === null) return undefined;
    if (this.own.generation !== this.gen) this.sync();
    const peer = this.peers.get(dst);
    if (peer === undefined || !this.own.txIdle) return undefined;
    return peer;
  }

  /** Delivers into `peer` under its lock; with `wait`, retries for up to txWaitMs while it has no room. */
  private deliver(peer: NicPort, input: Uint8Array, inLen: number, length: number, wait: boolean, t: number): PortOutcome {
    let deadline = -1; // read the clock only once a first attempt failed
    let naps = 0;
    for (let now = t; ; now = this.now()) {
      const seq = peer.rx.readSeq; // before the attempt: a read after it still ends the wait below
      if (!peer.lock(this.init.address, !wait ? 0 : deadline < 0 ? this.txWaitMs : deadline - performance.now())) return 'full';
      let outcome: PortOutcome;
      let budgetMs = 0;
      try {
        // The input is the destination and the payload; the port stamps this NIC's address in front.
        outcome = peer.put(this.init.address, input, length, false, now);
        if (outcome === 'rate-limited') budgetMs = peer.budgetWaitMs(length, now);
      } finally {
        peer.unlock();
      }
      if (outcome !== 'full' && outcome !== 'rate-limited') return outcome;
      if (!wait) return outcome;
      if (deadline < 0) deadline = performance.now() + this.txWaitMs;
      const left = deadline - performance.now();
      if (left <= 0) return outcome;
      if (outcome === 'rate-limited') {
        sleepSync(Math.min(left, budgetMs));
      } else if (naps < TX_NAPS) {
        // Transmit coalescing, the mirror of the receive side: a full queue is usually being
        // drained, so nap and then refill it in a burst, rather than have the receiver pay a
        // futex wake-up for every frame it takes. After TX_NAPS naps, wait to be woken.
        naps++;
        Atomics.wait(this.nap, 0, 0, Math.min(left, TX_NAP_MS));
      } else {
        peer.rx.waitRead(seq, left);
      }
    }
  }

  /** Takes the newest peer table the root posted; if there is none yet for the current generation, asks for one. */
  private sync(): void {
    // Node takes a BroadcastChannel here (receiveMessageOnPort(port: MessagePort | BroadcastChannel));
    // @types/node 20 declares only MessagePort.
    const port = this.channel! as unknown as MessagePort;
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) this.offer(m.message);
    const offered = this.offered;
    if (offered !== null) {
      this.offered = null;
      this.gen = offered.gen;
      this.apply(offered.peers);
    }
    const current = this.own.generation;
    if (this.gen !== current && this.requested !== current && this.tx.tryWrite(NET_SYNC_KIND, NO_BYTES, 0)) this.requested = current;
  }

  private offer(table: unknown): void {
    if (isPeerTable(table) && table.gen > (this.offered?.gen ?? this.gen)) this.offered = table;
  }

  /** Replaces the peer table, keeping the port objects of addresses that stay. */
  private apply(peers: readonly PortInit[]): void {
    const next = new Map<number, NicPort>();
    for (const p of peers) {
      if (p.address === this.init.address) continue;
      next.set(p.address, this.peers.get(p.address) ?? new NicPort(p, this.now));
    }
    this.peers = next;
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
    const blocker = this.blocker;
    const deadline = blocker.deadline(timeoutMs);
    for (;;) {
      const seq = this.rx.writeSeq;
      const length = this.rx.peekLength();
      if (length >= 0) {
        // The frame stays queued when it does not fit, so the guest can retry with a larger buffer.
        if (length > outCap) return -HvStatus.BUFFER_TOO_SMALL;
        // Straight into the dispatcher's scratch, header and payload: exactly out[0, length),
        // which is all the dispatcher copies (the rest of the guest's window is zeroed).
        this.rx.readInto(out);
        this.lastFrameAt = performance.now();
        this.sentSinceFrame = false;
        this.napped = false;
        this.stats[NetStat.RX_FRAMES]!++;
        this.stats[NetStat.RX_BYTES]! += length - HV_NET_HEADER_SIZE;
        return length;
      }
      if (this.rx.closed) {
        // The root may deliver a last frame and close the port between the look for a frame
        // above and this one. Closed, the ring takes no more frames: one more look finds any it holds.
        if (this.rx.peekLength() >= 0) continue;
        return -HvStatus.END_OF_STREAM;
      }
      const now = performance.now();
      const left = deadline - now;
      if (left <= 0) return -HvStatus.WOULD_BLOCK;
      // Receive coalescing (a NIC's interrupt moderation): a NIC that only receives, with frames
      // streaming in, naps RX_COALESCE_MS without asking to be woken, then takes what came in
      // meanwhile in one go. Senders then do not pay a futex wake-up per frame. Only then: a NIC
      // that answers (it sent since its last frame) or that sees a gap is woken at once.
      // (Only a NIC on a thread of its own naps: in a shared worker the thread is not its to hold.)
      if (!this.sentSinceFrame && now - this.lastFrameAt < RX_STREAM_GAP_MS && !this.napped && blocker === threadBlocker) {
        this.napped = true;
        Atomics.wait(this.nap, 0, 0, Math.min(left, RX_COALESCE_MS));
        continue;
      }
      // Blocks (or suspends) this partition only; the watchdog still bounds an endless wait.
      blocker.readable(this.rx, seq, deadline);
    }
  }

  /**
   * Readiness bits. Input: none; u32 timeout (waits that long for a frame); or (1.3) u32 timeout
   * and u32 destination, where WRITABLE means a frame of MTU bytes to that destination would be
   * taken now, and the wait ends as soon as the NIC is readable or writable.
   */
  private poll(input: Uint8Array, inLen: number): number {
    let timeoutMs = 0;
    let dst: number | null = null;
    if (inLen === 4 || inLen === 8) {
      const t = readU32(input, 0);
      timeoutMs = t === 0xffffffff ? Infinity : t;
      if (inLen === 8) dst = readU32(input, 4);
    } else if (inLen !== 0) {
      return -HvStatus.INVALID_ARGUMENT;
    }
    const blocker = this.blocker;
    if (dst === null) {
      if (timeoutMs > 0) {
        const deadline = blocker.deadline(timeoutMs);
        for (let seq = this.rx.writeSeq; this.rx.peekLength() < 0 && !this.rx.closed && performance.now() < deadline; seq = this.rx.writeSeq) {
          blocker.readable(this.rx, seq, deadline);
        }
      }
      return this.readiness(null);
    }
    const deadline = blocker.deadline(timeoutMs);
    for (;;) {
      const seq = this.rx.writeSeq;
      const bits = this.readiness(dst);
      const now = performance.now();
      // A closed receive ring (the partition is ending) ends every wait, as it ends NET_RECV's.
      if (bits !== 0 || now >= deadline || this.rx.closed) return bits;
      // A frame ends the wait at once; writability is looked at again every POLL_SLICE_MS.
      blocker.readable(this.rx, seq, Math.min(deadline, now + POLL_SLICE_MS));
    }
  }

  private readiness(dst: number | null): number {
    const bits = this.rx.peekLength() >= 0 ? HV_NET_POLL_READABLE : 0;
    const mtu = this.init.mtu;
    if (!this.budget.admits(mtu)) return bits;
    const peer = dst === null || dst === HV_NET_BROADCAST ? undefined : this.directPeer(dst);
    // A tx record of an MTU frame: header, destination, payload, padded to 4.
    const room = peer !== undefined ? peer.wouldTake(Math.min(mtu, peer.mtu)) : this.tx.capacity - this.tx.used >= 4 + ((4 + mtu + 3) & ~3);
    return room ? bits | HV_NET_POLL_WRITABLE : bits;
  }
}
