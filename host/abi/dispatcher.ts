import { TokenBucket } from '../limits/token-bucket.ts';
import { RateLimiter, type ResolvedRateLimit } from '../limits/rate-limiter.ts';
import type { ViolationRecord } from '../channel/protocol.ts';
import { callStatSlot, Stat } from '../channel/stats.ts';
import type { Device, Handler } from '../devices/device.ts';
import { isPrefixWriter, readU32Arg, writesPrefix } from '../devices/device.ts';
import {
  HV_ABI_VERSION,
  HV_DEVICE_RECORD_SIZE,
  HV_MAX_TRANSFER,
  HvCall,
  HvStatus,
  callName,
  statusName,
} from './codes.ts';
import { WORD_COPY_MAX, type GuestMemory } from './guest-memory.ts';

/** Thrown through the guest's frames to end its run: a normal exit with a code. */
export class GuestExit {
  constructor(readonly code: number) {}
}

/** Thrown through the guest's frames to end its run: the guest aborted (ERR_GUEST_TRAP). */
export class GuestAbort {
  constructor(readonly message: string) {}
}

/**
 * Thrown through the guest's frames to end its run: the fuel budget is spent (ERR_LIMIT_CPU).
 * Raised by the instrumenter's `fuel_exhausted` import, never by a hypercall.
 */
export class FuelExhausted {
  constructor(
    readonly partition: string,
    readonly budget: number,
  ) {}
}

/** Which device each device call belongs to; a call of an ungranted device is a violation. */
export const CALL_DEVICE = new Map<number, string>([
  [HvCall.CONSOLE_WRITE, 'console'],
  [HvCall.CONSOLE_WRITE_ERR, 'console'],
  [HvCall.CONSOLE_READ, 'console'],
  [HvCall.CONSOLE_STREAM_WRITE, 'console'],
  [HvCall.CONSOLE_STREAM_WRITE_ERR, 'console'],
  [HvCall.CONSOLE_STREAM_READ, 'console'],
  [HvCall.CLOCK_GET, 'clock'],
  [HvCall.ENTROPY_GET, 'entropy'],
  [HvCall.BLOCK_INFO, 'block'],
  [HvCall.BLOCK_READ, 'block'],
  [HvCall.BLOCK_WRITE, 'block'],
  [HvCall.BLOCK_FLUSH, 'block'],
  [HvCall.BLOCK_DISCARD, 'block'],
  [HvCall.NET_INFO, 'net'],
  [HvCall.NET_SEND, 'net'],
  [HvCall.NET_RECV, 'net'],
  [HvCall.NET_POLL, 'net'],
  [HvCall.NET_TRY_SEND, 'net'],
  [HvCall.ATTEST_INFO, 'attestation'],
  [HvCall.ATTEST_REPORT, 'attestation'],
]);

/**
 * One row of the call table: everything a call code needs, found with one indexed load.
 * Every row has this one shape, so the dispatcher's reads of it stay monomorphic.
 */
interface CallEntry {
  /** The handler; null when the call is refused before any window is checked. */
  readonly handler: Handler | null;
  /** The refusal when `handler` is null: INVALID_CALL (unknown code) or ACCESS_DENIED (ungranted device). */
  readonly refusal: number;
  /** Counter slot of this call code. */
  readonly slot: number;
  /** Whether the hypercall rate limit applies (EXIT and ABORT always pass: a guest can always end). */
  readonly rated: boolean;
  /** The device an ACCESS_DENIED refusal names. */
  readonly device: string;
  /** The handler writes a dense prefix of its output (devices/device.ts, writesPrefix). */
  readonly prefix: boolean;
}

/** Size of the dense call table: one past the highest code a device or the ABI defines. Codes at or past it are unknown. */
function tableSize(codes: Iterable<number>): number {
  let max = 0;
  for (const code of codes) if (code > max) max = code;
  return max + 1;
}

/**
 * First capacity of a call's output buffer (it grows by doubling). 64: V8 keeps a typed array of
 * at most 64 bytes on its heap, where a larger one costs a malloc'd backing store and its sweeping
 * on every call that writes output.
 */
const OUTPUT_INITIAL_BYTES = 64;

/** Largest argument block (all arguments, NUL-terminated) a partition may be given. */
export const MAX_ARGS_BYTES = HV_MAX_TRANSFER;

