import { writeSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { HvCall, HvDevice, HvStatus, HV_CONSOLE_READ_NONBLOCK, HV_DEVICE_FLAG_INPUT, HV_MAX_TRANSFER } from '../abi/codes.ts';
import { SharedRing } from '../channel/ring.ts';
import { threadBlocker, type Blocker } from '../channel/blocker.ts';
import { InvalidArgumentError } from '../errors.ts';
import { listenerThrew } from '../events.ts';
import { given } from '../schema/check.ts';
import { MAX_INPUT_LINE_BYTES } from '../limits/sizes.ts';
import { TokenBucket } from '../limits/token-bucket.ts';
import { RateLimiter, type RateLimiterOptions } from '../limits/rate-limiter.ts';
import { EventKind, InputKind, StdioSlot } from '../channel/protocol.ts';
import { Stat } from '../channel/stats.ts';
import type { ResolvedConsole } from './config.ts';
import { readU32Arg, type Device, type Handler } from './device.ts';

/**
 * The console: a partition's stdout, stderr and stdin.
 *
 * Output is a **byte stream** per stream: every byte a guest writes reaches the root, in order,
 * exactly, as chunks on the event ring. When the ring is full the writing guest *waits* (its
 * worker blocks until the root has drained room): a guest that writes faster than its reader is
 * slowed, never truncated. Nothing is dropped except by an explicit rate limit
 * (`devices.console.rateLimit`, reject mode), and then the write says so (RATE_LIMITED / EAGAIN)
 * and the bytes are counted and reported (`dropped` event). When the root's reader of a stream
 * has gone (EPIPE), writes to it answer END_OF_STREAM (WASI: EPIPE).
 *
 * The line calls of ABI 1.0 (`CONSOLE_WRITE`, `CONSOLE_WRITE_ERR`) keep their documented
 * semantics on top of the same stream: lines cut at `maxLineBytes` and a lines-per-second bucket.
 *
 * Input is a byte stream too: the root queues lines (each read followed by `\n`) or raw bytes;
 * `CONSOLE_READ` cuts lines from it, `CONSOLE_STREAM_READ` and WASI fd 0 read bytes.
 */

/** Longest line `CONSOLE_READ` delivers (a longer run without `\n` comes in pieces of this size). */
export const MAX_INPUT_LINE = MAX_INPUT_LINE_BYTES;
/** Largest chunk of console input the root puts on the ring in one record (the input ring always holds one: channelSizes). */
export const MAX_INPUT_CHUNK = MAX_INPUT_LINE_BYTES;
/** How often (at most) refused output bytes are reported to the root while a guest keeps being refused. */
const DROP_REPORT_MS = 100;

const DROP_KINDS = [EventKind.STDOUT, EventKind.STDERR] as const;

/**
 * A DROPPED event record: u8 EventKind of the stream at 0, then f64 counts since the last report:
 * bytes refused by the rate limit, lines dropped by the lines bucket, bytes cut from over-long lines.
 */
const DropRecord = { BYTES: 4, LINES: 12, TRUNCATED: 20 } as const;
export const DROP_RECORD_BYTES = 28;

/** Result of a byte-stream write or read that did not move bytes. */
export const StreamEnd = {
  /** The reader (output) has gone, or input has ended. */
  CLOSED: -1,
  /** Output: the rate limit refused the write (nothing written). Input: no byte is ready. */
  LIMITED: -2,
} as const;

/**
 * Where a shared worker's console output goes instead of the event ring: the partition's outbox
 * (host/worker/outbox.ts), which its scheduler drains into the ring as the root frees room. A
 * shared worker never blocks on one partition's ring: a write waits (the partition is suspended
 * through its Blocker) in `admit`, *before* it takes a byte, while the outbox is over its bound;
 * once admitted, the write's bytes are queued whole, in order, and never dropped.
 */
export interface OutputSink {
  /**
   * Called before a write takes any byte: true when output can be taken now; else suspends the
   * partition (`mayWait`) or returns false (a later part of an operation that already wrote).
   */
  admit(mayWait: boolean): boolean;
  /** Queues `bytes[0, length)` as one record of `kind` (copied before it returns). */
  send(kind: number, bytes: Uint8Array, length: number): void;
  /** Queues a small record that must not wait (drop reports): false when the outbox is full. */
  offer(kind: number, bytes: Uint8Array): boolean;
}

export interface ConsoleDeviceOptions {
  /** How input waits (default: block the thread; a shared worker suspends the partition). */
  blocker?: Blocker;
  /** Where output goes in a shared worker (default: the event ring, waiting for room). */
  sink?: OutputSink;
}

/**
 * The worker's end of the output ring: puts chunks on it in order and waits for room. The one
 * place a guest's output write blocks; in a shared worker the output goes to an OutputSink
 * instead and the wait is the sink's `admit` (a suspension).
 */
class OutputPort {
  private readonly maxChunk: number;
  /** Streams written to a host fd directly (ConsoleSpec.outputFd), by EventKind; and those whose fd failed. */
  private readonly direct: (number | null)[];
  private readonly failed = [false, false, false];
  /** Shared worker: when the write now suspended first waited for the outbox (0: not waiting). */
  private waitingSince = 0;

  constructor(
    private readonly events: SharedRing,
    private readonly stdio: Int32Array | null,
    private readonly stats: Float64Array,
    outputFd: ResolvedConsole['outputFd'] = { stdout: null, stderr: null },
    private readonly sink: OutputSink | null = null,
  ) {
    // At most a quarter of the ring, so the guest fills one chunk while the root drains another.
    this.maxChunk = Math.min(events.maxRecord, HV_MAX_TRANSFER, events.capacity >> 2) & ~3;
    this.direct = [null, outputFd.stdout, outputFd.stderr];
  }

  /** True in a shared worker: a wait suspends the partition and the operation runs again from its start. */
  get suspends(): boolean {
    return this.sink !== null;
  }

  /**
   * Before a write takes any byte: in a shared worker, waits (suspends) while the outbox is full,
   * or, when the operation already wrote (`mayWait` false: running it again would repeat that),
   * returns false so the write ends short.
   */
  admit(kind: number, mayWait: boolean): boolean {
    const fd = this.direct[kind];
    if (this.sink === null || (fd !== null && fd !== undefined)) return true;
    let ok: boolean;
    try {
      ok = this.sink.admit(mayWait);
    } catch (suspend) {
      // The partition waits for the reader (it is suspended): counted like a dedicated worker's wait.
      if (this.waitingSince === 0) {
        this.stats[Stat.CONSOLE_OUTPUT_WAITS]!++;
        this.waitingSince = performance.now();
      }
      throw suspend;
    }
    if (ok && this.waitingSince !== 0) {
      this.stats[Stat.CONSOLE_OUTPUT_WAIT_MS]! += performance.now() - this.waitingSince;
      this.waitingSince = 0;
    }
    return ok;
  }

  /** Has the root's reader of this stream (EventKind.STDOUT / STDERR) gone, or its fd failed? */
  closed(kind: number): boolean {
    if (this.failed[kind]) return true;
    const s = this.stdio;
    return s !== null && Atomics.load(s, kind === EventKind.STDOUT ? StdioSlot.STDOUT_CLOSED : StdioSlot.STDERR_CLOSED) !== 0;
  }

  /**
   * A stream given a file (or /dev/null) is written there at once: a file never waits on a
   * reader, so the bytes need no trip through the root. Any error ends the stream (as EPIPE).
   */
  private putDirect(kind: number, fd: number, bytes: Uint8Array, n: number): number {
    let at = 0;
    try {
      while (at < n) at += writeSync(fd, bytes, at, n - at);
    } catch {
      this.failed[kind] = true;
    }
    this.stats[Stat.CONSOLE_BYTES_OUT]! += at;
    return at > 0 || n === 0 ? at : StreamEnd.CLOSED;
  }

  /**
   * Writes bytes[0, n) as chunks of `kind`, waiting while the ring is full. Returns the bytes
   * written: n, fewer when the reader went away part-way, or StreamEnd.CLOSED when it had gone
   * before the first byte.
   */
  put(kind: number, bytes: Uint8Array, n: number): number {
    const fd = this.direct[kind];
    if (fd !== null && fd !== undefined) return this.putDirect(kind, fd, bytes, n);
    const s = this.stats;
    let at = 0;
    if (this.sink !== null) {
      // Admitted before the write took anything (see admit): queued whole, never waiting here.
      while (at < n) {
        const len = Math.min(n - at, HV_MAX_TRANSFER);
        this.sink.send(kind, at === 0 ? bytes : bytes.subarray(at), len);
        at += len;
      }
      s[Stat.CONSOLE_BYTES_OUT]! += n;
      return n;
    }
    while (at < n) {
      if (this.closed(kind)) break;
      const len = Math.min(n - at, this.maxChunk);
      const piece = at === 0 ? bytes : bytes.subarray(at);
      if (!this.events.tryWrite(kind, piece, len)) {
        // Backpressure: wait for the root to drain (bounded by the watchdog and stop()).
        s[Stat.CONSOLE_OUTPUT_WAITS]!++;
        const t0 = performance.now();
        const ok = this.events.write(kind, piece, len);
        s[Stat.CONSOLE_OUTPUT_WAIT_MS]! += performance.now() - t0;
        if (!ok) break;
      }
      at += len;
      s[Stat.CONSOLE_BYTES_OUT]! += len;
    }
    return at > 0 || n === 0 ? at : StreamEnd.CLOSED;
  }

  /** A small record that must not wait (drop reports): false when there is no room now. */
  tryPut(kind: number, bytes: Uint8Array): boolean {
    if (this.sink !== null) return this.sink.offer(kind, bytes);
    return this.events.tryWrite(kind, bytes);
  }

  /** Like tryPut, waiting up to `ms` for room (used once, when the console closes). */
  putWithin(kind: number, bytes: Uint8Array, ms: number): boolean {
    // A shared worker never waits on a ring: the outbox takes the record (flushed before the run ends).
    if (this.sink !== null) {
      this.sink.send(kind, bytes, bytes.length);
      return true;
    }
    return this.events.write(kind, bytes, bytes.length, ms);
  }
}

/** One output stream's line assembler for the line calls: bytes in, bounded lines out. */
class LineAssembler {
  /** The current line, with room for its newline. */
  private readonly line: Uint8Array;
  private length = 0;

  constructor(
    readonly kind: number,
    private readonly maxLineBytes: number,
    private readonly emit: (kind: number, line: Uint8Array, length: number) => number,
    /** Bytes cut from a line longer than maxLineBytes (counted and reported by the owner). */
    private readonly truncated: (kind: number, bytes: number) => void,
  ) {
    this.line = new Uint8Array(maxLineBytes + 1);
  }

  /**
   * Feeds bytes. Returns the number of completed lines the lines bucket dropped, or
   * StreamEnd.CLOSED when the reader has gone.
   */
  push(bytes: Uint8Array, n: number): number {
    let dropped = 0;
    let cut = 0;
    const line = this.line;
    for (let i = 0; i < n; i++) {
      const b = bytes[i]!;
      if (b === 0x0a) {
        line[this.length] = 0x0a;
        const r = this.emit(this.kind, line, this.length + 1);
        this.length = 0;
        if (r === StreamEnd.CLOSED) {
          dropped = r;
          break;
        }
        if (r === StreamEnd.LIMITED) dropped++;
      } else if (this.length < this.maxLineBytes) {
        line[this.length++] = b;
      } else {
        cut++;
      }
    }
    if (cut > 0) this.truncated(this.kind, cut);
    return dropped;
  }

  /** Emits a final unterminated line as it is (no newline is added). */
  flush(): void {
    if (this.length > 0) this.emit(this.kind, this.line, this.length);
    this.length = 0;
  }

  /** Zeroes the line buffer (the run is over: its last line stays there otherwise). */
  scrub(): void {
    this.line.fill(0);
    this.length = 0;
  }
}

/**
 * The worker's end of the input ring as one byte stream: LINE records read as their bytes and a
 * newline, BYTES records as they are. Holds at most one line plus one record.
 */
class InputReader {
  private readonly buf = new Uint8Array(MAX_INPUT_LINE + MAX_INPUT_CHUNK + 1);
  private start = 0;
  private end = 0;
  private ended = false;

  constructor(
    private readonly ring: SharedRing,
    private readonly stats: Float64Array,
    /** How a read waits for input: blocks the thread, or suspends a shared partition (redone from its start). */
    private readonly blocker: Blocker,
  ) {}

  get buffered(): number {
    return this.end - this.start;
  }

  /** Zeroes the buffer: what the guest was sent (read or not) does not outlive its run. */
  scrub(): void {
    this.buf.fill(0);
    this.start = this.end = 0;
  }

  /** Pulls the next record into the buffer. True if bytes were added; false at end of input or (non-blocking / timeout) none ready. */
  private pull(block: boolean, timeoutMs: number): boolean {
    // The caller's timeout is what is left of its own deadline (WASI's poll_oneoff), counted from now.
    const deadline = timeoutMs === Infinity ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      const seq = this.ring.writeSeq;
      const length = this.ring.peekLength();
      if (length >= 0) {
        if (this.start > 0) {
          this.buf.copyWithin(0, this.start, this.end);
          this.end -= this.start;
          this.start = 0;
        }
        // Records are at most MAX_INPUT_CHUNK (+1 for a line's newline): they always fit after a line.
        if (this.end + length + 1 > this.buf.length) return false;
        const kind = this.ring.peekKind();
        const got = this.ring.readInto(this.buf.subarray(this.end));
        this.end += got;
        if (kind === InputKind.LINE) {
          this.buf[this.end++] = 0x0a;
          this.stats[Stat.CONSOLE_LINES_IN]!++;
        }
        if (this.end > this.start) return true;
        continue; // an empty BYTES record: nothing to add
      }
      if (this.ring.closed) {
        // The root writes its last record, then closes: both may land between the look for a
        // record above and this one. Closed, the ring takes no more records, so one more look
        // finds any it holds (the input's last bytes were lost this way under load).
        if (this.ring.peekLength() >= 0) continue;
        this.ended = true;
        return false;
      }
      if (!block || performance.now() >= deadline) return false;
      // Bytes already pulled stay in this reader's buffer: a suspended read, run again, finds them.
      this.blocker.readable(this.ring, seq, deadline);
    }
  }

  /** Bytes available now without waiting, 0 at end of input, StreamEnd.LIMITED when none. */
  readable(): number {
    if (this.buffered === 0 && !this.ended) this.pull(false, 0);
    if (this.buffered > 0) return this.buffered;
    return this.ended ? 0 : StreamEnd.LIMITED;
  }

  /** Waits up to timeoutMs for input (or its end) without consuming any. */
  wait(timeoutMs: number): void {
    if (this.buffered === 0 && !this.ended) this.pull(true, timeoutMs);
  }

  /** Reads up to `max` bytes into out: the count (>= 1), 0 at end of input, StreamEnd.LIMITED when none is ready. */
  read(out: Uint8Array, max: number, block: boolean, timeoutMs = Infinity): number {
    if (max === 0) return 0;
    if (this.buffered === 0 && !(this.ended || this.pull(block, timeoutMs))) return this.ended ? 0 : StreamEnd.LIMITED;
    const n = Math.min(max, this.buffered);
    out.set(this.buf.subarray(this.start, this.start + n));
    this.buf.fill(0, this.start, this.start + n);
    this.start += n;
    this.stats[Stat.CONSOLE_BYTES_IN]! += n;
    return n;
  }

  /**
   * One line without its newline into out (CONSOLE_READ): its length, -END_OF_STREAM,
   * -WOULD_BLOCK, or -BUFFER_TOO_SMALL (the line stays queued). A run of MAX_INPUT_LINE bytes
   * without a newline is a line; the last bytes before the end of input are one too.
   */
  readLine(out: Uint8Array, outCap: number, block: boolean): number {
    for (;;) {
      const at = this.buf.subarray(this.start, this.end).indexOf(0x0a);
      const full = at < 0 && this.buffered >= MAX_INPUT_LINE;
      if (at >= 0 || full || (this.ended && this.buffered > 0)) {
        const length = at >= 0 ? at : Math.min(this.buffered, MAX_INPUT_LINE);
        if (length > outCap) return -HvStatus.BUFFER_TOO_SMALL;
        out.set(this.buf.subarray(this.start, this.start + length));
        const consumed = length + (at >= 0 ? 1 : 0);
        this.buf.fill(0, this.start, this.start + consumed);
        this.start += consumed;
        this.stats[Stat.CONSOLE_BYTES_IN]! += consumed;
        return length;
      }
      if (this.ended) return -HvStatus.END_OF_STREAM;
      if (!this.pull(block, Infinity)) {
        if (this.ended) continue;
        return -HvStatus.WOULD_BLOCK;
      }
    }
  }
}

