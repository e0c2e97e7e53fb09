import { EventEmitter } from 'node:events';
import { HV_NET_BROADCAST, HV_NET_HEADER_SIZE, HV_NET_MAX_MTU } from '../abi/codes.ts';
import { SharedRing } from '../channel/ring.ts';
import { SEGMENT_NAME, type ResolvedNet } from '../devices/config.ts';
import { FrameBudget, formatAddress, NET_FRAME_KIND, NET_STAT_SLOTS, NetStat, type NetInit } from '../devices/net.ts';
import { InvalidArgumentError, InvalidStateError } from '../errors.ts';
import { TokenBucket } from '../limits/token-bucket.ts';

/**
 * The virtual switch, in the root partition. Endpoints are partitions' NICs (rings shared with
 * their workers) and the embedder's host endpoints (callbacks in the root). Rules:
 *
 * - A frame flows only between two endpoints of the same segment; a NIC reaches a host endpoint
 *   (and a host endpoint a NIC) only when the NIC was granted `host: true`.
 * - The source of every frame is the address of the endpoint it came from, stamped here: a
 *   guest's tx record has no source field at all.
 * - A unicast frame to an address that does not exist, or that the sender may not reach, is
 *   dropped and counted; the sending partition is reported as a violation. The sender cannot tell
 *   "no such address" from "not allowed" (it sees nothing either way).
 * - Broadcast (255.255.255.255) reaches every other endpoint the sender may reach.
 * - Delivery into a NIC passes its receive budget (bytes, frames), then its bounded rx ring;
 *   what does not fit is dropped at the tail and counted on the receiver.
 *
 * Each NIC's tx ring is drained by its own loop in batches of at most TX_BATCH frames, then the
 * loop yields, so one flooding partition cannot hold the root's event loop.
 */

/** Frames one NIC's tx loop forwards before it yields to the event loop. */
const TX_BATCH = 64;

/** First address the switch hands out: 10.0.0.2 (10.0.0.1 is left for a gateway that does not exist). */
const FIRST_ADDRESS = 0x0a000002;

/** A violation the switch reports for a NIC's partition. */
export interface NetViolation {
  call: string;
  status: string;
  reason: string;
}

interface NicEndpoint {
  kind: 'nic';
  address: number;
  segment: string;
  owner: string;
  mtu: number;
  host: boolean;
  tx: SharedRing;
  rx: SharedRing;
  stats: Float64Array;
  recv: FrameBudget;
  violations: TokenBucket;
  onViolation: (v: NetViolation) => void;
  closed: boolean;
}

interface HostEndpointState {
  kind: 'host';
  address: number;
  segment: string;
  mtu: number;
  /** Only frames from these addresses are accepted (null: any NIC the rules allow). */
  accept: ((src: number) => boolean) | null;
  onFrame: (frame: NetFrame) => void;
  closed: boolean;
}

type Endpoint = NicEndpoint | HostEndpointState;

/** A frame as a host endpoint sees it. `payload` is a fresh copy owned by the listener. */
export interface NetFrame {
  src: number;
  dst: number;
  payload: Uint8Array;
}

/** Outcome of one delivery into one endpoint. */
type Delivery = 'delivered' | 'queue-full' | 'rate-limited' | 'oversize';

export interface NicAttachment {
  /** For the worker (WorkerInit.net). */
  init: NetInit;
  address: number;
  stats: Float64Array;
  /** Unplugs the NIC: its rings close, the root's copies of frames are zeroed. Idempotent. */
  detach(): void;
  /** Called when the switch moves one of the NIC's rings that a partition in a shared worker waits on (see SharedRing.onMove). */
  setWake(wake: () => void): void;
}

export interface SwitchCounters {
  /** Frames the switch forwarded to at least one endpoint. */
  switched: number;
  /** Unicast frames dropped for no route (unknown address, foreign segment, host not granted). */
  noRoute: number;
}

