import { isErrorCode } from '../errors.ts';
import type { NetInit } from '../devices/net.ts';
import type { PortInit } from '../net/port.ts';
import { StdioSlot, type BlockInit, type WorkerInit, type WorkerMessage, type WorkerOutcome } from './protocol.ts';
import { STAT_SLOTS, WORKER_STAT_SLOTS } from './stats.ts';
import { quoted } from '../escape.ts';

/**
 * The channel between the root and a partition process (`isolation: 'process'`): shared memory
 * does not cross processes, so the rings a worker shares with the root are *mirrored* over one
 * stream socket (a socket pair made by the spawn, the child's fd 3) as length-prefixed frames.
 *
 * One protocol for both transports: a frame carries the same ring records (kinds of
 * EventKind, CallKind, InputKind and the NIC's records, chunked by host/channel/message.ts) that
 * a worker thread reads and writes in shared memory; the rest are the lifecycle messages a worker
 * posts, and its counters. host/channel/mirror.ts keeps the two copies of each ring in step.
 *
 *   frame   u32 LE body length | body
 *   body    u8 type | u8 ring | u16 zero | u32 LE slot | payload
 *
 * The child is not trusted. Everything it sends is read by `decodeChildFrame`, a pure function
 * that accepts only the documented frames of the child's direction, exactly sized, and returns
 * a typed frame or the reason it refused; the root then checks each frame against the state of
 * the slot it names (host/scheduler/process.ts). Any refusal ends the process: a child that sends
 * garbage is treated as compromised, never as a peer to argue with.
 */

/** The settings of a partition process (BOOT, JSON). */
export interface ProcessBoot {
  /** A partition holds the process's thread for at most this long while others wait, ms; the event loop runs at least this often. */
  sliceMs: number;
  /** A dedicated process hosts one partition and ends with it. */
  dedicated: boolean;
}

/**
 * A partition for a process to run (ADD, v8-serialized): the worker's init, with the module as
 * bytes (compiled in the child: a compiled module does not cross processes) and each shared
 * buffer replaced by what the child needs to make its own copy: ring sizes and the counters so
 * far (a restarted reactor's counters are cumulative).
 */
export interface ProcessInit {
  init: Omit<WorkerInit, 'module' | 'stats' | 'events' | 'calls' | 'input' | 'stdio' | 'spin' | 'block' | 'net'>;
  moduleBytes: Uint8Array;
  stats: Float64Array;
  rings: { events: number; calls: number; input: number };
  /** The console's output state so far (StdioFlag bits; later changes come as STDIO frames). */
  stdio: number;
  /** The block image: `fd` is the child's descriptor for it (passed at spawn). */
  block: BlockInit | null;
  /** The NIC: its settings and its rings' sizes (the child makes copies; see RingId.NET_TX, NET_RX). */
  net: { init: NetSettings; tx: number; rx: number } | null;
}

/**
 * A NIC's settings without its shared buffers (the child makes its own copies). A process's NIC
 * is never on the direct path (NetInit.direct): its frames, both ways, go through the root.
 */
export type NetSettings = Omit<NetInit, 'tx' | 'port' | 'peers' | 'direct'> & { port: Omit<PortInit, 'rx' | 'ctl' | 'stats'> };

/** Frame types. Root → child: BOOT, ADD, KILL, STDIO. Child → root: LIFECYCLE, STATS, NET_STATS, WORKER_STATS. Both: RECORD, ACK, CLOSE. */
export const FrameType = {
  /** Root → child, first frame, slot 0: the process's settings (JSON, see ProcessBoot). */
  BOOT: 1,
  /** Root → child: run a partition in `slot` (v8-serialized ProcessInit). */
  ADD: 2,
  /** Root → child: end the partition in `slot` (an encoded outcome). */
  KILL: 3,
  /**
   * Root → child: the console's output state of `slot` (WorkerInit.stdio), one byte of StdioFlag
   * bits: the reader of that stream has gone (the guest's writes to it fail with EPIPE). A flag,
   * once set, stays set; the root sends the whole state each time one is added.
   */
  STDIO: 4,
  /** A ring record for the other side's copy of `ring`: u8 kind, then the record's bytes. */
  RECORD: 8,
  /** The receiver's consumer took `u32` bytes of `ring` (whole records, headers and padding included). */
  ACK: 9,
  /** The producer closed `ring` (sent after its last record). */
  CLOSE: 10,
  /** Child → root: a lifecycle message of `slot` (running, ready, done with its outcome). */
  LIFECYCLE: 16,
  /** Child → root: `slot`'s counters, STAT_SLOTS Float64 (LE). */
  STATS: 17,
  /** Child → root, slot 0: the process scheduler's counters, WORKER_STAT_SLOTS Float64 (LE). */
  WORKER_STATS: 18,
  /** Child → root: the worker's half of `slot`'s NIC counters, NET_WORKER_STAT_SLOTS Float64 (LE). */
  NET_STATS: 19,
} as const;