/**
 * Console front-end, in the partition's worker. Byte-stream calls (`CONSOLE_STREAM_*`, WASI
 * fd 0/1/2) and line calls (`CONSOLE_WRITE*`, `CONSOLE_READ`) over one output ring and one input
 * ring. Every output write first passes the optional bytes+calls rate limit (reject: nothing
 * written, RATE_LIMITED, the bytes counted as dropped and reported; block: a wait); line calls
 * then pass the lines bucket.
 */
export class ConsoleDevice implements Device {
  readonly name = 'console';
  readonly record;
  readonly handlers: ReadonlyMap<number, Handler>;
  private readonly stdoutLines: LineAssembler;
  private readonly stderrLines: LineAssembler;
  private readonly bucket: TokenBucket;
  /** Bytes and calls of output writes (devices.console.rateLimit), or null for none. */
  private readonly limiter: RateLimiter | null;
  private readonly output: OutputPort;
  private readonly input: InputReader;
  private readonly now: () => number;
  /**
   * Output dropped and not yet reported to the root, by EventKind (STDOUT, STDERR): bytes the
   * rate limit refused, lines the lines bucket dropped, bytes cut from over-long lines; and since when.
   */
  private readonly unreported = { bytes: [0, 0, 0], lines: [0, 0, 0], truncated: [0, 0, 0] };
  private unreportedSince = 0;
  private anyUnreported = false;
  private readonly dropRecord = new Uint8Array(DROP_RECORD_BYTES);

