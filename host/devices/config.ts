import { HV_NET_MAX_MTU } from '../abi/codes.ts';
import { InvalidArgumentError } from '../errors.ts';
import { MAX_LINE_BYTES, MIN_LINE_BYTES } from '../limits/sizes.ts';
import { resolveRateLimit, type RateLimitMode, type RateLimitSpec, type ResolvedRateLimit } from '../limits/rate-limiter.ts';

/**
 * Device grants in a partition spec, and their resolution to complete, validated settings.
 * A device that is absent or `false` is not granted: the guest cannot see or use it.
 */

export interface ConsoleSpec {
  /** Longest line the guest may print, in bytes; the rest of a longer line is dropped and counted. Default 4096 (16 .. 65536). */
  maxLineBytes?: number;
  /** Sustained output lines per second; excess lines are dropped and counted. Default 1000. */
  linesPerSecond?: number;
  /** Lines that may be printed at once after an idle period. Default: linesPerSecond. */
  burstLines?: number;
  /** Bytes of console input buffered for the guest before the host's writes are refused. Default 65536. */
  inputBufferBytes?: number;
  /**
   * Rate limit of output writes (CONSOLE_WRITE, CONSOLE_WRITE_ERR, WASI fd 1 and 2), in bytes
   * and in calls, on top of the lines bucket: over it, a write returns RATE_LIMITED having
   * written nothing (`mode: 'reject'`, the default) or waits for the refill (`'block'`).
   * Default: none.
   */
  rateLimit?: RateLimitSpec;
}

export interface ClockSpec {
  /** Clock readings are rounded down to a multiple of this. Default 1 ms; at least 0.001 (1 µs), at most 4000. */
  resolutionMs?: number;
  /** Fixed clocks for teaching and tests: each reading advances by `stepMs` from `startMs` (wall; monotonic starts at 0). */
  deterministic?: boolean | { startMs?: number; stepMs?: number };
}

export interface EntropySpec {
  /** Makes the byte stream reproducible (a keyed AES-CTR stream). For tests and teaching only. */
  seed?: string | number;
}

export interface BlockSpec {
  /** Disk size in MiB (whole number, 1 .. 4096). Required. An existing image must have this size. */
  sizeMiB: number;
  /**
   * Where the image lives, chosen by the embedder (never by the guest): absolute, or relative to the
   * hypervisor's dataDir. Default `<dataDir>/images/<name>.img`.
   */
  path?: string;
  /** Sustained bytes per second moved by reads, writes and discards. Default 256 MiB. */
  bytesPerSecond?: number;
  /** Bytes that may be moved at once after an idle period. Default: bytesPerSecond, at least 65536. */
  burstBytes?: number;
  /** Sustained requests per second (read, write, flush, discard). Default 20000. */
  opsPerSecond?: number;
  /** Requests that may be made at once after an idle period. Default: opsPerSecond. */
  burstOps?: number;
  /**
   * Over the limit: `'block'` (default) the request waits in the partition's worker for its
   * tokens; `'reject'` it returns HV_STATUS_RATE_LIMITED at once, having done nothing.
   */
  rateLimitMode?: RateLimitMode;
}

export interface NetSpec {
  /** The switch segment the NIC plugs into; frames only flow between NICs of one segment. Required: 1-64 letters, digits, '.', '_' or '-'. */
  segment: string;
  /** Largest payload of one frame, bytes. Default 1500 (64 .. 65528). */
  mtu?: number;
  /** Bytes of frames (8-byte header and 4-byte record header included) queued for the guest; more are dropped and counted. Default 65536 (rounded up to a power of two, at least one frame of MTU). */
  rxQueueBytes?: number;
  /** Sustained payload bytes per second the guest may send. Default 64 MiB. Burst: one second's worth, at least one MTU. */
  sendBytesPerSecond?: number;
  /** Sustained frames per second the guest may send. Default 100000. Burst: one second's worth. */
  sendFramesPerSecond?: number;
  /** Sustained payload bytes per second delivered to the guest; more are dropped and counted. Default 64 MiB. */
  recvBytesPerSecond?: number;
  /** Sustained frames per second delivered to the guest; more are dropped and counted. Default 100000. */
  recvFramesPerSecond?: number;
  /** Lets the NIC exchange frames with the host: the embedder's endpoints (`hv.attachNet`) and forwarded TCP ports (`hv.forwardPort`). Default false. */
  host?: boolean;
}

export interface DevicesSpec {
  console?: boolean | ConsoleSpec;
  clock?: boolean | ClockSpec;
  entropy?: boolean | EntropySpec;
  block?: false | BlockSpec;
  net?: false | NetSpec;
}