/** Bits of a STDIO frame's byte, one per StdioSlot: bit `1 << slot`. */
export const StdioFlag = {
  STDOUT_CLOSED: 1 << StdioSlot.STDOUT_CLOSED,
  STDERR_CLOSED: 1 << StdioSlot.STDERR_CLOSED,
} as const;
const STDIO_ALL = StdioFlag.STDOUT_CLOSED | StdioFlag.STDERR_CLOSED;

/** The NIC counters the worker writes (NetStat slots 0..7); the root's switch writes the rest. */
export const NET_WORKER_STAT_SLOTS = 8;

/** The rings of a partition, by who produces them. */
export const RingId = {
  /** Child → root: console lines, violations, call results. */
  EVENTS: 0,
  /** Root → child: reactor calls. */
  CALLS: 1,
  /** Root → child: console input. */
  INPUT: 2,
  /** Child → root: the NIC's frames to send (the root's switch drains its copy). */
  NET_TX: 3,
  /** Root → child: frames the switch delivered to the NIC. */
  NET_RX: 4,
} as const;
export type RingIdValue = (typeof RingId)[keyof typeof RingId];

/** Rings whose producer is the child: it sends their records and closes them, the root acknowledges. */
export function childProduces(ring: number): boolean {
  return ring === RingId.EVENTS || ring === RingId.NET_TX;
}

/** Rings whose producer is the root: the child may only acknowledge them. */
export function rootProduces(ring: number): boolean {
  return ring === RingId.CALLS || ring === RingId.INPUT || ring === RingId.NET_RX;
}

/** Bytes before a frame's payload: the length, then type, ring, zero and slot. */
export const FRAME_HEADER = 12;
const BODY_HEADER = FRAME_HEADER - 4;

/**
 * Largest frame body the root reads from a child: a ring record of the largest ring a partition
 * has (64 KiB of events) or of the largest console line, with room to spare; anything longer is
 * refused before it is buffered.
 */
export const MAX_CHILD_FRAME = (1 << 20) + BODY_HEADER;

/** Largest message of a lifecycle frame (the outcome's message is cut to fit by the child). */
export const MAX_LIFECYCLE_BYTES = 8192;

/**
 * Counters are Float64 values the worker keeps (counts, bytes, milliseconds): finite and within
 * ±2^53. A clock-derived one may dip below 0 for a moment (readMetrics clamps it), so the sign is
 * not checked; NaN and infinities are.
 */
const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

export type ChildFrame =
  | { type: 'record'; slot: number; ring: RingIdValue; kind: number; bytes: Uint8Array }
  | { type: 'ack'; slot: number; ring: RingIdValue; bytes: number }
  | { type: 'close'; slot: number; ring: RingIdValue }
  | { type: 'lifecycle'; slot: number; message: WorkerMessage }
  | { type: 'stats'; slot: number; values: Float64Array }
  | { type: 'net-stats'; slot: number; values: Float64Array }
  | { type: 'worker-stats'; values: Float64Array };

export type RootFrame =
  | { type: 'boot'; json: string }
  | { type: 'add'; slot: number; payload: Uint8Array }
  | { type: 'kill'; slot: number; outcome: WorkerOutcome }
  | { type: 'stdio'; slot: number; flags: number }
  | { type: 'record'; slot: number; ring: number; kind: number; bytes: Uint8Array }
  | { type: 'ack'; slot: number; ring: number; bytes: number }
  | { type: 'close'; slot: number; ring: number };

