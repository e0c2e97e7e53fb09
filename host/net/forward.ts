import net from 'node:net';
import { InvalidArgumentError, AccessDeniedError } from '../errors.ts';
import type { Partition } from '../partition/partition.ts';
import { NetEndpoint, type NetFrame, type VirtualSwitch } from './switch.ts';
import { quoted } from '../escape.ts';

/**
 * Forwarded ports: a TCP listener on the loopback interface whose connections become streams of
 * frames to one partition's service, through a host endpoint on the partition's segment.
 *
 * Framing (docs/ABI.md, "Forwarded ports"): every frame's payload starts with an 8-byte stream
 * header, u8 type, u8 flags (0), u16 guest port, u32 connection id (little-endian), then data.
 *   OPEN  (1) host → guest: a client connected.
 *   DATA  (2) either way: bytes of the stream (at most MTU − 8 per frame).
 *   CLOSE (3) either way: the sender is done; the connection ends.
 * The forwarder accepts frames only from the partition's own address (the switch stamps sources,
 * so no other partition can inject into a connection).
 *
 * Bounds: at most `maxConnections` connections (more are refused), counting those whose client has
 * gone while their last bytes still wait for the guest; towards the guest, a connection's socket
 * is paused while a frame waits for room in the guest's receive queue or budget, so the forwarder
 * holds at most one socket chunk per connection; towards the client, a connection whose unsent
 * bytes exceed `maxBufferedBytes` is closed.
 */

export const STREAM_HEADER_SIZE = 8;
export const StreamFrame = { OPEN: 1, DATA: 2, CLOSE: 3 } as const;

export interface ForwardPortOptions {
  /** Name of the live partition that serves the port. Its NIC must be granted `host: true`. */
  partition: string;
  /** The port number the guest's service answers to (0 .. 65535), carried in every stream header. */
  guestPort: number;
  /** TCP port to listen on; 0 (default) picks a free one (see `port` on the result). */
  port?: number;
  /** Listen address. Only loopback is allowed: '127.0.0.1' (default). */
  host?: '127.0.0.1';
  /** Most simultaneous connections. Default 16 (1 .. 1024). */
  maxConnections?: number;
  /** Most bytes from the guest waiting to be written to one client before it is disconnected. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** A frame the guest cannot take is retried for this long before the connection is dropped. Default 10000 ms. */
  stallTimeoutMs?: number;
}

interface Connection {
  id: number;
  socket: net.Socket;
  /** Frames waiting for the guest's queue or budget (the socket is paused meanwhile). */
  queue: Uint8Array[];
  retry: NodeJS.Timeout | null;
  backoffMs: number;
  stalledSince: number;
  closeSent: boolean;
}

