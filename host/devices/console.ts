import { HvCall, HvDevice, HvStatus, HV_CONSOLE_READ_NONBLOCK, HV_DEVICE_FLAG_INPUT } from '../abi/codes.ts';
import { SharedRing } from '../channel/ring.ts';
import { sendMessage } from '../channel/message.ts';
import { InvalidArgumentError } from '../errors.ts';
import { TokenBucket } from '../limits/token-bucket.ts';
import { RateLimiter, type RateLimiterOptions } from '../limits/rate-limiter.ts';
import { EventKind, InputKind } from '../partition/protocol.ts';
import { Stat } from '../partition/stats.ts';
import type { ResolvedConsole } from './config.ts';
import { MAX_INPUT_LINE_BYTES } from '../limits/sizes.ts';
import { readU32Arg, type Device, type Handler } from './device.ts';

/** How long a guest's console write waits for the root to drain a full event ring before the line is dropped. */
const EVENT_RING_WAIT_MS = 5000;

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

  constructor(
    config: ResolvedConsole,
    private readonly events: SharedRing,
    private readonly input: SharedRing,
    private readonly stats: Float64Array,
    now?: () => number,
    sleep?: (ms: number) => void,
  ) {
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
    for (;;) {
      const length = this.input.peekLength();
      if (length >= 0) {
        if (length > out.length) return -2;
        this.input.readInto(out);
        this.stats[Stat.CONSOLE_LINES_IN]!++;
        return length;
      }
      if (this.input.closed) return -1;
      if (!block) return -2;
      if (this.input.waitReadable(timeoutMs) === 'timeout') return -2;
    }
  }

  private write(stream: LineAssembler, input: Uint8Array, inLen: number): number {
    // Refused before any byte is taken: the guest may retry the same write later.
    if (this.limiter !== null && this.limiter.admit(inLen) !== 'ok') return -HvStatus.RATE_LIMITED;
    const dropped = stream.push(input, inLen);
    return dropped > 0 ? -HvStatus.RATE_LIMITED : inLen;
  }

  private emitLine(kind: number, line: Uint8Array, length: number): boolean {
    // A line longer than a ring record travels in chunks (host/channel/message.ts).
    if (this.bucket.reduce(1) !== 'ok' || !sendMessage(this.events, kind, [line.subarray(0, length)], EVENT_RING_WAIT_MS)) {
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
      // Blocks this partition's worker only; the watchdog still bounds the wait.
      this.input.waitReadable();
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