/** Why a frame was refused. */
export interface FrameRefusal {
  type: 'refused';
  reason: string;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** One frame, header and payload, ready to write. */
export function encodeFrame(type: number, ring: number, slot: number, payload: Uint8Array | null = null, kind = -1): Uint8Array {
  const extra = kind >= 0 ? 1 : 0;
  const length = payload?.length ?? 0;
  const frame = new Uint8Array(FRAME_HEADER + extra + length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, BODY_HEADER + extra + length, true);
  frame[4] = type;
  frame[5] = ring;
  view.setUint32(8, slot, true);
  if (extra) frame[FRAME_HEADER] = kind;
  if (payload !== null) frame.set(payload, FRAME_HEADER + extra);
  return frame;
}

/** A ring record for the other side: the record's kind travels as the payload's first byte. */
export function encodeRecord(slot: number, ring: number, kind: number, bytes: Uint8Array): Uint8Array {
  return encodeFrame(FrameType.RECORD, ring, slot, bytes, kind);
}

export function encodeAck(slot: number, ring: number, bytes: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, bytes, true);
  return encodeFrame(FrameType.ACK, ring, slot, p);
}

export function encodeClose(slot: number, ring: number): Uint8Array {
  return encodeFrame(FrameType.CLOSE, ring, slot);
}

