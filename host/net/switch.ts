import { randomUUID } from 'node:crypto';
import { BroadcastChannel } from 'node:worker_threads';
import { HV_NET_BROADCAST, HV_NET_HEADER_SIZE, HV_NET_MAX_MTU } from '../abi/codes.ts';
import { GuardedEmitter, listenerThrew } from '../events.ts';
import { given } from '../schema/check.ts';
import { SharedRing } from '../channel/ring.ts';
import { SEGMENT_NAME, type ResolvedNet } from '../devices/config.ts';
import { formatAddress, type NetInit, type PeerTable } from '../devices/net.ts';
import { InvalidArgumentError, InvalidStateError } from '../errors.ts';
import { TokenBucket } from '../limits/token-bucket.ts';
import { NET_FRAME_KIND, NET_STAT_SLOTS, NET_SYNC_KIND, NetStat, NicPort, PORT_CTL_BYTES, processClock, ROOT_OWNER, type PortInit, type PortOutcome } from './port.ts';
import { quoted } from '../escape.ts';

/**
 * The virtual switch, in the root partition. Endpoints are partitions' NICs (rings and a port
 * shared with their workers) and the embedder's host endpoints (callbacks in the root). Rules:
 *
 * - A frame flows only between two endpoints of the same segment; a NIC reaches a host endpoint
 *   (and a host endpoint a NIC) only when the NIC was granted `host: true`.
 * - The source of every frame is the address of the endpoint it came from, stamped by host code:
 *   a guest's frame has no source field at all.
 * - A unicast frame to an address that does not exist, or that the sender may not reach, is
 *   dropped and counted; the sending partition is reported as a violation. The sender cannot tell
 *   "no such address" from "not allowed" (it sees nothing either way).
 * - Broadcast (255.255.255.255) reaches every other endpoint the sender may reach, best effort:
 *   a receiver without room drops it (counted on the receiver).
 * - Delivery into a NIC passes its port (host/net/port.ts): its MTU, its receive budget (bytes,
 *   frames) and its bounded receive queue.
 * - Flow control (ABI 1.3): a unicast frame from a NIC to a NIC is never dropped for want of
 *   room. The sender is held back instead: through the root, the frame waits at the head of the
 *   sender's tx ring (whose filling makes NET_SEND wait, then WOULD_BLOCK); directly, NET_SEND
 *   itself waits or answers WOULD_BLOCK. A NIC whose partition has ended is down: frames to it
 *   are dropped and counted. A host endpoint's send returns what happened (the embedder retries).
 *
 * Direct delivery. Unicast between the NICs of one segment does not pass through the root: the
 * root hands every NIC the ports of the other NICs of its segment (its peer table: at plug-in,
 * then on the NIC's request whenever the segment changed, on a BroadcastChannel only host code
 * knows the name of), and the sender's worker delivers into them under their locks. The rules
 * above hold on that path by construction: a worker holds only ports of its own segment, the
 * source is stamped by host code in the worker from the address the root assigned, and the port
 * applies the receiver's MTU, budget and queue. Everything else (broadcast, host endpoints, any
 * address not in the sender's table: unknown, foreign, unplugged) goes through the root, which
 * alone decides about and reports refused frames. docs/THREAT-MODEL.md has the trust boundary.
 *
 * Each NIC's tx ring is drained by its own loop in batches of at most TX_BATCH frames, then the
 * loop yields, so one flooding partition cannot hold the root's event loop.
 */

/** Frames one NIC's tx loop forwards before it yields to the event loop. */
const TX_BATCH = 64;

/** First address the switch hands out: 10.0.0.2 (10.0.0.1 is left for a gateway that does not exist). */
const FIRST_ADDRESS = 0x0a000002;

/** How many times the root tries a port's lock before it treats the port as busy (never waits). */
const ROOT_LOCK_TRIES = 256;

