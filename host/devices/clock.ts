import { HvCall, HvClock, HvDevice, HvStatus, HV_DEVICE_FLAG_DETERMINISTIC } from '../abi/codes.ts';
import type { ResolvedClock } from './config.ts';
import { readU32Arg, writeU32, type Device, type Handler } from './device.ts';

/** Source of raw time for the clock device; injected so tests need no sleeping. */
export interface TimeSource {
  /** Monotonic nanoseconds from an arbitrary origin. */
  monotonicNs(): bigint;
  /** Nanoseconds since the Unix epoch. */
  wallNs(): bigint;
}

export const systemTime: TimeSource = {
  monotonicNs: () => process.hrtime.bigint(),
  // timeOrigin + now() gives sub-millisecond wall time; kept to whole microseconds.
  wallNs: () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n,
};

/**
 * Clock device: monotonic and wall time, both rounded *down* to the configured resolution
 * (default 1 ms). Coarse clocks blunt timing side channels; the monotonic origin is the
 * partition's start, so a guest learns nothing about host uptime.
 * Deterministic mode: each reading of a clock advances it by a fixed step from a fixed start.
 */
export class ClockDevice implements Device {
  readonly name = 'clock';
  readonly record;
  readonly handlers: ReadonlyMap<number, Handler>;
  private readonly resolution: bigint;
  /** Resolution in nanoseconds (what WASI's clock_res_get reports). */
  readonly resolutionNs: number;
  private readonly origin: bigint;
  private readonly step: bigint;
  private readonly deterministic: boolean;
  private monoNext = 0n;
  private wallNext = 0n;

  constructor(config: ResolvedClock, private readonly time: TimeSource = systemTime) {
    this.resolution = BigInt(config.resolutionNs);
    this.resolutionNs = config.resolutionNs;
    this.origin = time.monotonicNs();
    this.deterministic = config.deterministic !== null;
    this.step = config.deterministic ? BigInt(config.deterministic.stepNs) : 0n;
    if (config.deterministic) this.wallNext = BigInt(config.deterministic.startNs);
    this.record = {
      id: HvDevice.CLOCK,
      version: 1,
      param0: config.resolutionNs,
      param1: this.deterministic ? HV_DEVICE_FLAG_DETERMINISTIC : 0,
    };
    this.handlers = new Map<number, Handler>([[HvCall.CLOCK_GET, (input, inLen, out, outCap) => this.get(input, inLen, out, outCap)]]);
  }

  /** The value a CLOCK_GET for `id` returns now, or null for an unknown id. */
  read(id: number): bigint | null {
    let ns: bigint;
    if (id === HvClock.MONOTONIC) {
      if (this.deterministic) {
        ns = this.monoNext;
        this.monoNext += this.step;
      } else {
        ns = this.time.monotonicNs() - this.origin;
      }
    } else if (id === HvClock.WALL) {
      if (this.deterministic) {
        ns = this.wallNext;
        this.wallNext += this.step;
      } else {
        ns = this.time.wallNs();
      }
    } else {
      return null;
    }
    if (ns < 0n) ns = 0n;
    return ns - (ns % this.resolution);
  }

  private get(input: Uint8Array, inLen: number, out: Uint8Array, outCap: number): number {
    const id = readU32Arg(input, inLen);
    if (id < 0) return -HvStatus.INVALID_ARGUMENT;
    if (outCap < 8) return -HvStatus.BUFFER_TOO_SMALL;
    const ns = this.read(id);
    if (ns === null) return -HvStatus.INVALID_ARGUMENT;
    const lo = Number(ns & 0xffffffffn);
    const hi = Number((ns >> 32n) & 0xffffffffn);
    writeU32(out, 0, lo);
    writeU32(out, 4, hi);
    return 8;
  }
}

