import { HvCall, HvDevice, HvStatus, HV_CONSOLE_READ_NONBLOCK, HV_DEVICE_FLAG_INPUT } from '../abi/codes.ts';
import { SharedRing } from '../channel/ring.ts';
import { sendMessage } from '../channel/message.ts';
import { threadBlocker, type Blocker } from '../channel/blocker.ts';
import { InvalidArgumentError } from '../errors.ts';
import { TokenBucket } from '../limits/token-bucket.ts';
import { RateLimiter, type RateLimiterOptions } from '../limits/rate-limiter.ts';
import { EventKind, InputKind } from '../channel/protocol.ts';
import { Stat } from '../channel/stats.ts';
import type { ResolvedConsole } from './config.ts';
import { MAX_INPUT_LINE_BYTES } from '../limits/sizes.ts';
import { readU32Arg, type Device, type Handler } from './device.ts';

/** How long a guest's console write waits for the root to drain a full event ring before the line is dropped. */
const EVENT_RING_WAIT_MS = 5000;

/**
 * Where finished lines go. A dedicated worker sends them straight into the event ring (waiting
 * for room, see ringSink); a shared worker queues them in the partition's outbox, which its
 * scheduler drains, and makes a write wait *before* it consumes a byte when the outbox is full.
 */
export interface LineSink {
  /** Called before a write takes any byte: may wait (or suspend the guest) until lines can be taken. */
  admit(): void;
  /** Sends one line (`line[0, length)`, copied before it returns); false when it was dropped. */
  send(kind: number, line: Uint8Array, length: number): boolean;
}

/** The event ring as a LineSink: a line waits up to 5 s for room (then it is dropped). */
export function ringSink(events: SharedRing, blocker: Blocker): LineSink {
  return {
    admit() {},
    send: (kind, line, length) =>
      // A line longer than a ring record travels in chunks (host/channel/message.ts).
      sendMessage(events, kind, [line.subarray(0, length)], EVENT_RING_WAIT_MS, (seq, deadline) => blocker.writable(events, seq, deadline)),
  };
}

export interface ConsoleDeviceOptions {
  /** How reads wait for input (default: block the thread). */
  blocker?: Blocker;
  /** Where lines go (default: the event ring, through `ringSink`). */
  sink?: LineSink;
}

/** One output stream's line assembler: bytes in, bounded lines out. */
class LineAssembler {
  private readonly line: Uint8Array;
  private length = 0;
  /** True while the rest of an over-long line is being discarded. */
  private discarding = false;

  constructor(
    private readonly kind: number,
    maxLineBytes: number,
    private readonly emit: (kind: number, line: Uint8Array, length: number) => boolean,
    private readonly stats: Float64Array,
  ) {
    this.line = new Uint8Array(maxLineBytes);
  }

  /** Feeds bytes; returns the number of completed lines that were dropped by the rate limit. */
  push(bytes: Uint8Array, n: number): number {
    let dropped = 0;
    const line = this.line;
    for (let i = 0; i < n; i++) {
      const b = bytes[i]!;
      if (b === 0x0a) {
        if (!this.emit(this.kind, line, this.length)) dropped++;
        this.length = 0;
        this.discarding = false;
      } else if (this.length < line.length) {
        line[this.length++] = b;
      } else {
        if (!this.discarding) this.discarding = true;
        this.stats[Stat.CONSOLE_BYTES_TRUNCATED]!++;
      }
    }
    return dropped;
  }

  /** Emits a final unterminated line, if any. */
  flush(): void {
    if (this.length > 0) this.emit(this.kind, this.line, this.length);
    this.length = 0;
  }
}

/**
 * Console front-end, in the partition's worker. Output: a write first passes the optional
 * bytes+calls rate limit (over it: RATE_LIMITED with nothing written, or a wait, per its mode);
 * the guest's bytes are cut into lines of at most maxLineBytes (the rest of a longer line is
 * dropped and counted), each line passes a lines-per-second token bucket (excess dropped and
 * counted, the call returns RATE_LIMITED), and goes to the root on the event ring. Input: lines the root put on the input ring.
 */