export interface ResolvedConsole {
  maxLineBytes: number;
  linesPerSecond: number;
  burstLines: number;
  inputBufferBytes: number;
  rateLimit: ResolvedRateLimit | null;
}
export interface ResolvedClock {
  resolutionNs: number;
  deterministic: { startNs: string; stepNs: string } | null;
}
export interface ResolvedEntropy {
  seed: string | null;
}
export interface ResolvedBlock {
  sizeMiB: number;
  path: string | null;
  bytesPerSecond: number;
  burstBytes: number;
  opsPerSecond: number;
  burstOps: number;
  rateLimitMode: RateLimitMode;
}
export interface ResolvedNet {
  segment: string;
  mtu: number;
  rxQueueBytes: number;
  sendBytesPerSecond: number;
  sendFramesPerSecond: number;
  recvBytesPerSecond: number;
  recvFramesPerSecond: number;
  host: boolean;
}
export interface ResolvedDevices {
  console: ResolvedConsole | null;
  clock: ResolvedClock | null;
  entropy: ResolvedEntropy | null;
  block: ResolvedBlock | null;
  net: ResolvedNet | null;
}

export const CONSOLE_DEFAULTS: ResolvedConsole = {
  maxLineBytes: 4096,
  linesPerSecond: 1000,
  burstLines: 1000,
  inputBufferBytes: 65536,
  rateLimit: null,
};

export const BLOCK_DEFAULTS = {
  bytesPerSecond: 256 * 1024 * 1024,
  opsPerSecond: 20_000,
  /** The most bytes one request moves (16 sectors): a bucket smaller than this could never admit it. */
  minBurstBytes: 65536,
  maxSizeMiB: 4096,
} as const;

export const NET_DEFAULTS = {
  mtu: 1500,
  rxQueueBytes: 65536,
  bytesPerSecond: 64 * 1024 * 1024,
  framesPerSecond: 100_000,
} as const;

/** Segment names: the same alphabet as partition names. */
export const SEGMENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Ring bytes one frame of `payload` bytes takes in a receive queue: record header, frame header, padding. */
export function rxRecordBytes(payload: number): number {
  return 4 + ((8 + payload + 3) & ~3);
}