  constructor(
    config: ResolvedConsole,
    events: SharedRing,
    input: SharedRing,
    private readonly stats: Float64Array,
    now?: () => number,
    sleep?: (ms: number) => void,
    /** The root's output state (protocol StdioSlot); null: readers never go away. */
    stdio: Int32Array | null = null,
    options: ConsoleDeviceOptions = {},
  ) {
    this.record = { id: HvDevice.CONSOLE, version: 1, param0: config.maxLineBytes, param1: HV_DEVICE_FLAG_INPUT };
    this.now = now ?? (() => performance.now());
    this.bucket = new TokenBucket({
      capacity: config.burstLines,
      refillTimeMs: (config.burstLines / config.linesPerSecond) * 1000,
      ...(now ? { now } : {}),
    });
    const clock: RateLimiterOptions = { ...(now ? { now } : {}), ...(sleep ? { sleep } : {}) };
    const counters = { stats, calls: Stat.CONSOLE_THROTTLED, waitedMs: Stat.CONSOLE_THROTTLED_MS };
    this.limiter = config.rateLimit ? new RateLimiter(config.rateLimit, { ...clock, counters }) : null;
    this.output = new OutputPort(events, stdio, stats, config.outputFd, options.sink ?? null);
    this.input = new InputReader(input, stats, options.blocker ?? threadBlocker);
    const emit = this.emitLine.bind(this);
    const truncated = (kind: number, bytes: number): void => {
      this.noteDrop(this.unreported.truncated, Stat.CONSOLE_BYTES_TRUNCATED, Stat.CONSOLE_STDERR_BYTES_TRUNCATED, kind, bytes);
    };
    this.stdoutLines = new LineAssembler(EventKind.STDOUT, config.maxLineBytes, emit, truncated);
    this.stderrLines = new LineAssembler(EventKind.STDERR, config.maxLineBytes, emit, truncated);
    this.handlers = new Map<number, Handler>([
      [HvCall.CONSOLE_WRITE, (input, inLen) => this.writeLines(this.stdoutLines, input, inLen)],
      [HvCall.CONSOLE_WRITE_ERR, (input, inLen) => this.writeLines(this.stderrLines, input, inLen)],
      [HvCall.CONSOLE_READ, (input, inLen, out, outCap) => this.readLineCall(input, inLen, out, outCap)],
      [HvCall.CONSOLE_STREAM_WRITE, (input, inLen) => this.streamWriteCall(EventKind.STDOUT, input, inLen)],
      [HvCall.CONSOLE_STREAM_WRITE_ERR, (input, inLen) => this.streamWriteCall(EventKind.STDERR, input, inLen)],
      [HvCall.CONSOLE_STREAM_READ, (input, inLen, out, outCap) => this.streamReadCall(input, inLen, out, outCap)],
    ]);
  }

