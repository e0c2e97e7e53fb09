import { SharedRing } from './ring.ts';

/**
 * Messages of any size over a SharedRing. A ring record carries at most `ring.maxRecord` bytes
 * (and never more than 2^24 - 1); a longer message is cut into chunks, each a record of the
 * message's kind with MORE set on every chunk but the last. The ring is single-producer,
 * single-consumer and in order, and a producer finishes one message before it starts the next,
 * so the consumer needs no message ids: it appends chunks until one arrives without MORE.
 *
 * Kinds are 7 bits (1..127); the high bit of a record's kind is MORE.
 *
 * The consumer bounds every message by its kind (`maxBytes`): a producer that sends more than the
 * receiving side accepts is a protocol violation (ChannelError), never an allocation it chose.
 */

const EMPTY = new Uint8Array(0);

/** Set on every chunk of a message but its last. */
export const MORE = 0x80;

/** The other side broke the framing: an unknown kind, a message over its bound, a corrupt ring. */
export class ChannelError extends Error {
  override readonly name = 'ChannelError';
}

/**
 * One message on its way into a ring, sent as room allows: `pump()` writes every chunk that fits
 * now and returns true once the last one is in. Never blocks; the caller decides how to wait
 * (a worker with Atomics.wait, the root with whenRead, a shared worker by suspending).
 */
export class MessageSender {
  private part = 0;
  private offset = 0;
  private readonly total: number;
  private sent = 0;
  private finished = false;
  private scratch: Uint8Array | null = null;

  constructor(
    private readonly ring: SharedRing,
    private readonly kind: number,
    private readonly parts: readonly Uint8Array[],
  ) {
    if (!(kind >= 1 && kind < MORE)) throw new RangeError(`message kind ${kind} is outside 1..127`);
    this.total = parts.reduce((n, p) => n + p.length, 0);
  }

  /** True once the whole message is in the ring. */
  get done(): boolean {
    return this.finished;
  }

  /** True once at least one chunk is in the ring (the message can no longer be dropped cleanly). */
  get started(): boolean {
    return this.sent > 0 || this.finished;
  }

  /** Writes the chunks that fit now. False when the ring is full (or closed) before the end. */
  pump(): boolean {
    while (!this.finished) {
      const left = this.total - this.sent;
      if (left === 0) {
        // An empty message is one empty record.
        if (!this.ring.tryWrite(this.kind, EMPTY, 0)) return false;
        this.finished = true;
        break;
      }
      const n = Math.min(this.ring.writable, left);
      if (n === 0) return false;
      const last = n === left;
      if (last && this.sent === 0 && this.parts.length > 1) {
        // The whole message in one record: its parts go straight into the ring (no gathering
        // buffer: a call or a result of a header and a body costs no allocation here).
        if (!this.ring.tryWriteParts(this.kind, this.parts)) return false;
        this.sent = this.total;
        this.finished = true;
        break;
      }
      if (!this.ring.tryWrite(last ? this.kind : this.kind | MORE, this.take(n), n)) return false;
      this.advance(n);
      if (last) {
        this.finished = true;
        this.scratch?.fill(0);
      }
    }
    return true;
  }

  /** Zeroes what this sender gathered of its parts (a message dropped before its end: the run is over). */
  discard(): void {
    this.scratch?.fill(0);
  }

  /** The next `n` bytes: a view when they lie in one part, else gathered into a scratch buffer. */
  private take(n: number): Uint8Array {
    while (this.offset === this.parts[this.part]!.length) {
      this.part++;
      this.offset = 0;
    }
    const p = this.parts[this.part]!;
    if (this.offset + n <= p.length) return p.subarray(this.offset, this.offset + n);
    if (this.scratch === null || this.scratch.length < n) this.scratch = new Uint8Array(n);
    let at = 0;
    let part = this.part;
    let offset = this.offset;
    while (at < n) {
      const q = this.parts[part]!;
      const k = Math.min(n - at, q.length - offset);
      this.scratch.set(q.subarray(offset, offset + k), at);
      at += k;
      offset += k;
      if (offset === q.length) {
        part++;
        offset = 0;
      }
    }
    return this.scratch;
  }

