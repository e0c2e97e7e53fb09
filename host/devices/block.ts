import {
  HV_BLOCK_HEADER_SIZE,
  HV_BLOCK_MAX_READ_SECTORS,
  HV_BLOCK_MAX_WRITE_SECTORS,
  HV_BLOCK_SECTOR_SIZE,
  HV_BLOCK_WRITE_FUA,
  HV_DEVICE_FLAG_ENCRYPTED,
  HvCall,
  HvDevice,
  HvStatus,
} from '../abi/codes.ts';
import { RateLimiter, sleepSync } from '../limits/rate-limiter.ts';
import { Stat } from '../channel/stats.ts';
import type { BlockImage } from '../storage/image.ts';
import type { ResolvedBlock } from './config.ts';
import type { Device, Handler } from './device.ts';

/** Size of the BLOCK_INFO result: u32 sector size, u16 max read sectors, u16 max write sectors, u64 sector count. */
export const BLOCK_INFO_SIZE = 16;

export interface BlockDeviceOptions {
  /** Monotonic milliseconds for the rate limiters. Default performance.now. */
  now?: () => number;
  /** How a throttled request waits. Default: Atomics.wait on the worker's thread. */
  sleep?: (ms: number) => void;
}

/** A parsed (sector, count, flags) header; sector is exact below 2^53 and Infinity beyond. */
interface Request {
  sector: number;
  count: number;
  flags: number;
}

function parseHeader(input: Uint8Array): Request {
  const dv = new DataView(input.buffer, input.byteOffset, HV_BLOCK_HEADER_SIZE);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  // Above 2^53 a number is no longer exact; any such sector is past the end of every disk anyway.
  const sector = hi >= 0x200000 ? Infinity : hi * 0x100000000 + lo;
  return { sector, count: dv.getUint32(8, true), flags: dv.getUint32(12, true) };
}

/**
 * Block device front-end, in the partition's worker: parses and checks BLOCK_* requests, applies
 * the device's rate limits (one bucket for bytes, one for requests), and drives the partition's
 * image (host/storage/image.ts) with synchronous file I/O, which blocks only this worker.
 *
 * Checks, in order, each answering with a status and no side effect: input length and flags
 * (INVALID_ARGUMENT), count within 1 .. the per-call maximum (INVALID_ARGUMENT), the range inside
 * the disk (OUT_OF_RANGE), the output window large enough (BUFFER_TOO_SMALL). Then the request
 * waits for its tokens, then runs. A file-system failure is IO_ERROR (after a failed write or
 * fsync, every later write, discard and flush too: see BlockImage); a sector that does not
 * authenticate is INTEGRITY (and the read writes nothing to the guest).
 */
export class BlockDevice implements Device {
  readonly name = 'block';
  readonly record;
  readonly handlers: ReadonlyMap<number, Handler>;
  /** Bytes and requests; by default in block mode: a throttled request waits (the watchdog still bounds it). */
  private readonly limiter: RateLimiter;
  /** The engine's counters as last added to the stats. */
  private readonly synced = { integrityFailures: 0, tornRecovered: 0, ioErrors: 0 };

  constructor(
    config: ResolvedBlock,
    private readonly image: BlockImage,
    private readonly stats: Float64Array,
    options: BlockDeviceOptions = {},
  ) {
    this.limiter = new RateLimiter(
      {
        bytes: { perSecond: config.bytesPerSecond, burst: config.burstBytes, oneTimeBurst: 0 },
        ops: { perSecond: config.opsPerSecond, burst: config.burstOps, oneTimeBurst: 0 },
        mode: config.rateLimitMode,
      },
      {
        ...(options.now ? { now: options.now } : {}),
        sleep: options.sleep ?? sleepSync,
        counters: { stats, calls: Stat.BLOCK_THROTTLED, waitedMs: Stat.BLOCK_THROTTLED_MS },
      },
    );
    this.record = { id: HvDevice.BLOCK, version: 1, param0: image.sectorCount, param1: HV_DEVICE_FLAG_ENCRYPTED };
    // A reactor's earlier instance hit a write or fsync error on this image: what reached the
    // disk is unknown until the image is opened again, so this engine refuses writes too.
    if (stats[Stat.BLOCK_FAILED] !== 0) image.fail('an earlier run of this partition failed to write its disk');
    this.handlers = new Map<number, Handler>([
      [HvCall.BLOCK_INFO, (_i, inLen, out, outCap) => this.info(inLen, out, outCap)],
      [HvCall.BLOCK_READ, (input, inLen, out, outCap) => this.read(input, inLen, out, outCap)],
      [HvCall.BLOCK_WRITE, (input, inLen) => this.write(input, inLen)],
      [HvCall.BLOCK_FLUSH, (_i, inLen) => this.flush(inLen)],
      [HvCall.BLOCK_DISCARD, (input, inLen) => this.discard(input, inLen)],
    ]);
  }

  /** The guest's run ended normally: make its writes durable, then drop the key. */
  close(): void {
    try {
      this.image.flush();
    } finally {
      this.syncCounters();
      this.image.close();
    }
  }

  private info(inLen: number, out: Uint8Array, outCap: number): number {
    if (inLen !== 0) return -HvStatus.INVALID_ARGUMENT;
    if (outCap < BLOCK_INFO_SIZE) return -HvStatus.BUFFER_TOO_SMALL;
    const dv = new DataView(out.buffer, out.byteOffset, BLOCK_INFO_SIZE);
    dv.setUint32(0, HV_BLOCK_SECTOR_SIZE, true);
    dv.setUint16(4, HV_BLOCK_MAX_READ_SECTORS, true);
    dv.setUint16(6, HV_BLOCK_MAX_WRITE_SECTORS, true);
    dv.setBigUint64(8, BigInt(this.image.sectorCount), true);
    return BLOCK_INFO_SIZE;
  }

