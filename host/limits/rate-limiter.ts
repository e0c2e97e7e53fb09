import { InvalidArgumentError } from '../errors.ts';
import { TOKEN_BUCKET_SLOTS, TokenBucket } from './token-bucket.ts';
import type { RateLimitMode, RateLimitSpec } from '../schema/limits.ts';

/**
 * A device's (or the hypercall path's) rate limit: one token bucket for bytes and one for
 * operations, Firecracker's shape, and what to do when a request is over the limit:
 * `reject` (the call returns HV_STATUS_RATE_LIMITED at once and takes no tokens) or `block`
 * (the partition's worker waits for the refill, then the call runs). Either way the request
 * is counted as throttled, and in block mode the time waited too.
 *
 * Pure and clock-injected: `now` and `sleep` come from the caller, so tests are exact.
 */

export type { RateLimitMode, RateLimitSpec } from '../schema/limits.ts';

/** A validated rate limit: plain data, so it crosses the worker boundary. */
export interface ResolvedRateLimit {
  bytes: { perSecond: number; burst: number; oneTimeBurst: number } | null;
  ops: { perSecond: number; burst: number; oneTimeBurst: number } | null;
  mode: RateLimitMode;
}

/**
 * Resolves a rate limit already checked against its schema (schema/limits.ts: types, ranges,
 * and `burstBytes` of at least the device's largest request); undefined → null. What a schema
 * cannot say is checked here: a burst needs its rate. `what` names the spec in errors.
 */
export function resolveRateLimit(spec: RateLimitSpec | undefined, what: string, minBurstBytes = 1): ResolvedRateLimit | null {
  if (spec === undefined) return null;
  let bytes: ResolvedRateLimit['bytes'] = null;
  if (spec.bytesPerSecond !== undefined) {
    const perSecond = spec.bytesPerSecond;
    bytes = { perSecond, burst: spec.burstBytes ?? Math.max(perSecond, minBurstBytes), oneTimeBurst: spec.oneTimeBurstBytes ?? 0 };
  } else if (spec.burstBytes !== undefined || spec.oneTimeBurstBytes !== undefined) {
    throw new InvalidArgumentError(`${what}.${spec.burstBytes !== undefined ? 'burstBytes' : 'oneTimeBurstBytes'}: needs ${what}.bytesPerSecond`);
  }
  let ops: ResolvedRateLimit['ops'] = null;
  if (spec.opsPerSecond !== undefined) {
    const perSecond = spec.opsPerSecond;
    ops = { perSecond, burst: spec.burstOps ?? Math.max(1, perSecond), oneTimeBurst: spec.oneTimeBurstOps ?? 0 };
  } else if (spec.burstOps !== undefined || spec.oneTimeBurstOps !== undefined) {
    throw new InvalidArgumentError(`${what}.${spec.burstOps !== undefined ? 'burstOps' : 'oneTimeBurstOps'}: needs ${what}.opsPerSecond`);
  }
  return { bytes, ops, mode: spec.mode ?? 'reject' };
}

export interface RateLimiterOptions {
  /** Monotonic milliseconds. Default performance.now. */
  now?: () => number;
  /** Blocks the calling thread for `ms` (block mode). Default: Atomics.wait on a private cell. */
  sleep?: (ms: number) => void;
  /**
   * Counter slots (in a partition's stats) to add the throttled requests and the time waited to,
   * as they happen: before a wait, so a partition killed while it waits still reports it.
   */
  counters?: { stats: Float64Array; calls: number; waitedMs: number };
  /**
   * Where the two buckets keep their state (RATE_LIMITER_SLOTS Float64 slots: bytes, then
   * operations), e.g. in a SharedArrayBuffer for a limit several threads charge under a lock;
   * with `attach`, the state was initialized by another user. See TokenBucketOptions.state.
   */
  state?: Float64Array;
  attach?: boolean;
}

/** Float64 slots a RateLimiter's state takes (see `RateLimiterOptions.state`). */
export const RATE_LIMITER_SLOTS = 2 * TOKEN_BUCKET_SLOTS;

/** Outcome of `admit`: let through (possibly after a wait), or refused. */
export type Admission = 'ok' | 'limited';

/** Blocks the calling thread (a partition's worker, never the root) for `ms`. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.ceil(ms));
}

export class RateLimiter {
  readonly mode: RateLimitMode;
  /** Requests refused (reject mode) or delayed (block mode). */
  throttled = 0;
  /** Time spent waiting for tokens (block mode), ms. */
  waitedMs = 0;
  private readonly bytes: TokenBucket | null;
  private readonly ops: TokenBucket | null;
  private readonly sleep: (ms: number) => void;
  private readonly counters: RateLimiterOptions['counters'];
  /** The clock of both buckets (their default). */
  private readonly now: () => number;

  constructor(limit: ResolvedRateLimit, options: RateLimiterOptions = {}) {
    this.counters = options.counters;
    this.now = options.now ?? (() => performance.now());
    const now = options.now ? { now: options.now } : {};
    const state = options.state;
    const bucket = (b: { perSecond: number; burst: number; oneTimeBurst: number } | null, at: number) =>
      b === null
        ? null
        : new TokenBucket({
            capacity: b.burst,
            refillTimeMs: (b.burst / b.perSecond) * 1000,
            oneTimeBurst: b.oneTimeBurst,
            ...now,
            ...(state ? { state: state.subarray(at, at + TOKEN_BUCKET_SLOTS), attach: options.attach === true } : {}),
          });
    this.bytes = bucket(limit.bytes, 0);
    this.ops = bucket(limit.ops, TOKEN_BUCKET_SLOTS);
    this.mode = limit.mode;
    this.sleep = options.sleep ?? sleepSync;
  }

  /** Whether one operation of `bytes` bytes would pass at `t` (default now), without waiting. Takes and counts nothing. */
  wouldAdmit(bytes: number, t: number = this.now()): boolean {
    return this.waitTimeMs(bytes, t) <= 0;
  }

  /** Milliseconds until one operation of `bytes` bytes would pass: 0 now, Infinity never. Takes and counts nothing. */
  waitTimeMs(bytes: number, t: number = this.now()): number {
    return Math.max(this.ops?.waitTimeMs(1, t) ?? 0, bytes > 0 ? (this.bytes?.waitTimeMs(bytes, t) ?? 0) : 0);
  }

  /** Takes one operation of `bytes` bytes if it passes at `t` (default now); otherwise takes and counts nothing. */
  tryTake(bytes: number, t: number = this.now()): boolean {
    if (this.waitTimeMs(bytes, t) > 0) return false;
    this.ops?.reduce(1, t);
    if (bytes > 0) this.bytes?.reduce(bytes, t);
    return true;
  }

  /**
   * One operation moving `bytes` bytes. Takes its tokens and returns 'ok' when they are there;
   * otherwise, in reject mode, takes nothing and returns 'limited'; in block mode waits for the
   * refill (the time is counted) and takes them. A request larger than a bucket can ever hold is
   * 'limited' in both modes.
   */
  admit(bytes: number): Admission {
    let counted = false;
    for (;;) {
      if (this.tryTake(bytes)) return 'ok';
      const wait = this.waitTimeMs(bytes);
      const c = this.counters;
      if (!counted) {
        this.throttled++;
        if (c) c.stats[c.calls]!++;
      }
      counted = true;
      if (this.mode === 'reject' || !Number.isFinite(wait)) return 'limited';
      this.waitedMs += wait;
      if (c) c.stats[c.waitedMs]! += wait;
      this.sleep(wait);
    }
  }
}