  private advance(n: number): void {
    this.sent += n;
    let left = n;
    while (left > 0) {
      const p = this.parts[this.part]!;
      const k = Math.min(left, p.length - this.offset);
      this.offset += k;
      left -= k;
      if (this.offset === p.length && this.part < this.parts.length - 1) {
        this.part++;
        this.offset = 0;
      }
    }
  }
}

/**
 * Sends one message, waiting for room with `wait(seq, deadline)` (which returns once the ring's
 * read counter moved from `seq`, or the deadline passed). A message whose first chunk does not
 * get in by the deadline is dropped (false); once a chunk is in, the rest is always sent (the
 * consumer would otherwise see half a message), unless the ring closes.
 */
export function sendMessage(
  ring: SharedRing,
  kind: number,
  parts: readonly Uint8Array[],
  timeoutMs: number,
  wait: (seq: number, deadline: number) => void = (seq, deadline) => waitForRoom(ring, seq, deadline),
): boolean {
  const sender = new MessageSender(ring, kind, parts);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const seq = ring.readSeq;
    if (sender.pump()) return true;
    if (ring.closed) return false;
    if (!sender.started && performance.now() >= deadline) return false;
    wait(seq, sender.started ? Infinity : deadline);
  }
}

/** Blocks a worker thread until the ring's read counter moves from `seq` or the deadline passes. */
export function waitForRoom(ring: SharedRing, seq: number, deadline: number): void {
  const left = deadline - performance.now();
  if (left <= 0) return;
  ring.waitRead(seq, left === Infinity ? undefined : left);
}

/** A message as the consumer gets it: its kind (MORE cleared) and its bytes. */
export interface Message {
  kind: number;
  bytes: Uint8Array;
}

/**
 * The consumer's side: turns records back into messages. `maxBytes(kind)` bounds each message
 * (-1: an unknown kind). A message over its bound, an unknown kind or a corrupt ring throws
 * ChannelError; nothing after that is trusted.
 */
export class MessageReader {
  private kind = -1;
  private chunks: Uint8Array[] = [];
  private length = 0;
  /** readReusing's buffer, its view of the last length read from it, and its message (see there). */
  private reused: Uint8Array = EMPTY;
  private view: Uint8Array = EMPTY;
  private readonly message: Message = { kind: 0, bytes: EMPTY };

  constructor(
    private readonly ring: SharedRing,
    private readonly maxBytes: (kind: number) => number,
  ) {}

  /** True when no message is half read: the ring's next record starts a message. */
  get idle(): boolean {
    return this.kind === -1;
  }

  /** The next whole message, or null when the ring holds no complete one yet (partial chunks are kept). */
  read(): Message | null {
    for (;;) {
      let record;
      try {
        record = this.ring.tryRead();
      } catch (error) {
        throw new ChannelError(error instanceof Error ? error.message : String(error));
      }
      if (record === null) return null;
      const kind = record.kind & ~MORE;
      const more = (record.kind & MORE) !== 0;
      if (this.kind !== -1 && kind !== this.kind) {
        throw new ChannelError(`a record of kind ${kind} inside a message of kind ${this.kind}`);
      }
      const max = this.maxBytes(kind);
      if (max < 0) throw new ChannelError(`unknown message kind ${kind}`);
      if (this.length + record.bytes.length > max) {
        throw new ChannelError(`a message of kind ${kind} exceeds its bound of ${max} bytes`);
      }
      if (!more && this.kind === -1) return { kind, bytes: record.bytes };
      this.kind = kind;
      this.chunks.push(record.bytes);
      this.length += record.bytes.length;
      if (more) continue;
      const bytes = join(this.chunks, this.length);
      for (const c of this.chunks) c.fill(0);
      this.kind = -1;
      this.chunks = [];
      this.length = 0;
      return { kind, bytes };
    }
  }