/** Ring capacity for a NIC's tx ring: room for a few frames of MTU, at least 64 KiB. */
function txRingBytes(mtu: number): number {
  let p = 65536;
  while (p < 4 * (4 + ((4 + mtu + 3) & ~3))) p *= 2;
  return p;
}

export class VirtualSwitch {
  private readonly endpoints = new Map<number, Endpoint>();
  private readonly segments = new Map<string, Set<Endpoint>>();
  private nextAddress = FIRST_ADDRESS;
  /** Frame assembly buffer for rx records: u32 source, u32 destination, payload. */
  private readonly record = new Uint8Array(HV_NET_HEADER_SIZE + HV_NET_MAX_MTU);
  private readonly txBuf = new Uint8Array(4 + HV_NET_MAX_MTU + 4);
  private readonly now: (() => number) | undefined;
  readonly counters: SwitchCounters = { switched: 0, noRoute: 0 };

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now;
  }

  /** Bytes of shared memory a NIC with this config takes (for admission control). */
  static nicBytes(config: ResolvedNet): number {
    return config.rxQueueBytes + txRingBytes(config.mtu) + NET_STAT_SLOTS * 8 + 64;
  }

  /** Plugs a partition's NIC into `config.segment` and assigns it an address. */
  attachNic(owner: string, config: ResolvedNet, onViolation: (v: NetViolation) => void, violationsPerSecond = 100): NicAttachment {
    const address = this.allocateAddress();
    const tx = new SharedRing(SharedRing.allocate(txRingBytes(config.mtu)));
    const rx = new SharedRing(SharedRing.allocate(config.rxQueueBytes));
    const statsSab = new SharedArrayBuffer(NET_STAT_SLOTS * 8);
    const clock = this.now ? { now: this.now } : {};
    const nic: NicEndpoint = {
      kind: 'nic',
      address,
      segment: config.segment,
      owner,
      mtu: config.mtu,
      host: config.host,
      tx,
      rx,
      stats: new Float64Array(statsSab),
      recv: new FrameBudget(config.recvBytesPerSecond, config.recvFramesPerSecond, config.mtu, this.now),
      violations: new TokenBucket({ capacity: violationsPerSecond, refillTimeMs: 1000, ...clock }),
      onViolation,
      closed: false,
    };
    this.add(nic);
    void this.pump(nic);
    return {
      init: {
        address,
        mtu: config.mtu,
        tx: tx.sab,
        rx: rx.sab,
        stats: statsSab,
        sendBytesPerSecond: config.sendBytesPerSecond,
        sendFramesPerSecond: config.sendFramesPerSecond,
      },
      address,
      stats: nic.stats,
      setWake: (wake) => {
        tx.onMove = rx.onMove = wake;
      },
      detach: () => this.remove(nic),
    };
  }

  /**
   * Attaches a host endpoint to `segment`. It reaches (and is reached by) only NICs granted
   * `host: true`; `accept`, if given, further limits which sources it takes frames from.
   */
  attachHost(segment: string, onFrame: (frame: NetFrame) => void, accept: ((src: number) => boolean) | null = null): HostEndpointState {
    if (typeof segment !== 'string' || !SEGMENT_NAME.test(segment)) throw new InvalidArgumentError(`segment ${JSON.stringify(segment)} is not a valid segment name`);
    const ep: HostEndpointState = { kind: 'host', address: this.allocateAddress(), segment, mtu: HV_NET_MAX_MTU, accept, onFrame, closed: false };
    this.add(ep);
    return ep;
  }

  /** Removes a host endpoint. Idempotent. */
  detachHost(ep: HostEndpointState): void {
    this.remove(ep);
  }

  /**
   * Sends a frame from a host endpoint. Returns what happened to a unicast frame ('delivered',
   * or why not: 'no-route', 'queue-full', 'rate-limited', 'oversize'); a broadcast returns
   * 'delivered' when it reached at least one endpoint, else 'no-route'.
   */
  sendFromHost(ep: HostEndpointState, dst: number, payload: Uint8Array): Delivery | 'no-route' {
    if (ep.closed) throw new InvalidStateError('this network endpoint is closed');
    if (payload.length > HV_NET_MAX_MTU) throw new InvalidArgumentError(`frame of ${payload.length} bytes exceeds the largest MTU (${HV_NET_MAX_MTU})`);
    return this.route(ep, dst >>> 0, payload);
  }

  /** The address of `owner`'s NIC, if it has one (for the embedder; guests learn addresses only from frames). */
  addressOf(owner: string): number | undefined {
    for (const ep of this.endpoints.values()) if (ep.kind === 'nic' && ep.owner === owner) return ep.address;
    return undefined;
  }

  /** Unplugs everything (the hypervisor is closing). */
  close(): void {
    for (const ep of [...this.endpoints.values()]) this.remove(ep);
  }

  private allocateAddress(): number {
    // Addresses are never reused within a switch's life, so a stale address can never reach a
    // newer partition; 2^32 - 2 allocations is far beyond any process's life.
    if (this.nextAddress >= HV_NET_BROADCAST) throw new InvalidStateError('the virtual switch ran out of addresses');
    return this.nextAddress++;
  }

  private add(ep: Endpoint): void {
    this.endpoints.set(ep.address, ep);
    let members = this.segments.get(ep.segment);
    if (!members) this.segments.set(ep.segment, (members = new Set()));
    members.add(ep);
  }

  private remove(ep: Endpoint): void {
    if (ep.closed) return;
    ep.closed = true;
    this.endpoints.delete(ep.address);
    const members = this.segments.get(ep.segment);
    members?.delete(ep);
    if (members?.size === 0) this.segments.delete(ep.segment);
    if (ep.kind === 'nic') {
      ep.rx.close();
      ep.tx.close(); // also wakes the tx loop, which then ends
      // Frames in flight were guest data held by the root: scrub them with the NIC.
      queueMicrotask(() => {
        new Uint8Array(ep.rx.sab).fill(0);
        new Uint8Array(ep.tx.sab).fill(0);
      });
    }
  }

  /** Whether `a` may send to `b` under the segment and host-grant rules. */
  private mayReach(a: Endpoint, b: Endpoint): boolean {
    if (a.segment !== b.segment || b.closed) return false;
    if (a.kind === 'nic' && b.kind === 'nic') return true;
    if (a.kind === 'host' && b.kind === 'host') return true;
    const nic = (a.kind === 'nic' ? a : b) as NicEndpoint;
    const host = (a.kind === 'host' ? a : b) as HostEndpointState;
    return nic.host && (host.accept === null || host.accept(nic.address));
  }

  /** Drains one NIC's tx ring, a batch at a time, until the NIC is unplugged. */
  private async pump(nic: NicEndpoint): Promise<void> {
    const buf = this.txBuf;
    while (!nic.closed) {
      const seq = nic.tx.writeSeq;
      let n = 0;
      for (; n < TX_BATCH && !nic.closed; n++) {
        const length = nic.tx.readInto(buf);
        if (length < 0) break;
        // A worker only writes records of 4 + up to MTU bytes (NetDevice.send checks); the
        // switch checks again because the ring is shared memory the worker could have misused.
        if (length < 4 || length - 4 > nic.mtu) continue;
        const dst = (buf[0]! | (buf[1]! << 8) | (buf[2]! << 16) | (buf[3]! << 24)) >>> 0;
        this.route(nic, dst, buf.subarray(4, length));
      }
      buf.fill(0, 0, 4 + nic.mtu);
      if (nic.closed) break;
      if (n === TX_BATCH) await new Promise<void>((resolve) => setImmediate(resolve));
      else await nic.tx.whenWritten(seq);
    }
  }

  private route(from: Endpoint, dst: number, payload: Uint8Array): Delivery | 'no-route' {
    if (dst === HV_NET_BROADCAST) {
      let reached = 0;
      for (const to of this.segments.get(from.segment) ?? []) {
        if (to === from || !this.mayReach(from, to)) continue;
        if (this.deliver(from, to, dst, payload) === 'delivered') reached++;
      }
      this.forwarded(from);
      return reached > 0 ? 'delivered' : 'no-route';
    }
    const to = this.endpoints.get(dst);
    if (to === undefined || !this.mayReach(from, to)) {
      this.noRoute(from, dst, to);
      return 'no-route';
    }
    this.forwarded(from);
    return this.deliver(from, to, dst, payload);
  }

  private forwarded(from: Endpoint): void {
    this.counters.switched++;
    if (from.kind === 'nic') from.stats[NetStat.SWITCHED]!++;
  }

  private noRoute(from: Endpoint, dst: number, to: Endpoint | undefined): void {
    this.counters.noRoute++;
    if (from.kind !== 'nic') return;
    from.stats[NetStat.TX_NO_ROUTE]!++;
    if (from.violations.reduce(1) !== 'ok') return;
    const why =
      to === undefined
        ? 'no endpoint has that address'
        : to.segment !== from.segment
          ? `it is on another segment (this NIC is on ${from.segment})`
          : to === from
            ? 'it is this NIC itself'
            : 'it is a host endpoint and this NIC was not granted host access';
    try {
      from.onViolation({ call: 'NET_SEND', status: 'HV_STATUS_ACCESS_DENIED', reason: `frame to ${formatAddress(dst)} dropped by the switch: ${why}` });
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }

  private deliver(from: Endpoint, to: Endpoint, dst: number, payload: Uint8Array): Delivery {
    if (to.kind === 'host') {
      try {
        to.onFrame({ src: from.address, dst, payload: payload.slice() });
      } catch (error) {
        // A throwing listener is the embedder's bug; it must not stop the switch.
        process.nextTick(() => {
          throw error;
        });
      }
      return 'delivered';
    }
    const s = to.stats;
    if (payload.length > to.mtu) {
      s[NetStat.RX_OVERSIZE]!++;
      return 'oversize';
    }
    if (!to.recv.admits(payload.length)) {
      s[NetStat.RX_RATE_LIMITED]!++;
      return 'rate-limited';
    }
    const rec = this.record;
    const n = HV_NET_HEADER_SIZE + payload.length;
    const dv = new DataView(rec.buffer);
    dv.setUint32(0, from.address, true);
    dv.setUint32(4, dst, true);
    rec.set(payload, HV_NET_HEADER_SIZE);
    const ok = to.rx.tryWrite(NET_FRAME_KIND, rec, n);
    rec.fill(0, 0, n);
    if (!ok) {
      s[NetStat.RX_QUEUE_DROPS]!++;
      return 'queue-full';
    }
    // The budget is charged only for frames that were queued: a full queue does not also eat the budget.
    to.recv.take(payload.length);
    return 'delivered';
  }
}

