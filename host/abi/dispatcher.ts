import { TokenBucket } from '../limits/token-bucket.ts';
import { RateLimiter, type ResolvedRateLimit } from '../limits/rate-limiter.ts';
import type { ViolationRecord } from '../channel/protocol.ts';
import { callStatSlot, Stat } from '../channel/stats.ts';
import type { Device, Handler } from '../devices/device.ts';
import { readU32Arg } from '../devices/device.ts';
import {
  HV_ABI_VERSION,
  HV_DEVICE_RECORD_SIZE,
  HV_MAX_TRANSFER,
  HvCall,
  HvStatus,
  callName,
  statusName,
} from './codes.ts';
import type { GuestMemory } from './guest-memory.ts';

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
const CALL_DEVICE = new Map<number, string>([
  [HvCall.CONSOLE_WRITE, 'console'],
  [HvCall.CONSOLE_WRITE_ERR, 'console'],
  [HvCall.CONSOLE_READ, 'console'],
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
]);

/** The input and output of one host call to a reactor's export. */
interface CallContext {
  input: Uint8Array;
  /**
   * The output so far, in one buffer that OUTPUT_WRITE appends to and doubles when full (at most
   * to maxOutputBytes): a guest may write its whole allowance in writes of any size, one byte
   * each included, and the host keeps one object, not one per write.
   */
  output: Uint8Array;
  outputBytes: number;
  maxOutputBytes: number;
}

