import { InvalidArgumentError } from '../errors.ts';
import { resolveRateLimit, type RateLimitSpec, type ResolvedRateLimit } from '../limits/rate-limiter.ts';

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
}

export interface DevicesSpec {
  console?: boolean | ConsoleSpec;
  clock?: boolean | ClockSpec;
  entropy?: boolean | EntropySpec;
  block?: false | BlockSpec;
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
}
export interface ResolvedDevices {
  console: ResolvedConsole | null;
  clock: ResolvedClock | null;
  entropy: ResolvedEntropy | null;
  block: ResolvedBlock | null;
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
    if (key !== 'console' && key !== 'clock' && key !== 'entropy' && key !== 'block') {
      throw new InvalidArgumentError(`devices.${key} is not a device this runtime provides (console, clock, entropy, block)`);
    }
  }
  const c = grant<ConsoleSpec>(spec?.console, 'console');
  const k = grant<ClockSpec>(spec?.clock, 'clock');
  const e = grant<EntropySpec>(spec?.entropy, 'entropy');

  let console: ResolvedConsole | null = null;
  if (c !== null) {
    const linesPerSecond = num(c.linesPerSecond ?? CONSOLE_DEFAULTS.linesPerSecond, 'devices.console.linesPerSecond', 1, 1_000_000);
    console = {
      maxLineBytes: Math.floor(num(c.maxLineBytes ?? CONSOLE_DEFAULTS.maxLineBytes, 'devices.console.maxLineBytes', 16, 65536)),
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
  return { console, clock, entropy, block: resolveBlock(spec?.block) };
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
  return { sizeMiB, path: spec.path ?? null, bytesPerSecond, burstBytes, opsPerSecond, burstOps };
}

/** Milliseconds (possibly fractional, to the microsecond) to exact nanoseconds. */
function msToNs(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}
