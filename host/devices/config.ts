import { InvalidArgumentError } from '../errors.ts';

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

export interface DevicesSpec {
  console?: boolean | ConsoleSpec;
  clock?: boolean | ClockSpec;
  entropy?: boolean | EntropySpec;
}

export interface ResolvedConsole {
  maxLineBytes: number;
  linesPerSecond: number;
  burstLines: number;
  inputBufferBytes: number;
}
export interface ResolvedClock {
  resolutionNs: number;
  deterministic: { startNs: string; stepNs: string } | null;
}
export interface ResolvedEntropy {
  seed: string | null;
}
export interface ResolvedDevices {
  console: ResolvedConsole | null;
  clock: ResolvedClock | null;
  entropy: ResolvedEntropy | null;
}

export const CONSOLE_DEFAULTS: ResolvedConsole = {
  maxLineBytes: 4096,
  linesPerSecond: 1000,
  burstLines: 1000,
  inputBufferBytes: 65536,
};

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
    if (key !== 'console' && key !== 'clock' && key !== 'entropy') {
      throw new InvalidArgumentError(`devices.${key} is not a device this runtime provides (console, clock, entropy)`);
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
  return { console, clock, entropy };
}

/** Milliseconds (possibly fractional, to the microsecond) to exact nanoseconds. */
function msToNs(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}