/** Counters (partition, NIC or process) as a frame of their Float64 values. */
export function encodeStats(type: typeof FrameType.STATS | typeof FrameType.NET_STATS | typeof FrameType.WORKER_STATS, slot: number, values: Float64Array): Uint8Array {
  const p = new Uint8Array(values.length * 8);
  const view = new DataView(p.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat64(i * 8, values[i]!, true);
  return encodeFrame(type, 0, slot, p);
}

/**
 * A lifecycle message: u8 1 running | 2 ready | 3 done, and for done the outcome: u8 0 (exit),
 * i32 code; or u8 1 (error), u8 code length, the code (ASCII), the message (UTF-8).
 */
export function encodeLifecycle(slot: number, message: WorkerMessage): Uint8Array {
  return encodeFrame(FrameType.LIFECYCLE, 0, slot, lifecyclePayload(message));
}

/** An outcome for KILL: the encoding of a done message's outcome. */
export function encodeKill(slot: number, outcome: WorkerOutcome): Uint8Array {
  return encodeFrame(FrameType.KILL, 0, slot, outcomePayload(outcome));
}

/** The console's output state of `slot` (StdioFlag bits). */
export function encodeStdio(slot: number, flags: number): Uint8Array {
  return encodeFrame(FrameType.STDIO, 0, slot, Uint8Array.of(flags));
}

export function encodeBoot(json: string): Uint8Array {
  return encodeFrame(FrameType.BOOT, 0, 0, encoder.encode(json));
}

export function encodeAdd(slot: number, payload: Uint8Array): Uint8Array {
  return encodeFrame(FrameType.ADD, 0, slot, payload);
}

function lifecyclePayload(m: WorkerMessage): Uint8Array {
  if (m.type === 'running') return Uint8Array.of(1);
  if (m.type === 'ready') return Uint8Array.of(2);
  const outcome = outcomePayload(m.outcome);
  const p = new Uint8Array(1 + outcome.length);
  p[0] = 3;
  p.set(outcome, 1);
  return p;
}

function outcomePayload(o: WorkerOutcome): Uint8Array {
  if (o.kind === 'exit') {
    const p = new Uint8Array(5);
    new DataView(p.buffer).setInt32(1, o.code, true);
    return p;
  }
  const code = encoder.encode(o.error);
  // Cut on a character boundary so the message stays valid UTF-8 and within the bound.
  let message = encoder.encode(o.message);
  const room = MAX_LIFECYCLE_BYTES - 3 - code.length;
  if (message.length > room) message = encoder.encode(cut(o.message, room));
  const p = new Uint8Array(2 + code.length + message.length);
  p[0] = 1;
  p[1] = code.length;
  p.set(code, 2);
  p.set(message, 2 + code.length);
  return p;
}

/** The longest prefix of `s` whose UTF-8 takes at most `bytes`. */
function cut(s: string, bytes: number): string {
  let out = '';
  let n = 0;
  for (const ch of s) {
    const k = encoder.encode(ch).length;
    if (n + k > bytes) break;
    out += ch;
    n += k;
  }
  return out;
}

function refused(reason: string): FrameRefusal {
  return { type: 'refused', reason };
}

function decodeOutcome(p: Uint8Array): WorkerOutcome | FrameRefusal {
  if (p.length < 1) return refused('an outcome without its kind');
  const view = new DataView(p.buffer, p.byteOffset, p.length);
  if (p[0] === 0) {
    if (p.length !== 5) return refused(`an exit outcome of ${p.length} bytes (expected 5)`);
    return { kind: 'exit', code: view.getInt32(1, true) };
  }
  if (p[0] !== 1) return refused(`an outcome of unknown kind ${p[0]}`);
  if (p.length < 2 || p.length < 2 + p[1]!) return refused('an error outcome shorter than its code');
  let code: string;
  let message: string;
  try {
    code = strictDecoder.decode(p.subarray(2, 2 + p[1]!));
    message = strictDecoder.decode(p.subarray(2 + p[1]!));
  } catch {
    return refused('an error outcome that is not UTF-8');
  }
  if (!isErrorCode(code)) return refused(`an error outcome with an unknown code (${quoted(code, 40)})`);
  return { kind: 'error', error: code, message };
}

function decodeLifecycle(p: Uint8Array): WorkerMessage | FrameRefusal {
  if (p.length > MAX_LIFECYCLE_BYTES) return refused(`a lifecycle message of ${p.length} bytes (at most ${MAX_LIFECYCLE_BYTES})`);
  if (p.length === 1 && p[0] === 1) return { type: 'running' };
  if (p.length === 1 && p[0] === 2) return { type: 'ready' };
  if (p.length < 1 || p[0] !== 3) return refused(`a lifecycle message of unknown type ${p[0] ?? 'none'} (or with trailing bytes)`);
  const outcome = decodeOutcome(p.subarray(1));
  if ('type' in outcome) return outcome;
  return { type: 'done', outcome };
}

function decodeCounters(p: Uint8Array, slots: number): Float64Array | FrameRefusal {
  if (p.length !== slots * 8) return refused(`counters of ${p.length} bytes (expected ${slots * 8})`);
  const view = new DataView(p.buffer, p.byteOffset, p.length);
  const values = new Float64Array(slots);
  for (let i = 0; i < slots; i++) {
    const v = view.getFloat64(i * 8, true);
    // `!(… <= …)` also refuses NaN.
    if (!(Math.abs(v) <= MAX_COUNTER)) return refused(`counter ${i} is ${v} (a counter is finite, within ±(2^53 - 1))`);
    values[i] = v;
  }
  return values;
}

/** The parts every frame body has. */
function header(body: Uint8Array): { type: number; ring: number; slot: number; payload: Uint8Array } | FrameRefusal {
  if (body.length < BODY_HEADER) return refused(`a frame of ${body.length} bytes (a frame has at least ${BODY_HEADER})`);
  if (body[2] !== 0 || body[3] !== 0) return refused('a frame whose reserved bytes are not zero');
  const slot = new DataView(body.buffer, body.byteOffset, body.length).getUint32(4, true);
  return { type: body[0]!, ring: body[1]!, slot, payload: body.subarray(BODY_HEADER) };
}

/**
 * Reads a frame body (what follows the length) sent by a child. Pure and total: returns the frame,
 * or a refusal naming what was wrong; never throws, whatever the bytes. The payload of a record
 * is a view into `body`.
 */
export function decodeChildFrame(body: Uint8Array): ChildFrame | FrameRefusal {
  const h = header(body);
  if ('reason' in h) return h;
  const { type, ring, slot, payload } = h;
  const ringless = (): FrameRefusal | null => (ring !== 0 ? refused(`a frame of type ${type} naming ring ${ring}`) : null);
  switch (type) {
    case FrameType.RECORD:
      if (!childProduces(ring)) return refused(`a record for ring ${ring}, which the child does not produce`);
      if (payload.length < 1) return refused('a record without its kind');
      return { type: 'record', slot, ring: ring as RingIdValue, kind: payload[0]!, bytes: payload.subarray(1) };
    case FrameType.ACK:
      if (!rootProduces(ring)) return refused(`an acknowledgement for ring ${ring}, which the root does not produce`);
      if (payload.length !== 4) return refused(`an acknowledgement of ${payload.length} bytes (expected 4)`);
      return { type: 'ack', slot, ring: ring as RingIdValue, bytes: new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true) };
    case FrameType.CLOSE:
      if (!childProduces(ring)) return refused(`a close of ring ${ring}, which the child does not produce`);
      if (payload.length !== 0) return refused('a close with a payload');
      return { type: 'close', slot, ring: ring as RingIdValue };
    case FrameType.LIFECYCLE: {
      const r = ringless();
      if (r) return r;
      const message = decodeLifecycle(payload);
      return 'reason' in message ? message : { type: 'lifecycle', slot, message };
    }
    case FrameType.STATS: {
      const r = ringless();
      if (r) return r;
      const values = decodeCounters(payload, STAT_SLOTS);
      return 'reason' in values ? values : { type: 'stats', slot, values };
    }
    case FrameType.NET_STATS: {
      const r = ringless();
      if (r) return r;
      const values = decodeCounters(payload, NET_WORKER_STAT_SLOTS);
      return 'reason' in values ? values : { type: 'net-stats', slot, values };
    }
    case FrameType.WORKER_STATS: {
      const r = ringless();
      if (r) return r;
      if (slot !== 0) return refused(`process counters for slot ${slot} (they belong to slot 0)`);
      const values = decodeCounters(payload, WORKER_STAT_SLOTS);
      return 'reason' in values ? values : { type: 'worker-stats', values };
    }
    default:
      return refused(`a frame of type ${type}, which a child may not send`);
  }
}