export interface DispatcherOptions {
  memory: GuestMemory;
  /** Granted devices only. */
  devices: readonly Device[];
  args: readonly string[];
  stats: Float64Array;
  /** Called for each reported violation (after the rate limit). */
  onViolation: (violation: ViolationRecord) => void;
  /** Violations reported per second; beyond that they are only counted. */
  violationsPerSecond?: number;
  /** Monotonic milliseconds for the violation and hypercall rate limits (tests inject a fixed clock). */
  now?: () => number;
  /**
   * Rate limit of hypercalls as a whole (calls, and input bytes), or null for none. EXIT and
   * ABORT always pass: a guest can always end.
   */
  hypercallRate?: ResolvedRateLimit | null;
  /** How a block-mode rate limit waits (tests inject one). Default: Atomics.wait on the worker. */
  sleep?: (ms: number) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);

/** Encodes arguments as the ARGS_GET block: each UTF-8 and NUL-terminated. */
export function encodeArgs(args: readonly string[]): Uint8Array {
  const parts = args.map((a) => encoder.encode(a));
  const total = parts.reduce((n, p) => n + p.length + 1, 0);
  const block = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    block.set(p, at);
    at += p.length + 1;
  }
  return block;
}

/**
 * The hypercall dispatcher: the guest→host boundary, in the partition's worker.
 *
 * For every call, in this order: count it; find its handler (ungranted device → ACCESS_DENIED,
 * unknown code → INVALID_CALL, both reported as violations); check the output window and copy
 * the input once into host scratch (bad window → INVALID_ADDRESS or TOO_LARGE, reported); run the
 * handler on scratch buffers; on success copy the whole output window back (result, then zeros).
 * Checks come before the handler runs, so a call with a bad output window has no side effect.
 *
 * Cost (bench/README.md, "Where a no-op hypercall's time goes"): a call is one table load, one
 * counter store, two null tests and one test for buffers before the handler; a call with buffers
 * adds one read of the memory's size and one combined window test. A no-op call costs about as
 * much again as the wasm→JS transition under it.
 *
 * Memory counters (metrics' memoryBytes and peakMemoryBytes) follow memory.grow at every call
 * that has a buffer (its window check reads the size), every refused or rate-limited call, the
 * end of each reactor call, of a reactor's initialisation and of the run (updateMemoryStats). A
 * call without buffers does not read the size: it touches no memory, and wasm memory never
 * shrinks, so what it would see is seen at the next of those points.
 */
export class Dispatcher {
  /** The function given to the guest as `hv.hypercall`. */
  readonly hypercall: (call: number, inPtr: number, inLen: number, outPtr: number, outCap: number) => number;
  /**
   * Set once the guest asked to exit or abort, or ran out of fuel; every later call rethrows
   * it (a guest cannot swallow its ending).
   */
  ending: GuestExit | GuestAbort | FuelExhausted | null = null;

  private readonly memory: GuestMemory;
  /**
   * The call table, indexed by call code (a dense array: one bounds check and one load per call,
   * where a Map costs a hash lookup). Rows of codes no device or ABI call defines share `unknown`.
   */
  private readonly table: CallEntry[];
  /** The row of every code outside the table. */
  private readonly unknown: CallEntry;
  private readonly stats: Float64Array;
  private readonly onViolation: (violation: ViolationRecord) => void;
  private readonly violationBucket: TokenBucket;
  private readonly rate: RateLimiter | null;
  private readonly inBuf = new Uint8Array(HV_MAX_TRANSFER);
  private readonly outBuf = new Uint8Array(HV_MAX_TRANSFER);
  /** `outBuf` as 32-bit words, to zero a small output window in a few stores. */
  private readonly outWords = new Int32Array(this.outBuf.buffer);
  private readonly deviceList: Uint8Array;
  private readonly argsBlock: Uint8Array;
  private lastMemoryBytes = -1;
  /**
   * The host call in progress (beginCall .. endCall), in fields rather than an object per call:
   * its input (the dispatcher's own copy; null outside a call), and its output so far, in one
   * buffer that OUTPUT_WRITE appends to and doubles when full (at most to callMaxOutput): a guest
   * may write its whole allowance in writes of any size, one byte each included, and the host
   * keeps one buffer, not one per write.
   */
  private callInput: Uint8Array | null = null;
  private callOutput: Uint8Array = EMPTY;
  private callOutputBytes = 0;
  private callMaxOutput = 0;
  /**
   * Shared placement: a hypercall that suspended the guest runs again from its start when the
   * guest is resumed (see host/channel/blocker.ts). The redo is neither counted nor admitted by
   * the rate limit a second time: `redo` is set by the import wrapper for that run, and
   * `admitted` remembers whether the first run got past the rate limit.
   */
  private redo = false;
  private admitted = false;