  close(): void {
    this.stdoutLines.flush();
    this.stderrLines.flush();
    this.reportDrops(true);
    // The run is over: its last lines and its input (a typed password included) leave the heap.
    this.stdoutLines.scrub();
    this.stderrLines.scrub();
    this.input.scrub();
  }

  /**
   * The byte-stream write behind WASI fd 1/2 and CONSOLE_STREAM_WRITE*: bytes[0, n) exactly.
   * Returns the bytes written (a short count when the reader went away part-way),
   * StreamEnd.CLOSED when the reader has gone, StreamEnd.LIMITED when the rate limit refused it
   * (nothing written; the bytes are counted as dropped). `mayWait` false: the caller's operation
   * already wrote (WASI fd_write's later iovecs); in a shared worker, where a wait would run the
   * operation again, a write that would wait writes nothing (0: a short write) instead.
   */
  writeStream(stream: 'stdout' | 'stderr', bytes: Uint8Array, n: number, mayWait = true): number {
    return this.writeBytes(stream === 'stdout' ? EventKind.STDOUT : EventKind.STDERR, bytes, n, mayWait);
  }

  /** Reads input bytes (WASI fd 0): the count (>= 1), 0 at end of input, StreamEnd.LIMITED when none is ready. */
  readStream(out: Uint8Array, block: boolean, timeoutMs = Infinity): number {
    return this.input.read(out, out.length, block, timeoutMs);
  }