/** A held frame re-checks a full receiver at least this often (ms), should a wake-up be missed. */
const HELD_RECHECK_MS = 20;

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
  /** Its receiving side: rx ring, lock, receive budget, counters. */
  port: NicPort;
  /** The port as plain data, for the peer tables of the other NICs of the segment. */
  portInit: PortInit;
  stats: Float64Array;
  violations: TokenBucket;
  onViolation: (v: NetViolation) => void;
  /** The root's end of the NIC's peer-table channel. */
  channel: BroadcastChannel;
  /** Takes part in the direct path (see NetInit.direct): false for a partition in a shared worker. */
  direct: boolean;
  /** Unplugged. */
  closed: boolean;
  /** Its partition has ended for good: frames to it are dropped. */
  down: boolean;
  /** A frame from this NIC's tx ring that waits for room at its destination (flow control). */
  held: { dst: number; payload: Uint8Array } | null;
  /** The held frame's one wait for room at its full receiver (see waitForRoom). */
  room: RoomWait | null;
  /** Told when the root cannot handle the NIC's traffic (NicAttachment.onFault). */
  fault: ((error: unknown) => void) | null;
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

/** A wait for a read of a receiver's queue past `seq`; `wake` ends the re-check waiting on it. */
interface RoomWait {
  rx: SharedRing;
  seq: number;
  wake: (() => void) | null;
}

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
  /** The partition's run ended (its worker may be gone): frees every port lock its worker held. */
  releaseLocks(): void;
  /** The partition has ended for good: frames to the NIC are dropped from now on. Idempotent. */
  down(): void;
  /** Unplugs the NIC: its rings close, the root's copies of frames are zeroed. Idempotent. */
  detach(): void;
  /** Called when the switch moves one of the NIC's rings that a partition in a shared worker waits on (see SharedRing.onMove). */
  setWake(wake: () => void): void;
  /**
   * Called once if the root cannot handle the NIC's traffic (a corrupt tx ring: only a
   * compromised worker writes one); the NIC is unplugged and nothing is thrown into the root's
   * event loop. The partition ends its run on it (ERR_INTERNAL).
   */
  onFault(fault: (error: unknown) => void): void;
}

/**
 * What an observer of the switch sees of one frame (`hv.observeNetwork`): addresses, segment,
 * size and what happened to it. Never its payload. Only frames that pass through the root are
 * seen one by one (broadcasts, host endpoints, refused frames, unicast the root forwards); a
 * frame a NIC delivers straight into a peer's port (direct delivery) is counted in the sender's
 * metrics (`net.switchedDirect`) and the receiver's (`net.rxFrames`) instead.
 */
export interface FrameObservation {
  segment: string;
  src: number;
  dst: number;
  bytes: number;
  /** `delivered`, or why not: `no-route` (unknown, foreign, not granted), `queue-full`, `rate-limited`, `oversize`. */
  outcome: Delivery | 'no-route';
}

export interface SwitchCounters {
  /** Frames the root's switch forwarded to at least one endpoint (direct deliveries are counted per NIC: metrics().net.switchedDirect). */
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

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class VirtualSwitch {
  private readonly endpoints = new Map<number, Endpoint>();
  private readonly segments = new Map<string, Set<Endpoint>>();
  private nextAddress = FIRST_ADDRESS;
  /** Frame assembly buffer for rx records: u32 source, u32 destination, payload. */
  private readonly record = new Uint8Array(HV_NET_HEADER_SIZE + HV_NET_MAX_MTU);
  private readonly recordView = new DataView(this.record.buffer);
  private readonly txBuf = new Uint8Array(4 + HV_NET_MAX_MTU + 4);
  /** The clock of every receive budget: shared by the root and the workers that deliver directly. */
  private readonly now: () => number;
  /** Peer-table channels are named after this switch: two hypervisors in one process never meet. */
  private readonly channelPrefix = `wasmvisor:net:${randomUUID()}:`;
  readonly counters: SwitchCounters = { switched: 0, noRoute: 0 };
  /** Observers of frame metadata; null while there are none, so the hot path pays one check. */
  private observers: Set<(frame: FrameObservation) => void> | null = null;

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? processClock;
  }