  constructor(options: DispatcherOptions) {
    this.memory = options.memory;
    // The scratch buffers hold one transfer: the memory must not admit a longer one.
    if (this.memory.maxTransfer > HV_MAX_TRANSFER) throw new RangeError(`GuestMemory.maxTransfer ${this.memory.maxTransfer} exceeds HV_MAX_TRANSFER (${HV_MAX_TRANSFER})`);
    this.stats = options.stats;
    this.onViolation = options.onViolation;
    const perSecond = options.violationsPerSecond ?? 100;
    this.violationBucket = new TokenBucket({ capacity: perSecond, refillTimeMs: 1000, ...(options.now ? { now: options.now } : {}) });
    this.memory.onResize = (bytes) => this.recordMemory(bytes);
    this.rate = options.hypercallRate
      ? new RateLimiter(options.hypercallRate, {
          ...(options.now ? { now: options.now } : {}),
          ...(options.sleep ? { sleep: options.sleep } : {}),
          counters: { stats: options.stats, calls: Stat.HYPERCALLS_THROTTLED, waitedMs: Stat.HYPERCALLS_THROTTLED_MS },
        })
      : null;
    this.argsBlock = encodeArgs(options.args);
    if (this.argsBlock.length > MAX_ARGS_BYTES) {
      throw new RangeError(`arguments take ${this.argsBlock.length} bytes; the limit is ${MAX_ARGS_BYTES}`);
    }
    this.deviceList = new Uint8Array(options.devices.length * HV_DEVICE_RECORD_SIZE);
    const dv = new DataView(this.deviceList.buffer);
    const handlers = new Map<number, Handler>();
    options.devices.forEach((d, i) => {
      const at = i * HV_DEVICE_RECORD_SIZE;
      dv.setUint32(at, d.record.id, true);
      dv.setUint32(at + 4, d.record.version, true);
      dv.setUint32(at + 8, d.record.param0 >>> 0, true);
      dv.setUint32(at + 12, d.record.param1 >>> 0, true);
      for (const [code, handler] of d.handlers) handlers.set(code, handler);
    });
    handlers.set(HvCall.VERSION, () => HV_ABI_VERSION);
    handlers.set(HvCall.DEVICE_LIST, writesPrefix((_i, _n, out, outCap) => this.copyResult(this.deviceList, out, outCap)));
    handlers.set(HvCall.ARGS_SIZE, () => this.argsBlock.length);
    handlers.set(HvCall.ARGS_GET, writesPrefix((_i, _n, out, outCap) => this.copyResult(this.argsBlock, out, outCap)));
    handlers.set(HvCall.INPUT_SIZE, () => this.callInput?.length ?? -HvStatus.NOT_IN_CALL);
    // Bound methods, not arrow wrappers: a call through a bound function runs no bytecode of its
    // own, and a reactor called now and then runs its calls' hypercalls in V8's interpreter
    // (docs/PERFORMANCE.md, "Session 12: row 3"), where each function a call passes through costs.
    handlers.set(HvCall.INPUT_READ, writesPrefix(this.inputRead.bind(this)));
    handlers.set(HvCall.OUTPUT_WRITE, this.outputWrite.bind(this));
    handlers.set(HvCall.EXIT, (input, inLen) => {
      if (inLen !== 4) return -HvStatus.INVALID_ARGUMENT;
      throw (this.ending = new GuestExit(readU32Arg(input, inLen) | 0));
    });
    handlers.set(HvCall.ABORT, (input, inLen) => {
      throw (this.ending = new GuestAbort(decoder.decode(input.subarray(0, inLen))));
    });

    const row = (code: number, handler: Handler | null, refusal: number, device: string): CallEntry => ({
      handler,
      refusal,
      slot: callStatSlot(code),
      rated: code !== HvCall.EXIT && code !== HvCall.ABORT,
      device,
      prefix: handler !== null && isPrefixWriter(handler),
    });
    // Codes past the table are never ABI calls: they share the "other" counter slot.
    this.unknown = row(-1, null, HvStatus.INVALID_CALL, '');
    // Every ABI call is the dispatcher's own (a handler above) or a device's (CALL_DEVICE), so a
    // code with a row is either handled or, its device not granted, refused as ACCESS_DENIED
    // (test/abi/dispatcher-edges.test.ts checks that no ABI call is left out).
    const codes = new Set([...handlers.keys(), ...CALL_DEVICE.keys()]);
    // Every code starts as `unknown`; only the few dozen codes above get rows of their own (a
    // partition's start builds this table: the gaps between device ranges are not walked).
    this.table = new Array<CallEntry>(tableSize(codes)).fill(this.unknown);
    for (const code of codes) {
      const handler = handlers.get(code);
      this.table[code] = handler !== undefined ? row(code, handler, HvStatus.SUCCESS, '') : row(code, null, HvStatus.ACCESS_DENIED, CALL_DEVICE.get(code)!);
    }
    this.hypercall = this.dispatch;
  }