  /** Input bytes ready without waiting (0 at end of input), or StreamEnd.LIMITED. */
  readableBytes(): number {
    return this.input.readable();
  }

  /** Waits up to timeoutMs for input or its end (WASI poll_oneoff), consuming nothing. */
  waitInput(timeoutMs: number): void {
    this.input.wait(timeoutMs);
  }

  private writeBytes(kind: number, bytes: Uint8Array, n: number, mayWait = true): number {
    if (this.output.closed(kind)) return StreamEnd.CLOSED;
    // Before any token or byte is taken: a write that suspends here is redone whole (see Blocker).
    if (!this.output.admit(kind, mayWait)) return 0;
    if (!mayWait && this.output.suspends && this.limiter !== null && !this.limiter.wouldAdmit(n)) return 0;
    // Refused before any byte is taken: the guest may retry the same write later.
    if (this.limiter !== null && this.limiter.admit(n) !== 'ok') {
      this.noteDrop(this.unreported.bytes, Stat.CONSOLE_BYTES_DROPPED, Stat.CONSOLE_STDERR_BYTES_DROPPED, kind, n);
      return StreamEnd.LIMITED;
    }
    if (this.anyUnreported) this.reportDrops(false);
    return this.output.put(kind, bytes, n);
  }

  private streamWriteCall(kind: number, input: Uint8Array, inLen: number): number {
    const r = this.writeBytes(kind, input, inLen);
    if (r === StreamEnd.CLOSED) return -HvStatus.END_OF_STREAM;
    if (r === StreamEnd.LIMITED) return -HvStatus.RATE_LIMITED;
    return r;
  }

  private writeLines(stream: LineAssembler, input: Uint8Array, inLen: number): number {
    if (this.output.closed(stream.kind)) return -HvStatus.END_OF_STREAM;
    this.output.admit(stream.kind, true);
    if (this.limiter !== null && this.limiter.admit(inLen) !== 'ok') {
      this.noteDrop(this.unreported.bytes, Stat.CONSOLE_BYTES_DROPPED, Stat.CONSOLE_STDERR_BYTES_DROPPED, stream.kind, inLen);
      return -HvStatus.RATE_LIMITED;
    }
    if (this.anyUnreported) this.reportDrops(false);
    const dropped = stream.push(input, inLen);
    if (dropped === StreamEnd.CLOSED) return -HvStatus.END_OF_STREAM;
    return dropped > 0 ? -HvStatus.RATE_LIMITED : inLen;
  }

  /** A completed line (with its newline) from a line call: the lines bucket, then the stream. */
  private emitLine(kind: number, line: Uint8Array, length: number): number {
    if (this.bucket.reduce(1) !== 'ok') {
      this.noteDrop(this.unreported.lines, Stat.CONSOLE_LINES_DROPPED, Stat.CONSOLE_STDERR_LINES_DROPPED, kind, 1);
      return StreamEnd.LIMITED;
    }
    if (this.output.put(kind, line, length) !== length) return StreamEnd.CLOSED;
    this.stats[Stat.CONSOLE_LINES_OUT]!++;
    return length;
  }

  /**
   * Counts n dropped in the stat `stat` (both streams) and, for stderr, in `stderrStat` (stderr's
   * part), and adds it to one of the `unreported` counters. The two stores come first, with no
   * call between them: V8 stops a terminated worker only at a function's entry or a loop's back
   * edge, so the counters always agree on which stream a drop was. The root reports, at the run's
   * end, what the stats hold and no report did (ConsoleOutput.settleDrops).
   */
  private noteDrop(counter: number[], stat: number, stderrStat: number, kind: number, n: number): void {
    this.stats[stat]! += n;
    if (kind === EventKind.STDERR) this.stats[stderrStat]! += n;
    if (n <= 0) return;
    if (!this.anyUnreported) {
      this.anyUnreported = true;
      this.unreportedSince = this.now();
    }
    counter[kind]! += n;
    if (this.now() - this.unreportedSince >= DROP_REPORT_MS) this.reportDrops(false);
  }

  /**
   * Tells the root about dropped output (the `dropped` event), coalesced: before the next
   * accepted write, every DROP_REPORT_MS while drops go on, and when the console closes.
   * Never waits on the guest's behalf except briefly at close; the counters are exact either way.
   */
  private reportDrops(closing: boolean): void {
    if (!this.anyUnreported) return;
    const u = this.unreported;
    for (const kind of DROP_KINDS) {
      if (u.bytes[kind] === 0 && u.lines[kind] === 0 && u.truncated[kind] === 0) continue;
      const rec = this.dropRecord;
      rec.fill(0);
      rec[0] = kind;
      const view = new DataView(rec.buffer);
      view.setFloat64(DropRecord.BYTES, u.bytes[kind]!, true);
      view.setFloat64(DropRecord.LINES, u.lines[kind]!, true);
      view.setFloat64(DropRecord.TRUNCATED, u.truncated[kind]!, true);
      const sent = closing ? this.output.putWithin(EventKind.DROPPED, rec, 1000) : this.output.tryPut(EventKind.DROPPED, rec);
      if (!sent) return;
      u.bytes[kind] = u.lines[kind] = u.truncated[kind] = 0;
    }
    this.anyUnreported = false;
    this.unreportedSince = this.now();
  }