  /**
   * read(), for a consumer that is done with each message before it reads the next one and zeroes
   * what it took: a message of one record (the common case) is read into a buffer this reader
   * keeps and reuses (grown as needed, never past the ring's largest record), and returned in a
   * Message object that is reused too; both are valid until the next read. A message of several
   * chunks is read as by read() (a fresh buffer). The checks are read()'s: kind, bound, ring.
   * A reactor's worker reads each call this way: no buffer allocated per call.
   */
  readReusing(): Message | null {
    if (this.kind === -1) {
      let word: number;
      try {
        word = this.ring.peekHeader();
      } catch (error) {
        throw new ChannelError(error instanceof Error ? error.message : String(error));
      }
      if (word < 0) return null;
      const kind = word >>> 24;
      if ((kind & MORE) === 0) {
        const length = word & 0xffffff;
        const max = this.maxBytes(kind);
        if (max < 0) throw new ChannelError(`unknown message kind ${kind}`);
        if (length > max) throw new ChannelError(`a message of kind ${kind} exceeds its bound of ${max} bytes`);
        let buffer = this.reused;
        if (buffer.length < length) {
          buffer.fill(0);
          buffer = this.reused = new Uint8Array(Math.min(this.ring.maxRecord, Math.max(length, 2 * buffer.length, 128)));
          this.view = EMPTY;
        }
        // The record peeked above (its header checked there): one call, not readInto's second look.
        this.ring.takeInto(buffer, word);
        // The view is made again only when the length changes (a reactor's calls, and their
        // results, mostly keep theirs): no view made per message.
        let view = this.view;
        if (view.length !== length) view = this.view = buffer.subarray(0, length);
        const message = this.message;
        message.kind = kind;
        message.bytes = view;
        return message;
      }
    }
    return this.read();
  }

  /**
   * readReusing() for a consumer that expects messages of `kind`, of at most `max` bytes (its
   * `maxBytes(kind)`): a message of one record of that kind that fits the reused buffer is taken
   * in one call of the ring's (SharedRing.takeOne), its header checked there; anything else (a
   * chunk, another kind, a message over `max` or larger than the buffer) goes through
   * readReusing, which checks it again and throws or grows the buffer as it must. A reactor's
   * worker reads each call here (docs/PERFORMANCE.md, "Session 13: row 3").
   */
  readOne(kind: number, max: number): Message | null {
    if (this.kind === -1) {
      const buffer = this.reused;
      let length: number;
      try {
        length = this.ring.takeOne(buffer, kind, max);
      } catch (error) {
        throw new ChannelError(error instanceof Error ? error.message : String(error));
      }
      if (length === -1) return null;
      if (length >= 0) {
        let view = this.view;
        if (view.length !== length) view = this.view = buffer.subarray(0, length);
        const message = this.message;
        message.kind = kind;
        message.bytes = view;
        return message;
      }
    }
    return this.readReusing();
  }

  /** Zeroes what is held of a partial message (the run ended before its last chunk). */
  discard(): void {
    this.reused.fill(0);
    for (const c of this.chunks) c.fill(0);
    this.chunks = [];
    this.length = 0;
    this.kind = -1;
  }
}

function join(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Sends one message from the root's thread, which never blocks: writes what fits, then waits
 * asynchronously for the consumer to make room. Resolves true once sent, false if the ring
 * closed first. Never rejects.
 */
export async function sendMessageAsync(ring: SharedRing, kind: number, parts: readonly Uint8Array[]): Promise<boolean> {
  const sender = new MessageSender(ring, kind, parts);
  for (;;) {
    const seq = ring.readSeq;
    if (sender.pump()) return true;
    if (ring.closed) return false;
    await ring.whenRead(seq);
  }
}