  /** Ends the guest's run with `code`, exactly as HV_CALL_EXIT does (sticky). Used by WASI's proc_exit. */
  exit(code: number): never {
    throw (this.ending = new GuestExit(code | 0));
  }

  /** Rethrows a pending exit or abort: every surface's calls unwind again once the guest asked to end. */
  checkEnding(): void {
    if (this.ending !== null) throw this.ending;
  }

  /** Counts a faulting call made through another surface (WASI) and reports it like a hypercall fault. */
  reportFault(call: string, reason: string): void {
    const s = this.stats;
    s[Stat.FAULTS]!++;
    s[Stat.VIOLATIONS]!++;
    if (this.violationBucket.reduce(1) === 'ok') this.onViolation({ call, status: 'EFAULT', reason });
    else s[Stat.VIOLATIONS_SUPPRESSED]!++;
  }

  /**
   * Records the memory size in the partition's counters. GuestMemory reports a resize at the first
   * access after it; this is for the points where the counters must be current whatever the guest
   * did last (the end of a reactor call, of its initialisation, of the run).
   */
  updateMemoryStats(): void {
    // recordMemory's own test first: the size rarely changes, and this runs at every reactor call's end.
    const bytes = this.memory.size();
    if (bytes !== this.lastMemoryBytes) this.recordMemory(bytes);
  }

  private recordMemory(bytes: number): void {
    if (bytes === this.lastMemoryBytes) return;
    this.lastMemoryBytes = bytes;
    const s = this.stats;
    s[Stat.MEMORY_BYTES] = bytes;
    if (bytes > s[Stat.PEAK_MEMORY_BYTES]!) s[Stat.PEAK_MEMORY_BYTES] = bytes;
  }

  /** Marks the next hypercalls as the redo of a suspended one (see `redo`). */
  setRedo(on: boolean): void {
    this.redo = on;
  }

  /** True while a suspended call runs again: other surfaces (WASI) skip their counting too. */
  get redoing(): boolean {
    return this.redo;
  }