  private readLineCall(input: Uint8Array, inLen: number, out: Uint8Array, outCap: number): number {
    const flags = inLen === 0 ? 0 : readU32Arg(input, inLen);
    if (flags < 0 || (flags & ~HV_CONSOLE_READ_NONBLOCK) !== 0) return -HvStatus.INVALID_ARGUMENT;
    // Blocks this partition's worker only; the watchdog still bounds the wait.
    return this.input.readLine(out, outCap, (flags & HV_CONSOLE_READ_NONBLOCK) === 0);
  }

  private streamReadCall(input: Uint8Array, inLen: number, out: Uint8Array, outCap: number): number {
    const flags = inLen === 0 ? 0 : readU32Arg(input, inLen);
    if (flags < 0 || (flags & ~HV_CONSOLE_READ_NONBLOCK) !== 0) return -HvStatus.INVALID_ARGUMENT;
    if (outCap === 0) return 0;
    const n = this.input.read(out, outCap, (flags & HV_CONSOLE_READ_NONBLOCK) === 0);
    if (n === 0) return -HvStatus.END_OF_STREAM;
    if (n === StreamEnd.LIMITED) return -HvStatus.WOULD_BLOCK;
    return n;
  }
}

const encoder = new TextEncoder();

/** A console input line as bytes: a string (UTF-8) or a Uint8Array (as is); anything else is refused. */
function lineBytes(line: unknown): Uint8Array {
  if (typeof line === 'string') return encoder.encode(line);
  if (line instanceof Uint8Array) return line;
  throw new InvalidArgumentError(`console input line must be a string or a Uint8Array, got ${given(line)}`);
}

/**
 * Console input back-end, in the root: puts lines or bytes on a partition's input ring.
 * Bounded: a write is refused (false) when the ring is full; the `WhenReady` forms wait.
 */
export class ConsoleInput {
  /**
   * `bufferBytes`: the input buffer bound (devices.console.inputBufferBytes). The ring is at least
   * that big and always holds one record of MAX_INPUT_CHUNK (see channelSizes), so a line the
   * bound cannot hold is still accepted into an empty buffer, as a pipe takes a large write.
   */
  constructor(
    private readonly ring: SharedRing,
    private readonly bufferBytes = Infinity,
  ) {}

  /**
   * Set once the partition is destroyed, before its ring is scrubbed: scrubbing zeroes the ring's
   * control block, its closed flag included, so the ring alone would take writes again (they
   * answered true and stayed in memory nothing scrubs again).
   */
  private retired = false;

  /** Refuses every later write for good (the partition's teardown, before it scrubs the ring). */
  retire(): void {
    this.retired = true;
  }

  /** Puts one record on the ring if the buffer bound allows it (an empty buffer always takes one). */
  private tryPut(kind: number, bytes: Uint8Array): boolean {
    if (this.retired) return false;
    const used = this.ring.used;
    if (used > 0 && used + 4 + ((bytes.length + 3) & ~3) > this.bufferBytes) return false;
    return this.ring.tryWrite(kind, bytes);
  }

  /** Largest line `writeLine` accepts, and largest piece a byte write is cut into. */
  get maxRecord(): number {
    return Math.min(this.ring.maxRecord, MAX_INPUT_CHUNK);
  }

  /** Queues one line (without its newline). Returns false when the buffer is full or input has ended. */
  writeLine(line: string | Uint8Array): boolean {
    const bytes = lineBytes(line);
    if (bytes.length > this.maxRecord) {
      throw new InvalidArgumentError(`console input line of ${bytes.length} bytes exceeds the limit of ${this.maxRecord} bytes`);
    }
    return this.tryPut(InputKind.LINE, bytes);
  }

  /** Ends input: once the queued bytes are read, the guest sees end of stream. Idempotent. */
  end(): void {
    this.ring.close();
  }

  get ended(): boolean {
    return this.retired || this.ring.closed;
  }

  /**
   * Queues one line, waiting (without blocking the event loop) while the buffer is full.
   * Resolves true once queued, false if input ended (or the partition stopped) first.
   */
  writeLineWhenReady(line: string | Uint8Array): Promise<boolean> {
    // Copied now: the line may be written later, and what the caller does to its buffer
    // meanwhile must not reach the guest.
    let bytes: Uint8Array;
    try {
      bytes = lineBytes(line);
    } catch (error) {
      return Promise.reject(error);
    }
    if (bytes === line) bytes = Uint8Array.from(line);
    if (bytes.length > this.maxRecord) {
      return Promise.reject(new InvalidArgumentError(`console input line of ${bytes.length} bytes exceeds the limit of ${this.maxRecord} bytes`));
    }
    return this.whenWritten(InputKind.LINE, bytes);
  }

  /**
   * Queues raw bytes of the input stream (any size: cut into pieces the ring can carry), waiting
   * while the buffer is full. Resolves true once all are queued, false if input ended first
   * (then a prefix may have been queued).
   */
  async writeWhenReady(input: Uint8Array): Promise<boolean> {
    // Copied now, as a line is: pieces are queued as room frees up, later than this call.
    const bytes = Uint8Array.from(input);
    const max = this.maxRecord;
    for (let at = 0; at < bytes.length; at += max) {
      if (!(await this.whenWritten(InputKind.BYTES, bytes.subarray(at, Math.min(bytes.length, at + max))))) return false;
    }
    return !this.ended || bytes.length === 0;
  }

  private async whenWritten(kind: number, bytes: Uint8Array): Promise<boolean> {
    for (;;) {
      // Read the event counter before trying, so a read that frees room in between still wakes us.
      const seq = this.ring.readSeq;
      if (this.tryPut(kind, bytes)) return true;
      if (this.ended) return false;
      await this.ring.whenRead(seq);
    }
  }
}