  /** Common checks of a (sector, count) request; a status (> 0) or 0 when it may run. */
  private check(r: Request, maxCount: number, allowedFlags: number): number {
    if ((r.flags & ~allowedFlags) !== 0) return HvStatus.INVALID_ARGUMENT;
    if (r.count === 0 || r.count > maxCount) return HvStatus.INVALID_ARGUMENT;
    if (r.sector + r.count > this.image.sectorCount) return HvStatus.OUT_OF_RANGE;
    return HvStatus.SUCCESS;
  }

  private read(input: Uint8Array, inLen: number, out: Uint8Array, outCap: number): number {
    if (inLen !== HV_BLOCK_HEADER_SIZE) return -HvStatus.INVALID_ARGUMENT;
    const r = parseHeader(input);
    const status = this.check(r, HV_BLOCK_MAX_READ_SECTORS, 0);
    if (status !== HvStatus.SUCCESS) return -status;
    const n = r.count * HV_BLOCK_SECTOR_SIZE;
    if (outCap < n) return -HvStatus.BUFFER_TOO_SMALL;
    if (!this.throttle(n)) return -HvStatus.RATE_LIMITED;
    return this.io(() => {
      const s = this.image.read(r.sector, r.count, out, 0);
      if (s !== HvStatus.SUCCESS) return -s;
      this.stats[Stat.BLOCK_READ_BYTES]! += n;
      return n;
    });
  }

  private write(input: Uint8Array, inLen: number): number {
    if (inLen < HV_BLOCK_HEADER_SIZE) return -HvStatus.INVALID_ARGUMENT;
    const r = parseHeader(input);
    if (r.count > HV_BLOCK_MAX_WRITE_SECTORS || inLen !== HV_BLOCK_HEADER_SIZE + r.count * HV_BLOCK_SECTOR_SIZE) return -HvStatus.INVALID_ARGUMENT;
    const status = this.check(r, HV_BLOCK_MAX_WRITE_SECTORS, HV_BLOCK_WRITE_FUA);
    if (status !== HvStatus.SUCCESS) return -status;
    const n = r.count * HV_BLOCK_SECTOR_SIZE;
    if (!this.throttle(n)) return -HvStatus.RATE_LIMITED;
    return this.io(() => {
      let s = this.image.write(r.sector, r.count, input, HV_BLOCK_HEADER_SIZE);
      if (s !== HvStatus.SUCCESS) return -s;
      this.stats[Stat.BLOCK_WRITE_BYTES]! += n;
      if ((r.flags & HV_BLOCK_WRITE_FUA) !== 0) {
        s = this.image.flush();
        if (s !== HvStatus.SUCCESS) return -s;
        this.stats[Stat.BLOCK_FLUSHES]!++;
      }
      return n;
    });
  }

  private flush(inLen: number): number {
    if (inLen !== 0) return -HvStatus.INVALID_ARGUMENT;
    if (!this.throttle(0)) return -HvStatus.RATE_LIMITED;
    return this.io(() => {
      const s = this.image.flush();
      if (s !== HvStatus.SUCCESS) return -s;
      this.stats[Stat.BLOCK_FLUSHES]!++;
      return 0;
    });
  }

  private discard(input: Uint8Array, inLen: number): number {
    if (inLen !== HV_BLOCK_HEADER_SIZE) return -HvStatus.INVALID_ARGUMENT;
    const r = parseHeader(input);
    const status = this.check(r, HV_BLOCK_MAX_READ_SECTORS, 0);
    if (status !== HvStatus.SUCCESS) return -status;
    const n = r.count * HV_BLOCK_SECTOR_SIZE;
    // A discard writes a zero version of each sector, so it costs what a write of the same size costs.
    if (!this.throttle(n)) return -HvStatus.RATE_LIMITED;
    return this.io(() => {
      const s = this.image.discard(r.sector, r.count);
      if (s !== HvStatus.SUCCESS) return -s;
      this.stats[Stat.BLOCK_DISCARD_BYTES]! += n;
      return 0;
    });
  }

  /**
   * Takes one request and `bytes` bytes, waiting for them in block mode. False when refused
   * (reject mode over the limit); config makes a request that could never pass impossible.
   */
  private throttle(bytes: number): boolean {
    return this.limiter.admit(bytes) === 'ok';
  }

  /** Runs a request and publishes the engine's counters (the engine turns file errors into IO_ERROR itself). */
  private io(run: () => number): number {
    try {
      return run();
    } finally {
      this.syncCounters();
    }
  }

  /**
   * Adds what the engine counted since the last sync: the stats outlive this engine (a reactor's
   * restart gets a new one) and stay cumulative.
   */
  private syncCounters(): void {
    const c = this.image.counters;
    const seen = this.synced;
    this.stats[Stat.BLOCK_INTEGRITY_FAILURES]! += c.integrityFailures - seen.integrityFailures;
    this.stats[Stat.BLOCK_TORN_RECOVERED]! += c.tornRecovered - seen.tornRecovered;
    this.stats[Stat.BLOCK_IO_ERRORS]! += c.ioErrors - seen.ioErrors;
    Object.assign(seen, c);
    if (this.image.failed !== null) this.stats[Stat.BLOCK_FAILED] = 1;
  }
}