  private readonly dispatch = (call: number, inPtr: number, inLen: number, outPtr: number, outCap: number): number => {
    const code = call >>> 0;
    const table = this.table;
    const entry = code < table.length ? table[code]! : this.unknown;
    // One counter per call code; the total is their sum (readMetrics), which saves a store here.
    // A redo (shared placement) was counted by its first run.
    const redo = this.redo;
    if (!redo) this.stats[entry.slot]!++;
    if (this.ending !== null) throw this.ending;
    const memory = this.memory;
    // A redo is admitted again only if its first run did not get past the rate limit (it was
    // suspended waiting for tokens there).
    if (this.rate !== null && entry.rated && !(redo && this.admitted)) {
      this.admitted = false;
      if (!this.admit(inLen)) return -HvStatus.RATE_LIMITED;
      this.admitted = true;
    }

    // The memory counters follow the size: GuestMemory reports a resize at the first access after
    // memory.grow, which is the window check below, or the size read in refuse() (see the class).
    const handler = entry.handler;
    if (handler === null) {
      return this.refuse(
        call,
        entry.refusal,
        entry.refusal === HvStatus.ACCESS_DENIED ? `device ${entry.device} is not granted to this partition` : `unknown call code ${callName(call)}`,
      );
    }

    // A call without buffers (all four zero: two empty windows at 0, which fit any memory) skips
    // the window work and the size read. Otherwise: one size snapshot for both windows (guest
    // memory cannot change while host code runs), and one test for the common case that both
    // fit; a refusal names the first bad one, out first.
    if ((inPtr | inLen | outPtr | outCap) === 0) return handler(this.inBuf, 0, this.outBuf, 0);
    // The check and the input's one copy in one call (GuestMemory.fitRead).
    const inBuf = this.inBuf;
    const size = memory.fitRead(outPtr, outCap, inPtr, inLen, inBuf);
    if (size < 0) return this.refuseWindows(call, -1 - size, inPtr, inLen, outPtr, outCap);
    const n = inLen >>> 0;

    const cap = outCap >>> 0;
    const outBuf = this.outBuf;
    // The handler sees out[0, cap) zeroed, unless it writes a dense prefix (then only what it
    // wrote is copied, below). Small windows are zeroed in words, large ones with fill.
    const prefix = entry.prefix;
    if (!prefix && cap > 0) {
      if (cap > WORD_COPY_MAX) outBuf.fill(0, 0, cap);
      else for (let i = 0, words = this.outWords, w = (cap + 3) >>> 2; i < w; i++) words[i] = 0;
    }
    const result = handler(inBuf, n, outBuf, cap);
    // The windows were checked above and guest memory cannot change while host code runs. The
    // whole window is written: the result, then zeros.
    if (result >= 0 && cap > 0) memory.writeChecked(outPtr >>> 0, cap, outBuf, prefix ? Math.min(result, cap) : cap);
    return result;
  };

  /**
   * Refuses a call whose output (checked first) or input window does not fit. ABORT never returns
   * (docs/ABI.md): its refused window is reported like any other, and the guest ends all the same,
   * with the refusal in place of the message the host could not read.
   */
  private refuseWindows(call: number, size: number, inPtr: number, inLen: number, outPtr: number, outCap: number): number {
    const memory = this.memory;
    const out = memory.checkAt(size, outPtr, outCap);
    const reason = out !== HvStatus.SUCCESS ? window('out', outPtr, outCap, size) : window('in', inPtr, inLen, size);
    const refused = this.refuse(call, out !== HvStatus.SUCCESS ? out : memory.checkAt(size, inPtr, inLen), reason);
    if (call >>> 0 === HvCall.ABORT) throw (this.ending = new GuestAbort(`(no message: its ${reason})`));
    return refused;
  }

  /**
   * The hypercall rate limit for a call made through another surface (WASI): one operation
   * carrying `bytes`. True to go on (perhaps after a wait), false when refused (reject mode).
   * Counted like a hypercall's (metrics.throttled.hypercalls). Always true without a limit.
   */
  admitCall(bytes: number): boolean {
    if (this.rate === null) return true;
    // A redo (shared placement) that got past the limit in its first run is not charged again.
    if (this.redo && this.admitted) return true;
    this.admitted = false;
    const ok = this.rate.admit(Math.min(bytes, HV_MAX_TRANSFER)) === 'ok';
    this.admitted = ok;
    return ok;
  }

  /** The hypercall rate limit: true to go on (perhaps after a wait), false to return RATE_LIMITED. */
  private admit(inLen: number): boolean {
    this.updateMemoryStats(); // a refused call refreshes the memory counters like any other
    // A bad length is refused after this (TOO_LARGE); here it costs at most one transfer's bytes.
    return this.rate!.admit(Math.min(inLen >>> 0, HV_MAX_TRANSFER)) === 'ok';
  }

  /**
   * Opens a host call: INPUT_* read `input` (the dispatcher's own copy) and OUTPUT_WRITE appends
   * to an output bounded by `maxOutputBytes`. The host never writes guest memory uninvited: the
   * guest pulls its input into a buffer it names.
   */
  beginCall(input: Uint8Array, maxOutputBytes: number): void {
    this.callInput = input;
    this.callOutput = EMPTY;
    this.callOutputBytes = 0;
    this.callMaxOutput = maxOutputBytes;
  }