/** Reads a frame body sent by the root (in the child: the root is trusted, but the reader is as strict). */
export function decodeRootFrame(body: Uint8Array): RootFrame | FrameRefusal {
  const h = header(body);
  if ('reason' in h) return h;
  const { type, ring, slot, payload } = h;
  switch (type) {
    case FrameType.BOOT:
      try {
        return { type: 'boot', json: strictDecoder.decode(payload) };
      } catch {
        return refused('boot settings that are not UTF-8');
      }
    case FrameType.ADD:
      return { type: 'add', slot, payload };
    case FrameType.KILL: {
      const outcome = decodeOutcome(payload);
      return 'reason' in outcome ? outcome : { type: 'kill', slot, outcome };
    }
    case FrameType.STDIO:
      if (ring !== 0 || payload.length !== 1 || (payload[0]! & ~STDIO_ALL) !== 0) return refused('a console output state that is not one byte of known flags');
      return { type: 'stdio', slot, flags: payload[0]! };
    case FrameType.RECORD:
      if (!rootProduces(ring) || payload.length < 1) return refused(`a record for ring ${ring} from the root`);
      return { type: 'record', slot, ring, kind: payload[0]!, bytes: payload.subarray(1) };
    case FrameType.ACK:
      if (!childProduces(ring) || payload.length !== 4) return refused(`an acknowledgement for ring ${ring} from the root`);
      return { type: 'ack', slot, ring, bytes: new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true) };
    case FrameType.CLOSE:
      if (!rootProduces(ring) || payload.length !== 0) return refused(`a close of ring ${ring} from the root`);
      return { type: 'close', slot, ring };
    default:
      return refused(`a frame of type ${type}, which the root does not send`);
  }
}

/**
 * Cuts a byte stream into frame bodies. `maxBody` bounds each frame: a length over it is refused
 * from its 4-byte prefix, before anything of the body is buffered. What is buffered at any time is
 * at most one frame plus one chunk of the stream.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** The length of the frame being assembled, or -1 while its prefix is incomplete. */
  private need = -1;

  constructor(private readonly maxBody: number) {}

  /** Adds bytes from the stream; calls `frame` for each whole body. Returns a refusal (and stops) on an oversized frame. */
  push(data: Uint8Array, frame: (body: Uint8Array) => boolean): FrameRefusal | null {
    if (data.length > 0) {
      this.chunks.push(data);
      this.buffered += data.length;
    }
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < 4) return null;
        const prefix = this.take(4);
        const n = new DataView(prefix.buffer, prefix.byteOffset, 4).getUint32(0, true);
        if (n > this.maxBody) {
          this.reset();
          return refused(`a frame of ${n} bytes (at most ${this.maxBody})`);
        }
        this.need = n;
      }
      if (this.buffered < this.need) return null;
      const body = this.take(this.need);
      this.need = -1;
      // The consumer may stop reading (e.g. it refused a frame): nothing after it is delivered.
      if (!frame(body)) {
        this.reset();
        return null;
      }
    }
  }

  /** Drops what is buffered (zeroed: it may hold guest data). */
  reset(): void {
    for (const c of this.chunks) c.fill(0);
    this.chunks = [];
    this.buffered = 0;
    this.need = -1;
  }

  /** The next `n` bytes of the stream: a view when they lie in one chunk, else a copy. */
  private take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return out;
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(n - at, c.length);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
