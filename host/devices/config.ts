import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';
import { InvalidArgumentError } from '../errors.ts';
import { resolveRateLimit } from '../limits/rate-limiter.ts';
import { MAX_DISK_MIB, MIN_BLOCK_BURST_BYTES, type BlockSpec, type ConsoleSpec, type DevicesSpec, type NetSpec } from '../schema/devices.ts';
import { NAME } from '../schema/kinds.ts';
import {
  CONSOLE_DEFAULTS,
  rxRecordBytes,
  type ResolvedBlock,
  type ResolvedClock,
  type ResolvedConsole,
  type ResolvedDevices,
  type ResolvedEntropy,
  type ResolvedNet,
} from './resolved.ts';

/**
 * Device grants in a partition spec, resolved to complete settings. The spec was checked against
 * its schema (schema/devices.ts: types and ranges); here are only defaults and derived values.
 * A device that is absent or `false` is not granted: the guest cannot see or use it.
 */
export type { ConsoleSpec, ClockSpec, EntropySpec, BlockSpec, NetSpec, DevicesSpec } from '../schema/devices.ts';
export type { ResolvedConsole, ResolvedClock, ResolvedEntropy, ResolvedBlock, ResolvedNet, ResolvedDevices } from './resolved.ts';
export { CONSOLE_DEFAULTS, rxRecordBytes } from './resolved.ts';

export const BLOCK_DEFAULTS = {
  bytesPerSecond: 256 * 1024 * 1024,
  opsPerSecond: 20_000,
  /** The most bytes one request moves (16 sectors): a bucket smaller than this could never admit it. */
  minBurstBytes: MIN_BLOCK_BURST_BYTES,
  maxSizeMiB: MAX_DISK_MIB,
} as const;

export const NET_DEFAULTS = {
  mtu: 1500,
  rxQueueBytes: 65536,
  bytesPerSecond: 64 * 1024 * 1024,
  framesPerSecond: 100_000,
} as const;

/** Segment names: the same alphabet as partition names. */
export const SEGMENT_NAME = NAME;

/** `true` grants with defaults, an object with those options; absent or false: not granted. */
function grant<T extends object>(value: boolean | T | undefined): T | null {
  if (value === undefined || value === false) return null;
  return value === true ? ({} as T) : value;
}

function nextPowerOfTwo(n: number): number {
  let p = 64;
  while (p < n) p *= 2;
  return p;
}

/** Resolves checked grants (schema/devices.ts) to complete settings. */
export function resolveDevices(spec: DevicesSpec | undefined): ResolvedDevices {
  const c = grant(spec?.console);
  const k = grant(spec?.clock);
  const e = grant(spec?.entropy);

  let console: ResolvedConsole | null = null;
  if (c !== null) {
    const linesPerSecond = c.linesPerSecond ?? CONSOLE_DEFAULTS.linesPerSecond;
    console = {
      maxLineBytes: c.maxLineBytes ?? CONSOLE_DEFAULTS.maxLineBytes,
      linesPerSecond,
      burstLines: c.burstLines ?? linesPerSecond,
      inputBufferBytes: nextPowerOfTwo(c.inputBufferBytes ?? CONSOLE_DEFAULTS.inputBufferBytes),
      // A write moves at most one hypercall buffer: a bucket that size can always admit it.
      rateLimit: resolveRateLimit(c.rateLimit, 'devices.console.rateLimit', 65536),
      outputFd: resolveOutputFds(c.outputFd),
    };
  }

  let clock: ResolvedClock | null = null;
  if (k !== null) {
    const resolutionNs = Math.round((k.resolutionMs ?? 1) * 1e6);
    let deterministic: ResolvedClock['deterministic'] = null;
    if (k.deterministic !== undefined && k.deterministic !== false) {
      const d = k.deterministic === true ? {} : k.deterministic;
      // Carried as decimal strings of nanoseconds: exact, and plain data for the worker.
      deterministic = { startNs: msToNs(d.startMs ?? 0).toString(), stepNs: msToNs(d.stepMs ?? 1).toString() };
    }
    clock = { resolutionNs, deterministic };
  }

  const entropy: ResolvedEntropy | null = e === null ? null : { seed: e.seed === undefined ? null : String(e.seed) };
  return { console, clock, entropy, block: resolveBlock(spec?.block), net: resolveNet(spec?.net), attestation: spec?.attestation === true ? true : null };
}

function resolveNet(spec: false | NetSpec | undefined): ResolvedNet | null {
  if (spec === undefined || spec === false) return null;
  const mtu = spec.mtu ?? NET_DEFAULTS.mtu;
  return {
    segment: spec.segment,
    mtu,
    rxQueueBytes: nextPowerOfTwo(Math.max(rxRecordBytes(mtu), spec.rxQueueBytes ?? NET_DEFAULTS.rxQueueBytes)),
    sendBytesPerSecond: spec.sendBytesPerSecond ?? NET_DEFAULTS.bytesPerSecond,
    sendFramesPerSecond: spec.sendFramesPerSecond ?? NET_DEFAULTS.framesPerSecond,
    recvBytesPerSecond: spec.recvBytesPerSecond ?? NET_DEFAULTS.bytesPerSecond,
    recvFramesPerSecond: spec.recvFramesPerSecond ?? NET_DEFAULTS.framesPerSecond,
    host: spec.host === true,
  };
}

function resolveBlock(spec: false | BlockSpec | undefined): ResolvedBlock | null {
  if (spec === undefined || spec === false) return null;
  const bytesPerSecond = spec.bytesPerSecond ?? BLOCK_DEFAULTS.bytesPerSecond;
  const opsPerSecond = spec.opsPerSecond ?? BLOCK_DEFAULTS.opsPerSecond;
  return {
    sizeMiB: spec.sizeMiB,
    path: spec.path ?? null,
    bytesPerSecond,
    burstBytes: spec.burstBytes ?? Math.max(bytesPerSecond, BLOCK_DEFAULTS.minBurstBytes),
    opsPerSecond,
    burstOps: spec.burstOps ?? Math.max(1, opsPerSecond),
    rateLimitMode: spec.rateLimitMode ?? 'block',
  };
}

/**
 * devices.console.outputFd (types and ranges checked by the schema): each fd must be open and be a
 * regular file or a non-terminal character device, since a write there never waits on a reader.
 */
function resolveOutputFds(spec: ConsoleSpec['outputFd']): ResolvedConsole['outputFd'] {
  const one = (fd: number | undefined, which: 'stdout' | 'stderr'): number | null => {
    if (fd === undefined) return null;
    const what = `devices.console.outputFd.${which}`;
    let ok: boolean;
    try {
      const st = fstatSync(fd);
      ok = st.isFile() || (st.isCharacterDevice() && !isatty(fd));
    } catch {
      throw new InvalidArgumentError(`${what}: fd ${fd} is not open`);
    }
    if (!ok) throw new InvalidArgumentError(`${what}: fd ${fd} must be a regular file or a character device that is not a terminal, such as /dev/null (a pipe or a terminal could make the partition wait past its watchdog: use partition.${which})`);
    return fd;
  };
  return { stdout: one(spec?.stdout, 'stdout'), stderr: one(spec?.stderr, 'stderr') };
}

/** Milliseconds (possibly fractional, to the microsecond) to exact nanoseconds. */
function msToNs(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}