export class ConsoleDevice implements Device {
  readonly name = 'console';
  readonly record;
  readonly handlers: ReadonlyMap<number, Handler>;
  private readonly stdout: LineAssembler;
  private readonly stderr: LineAssembler;
  private readonly bucket: TokenBucket;
  /** Bytes and calls of output writes (devices.console.rateLimit), or null for none. */
  private readonly limiter: RateLimiter | null;
  private readonly blocker: Blocker;
  private readonly sink: LineSink;

  constructor(
    config: ResolvedConsole,
    events: SharedRing,
    private readonly input: SharedRing,
    private readonly stats: Float64Array,
    now?: () => number,
    sleep?: (ms: number) => void,
    options: ConsoleDeviceOptions = {},
  ) {
    this.blocker = options.blocker ?? threadBlocker;
    this.sink = options.sink ?? ringSink(events, this.blocker);
    this.record = { id: HvDevice.CONSOLE, version: 1, param0: config.maxLineBytes, param1: HV_DEVICE_FLAG_INPUT };
    this.bucket = new TokenBucket({
      capacity: config.burstLines,
      refillTimeMs: (config.burstLines / config.linesPerSecond) * 1000,
      ...(now ? { now } : {}),
    });
    const clock: RateLimiterOptions = { ...(now ? { now } : {}), ...(sleep ? { sleep } : {}) };
    const counters = { stats, calls: Stat.CONSOLE_THROTTLED, waitedMs: Stat.CONSOLE_THROTTLED_MS };
    this.limiter = config.rateLimit ? new RateLimiter(config.rateLimit, { ...clock, counters }) : null;
    const emit = this.emitLine.bind(this);
    this.stdout = new LineAssembler(EventKind.STDOUT, config.maxLineBytes, emit, stats);
    this.stderr = new LineAssembler(EventKind.STDERR, config.maxLineBytes, emit, stats);
    this.handlers = new Map<number, Handler>([
      [HvCall.CONSOLE_WRITE, (input, inLen) => this.write(this.stdout, input, inLen)],
      [HvCall.CONSOLE_WRITE_ERR, (input, inLen) => this.write(this.stderr, input, inLen)],
      [HvCall.CONSOLE_READ, (input, inLen, out, outCap) => this.read(input, inLen, out, outCap)],
    ]);
  }

  close(): void {
    this.stdout.flush();
    this.stderr.flush();
  }

  /**
   * Feeds bytes to stdout or stderr through the same line cutting and rate limit as
   * CONSOLE_WRITE (used by WASI's fd 1 and 2). Returns n, or -RATE_LIMITED when a completed
   * line was dropped (its bytes are consumed either way).
   */
  writeStream(stream: 'stdout' | 'stderr', bytes: Uint8Array, n: number): number {
    return this.write(stream === 'stdout' ? this.stdout : this.stderr, bytes, n);
  }