/** First capacity of a call's output buffer (it grows by doubling). */
const OUTPUT_INITIAL_BYTES = 256;

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
  private readonly handlers = new Map<number, Handler>();
  /** Per call code: its handler (or a refusal) and its counter slot, so a call costs one lookup. */
  private readonly entries = new Map<number, { handler: Handler | null; slot: number; device: string | undefined }>();
  private readonly stats: Float64Array;
  private readonly onViolation: (violation: ViolationRecord) => void;
  private readonly violationBucket: TokenBucket;
  private readonly rate: RateLimiter | null;
  private readonly inBuf = new Uint8Array(HV_MAX_TRANSFER);
  private readonly outBuf = new Uint8Array(HV_MAX_TRANSFER);
  private readonly deviceList: Uint8Array;
  private readonly argsBlock: Uint8Array;
  private lastMemoryBytes = -1;
  private callContext: CallContext | null = null;
  /**
   * Shared placement: a hypercall that suspended the guest runs again from its start when the
   * guest is resumed (see host/channel/blocker.ts). The redo is neither counted nor admitted by
   * the rate limit a second time: `redo` is set by the import wrapper for that run, and
   * `counted` / `admitted` remember how far the first run got.
   */
  private redo = false;
  private counted = false;
  private admitted = false;

  constructor(options: DispatcherOptions) {
    this.memory = options.memory;
    this.stats = options.stats;
    this.onViolation = options.onViolation;
    const perSecond = options.violationsPerSecond ?? 100;
    this.violationBucket = new TokenBucket({ capacity: perSecond, refillTimeMs: 1000, ...(options.now ? { now: options.now } : {}) });
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
    options.devices.forEach((d, i) => {
      const at = i * HV_DEVICE_RECORD_SIZE;
      dv.setUint32(at, d.record.id, true);
      dv.setUint32(at + 4, d.record.version, true);
      dv.setUint32(at + 8, d.record.param0 >>> 0, true);
      dv.setUint32(at + 12, d.record.param1 >>> 0, true);
      for (const [code, handler] of d.handlers) this.handlers.set(code, handler);
    });
    this.handlers.set(HvCall.VERSION, () => HV_ABI_VERSION);
    this.handlers.set(HvCall.DEVICE_LIST, (_i, _n, out, outCap) => this.copyResult(this.deviceList, out, outCap));
    this.handlers.set(HvCall.ARGS_SIZE, () => this.argsBlock.length);
    this.handlers.set(HvCall.ARGS_GET, (_i, _n, out, outCap) => this.copyResult(this.argsBlock, out, outCap));
    this.handlers.set(HvCall.INPUT_SIZE, () => this.callContext?.input.length ?? -HvStatus.NOT_IN_CALL);
    this.handlers.set(HvCall.INPUT_READ, (input, inLen, out, outCap) => this.inputRead(input, inLen, out, outCap));
    this.handlers.set(HvCall.OUTPUT_WRITE, (input, inLen) => this.outputWrite(input, inLen));
    this.handlers.set(HvCall.EXIT, (input, inLen) => {
      if (inLen !== 4) return -HvStatus.INVALID_ARGUMENT;
      throw (this.ending = new GuestExit(readU32Arg(input, inLen) | 0));
    });
    this.handlers.set(HvCall.ABORT, (input, inLen) => {
      throw (this.ending = new GuestAbort(decoder.decode(input.subarray(0, inLen))));
    });
    for (const [code, handler] of this.handlers) this.entries.set(code, { handler, slot: callStatSlot(code), device: undefined });
    for (const [code, device] of CALL_DEVICE) {
      if (!this.entries.has(code)) this.entries.set(code, { handler: null, slot: callStatSlot(code), device });
    }
    this.hypercall = (call, inPtr, inLen, outPtr, outCap) => this.dispatch(call, inPtr, inLen, outPtr, outCap);
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

  /** Records the memory size in the partition's counters (after growth, and at the end). */
  updateMemoryStats(): void {
    const bytes = this.memory.byteLength;
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

  private dispatch(call: number, inPtr: number, inLen: number, outPtr: number, outCap: number): number {
    const s = this.stats;
    const entry = this.entries.get(call);
    if (!this.redo) this.counted = this.admitted = false;
    if (!this.counted) {
      s[Stat.HYPERCALLS]!++;
      s[entry === undefined ? callStatSlot(call) : entry.slot]!++;
      this.counted = true;
    }
    if (this.ending !== null) throw this.ending;
    this.updateMemoryStats();
    if (this.rate !== null && !this.admitted && call !== HvCall.EXIT && call !== HvCall.ABORT && !this.admit(inLen)) return -HvStatus.RATE_LIMITED;
    this.admitted = true;

    if (entry === undefined) return this.refuse(call, HvStatus.INVALID_CALL, `unknown call code ${callName(call)}`);
    const handler = entry.handler;
    if (handler === null) return this.refuse(call, HvStatus.ACCESS_DENIED, `device ${entry.device} is not granted to this partition`);

    const memory = this.memory;
    let status = memory.check(outPtr, outCap);
    if (status !== HvStatus.SUCCESS) return this.refuse(call, status, window('out', outPtr, outCap, memory.byteLength));
    status = memory.copyIn(inPtr, inLen, this.inBuf);
    if (status !== HvStatus.SUCCESS) return this.refuse(call, status, window('in', inPtr, inLen, memory.byteLength));

    const cap = outCap >>> 0;
    if (cap > 0) this.outBuf.fill(0, 0, cap);
    const result = handler(this.inBuf, inLen >>> 0, this.outBuf, cap);
    // The window was checked above and guest memory cannot change while host code runs.
    if (result >= 0 && cap > 0) memory.copyOut(outPtr, cap, this.outBuf, cap);
    return result;
  }

  /** The hypercall rate limit: true to go on (perhaps after a wait), false to return RATE_LIMITED. */
  private admit(inLen: number): boolean {
    // A bad length is refused after this (TOO_LARGE); here it costs at most one transfer's bytes.
    return this.rate!.admit(Math.min(inLen >>> 0, HV_MAX_TRANSFER)) === 'ok';
  }

  /**
   * Opens a host call: INPUT_* read `input` (the dispatcher's own copy) and OUTPUT_WRITE appends
   * to an output bounded by `maxOutputBytes`. The host never writes guest memory uninvited: the
   * guest pulls its input into a buffer it names.
   */
  beginCall(input: Uint8Array, maxOutputBytes: number): void {
    this.callContext = { input, output: EMPTY, outputBytes: 0, maxOutputBytes };
  }

  /** Closes the host call and returns its output; the input copy is zeroed. */
  endCall(): Uint8Array {
    const ctx = this.callContext;
    this.callContext = null;
    if (ctx === null) return new Uint8Array(0);
    ctx.input.fill(0);
    return ctx.output.subarray(0, ctx.outputBytes);
  }

  private inputRead(input: Uint8Array, inLen: number, out: Uint8Array, outCap: number): number {
    const ctx = this.callContext;
    if (ctx === null) return -HvStatus.NOT_IN_CALL;
    const offset = inLen === 0 ? 0 : readU32Arg(input, inLen);
    if (offset < 0 || offset > ctx.input.length) return -HvStatus.INVALID_ARGUMENT;
    const n = Math.min(outCap, ctx.input.length - offset);
    out.set(ctx.input.subarray(offset, offset + n));
    return n;
  }

  private outputWrite(input: Uint8Array, inLen: number): number {
    const ctx = this.callContext;
    if (ctx === null) return -HvStatus.NOT_IN_CALL;
    const end = ctx.outputBytes + inLen;
    if (end > ctx.maxOutputBytes) return -HvStatus.TOO_LARGE;
    if (end > ctx.output.length) {
      const grown = new Uint8Array(Math.min(ctx.maxOutputBytes, Math.max(end, OUTPUT_INITIAL_BYTES, ctx.output.length * 2)));
      grown.set(ctx.output.subarray(0, ctx.outputBytes));
      ctx.output.fill(0);
      ctx.output = grown;
    }
    ctx.output.set(input.subarray(0, inLen), ctx.outputBytes);
    ctx.outputBytes = end;
    return inLen;
  }

  private copyResult(block: Uint8Array, out: Uint8Array, outCap: number): number {
    if (block.length > outCap) return -HvStatus.BUFFER_TOO_SMALL;
    out.set(block);
    return block.length;
  }

  private refuse(call: number, status: number, reason: string): number {
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