  /** Bytes of shared memory a NIC with this config takes (for admission control). */
  static nicBytes(config: ResolvedNet): number {
    return config.rxQueueBytes + txRingBytes(config.mtu) + NET_STAT_SLOTS * 8 + PORT_CTL_BYTES + 64;
  }

  /**
   * Plugs a partition's NIC into `config.segment` and assigns it an address. `direct: false`
   * (a partition in a shared worker) keeps every frame to and from it on the root's path.
   */
  attachNic(owner: string, config: ResolvedNet, onViolation: (v: NetViolation) => void, violationsPerSecond = 100, direct = true): NicAttachment {
    const address = this.allocateAddress();
    const tx = new SharedRing(SharedRing.allocate(txRingBytes(config.mtu)));
    const portInit: PortInit = {
      address,
      mtu: config.mtu,
      rx: SharedRing.allocate(config.rxQueueBytes),
      ctl: NicPort.allocateCtl(),
      stats: new SharedArrayBuffer(NET_STAT_SLOTS * 8),
      recvBytesPerSecond: config.recvBytesPerSecond,
      recvFramesPerSecond: config.recvFramesPerSecond,
    };
    const port = new NicPort(portInit, this.now, true);
    const channelName = `${this.channelPrefix}${address}`;
    const channel = new BroadcastChannel(channelName);
    channel.unref();
    const nic: NicEndpoint = {
      kind: 'nic',
      address,
      segment: config.segment,
      owner,
      mtu: config.mtu,
      host: config.host,
      tx,
      port,
      portInit,
      stats: port.stats,
      violations: new TokenBucket({ capacity: violationsPerSecond, refillTimeMs: 1000, now: this.now }),
      onViolation,
      channel,
      direct,
      closed: false,
      down: false,
      held: null,
      room: null,
      fault: null,
    };
    this.add(nic);
    void this.pump(nic);
    return {
      init: {
        address,
        mtu: config.mtu,
        tx: tx.sab,
        port: portInit,
        sendBytesPerSecond: config.sendBytesPerSecond,
        sendFramesPerSecond: config.sendFramesPerSecond,
        peers: this.peersOf(nic),
        gen: port.generation,
        channel: channelName,
        direct,
      },
      address,
      stats: nic.stats,
      setWake: (wake) => {
        tx.onMove = port.rx.onMove = wake;
      },
      releaseLocks: () => this.releaseLocks(nic),
      down: () => this.markDown(nic),
      onFault: (fault) => {
        nic.fault = fault;
      },
      detach: () => this.remove(nic),
    };
  }

  /**
   * Attaches a host endpoint to `segment`. It reaches (and is reached by) only NICs granted
   * `host: true`; `accept`, if given, further limits which sources it takes frames from.
   */
  attachHost(segment: string, onFrame: (frame: NetFrame) => void, accept: ((src: number) => boolean) | null = null): HostEndpointState {
    if (typeof segment !== 'string' || !SEGMENT_NAME.test(segment)) throw new InvalidArgumentError(`segment ${quoted(segment)} is not a valid segment name`);
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
   * or why not: 'no-route' (also for a NIC that is down), 'queue-full', 'rate-limited',
   * 'oversize'); a broadcast returns 'delivered' when it reached at least one endpoint, else
   * 'no-route'. Nothing waits: the caller retries a full queue or a spent budget. With `hold`,
   * the caller keeps a unicast frame the NIC cannot take now and offers it again (flow control):
   * it is not counted as dropped on the NIC (`rxQueueDrops`, `rxRateLimited`) each time.
   */
  sendFromHost(ep: HostEndpointState, dst: number, payload: Uint8Array, hold = false): Delivery | 'no-route' {
    if (ep.closed) throw new InvalidStateError('this network endpoint is closed');
    if (!(payload instanceof Uint8Array)) throw new InvalidArgumentError(`a frame's payload must be a Uint8Array or a string, got ${given(payload)}`);
    if (payload.length > HV_NET_MAX_MTU) throw new InvalidArgumentError(`frame of ${payload.length} bytes exceeds the largest MTU (${HV_NET_MAX_MTU})`);
    // An address is a u32 (partition.netAddress, HV_NET_BROADCAST): anything else is refused, not
    // wrapped, or -1 would broadcast and '10.0.0.2' (netAddressString) would silently go nowhere.
    if (typeof dst !== 'number' || !Number.isInteger(dst) || dst < 0 || dst > HV_NET_BROADCAST) {
      throw new InvalidArgumentError(`a frame's destination must be an address, an integer from 0 to ${HV_NET_BROADCAST} (partition.netAddress, or HV_NET_BROADCAST), got ${given(dst)}`);
    }
    return this.route(ep, dst, payload, !hold);
  }