export type ConsoleStream = 'stdout' | 'stderr';

/** Output dropped on one stream since the last report (each adds up to its `metrics.console` counter). */
export interface DropCounts {
  /** Bytes the rate limit refused (the writes returned RATE_LIMITED / EAGAIN): `bytesDropped`. */
  bytes: number;
  /** Lines of the line calls the lines-per-second bucket dropped: `linesDropped`. */
  lines: number;
  /** Bytes cut from line-call lines longer than maxLineBytes: `bytesTruncated`. */
  bytesTruncated: number;
}

/** What the root's output back-end tells its owner (the Partition). */
export interface ConsoleOutputEvents {
  /** Every chunk, exactly as written. */
  output(chunk: Uint8Array, stream: ConsoleStream): void;
  /** Whether anyone listens for lines (the line view is only assembled then). */
  wantsLines(): boolean;
  line(line: string, stream: ConsoleStream): void;
  /** Output dropped since the worker's last report. */
  dropped(stream: ConsoleStream, counts: DropCounts): void;
  /** A stream that was full has room again: draining may resume. */
  resume(): void;
}

/** Readable side of a partition's stdout or stderr: backpressure and EPIPE go back to the guest. */
class OutputStream extends Readable {
  constructor(
    private readonly onRead: () => void,
    private readonly onDestroy: () => void,
  ) {
    super({ highWaterMark: 256 * 1024 });
  }
  override _read(): void {
    this.onRead();
  }
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.onDestroy();
    callback(error);
  }
}

/** Writable side of a partition's stdin: bytes exactly, with backpressure; `end()` ends the guest's input. */
class InputStream extends Writable {
  constructor(private readonly input: ConsoleInput) {
    super({ highWaterMark: 64 * 1024 });
  }
  override _write(chunk: Buffer | Uint8Array, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.input.writeWhenReady(chunk).then(
      (queued) => callback(queued ? null : Object.assign(new Error('the partition no longer reads its input'), { code: 'EPIPE' })),
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
    );
  }
  override _final(callback: (error?: Error | null) => void): void {
    this.input.end();
    callback();
  }
}

const STREAM_KINDS: readonly ConsoleStream[] = ['stdout', 'stdout', 'stderr'];

/**
 * Console output back-end, in the root: takes the chunks the worker wrote and hands them to the
 * embedder three ways — the `output` event (every chunk), the `console` event (lines, assembled
 * only while someone listens), and the `stdout` / `stderr` Readable streams (created on first
 * use; from then on a full stream stops the draining, which makes the guest wait). A destroyed
 * stream is a reader that has gone: the guest's next write to it fails with EPIPE.
 */
export class ConsoleOutput {
  /** Shared with the worker (protocol StdioSlot). */
  readonly stdio: SharedArrayBuffer;
  private readonly state: Int32Array;
  private readonly streams: { stdout: OutputStream | null; stderr: OutputStream | null } = { stdout: null, stderr: null };
  private readonly lines: { stdout: Uint8Array; stderr: Uint8Array };
  private readonly lineLength = { stdout: 0, stderr: 0 };
  /** Made at the first line delivered: a partition that prints none never pays for one (issue #15). */
  private decoder: TextDecoder | null = null;
  private ended = false;
  /** What the `dropped` events have reported so far, by stream (see settleDrops). */
  private readonly reported = {
    stdout: { bytes: 0, lines: 0, bytesTruncated: 0 },
    stderr: { bytes: 0, lines: 0, bytesTruncated: 0 },
  };

  constructor(
    stdio: SharedArrayBuffer,
    private readonly maxLineBytes: number,
    private readonly on: ConsoleOutputEvents,
  ) {
    this.stdio = stdio;
    this.state = new Int32Array(stdio);
    this.lines = { stdout: new Uint8Array(maxLineBytes), stderr: new Uint8Array(maxLineBytes) };
  }

  /** The stream of `which`, created on first use (from then on it governs backpressure). */
  stream(which: ConsoleStream): Readable {
    let s = this.streams[which];
    if (s === null) {
      s = new OutputStream(
        () => this.on.resume(),
        () => this.close(which),
      );
      if (this.ended) s.push(null);
      this.streams[which] = s;
    }
    return s;
  }

  /** Marks a stream's reader as gone: the guest's writes to it fail with EPIPE from now on. */
  close(which: ConsoleStream): void {
    Atomics.store(this.state, which === 'stdout' ? StdioSlot.STDOUT_CLOSED : StdioSlot.STDERR_CLOSED, 1);
    // A stream that was full may have paused the draining: what comes now is discarded.
    this.on.resume();
  }

  isClosed(which: ConsoleStream): boolean {
    return Atomics.load(this.state, which === 'stdout' ? StdioSlot.STDOUT_CLOSED : StdioSlot.STDERR_CLOSED) !== 0;
  }

  /**
   * One record from the worker (EventKind.STDOUT, STDERR or DROPPED). Returns false when a
   * stream is now full: the caller stops draining until `resume`.
   */
  deliver(kind: number, bytes: Uint8Array): boolean {
    if (kind === EventKind.DROPPED) {
      if (bytes.length < DROP_RECORD_BYTES) return true; // the worker writes only whole records
      const which = STREAM_KINDS[bytes[0]!] ?? 'stdout';
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
      const counts = {
        bytes: view.getFloat64(DropRecord.BYTES, true),
        lines: view.getFloat64(DropRecord.LINES, true),
        bytesTruncated: view.getFloat64(DropRecord.TRUNCATED, true),
      };
      const r = this.reported[which];
      r.bytes += counts.bytes;
      r.lines += counts.lines;
      r.bytesTruncated += counts.bytesTruncated;
      this.on.dropped(which, counts);
      return true;
    }
    const which = kind === EventKind.STDOUT ? 'stdout' : 'stderr';
    if (this.isClosed(which)) return true;
    this.on.output(bytes, which);
    if (this.on.wantsLines()) this.cutLines(which, bytes);
    const s = this.streams[which];
    if (s === null || s.destroyed) return true;
    try {
      return s.push(bytes);
    } catch (error) {
      // A `data` listener that threw (a flowing stream emits inside push): the embedder's bug,
      // reported; the chunk was delivered and the drain goes on.
      listenerThrew(`a partition's ${which} stream`, 'data', error, s);
      return true;
    }
  }