function num(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${what} must be a number from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function grant<T extends object>(value: boolean | T | undefined, device: string): T | null {
  if (value === undefined || value === false) return null;
  if (value === true) return {} as T;
  if (typeof value !== 'object' || value === null) {
    throw new InvalidArgumentError(`devices.${device} must be true, false or an options object`);
  }
  return value;
}

function nextPowerOfTwo(n: number): number {
  let p = 64;
  while (p < n) p *= 2;
  return p;
}

export function resolveDevices(spec: DevicesSpec | undefined): ResolvedDevices {
  if (spec !== undefined && (typeof spec !== 'object' || spec === null)) {
    throw new InvalidArgumentError('devices must be an object');
  }
  for (const key of Object.keys(spec ?? {})) {
    if (key !== 'console' && key !== 'clock' && key !== 'entropy' && key !== 'block' && key !== 'net') {
      throw new InvalidArgumentError(`devices.${key} is not a device this runtime provides (console, clock, entropy, block, net)`);
    }
  }
  const c = grant<ConsoleSpec>(spec?.console, 'console');
  const k = grant<ClockSpec>(spec?.clock, 'clock');
  const e = grant<EntropySpec>(spec?.entropy, 'entropy');

  let console: ResolvedConsole | null = null;
  if (c !== null) {
    const linesPerSecond = num(c.linesPerSecond ?? CONSOLE_DEFAULTS.linesPerSecond, 'devices.console.linesPerSecond', 1, 1_000_000);
    console = {
      maxLineBytes: Math.floor(num(c.maxLineBytes ?? CONSOLE_DEFAULTS.maxLineBytes, 'devices.console.maxLineBytes', MIN_LINE_BYTES, MAX_LINE_BYTES)),
      linesPerSecond,
      burstLines: num(c.burstLines ?? linesPerSecond, 'devices.console.burstLines', 1, 1_000_000),
      inputBufferBytes: nextPowerOfTwo(num(c.inputBufferBytes ?? CONSOLE_DEFAULTS.inputBufferBytes, 'devices.console.inputBufferBytes', 64, 1 << 24)),
      // A write moves at most one hypercall buffer: a bucket that size can always admit it.
      rateLimit: resolveRateLimit(c.rateLimit, 'devices.console.rateLimit', 65536),
    };
  }

  let clock: ResolvedClock | null = null;
  if (k !== null) {
    const resolutionNs = Math.round(num(k.resolutionMs ?? 1, 'devices.clock.resolutionMs', 0.001, 4000) * 1e6);
    let deterministic: ResolvedClock['deterministic'] = null;
    if (k.deterministic !== undefined && k.deterministic !== false) {
      const d = k.deterministic === true ? {} : k.deterministic;
      const startMs = num(d.startMs ?? 0, 'devices.clock.deterministic.startMs', 0, 8.64e15);
      const stepMs = num(d.stepMs ?? 1, 'devices.clock.deterministic.stepMs', 0, 8.64e7);
      // Carried as decimal strings of nanoseconds: exact, and plain data for the worker.
      deterministic = { startNs: msToNs(startMs).toString(), stepNs: msToNs(stepMs).toString() };
    }
    clock = { resolutionNs, deterministic };
  }

  let entropy: ResolvedEntropy | null = null;
  if (e !== null) {
    if (e.seed !== undefined && typeof e.seed !== 'string' && typeof e.seed !== 'number') {
      throw new InvalidArgumentError('devices.entropy.seed must be a string or a number');
    }
    entropy = { seed: e.seed === undefined ? null : String(e.seed) };
  }
  return { console, clock, entropy, block: resolveBlock(spec?.block), net: resolveNet(spec?.net) };
}

function resolveNet(n: unknown): ResolvedNet | null {
  if (n === undefined || n === false) return null;
  if (typeof n !== 'object' || n === null) throw new InvalidArgumentError('devices.net must be false or an options object with segment');
  const spec = n as Partial<NetSpec>;
  if (typeof spec.segment !== 'string' || !SEGMENT_NAME.test(spec.segment)) {
    throw new InvalidArgumentError(`devices.net.segment must be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(spec.segment)}`);
  }
  if (spec.host !== undefined && typeof spec.host !== 'boolean') throw new InvalidArgumentError('devices.net.host must be a boolean');
  const mtu = Math.floor(num(spec.mtu ?? NET_DEFAULTS.mtu, 'devices.net.mtu', 64, HV_NET_MAX_MTU));
  const rxQueueBytes = nextPowerOfTwo(Math.max(rxRecordBytes(mtu), num(spec.rxQueueBytes ?? NET_DEFAULTS.rxQueueBytes, 'devices.net.rxQueueBytes', 64, 1 << 24)));
  return {
    segment: spec.segment,
    mtu,
    rxQueueBytes,
    sendBytesPerSecond: num(spec.sendBytesPerSecond ?? NET_DEFAULTS.bytesPerSecond, 'devices.net.sendBytesPerSecond', 1, 2 ** 40),
    sendFramesPerSecond: num(spec.sendFramesPerSecond ?? NET_DEFAULTS.framesPerSecond, 'devices.net.sendFramesPerSecond', 1, 1e9),
    recvBytesPerSecond: num(spec.recvBytesPerSecond ?? NET_DEFAULTS.bytesPerSecond, 'devices.net.recvBytesPerSecond', 1, 2 ** 40),
    recvFramesPerSecond: num(spec.recvFramesPerSecond ?? NET_DEFAULTS.framesPerSecond, 'devices.net.recvFramesPerSecond', 1, 1e9),
    host: spec.host === true,
  };
}

function resolveBlock(b: unknown): ResolvedBlock | null {
  if (b === undefined || b === false) return null;
  if (typeof b !== 'object' || b === null) {
    throw new InvalidArgumentError('devices.block must be false or an options object with sizeMiB');
  }
  const spec = b as Partial<BlockSpec>;
  if (spec.sizeMiB === undefined) throw new InvalidArgumentError('devices.block.sizeMiB is required');
  const sizeMiB = num(spec.sizeMiB, 'devices.block.sizeMiB', 1, BLOCK_DEFAULTS.maxSizeMiB);
  if (!Number.isInteger(sizeMiB)) throw new InvalidArgumentError(`devices.block.sizeMiB must be a whole number, got ${sizeMiB}`);
  if (spec.path !== undefined && (typeof spec.path !== 'string' || spec.path.length === 0 || spec.path.includes('\0'))) {
    throw new InvalidArgumentError('devices.block.path must be a non-empty string');
  }
  const bytesPerSecond = num(spec.bytesPerSecond ?? BLOCK_DEFAULTS.bytesPerSecond, 'devices.block.bytesPerSecond', 1, 2 ** 40);
  const opsPerSecond = num(spec.opsPerSecond ?? BLOCK_DEFAULTS.opsPerSecond, 'devices.block.opsPerSecond', 1, 1e9);
  const burstBytes = num(
    spec.burstBytes ?? Math.max(bytesPerSecond, BLOCK_DEFAULTS.minBurstBytes),
    'devices.block.burstBytes',
    BLOCK_DEFAULTS.minBurstBytes,
    2 ** 40,
  );
  const burstOps = num(spec.burstOps ?? Math.max(1, opsPerSecond), 'devices.block.burstOps', 1, 1e9);
  const rateLimitMode = spec.rateLimitMode ?? 'block';
  if (rateLimitMode !== 'block' && rateLimitMode !== 'reject') {
    throw new InvalidArgumentError(`devices.block.rateLimitMode must be 'block' or 'reject', got ${JSON.stringify(rateLimitMode)}`);
  }
  return { sizeMiB, path: spec.path ?? null, bytesPerSecond, burstBytes, opsPerSecond, burstOps, rateLimitMode };
}

/** Milliseconds (possibly fractional, to the microsecond) to exact nanoseconds. */
function msToNs(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}