  /**
   * Resolves once every frame the NIC at `address` has put on its tx ring is done with
   * (forwarded or dropped), or it is unplugged, or `timeoutMs` passed: what a partition sent
   * just before it ended still reaches a host endpoint that closes when it ends.
   */
  async drained(address: number, timeoutMs = 1000): Promise<void> {
    const nic = this.endpoints.get(address);
    if (nic === undefined || nic.kind !== 'nic') return;
    const deadline = performance.now() + timeoutMs;
    while (!nic.closed && !(nic.tx.used === 0 && nic.port.txIdle) && performance.now() < deadline) await sleep(1);
  }

  /** The address of `owner`'s NIC, if it has one (for the embedder; guests learn addresses only from frames). */
  addressOf(owner: string): number | undefined {
    for (const ep of this.endpoints.values()) if (ep.kind === 'nic' && ep.owner === owner) return ep.address;
    return undefined;
  }

  /**
   * Calls `listener` with the metadata of every frame the root routes from now on (never the
   * payload; direct deliveries only in the NICs' counters); returns the function that stops it. A throwing listener is reported, not allowed to stop the switch.
   */
  observe(listener: (frame: FrameObservation) => void): () => void {
    if (typeof listener !== 'function') throw new InvalidArgumentError(`a network observer must be a function, got ${given(listener)}`);
    (this.observers ??= new Set()).add(listener);
    return () => {
      this.observers?.delete(listener);
      if (this.observers?.size === 0) this.observers = null;
    };
  }

  private tell(from: Endpoint, dst: number, bytes: number, outcome: Delivery | 'no-route'): void {
    for (const listener of this.observers!) {
      try {
        listener({ segment: from.segment, src: from.address, dst, bytes, outcome });
      } catch (error) {
        // The embedder's bug, reported; a frame a guest sent must not crash the host through it.
        listenerThrew('the virtual switch', 'observeNetwork', error, this);
      }
    }
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
    if (ep.kind === 'nic') this.changed(ep.segment, ep);
  }

  private remove(ep: Endpoint): void {
    if (ep.closed) return;
    ep.closed = true;
    this.endpoints.delete(ep.address);
    const members = this.segments.get(ep.segment);
    // Stryker disable next-line OptionalChaining: equivalent: an endpoint's segment has a member set while it is attached, and this runs once
    members?.delete(ep);
    if (members?.size === 0) this.segments.delete(ep.segment);
    if (ep.kind !== 'nic') return;
    ep.port.markDown();
    ep.port.rx.close();
    ep.tx.close(); // also wakes the tx loop, which then ends
    ep.channel.close();
    this.changed(ep.segment, ep);
    // Frames in flight were guest data held by the root: scrub them with the NIC, once no
    // producer is inside its port (a producer checks `down` under the lock, so none that comes
    // after writes anything: it finds the port down and takes the root's path, which refuses it).
    // After a bounded wait for one that died inside, scrub anyway. The lock is let go again: a
    // sender whose peer table still lists this NIC would otherwise wait on it for its whole
    // txWaitMs and be told WOULD_BLOCK, as if the NIC were only full.
    const scrub = (tries: number): void => {
      const locked = ep.port.tryLock(ROOT_OWNER);
      if (!locked && tries < 1000) {
        setImmediate(() => scrub(tries + 1));
        return;
      }
      new Uint8Array(ep.portInit.rx).fill(0);
      new Uint8Array(ep.tx.sab).fill(0);
      if (locked) ep.port.unlock();
    };
    queueMicrotask(() => scrub(0));
  }