  /**
   * One input line (without its newline) into out, which must hold 65536 bytes (the longest
   * line the root accepts). Returns its length, -1 at end of input, -2 when no line is ready
   * (non-blocking, or the wait timed out). Used by WASI's fd 0.
   */
  readLine(out: Uint8Array, block: boolean, timeoutMs = Infinity): number {
    // The caller's timeout is what is left of its own deadline (WASI's poll_oneoff), counted from now.
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const seq = this.input.writeSeq;
      const length = this.input.peekLength();
      if (length >= 0) {
        if (length > out.length) return -2;
        this.input.readInto(out);
        this.stats[Stat.CONSOLE_LINES_IN]!++;
        return length;
      }
      if (this.input.closed) return -1;
      if (!block || performance.now() >= deadline) return -2;
      this.blocker.readable(this.input, seq, deadline);
    }
  }

  private write(stream: LineAssembler, input: Uint8Array, inLen: number): number {
    // Both before any byte is taken: a write that waits here is redone whole (see Blocker).
    this.sink.admit();
    if (this.limiter !== null && this.limiter.admit(inLen) !== 'ok') return -HvStatus.RATE_LIMITED;
    const dropped = stream.push(input, inLen);
    return dropped > 0 ? -HvStatus.RATE_LIMITED : inLen;
  }

  private emitLine(kind: number, line: Uint8Array, length: number): boolean {
    if (this.bucket.reduce(1) !== 'ok' || !this.sink.send(kind, line, length)) {
      this.stats[Stat.CONSOLE_LINES_DROPPED]!++;
      return false;
    }
    this.stats[Stat.CONSOLE_LINES_OUT]!++;
    return true;
  }

  private read(input: Uint8Array, inLen: number, out: Uint8Array, outCap: number): number {
    const flags = inLen === 0 ? 0 : readU32Arg(input, inLen);
    if (flags < 0 || (flags & ~HV_CONSOLE_READ_NONBLOCK) !== 0) return -HvStatus.INVALID_ARGUMENT;
    for (;;) {
      const seq = this.input.writeSeq;
      const length = this.input.peekLength();
      if (length >= 0) {
        // The line stays queued when it does not fit, so a guest can retry with a larger buffer.
        if (length > outCap) return -HvStatus.BUFFER_TOO_SMALL;
        this.input.readInto(out);
        this.stats[Stat.CONSOLE_LINES_IN]!++;
        return length;
      }
      if (this.input.closed) return -HvStatus.END_OF_STREAM;
      if ((flags & HV_CONSOLE_READ_NONBLOCK) !== 0) return -HvStatus.WOULD_BLOCK;
      // Blocks (or suspends) this partition only; the watchdog still bounds the wait.
      this.blocker.readable(this.input, seq, Infinity);
    }
  }
}

const encoder = new TextEncoder();

/**
 * Console input back-end, in the root: puts lines on a partition's input ring.
 * Bounded: a line is refused (false) when the ring is full; `whenWritable` tells when to retry.
 */
export class ConsoleInput {
  /**
   * `bufferBytes`: the input buffer bound (devices.console.inputBufferBytes). The ring is at least
   * that big and always holds one line of MAX_INPUT_LINE_BYTES (see channelSizes), so a line the
   * bound cannot hold is still accepted into an empty buffer, as a pipe takes a large write.
   */
  constructor(
    private readonly ring: SharedRing,
    private readonly bufferBytes: number,
  ) {}

  /** Queues one line (without its newline). Returns false when the buffer is full or input has ended. */
  writeLine(line: string | Uint8Array): boolean {
    const bytes = typeof line === 'string' ? encoder.encode(line) : line;
    if (bytes.length > MAX_INPUT_LINE_BYTES) {
      throw new InvalidArgumentError(`console input line of ${bytes.length} bytes exceeds the limit of ${MAX_INPUT_LINE_BYTES} bytes`);
    }
    const used = this.ring.used;
    if (used > 0 && used + 4 + ((bytes.length + 3) & ~3) > this.bufferBytes) return false;
    return this.ring.tryWrite(InputKind.LINE, bytes);
  }

  /** Ends input: once the queued lines are read, the guest sees END_OF_STREAM. Idempotent. */
  end(): void {
    this.ring.close();
  }

  get ended(): boolean {
    return this.ring.closed;
  }

  /**
   * Queues one line, waiting (without blocking the event loop) while the buffer is full.
   * Resolves true once queued, false if input ended (or the partition stopped) first.
   */
  async writeLineWhenReady(line: string | Uint8Array): Promise<boolean> {
    const bytes = typeof line === 'string' ? encoder.encode(line) : line;
    for (;;) {
      // Read the event counter before trying, so a read that frees room in between still wakes us.
      const seq = this.ring.readSeq;
      if (this.writeLine(bytes)) return true;
      if (this.ring.closed) return false;
      await this.ring.whenRead(seq);
    }
  }
}