/**
 * The embedder's endpoint on the switch (`hv.attachNet(segment)`): it has an address on a
 * segment, sends frames with `send`, and receives frames as `frame` events. It reaches only NICs
 * granted `host: true`.
 */
export class NetEndpoint extends EventEmitter<{ frame: [frame: NetFrame] }> {
  readonly address: number;
  readonly segment: string;
  private readonly state: HostEndpointState;

  constructor(
    private readonly sw: VirtualSwitch,
    segment: string,
    accept: ((src: number) => boolean) | null = null,
  ) {
    super();
    this.state = sw.attachHost(segment, (frame) => this.emit('frame', frame), accept);
    this.address = this.state.address;
    this.segment = segment;
  }

  /**
   * Sends `payload` to `dst` (an address, or HV_NET_BROADCAST). Returns 'delivered', or why it
   * was not: 'no-route' (unknown, foreign, or not granted host access), 'queue-full',
   * 'rate-limited', 'oversize' (larger than the receiver's MTU).
   */
  send(dst: number, payload: Uint8Array | string): 'delivered' | 'no-route' | 'queue-full' | 'rate-limited' | 'oversize' {
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    return this.sw.sendFromHost(this.state, dst, bytes);
  }

  /** Leaves the switch. Idempotent. */
  close(): void {
    this.sw.detachHost(this.state);
  }

  get closed(): boolean {
    return this.state.closed;
  }
}