  private markDown(nic: NicEndpoint): void {
    if (nic.down || nic.closed) return;
    nic.down = true;
    nic.port.markDown();
    this.changed(nic.segment, nic);
  }

  /** The NICs of `nic`'s segment lose a peer or gain one: their workers fetch a new table before the next direct send. */
  private changed(segment: string, except: NicEndpoint): void {
    // Stryker disable next-line ArrayDeclaration: equivalent: a non-empty stand-in array's element is no endpoint (its `kind` is undefined), so it is skipped like nothing
    for (const ep of this.segments.get(segment) ?? []) if (ep.kind === 'nic' && ep !== except) ep.port.bumpGeneration();
  }

  /** The ports `nic` may deliver into directly: the other live NICs of its segment. */
  private peersOf(nic: NicEndpoint): PortInit[] {
    const peers: PortInit[] = [];
    if (!nic.direct) return peers;
    // Stryker disable next-line ArrayDeclaration: equivalent: a non-empty stand-in array's element is no endpoint (its `kind` is undefined), so it is skipped like nothing
    for (const ep of this.segments.get(nic.segment) ?? []) if (ep.kind === 'nic' && ep !== nic && ep.direct && !ep.closed && !ep.down) peers.push(ep.portInit);
    return peers;
  }

  /** Answers a NIC's SYNC request: its current peer table, tagged with the generation it belongs to. */
  private sendPeers(nic: NicEndpoint): void {
    const table: PeerTable = { gen: nic.port.generation, peers: this.peersOf(nic) };
    nic.channel.postMessage(table);
  }

  /** Frees the port locks `nic`'s worker held (it may have died inside one). */
  private releaseLocks(nic: NicEndpoint): void {
    // Stryker disable next-line ArrayDeclaration: equivalent: a non-empty stand-in array's element is no endpoint (its `kind` is undefined), so it is skipped like nothing
    for (const ep of this.segments.get(nic.segment) ?? []) if (ep.kind === 'nic') ep.port.release(nic.address);
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
    try {
      while (!nic.closed) {
        const held = nic.held;
        if (held !== null) {
          const wait = this.forward(nic, held.dst, held.payload);
          if (wait !== null) {
            await wait;
            continue;
          }
          held.payload.fill(0);
          nic.held = null;
          nic.port.frameDone();
        }
        const seq = nic.tx.writeSeq;
        let n = 0;
        let heldWait: Promise<void> | null = null;
        for (; n < TX_BATCH && !nic.closed; n++) {
          const kind = nic.tx.peekKind();
          if (kind < 0) break;
          const length = nic.tx.readInto(buf);
          // A worker only writes records of 4 + up to MTU bytes (NetDevice.send checks); the
          // switch checks again because the ring is shared memory the worker could have misused.
          if (kind === NET_FRAME_KIND && length >= 4 && length - 4 <= nic.mtu) {
            const dst = (buf[0]! | (buf[1]! << 8) | (buf[2]! << 16) | (buf[3]! << 24)) >>> 0;
            heldWait = this.forward(nic, dst, buf.subarray(4, length));
            if (heldWait !== null) {
              nic.held = { dst, payload: buf.slice(4, length) };
              break;
            }
          } else if (kind === NET_SYNC_KIND) {
            this.sendPeers(nic);
            continue;
          }
          // Counted once the frame is done with (a held one when it leaves): until then the
          // worker sends nothing to anyone directly, so frames to one destination keep their order.
          nic.port.frameDone();
        }
        buf.fill(0, 0, 4 + nic.mtu);
        if (nic.closed) break;
        if (heldWait !== null) await heldWait;
        else if (n === TX_BATCH) await nextTurn();
        else await nic.tx.whenWritten(seq);
      }
    } catch (error) {
      // The tx ring is shared memory its worker writes: a corrupt record ends that NIC (and its
      // partition's run), never the root.
      this.remove(nic);
      nic.fault?.(error);
    } finally {
      nic.held?.payload.fill(0);
      nic.held = null;
      nic.room = null;
    }
  }