function intOption(v: number | undefined, fallback: number, what: string, min: number, max: number): number {
  const n = v ?? fallback;
  // Number.isInteger is false for anything that is not a number.
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}, got ${String(v)}`);
  return n;
}

export class PortForward {
  /** The TCP port the forwarder listens on. */
  readonly port: number;
  readonly host = '127.0.0.1';
  /** Resolves once the forwarder is closed. */
  readonly closed: Promise<void>;
  /** Connections accepted and frames moved, and connections lost (`acceptErrors`: the listener failed to take one, e.g. EMFILE), for the embedder. */
  readonly counters = { connections: 0, framesToGuest: 0, framesFromGuest: 0, overflowCloses: 0, stallCloses: 0, acceptErrors: 0 };

  private readonly conns = new Map<number, Connection>();
  private nextId = 1;
  private closing: Promise<void> | null = null;
  private resolveClosed!: () => void;

  private constructor(
    private readonly sw: VirtualSwitch,
    private readonly server: net.Server,
    private readonly endpoint: NetEndpoint,
    private readonly guestAddress: number,
    private readonly guestPort: number,
    private readonly chunk: number,
    private readonly maxBufferedBytes: number,
    private readonly stallTimeoutMs: number,
    port: number,
  ) {
    this.port = port;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    endpoint.on('frame', (frame) => this.fromGuest(frame));
    server.on('connection', (socket) => this.accept(socket));
    // After it listens, a listener's error is a connection it could not accept (EMFILE when the
    // process is out of descriptors); Node goes on listening. Unhandled, it would crash the host.
    server.on('error', () => this.counters.acceptErrors++);
  }

  /** `partition`: the live partition that serves the port (its name and NIC grant are all the forwarder reads). */
  static async open(sw: VirtualSwitch, partition: Pick<Partition, 'name' | 'netGrant'>, options: ForwardPortOptions): Promise<PortForward> {
    const grant = partition.netGrant;
    if (grant === null) throw new AccessDeniedError(`partition ${partition.name} has no network device`);
    if (!grant.host) throw new AccessDeniedError(`partition ${partition.name}'s NIC is not granted host access (devices.net.host)`);
    const guestPort = intOption(options.guestPort, -1, 'guestPort', 0, 65535);
    const port = intOption(options.port, 0, 'port', 0, 65535);
    if (options.host !== undefined && options.host !== '127.0.0.1') throw new InvalidArgumentError(`forwarded ports listen on 127.0.0.1 only, got ${quoted(options.host)}`);
    const maxConnections = intOption(options.maxConnections, 16, 'maxConnections', 1, 1024);
    const maxBufferedBytes = intOption(options.maxBufferedBytes, 1 << 20, 'maxBufferedBytes', 1024, 1 << 30);
    const stallTimeoutMs = intOption(options.stallTimeoutMs, 10_000, 'stallTimeoutMs', 1, 3_600_000);
    const address = grant.address;
    const endpoint = new NetEndpoint(sw, grant.segment, (src) => src === address);
    const server = net.createServer();
    server.maxConnections = maxConnections;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          // Stryker disable next-line StringLiteral: equivalent: left attached, this one-shot listener would reject a promise already resolved, a no-op (the forwarder's own error listener counts the error)
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      endpoint.close();
      throw error;
    }
    const bound = (server.address() as net.AddressInfo).port;
    return new PortForward(sw, server, endpoint, address, guestPort, grant.mtu - STREAM_HEADER_SIZE, maxBufferedBytes, stallTimeoutMs, bound);
  }

  /**
   * Closes once the partition's last frames have reached the forwarder (the partition ended:
   * its replies sent just before are still on its tx ring, not yet forwarded by the switch).
   */
  async closeWhenDrained(): Promise<void> {
    await this.sw.drained(this.guestAddress);
    await this.close();
  }

  /** Stops listening, closes every connection and leaves the switch. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const c of this.conns.values()) this.drop(c);
      this.endpoint.close();
      this.server.close(() => resolve());
    }).then(() => this.resolveClosed());
    return this.closing;
  }

  private header(type: number, id: number, data?: Uint8Array): Uint8Array {
    const frame = new Uint8Array(STREAM_HEADER_SIZE + (data?.length ?? 0));
    const dv = new DataView(frame.buffer);
    dv.setUint8(0, type);
    dv.setUint16(2, this.guestPort, true);
    dv.setUint32(4, id, true);
    if (data) frame.set(data, STREAM_HEADER_SIZE);
    return frame;
  }

  private accept(socket: net.Socket): void {
    // The listener counts open sockets; a connection whose client has gone still holds its last
    // bytes here until the guest takes them (or the stall timeout), so it counts too.
    if (this.closing || this.conns.size >= this.server.maxConnections) {
      socket.destroy();
      return;
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    const conn: Connection = { id, socket, queue: [], retry: null, backoffMs: 1, stalledSince: 0, closeSent: false };
    this.conns.set(id, conn);
    this.counters.connections++;
    socket.on('error', () => {}); // 'close' follows
    socket.on('data', (chunk: Buffer) => {
      for (let at = 0; at < chunk.length; at += this.chunk) {
        conn.queue.push(this.header(StreamFrame.DATA, id, chunk.subarray(at, Math.min(chunk.length, at + this.chunk))));
      }
      this.flush(conn);
    });
    socket.on('end', () => this.sendClose(conn));
    socket.on('close', () => {
      this.sendClose(conn);
      if (conn.queue.length === 0) this.forget(conn);
    });
    conn.queue.push(this.header(StreamFrame.OPEN, id));
    this.flush(conn);
  }

  private sendClose(conn: Connection): void {
    if (conn.closeSent) return;
    conn.closeSent = true;
    conn.queue.push(this.header(StreamFrame.CLOSE, conn.id));
    this.flush(conn);
  }

  /** Delivers queued frames in order; on a full queue or budget, pauses the socket and retries with backoff. */
  private flush(conn: Connection): void {
    if (conn.retry !== null) return;
    while (conn.queue.length > 0) {
      if (this.endpoint.closed) return;
      // Offered, not sent: a frame the guest cannot take yet stays here, so it is no drop of the NIC's.
      const result = this.endpoint.offer(this.guestAddress, conn.queue[0]!);
      if (result === 'delivered') {
        conn.queue.shift();
        this.counters.framesToGuest++;
        conn.backoffMs = 1;
        conn.stalledSince = 0;
        continue;
      }
      if (
        result === 'no-route' ||
        // Stryker disable next-line ConditionalExpression,StringLiteral: equivalent: no frame the forwarder makes is oversize (8 + at most MTU - 8 bytes, for the NIC's own MTU); kept should that change
        result === 'oversize'
      ) {
        this.drop(conn); // the partition is gone (or the frame can never fit)
        return;
      }
      const now = performance.now();
      if (conn.stalledSince === 0) conn.stalledSince = now;
      if (now - conn.stalledSince > this.stallTimeoutMs) {
        this.counters.stallCloses++;
        this.drop(conn);
        return;
      }
      conn.socket.pause();
      conn.retry = setTimeout(() => {
        conn.retry = null;
        this.flush(conn);
      }, conn.backoffMs);
      // Stryker disable next-line MethodExpression,ArithmeticOperator: timing only: the retry interval (1 ms doubling up to 50); the frames and their order are the same
      conn.backoffMs = Math.min(50, conn.backoffMs * 2);
      return;
    }
    if (conn.socket.destroyed) this.forget(conn);
    else conn.socket.resume();
  }

  private fromGuest(frame: NetFrame): void {
    // The endpoint accepts only the partition's address; check the stream header.
    const p = frame.payload;
    if (p.length < STREAM_HEADER_SIZE) return;
    const dv = new DataView(p.buffer, p.byteOffset, p.length);
    const type = dv.getUint8(0);
    if (dv.getUint16(2, true) !== this.guestPort) return;
    const conn = this.conns.get(dv.getUint32(4, true));
    if (conn === undefined) return;
    this.counters.framesFromGuest++;
    if (type === StreamFrame.DATA) {
      // The data is what waits for the client (the header is not written).
      if (conn.socket.writableLength + p.length - STREAM_HEADER_SIZE > this.maxBufferedBytes) {
        this.counters.overflowCloses++;
        this.drop(conn);
        return;
      }
      conn.socket.write(p.subarray(STREAM_HEADER_SIZE));
    } else if (type === StreamFrame.CLOSE) {
      conn.closeSent = true; // the guest closed: no CLOSE goes back
      conn.socket.end();
    }
  }

  private drop(conn: Connection): void {
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent: a retry left to fire finds the dropped connection's queue empty and forgets it again (a stray timer of at most 50 ms)
    if (conn.retry !== null) clearTimeout(conn.retry);
    conn.retry = null;
    conn.queue.length = 0;
    conn.socket.destroy();
    this.forget(conn);
  }

  private forget(conn: Connection): void {
    if (this.conns.get(conn.id) === conn) this.conns.delete(conn.id);
  }
}
