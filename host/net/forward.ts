import net from 'node:net';
import { InvalidArgumentError, AccessDeniedError, InternalError, InvalidStateError } from '../errors.ts';
import type { Partition } from '../partition/partition.ts';
import { NetEndpoint, type NetFrame, type VirtualSwitch } from './switch.ts';
import { given } from '../schema/check.ts';

/**
 * Forwarded ports: a TCP listener on the loopback interface whose connections become streams of
 * frames to one partition's service, through a host endpoint on the partition's segment.
 *
 * Framing (docs/ABI.md, "Forwarded ports"): every frame's payload starts with an 8-byte stream
 * header, u8 type, u8 flags (0), u16 guest port, u32 connection id (little-endian), then data.
 *   OPEN  (1) host → guest: a client connected.
 *   DATA  (2) either way: bytes of the stream (at most MTU − 8 per frame).
 *   CLOSE (3) either way: the sender is done sending. From the host: the client half-closed
 *             (its FIN) or left; its socket stays open for the guest's replies until the guest's
 *             own CLOSE (or the idle timeout). From the guest: the connection ends after its data.
 * The forwarder accepts frames only from the partition's own address (the switch stamps sources,
 * so no other partition can inject into a connection).
 *
 * Bounds: at most `maxConnections` connections (more are refused), counting those whose client has
 * gone while their last bytes still wait for the guest; towards the guest, a connection's socket
 * is paused while a frame waits for room in the guest's receive queue or budget, so the forwarder
 * holds at most one socket chunk per connection; towards the client, a connection whose unsent
 * bytes exceed `maxBufferedBytes` is closed. A connection on which nothing moved either way for
 * `idleTimeoutMs` is closed (counted as `idleCloses`), so idle or half-closed clients cannot hold
 * the slots for ever; one whose frames wait for the guest is the stall timeout's, not idle.
 */

export const STREAM_HEADER_SIZE = 8;

/** Each numeric option's default and accepted range: the one place forwardPort's docs and checks read. */
export const FORWARD_LIMITS = {
  maxConnections: { default: 16, min: 1, max: 1024 },
  maxBufferedBytes: { default: 1 << 20, min: 1024, max: 1 << 30 },
  stallTimeoutMs: { default: 10_000, min: 1, max: 3_600_000 },
  idleTimeoutMs: { default: 60_000, min: 1, max: 86_400_000 },
} as const;
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
  /** A connection on which no byte moved either way for this long is closed. Default 60000 ms (1 .. 86400000). */
  idleTimeoutMs?: number;
}

/** Every key ForwardPortOptions has: hv.forwardPort refuses any other. */
export const FORWARD_OPTION_KEYS = ['partition', 'guestPort', 'port', 'host', 'maxConnections', 'maxBufferedBytes', 'stallTimeoutMs', 'idleTimeoutMs'] as const satisfies readonly (keyof ForwardPortOptions)[];

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

interface Range {
  /** Taken when the option is absent (out of range when the option is required). */
  default: number;
  min: number;
  max: number;
}

/** Every refusal of forwardPort's options starts so, as a schema-checked option's names its object. */
export const FORWARD_OPTIONS = 'forwardPort options';

function intOption(v: number | undefined, what: string, { default: fallback, min, max }: Range): number {
  // Only an absent option takes the default: null is a value, refused like any other non-integer
  // (`?? fallback` took { idleTimeoutMs: null } as 60 000 without a word).
  const n = v === undefined ? fallback : v;
  // Number.isInteger is false for anything that is not a number. Worded as the schema words a
  // bound (host/schema/check.ts), under the options' name, like every other refusal of them.
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${FORWARD_OPTIONS}: ${what}: expected an integer from ${min} to ${max}, got ${given(v)}`);
  return n;
}

export class PortForward {
  /** The TCP port the forwarder listens on. */
  readonly port: number;
  readonly host = '127.0.0.1';
  /** Resolves once the forwarder is closed. */
  readonly closed: Promise<void>;
  /** Connections accepted and frames moved, and connections lost (`acceptErrors`: the listener failed to take one, e.g. EMFILE), for the embedder. */
  readonly counters = { connections: 0, framesToGuest: 0, framesFromGuest: 0, overflowCloses: 0, stallCloses: 0, idleCloses: 0, acceptErrors: 0 };

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
    private readonly idleTimeoutMs: number,
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
    const guestPort = intOption(options.guestPort, 'guestPort', { default: -1, min: 0, max: 65535 });
    const port = intOption(options.port, 'port', { default: 0, min: 0, max: 65535 });
    if (options.host !== undefined && options.host !== '127.0.0.1') {
      throw new InvalidArgumentError(`${FORWARD_OPTIONS}: host: expected "127.0.0.1" (forwarded ports listen on loopback only), got ${given(options.host)}`);
    }
    const maxConnections = intOption(options.maxConnections, 'maxConnections', FORWARD_LIMITS.maxConnections);
    const maxBufferedBytes = intOption(options.maxBufferedBytes, 'maxBufferedBytes', FORWARD_LIMITS.maxBufferedBytes);
    const stallTimeoutMs = intOption(options.stallTimeoutMs, 'stallTimeoutMs', FORWARD_LIMITS.stallTimeoutMs);
    const idleTimeoutMs = intOption(options.idleTimeoutMs, 'idleTimeoutMs', FORWARD_LIMITS.idleTimeoutMs);
    const address = grant.address;
    const endpoint = new NetEndpoint(sw, grant.segment, (src) => src === address);
    // Half-open: a client that sends its FIN (`printf req | nc -N`) still reads the reply; the
    // socket's write side ends with the guest's CLOSE, or the idle timeout.
    const server = net.createServer({ allowHalfOpen: true });
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
      // A typed error with a stable code, as every refusal (it was Node's bare EADDRINUSE).
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') throw new InvalidStateError(`port: 127.0.0.1:${port} is already in use (another process listens there; port 0 picks a free one)`);
      if (code === 'EACCES') throw new InvalidArgumentError(`port: this process may not listen on 127.0.0.1:${port} (a port under 1024 needs privileges)`);
      throw new InternalError(`cannot listen on 127.0.0.1:${port}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    const bound = (server.address() as net.AddressInfo).port;
    return new PortForward(sw, server, endpoint, address, guestPort, grant.mtu - STREAM_HEADER_SIZE, maxBufferedBytes, stallTimeoutMs, idleTimeoutMs, bound);
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
    // The client's FIN: the guest hears CLOSE; the socket stays writable for its replies.
    socket.on('end', () => this.sendClose(conn));
    // Node's socket timeout counts both directions (a write still draining is progress).
    socket.setTimeout(this.idleTimeoutMs);
    socket.on('timeout', () => {
      if (conn.queue.length > 0) {
        // Waiting for the guest is the stall timeout's to judge: look again after another period.
        socket.setTimeout(this.idleTimeoutMs);
        return;
      }
      this.counters.idleCloses++;
      this.drop(conn);
    });
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