  /**
   * Forwards one frame from a NIC's tx ring. Null when it is done with (delivered, or dropped and
   * counted); otherwise a promise to wait on before trying again: a unicast frame for a NIC that
   * cannot take it now is held back, never dropped (flow control).
   */
  private forward(from: NicEndpoint, dst: number, payload: Uint8Array): Promise<void> | null {
    if (dst === HV_NET_BROADCAST) {
      this.route(from, dst, payload, true);
      return null;
    }
    const to = this.endpoints.get(dst);
    if (to === undefined || !this.mayReach(from, to)) {
      this.noRoute(from, dst, to);
      if (this.observers !== null) this.tell(from, dst, payload.length, 'no-route');
      return null;
    }
    if (to.kind === 'host') {
      this.forwarded(from);
      const outcome = this.deliver(from, to, dst, payload);
      if (this.observers !== null) this.tell(from, dst, payload.length, outcome);
      return null;
    }
    const seq = to.port.rx.readSeq;
    const outcome = this.putInto(to, from.address, dst, payload, false);
    switch (outcome) {
      case 'busy':
        return nextTurn();
      case 'full':
        return this.waitForRoom(from, to.port.rx, seq);
      case 'rate-limited':
        // Stryker disable next-line MethodExpression: timing only: how long the held frame sleeps before the root asks the budget again (the outcome is the same)
        return sleep(Math.max(1, Math.min(HELD_RECHECK_MS, this.waitMs)));
      default:
        this.forwarded(from);
        if (this.observers !== null) this.tell(from, dst, payload.length, outcome === 'down' ? 'no-route' : outcome);
        return null;
    }
  }