  /**
   * The run is over: zeroes the scratch every hypercall's input and output passed through (the
   * last ones stay there otherwise: a block read's plaintext, a console write), so none of it
   * outlives the run in the thread's heap. A shared worker's thread goes on running others.
   */
  scrub(): void {
    this.inBuf.fill(0);
    this.outBuf.fill(0);
  }

  /**
   * Closes the host call and returns its output (the caller's from now on); the input copy is
   * zeroed. The memory counters are brought up to date first (updateMemoryStats, inline: a
   * reactor's worker ends each call here, in V8's interpreter or baseline tier when it is called
   * now and then, docs/PERFORMANCE.md "Session 13: row 3"), so they are current when the root
   * hears of the call's end.
   */
  endCall(): Uint8Array {
    const bytes = this.memory.size();
    if (bytes !== this.lastMemoryBytes) this.recordMemory(bytes);
    const input = this.callInput;
    if (input === null) return new Uint8Array(0);
    this.callInput = null;
    input.fill(0);
    // The buffer itself when the output fills it (one write of 64 bytes or more makes a buffer
    // of exactly its size): a view of a typed array that V8 keeps on its heap (64 bytes or fewer,
    // see OUTPUT_INITIAL_BYTES) first moves its bytes to a malloc'd ArrayBuffer, per call.
    const full = this.callOutput;
    const written = this.callOutputBytes;
    const output = written === full.length ? full : full.subarray(0, written);
    this.callOutput = EMPTY;
    this.callOutputBytes = 0;
    return output;
  }

  private inputRead(input: Uint8Array, inLen: number, out: Uint8Array, outCap: number): number {
    const callInput = this.callInput;
    if (callInput === null) return -HvStatus.NOT_IN_CALL;
    // readU32Arg, inline (see the handler's registration).
    const offset = inLen === 0 ? 0 : inLen === 4 ? (input[0]! | (input[1]! << 8) | (input[2]! << 16) | (input[3]! << 24)) >>> 0 : -1;
    if (offset < 0 || offset > callInput.length) return -HvStatus.INVALID_ARGUMENT;
    const n = Math.min(outCap, callInput.length - offset);
    out.set(callInput.subarray(offset, offset + n));
    return n;
  }

  private outputWrite(input: Uint8Array, inLen: number): number {
    if (this.callInput === null) return -HvStatus.NOT_IN_CALL;
    const end = this.callOutputBytes + inLen;
    if (end > this.callMaxOutput) return -HvStatus.TOO_LARGE;
    let output = this.callOutput;
    const before = this.callOutputBytes;
    if (end > output.length) {
      const grown = new Uint8Array(Math.min(this.callMaxOutput, Math.max(end, OUTPUT_INITIAL_BYTES, output.length * 2)));
      // The first write of a call (nothing to carry over: no view made of the empty buffer).
      if (before > 0) {
        grown.set(output.subarray(0, before));
        output.fill(0);
      }
      this.callOutput = output = grown;
    }
    output.set(input.subarray(0, inLen), before);
    this.callOutputBytes = end;
    return inLen;
  }

  private copyResult(block: Uint8Array, out: Uint8Array, outCap: number): number {
    if (block.length > outCap) return -HvStatus.BUFFER_TOO_SMALL;
    out.set(block);
    return block.length;
  }

  private refuse(call: number, status: number, reason: string): number {
    this.updateMemoryStats();
    const s = this.stats;
    if (status === HvStatus.INVALID_ADDRESS || status === HvStatus.TOO_LARGE) s[Stat.FAULTS]!++;
    s[Stat.VIOLATIONS]!++;
    if (this.violationBucket.reduce(1) === 'ok') {
      this.onViolation({ call: callName(call), status: statusName(status), reason });
    } else {
      s[Stat.VIOLATIONS_SUPPRESSED]!++;
    }
    return -status;
  }
}

function window(which: string, ptr: number, len: number, size: number): string {
  const p = ptr >>> 0;
  const n = len >>> 0;
  if (n > HV_MAX_TRANSFER) return `${which} length ${n} exceeds the per-call maximum of ${HV_MAX_TRANSFER} bytes`;
  return `${which} buffer [0x${p.toString(16)}, +${n}) lies outside guest memory of ${size} bytes`;
}