  /**
   * The end of a run (every record it wrote has been delivered): reports, per stream, the drops
   * the worker counted (`stats`, the partition's counters) and no `dropped` event has reported
   * yet, as one more `dropped` event. A worker reports its drops every DROP_REPORT_MS and last
   * when its console closes, which a terminated worker (`stop()`, the watchdog, a crash) or a
   * killed shared context never does: without this its last drops were in the counters only.
   * From here, the events of each stream add up to its part of `metrics.console` exactly.
   *
   * A partition process's counters in the root are snapshots it sends after its output: one
   * killed between the two can have reported more than the root's copy holds. The copy is then
   * raised to what was reported (the worker counts a drop before it reports it), so the events
   * and the counters still agree.
   */
  settleDrops(stats: Float64Array): void {
    const err = this.reported.stderr;
    const out = this.reported.stdout;
    // Nothing left (no drops, or the worker reported them all): no event, nothing made.
    if (
      stats[Stat.CONSOLE_BYTES_DROPPED] === out.bytes + err.bytes &&
      stats[Stat.CONSOLE_LINES_DROPPED] === out.lines + err.lines &&
      stats[Stat.CONSOLE_BYTES_TRUNCATED] === out.bytesTruncated + err.bytesTruncated &&
      stats[Stat.CONSOLE_STDERR_BYTES_DROPPED] === err.bytes &&
      stats[Stat.CONSOLE_STDERR_LINES_DROPPED] === err.lines &&
      stats[Stat.CONSOLE_STDERR_BYTES_TRUNCATED] === err.bytesTruncated
    ) {
      return;
    }
    const stderr = {
      bytes: settle(stats, Stat.CONSOLE_STDERR_BYTES_DROPPED, Stat.CONSOLE_BYTES_DROPPED, err.bytes),
      lines: settle(stats, Stat.CONSOLE_STDERR_LINES_DROPPED, Stat.CONSOLE_LINES_DROPPED, err.lines),
      bytesTruncated: settle(stats, Stat.CONSOLE_STDERR_BYTES_TRUNCATED, Stat.CONSOLE_BYTES_TRUNCATED, err.bytesTruncated),
    };
    // stdout's part is the total less stderr's (stderr's has been settled first).
    const stdout = {
      bytes: settle(stats, Stat.CONSOLE_BYTES_DROPPED, Stat.CONSOLE_BYTES_DROPPED, out.bytes + err.bytes + stderr.bytes),
      lines: settle(stats, Stat.CONSOLE_LINES_DROPPED, Stat.CONSOLE_LINES_DROPPED, out.lines + err.lines + stderr.lines),
      bytesTruncated: settle(stats, Stat.CONSOLE_BYTES_TRUNCATED, Stat.CONSOLE_BYTES_TRUNCATED, out.bytesTruncated + err.bytesTruncated + stderr.bytesTruncated),
    };
    for (const [which, rest] of [['stdout', stdout], ['stderr', stderr]] as const) {
      if (rest.bytes === 0 && rest.lines === 0 && rest.bytesTruncated === 0) continue;
      const r = this.reported[which];
      r.bytes += rest.bytes;
      r.lines += rest.lines;
      r.bytesTruncated += rest.bytesTruncated;
      this.on.dropped(which, rest);
    }
  }

  /** The end of the partition: a final unterminated line is delivered, streams end. Idempotent. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const which of ['stdout', 'stderr'] as const) {
      if (this.lineLength[which] > 0) this.emitLine(which, this.lineLength[which]);
      this.lines[which].fill(0);
      this.streams[which]?.push(null);
    }
  }

  /** The `console` view: lines without their newline, a longer run in pieces of maxLineBytes. */
  private cutLines(which: ConsoleStream, bytes: Uint8Array): void {
    const line = this.lines[which];
    let length = this.lineLength[which];
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (b === 0x0a) {
        this.emitLine(which, length);
        length = 0;
      } else {
        if (length === line.length) {
          this.emitLine(which, length);
          length = 0;
        }
        line[length++] = b;
      }
    }
    this.lineLength[which] = length;
  }

  private emitLine(which: ConsoleStream, length: number): void {
    this.lineLength[which] = 0;
    this.on.line((this.decoder ??= new TextDecoder()).decode(this.lines[which].subarray(0, length)), which);
  }
}

/**
 * What the counter `slot` (a part of `total`, or `total` itself) holds beyond `reported`; a
 * counter behind what was reported (a partition process's snapshot) is raised to it, with its total.
 */
function settle(stats: Float64Array, slot: number, total: number, reported: number): number {
  const counted = stats[slot]!;
  if (counted >= reported) return counted - reported;
  if (slot !== total) stats[total]! += reported - counted;
  stats[slot] = reported;
  return 0;
}

/** Writable stdin for a partition (see ConsoleInput.writeWhenReady). */
export function inputStream(input: ConsoleInput): Writable {
  return new InputStream(input);
}