  /**
   * Resolves once `rx` was read past `seq` (room may be free), or after HELD_RECHECK_MS. The wait
   * on the receiver's queue is made once per sender and position, and only a read (or its close)
   * ends it: a receiver that never reads would otherwise collect one pending wait (and a reaction
   * on it) per re-check, 50 a second for as long as it does not read. Each re-check only takes
   * that wait's one wake-up slot.
   */
  private waitForRoom(from: NicEndpoint, rx: SharedRing, seq: number): Promise<void> {
    let room = from.room;
    if (room === null || room.rx !== rx || room.seq !== seq) {
      const r: RoomWait = { rx, seq, wake: null };
      const wake = (): void => r.wake?.();
      void rx.whenRead(seq).then(wake, wake);
      from.room = room = r;
    }
    const r = room;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (r.wake === done) r.wake = null;
        resolve();
      };
      const timer = setTimeout(done, HELD_RECHECK_MS);
      r.wake = done;
    });
  }

  /** Milliseconds the last 'rate-limited' putInto said the receive budget needs. */
  private waitMs = 0;

  /**
   * Delivers a frame into a NIC's port under its lock (the root tries the lock a bounded number
   * of times and never waits: 'busy'). With `drop`, a frame the port cannot take is dropped and
   * counted on it; without, only a frame for a port that is down is.
   */
  private putInto(to: NicEndpoint, src: number, dst: number, payload: Uint8Array, drop: boolean): PortOutcome | 'busy' {
    const port = to.port;
    let locked = false;
    for (let i = 0; i < ROOT_LOCK_TRIES && !locked; i++) locked = port.tryLock(ROOT_OWNER);
    if (!locked) return 'busy';
    const rec = this.record;
    const n = 4 + payload.length;
    try {
      // The body of a frame: destination, then payload (the port stamps the source in front).
      this.recordView.setUint32(0, dst, true);
      rec.set(payload, 4);
      const outcome = port.put(src, rec, payload.length, drop);
      if (outcome === 'down' && !drop) port.stats[NetStat.RX_QUEUE_DROPS]!++;
      if (outcome === 'rate-limited') this.waitMs = port.budgetWaitMs(payload.length);
      return outcome;
    } finally {
      port.unlock();
      rec.fill(0, 0, n);
    }
  }

  /** `drop`: a unicast frame a NIC cannot take now is dropped and counted on it (false: the caller holds it). Broadcast always drops. */
  private route(from: Endpoint, dst: number, payload: Uint8Array, drop: boolean): Delivery | 'no-route' {
    if (dst === HV_NET_BROADCAST) {
      let reached = 0;
      // Stryker disable next-line ArrayDeclaration: equivalent: a non-empty stand-in array's element is on no segment, so mayReach skips it
      for (const to of this.segments.get(from.segment) ?? []) {
        if (to === from || !this.mayReach(from, to)) continue;
        const outcome = this.deliver(from, to, dst, payload);
        if (outcome === 'delivered') reached++;
        if (this.observers !== null) this.tell(from, to.address, payload.length, outcome);
      }
      this.forwarded(from);
      return reached > 0 ? 'delivered' : 'no-route';
    }
    const to = this.endpoints.get(dst);
    if (to === undefined || !this.mayReach(from, to) || (to.kind === 'nic' && to.down)) {
      this.noRoute(from, dst, to);
      if (this.observers !== null) this.tell(from, dst, payload.length, 'no-route');
      return 'no-route';
    }
    this.forwarded(from);
    const outcome = this.deliver(from, to, dst, payload, drop);
    if (this.observers !== null) this.tell(from, dst, payload.length, outcome);
    return outcome;
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
          : 'it is a host endpoint and this NIC was not granted host access';
    try {
      from.onViolation({ call: 'NET_SEND', status: 'HV_STATUS_ACCESS_DENIED', reason: `frame to ${formatAddress(dst)} dropped by the switch: ${why}` });
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }

  /** Delivery into one endpoint (host sends and broadcast): with `drop`, best effort: what does not fit is dropped and counted. */
  private deliver(from: Endpoint, to: Endpoint, dst: number, payload: Uint8Array, drop = true): Delivery {
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
    const outcome = this.putInto(to, from.address, dst, payload, drop);
    return outcome === 'delivered' ? 'delivered' : outcome === 'rate-limited' ? 'rate-limited' : outcome === 'oversize' ? 'oversize' : 'queue-full';
  }
}

/**
 * The embedder's endpoint on the switch (`hv.attachNet(segment)`): it has an address on a
 * segment, sends frames with `send`, and receives frames as `frame` events. It reaches only NICs
 * granted `host: true`.
 */
export class NetEndpoint extends GuardedEmitter<{ frame: [frame: NetFrame] }> {
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

  protected override describeEmitter(): string {
    return `the host endpoint ${formatAddress(this.address)} on segment ${this.segment}`;
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

  /**
   * Like `send`, for a sender that keeps a unicast frame the NIC cannot take now ('queue-full',
   * 'rate-limited') and offers it again later, losing nothing (flow control, as between NICs):
   * such a refusal is not counted as a drop on the NIC. Broadcast stays best effort. Takes what
   * `send` takes (a string is sent as its UTF-8 bytes).
   */
  offer(dst: number, payload: Uint8Array | string): 'delivered' | 'no-route' | 'queue-full' | 'rate-limited' | 'oversize' {
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    return this.sw.sendFromHost(this.state, dst, bytes, true);
  }

  /** Leaves the switch. Idempotent. */
  close(): void {
    this.sw.detachHost(this.state);
  }

  get closed(): boolean {
    return this.state.closed;
  }
}
