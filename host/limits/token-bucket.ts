/**
 * A token bucket, in the shape Firecracker's rate limiter made familiar: `capacity` tokens
 * refill linearly over `refillTimeMs`; an optional `oneTimeBurst` is spent first and never
 * refills. Pure and clock-injected (`now()` in milliseconds, monotonic), so tests are exact.
 *
 * Arithmetic: tokens are kept as a float, but refill is computed from elapsed time since the
 * last update against a fixed rate (capacity / refillTimeMs), and the budget is clamped to
 * `capacity` after every refill, so rounding error never accumulates past one token and
 * never lets the bucket exceed its size.
 */
export interface TokenBucketOptions {
  /** Size of the bucket: the most that can be spent at once after an idle period. Must be > 0. */
  capacity: number;
  /** Time for an empty bucket to refill completely. Must be > 0. */
  refillTimeMs: number;
  /** Extra tokens available once, at the start. Default 0. */
  oneTimeBurst?: number;
  /** Monotonic milliseconds. Default `performance.now`. */
  now?: () => number;
  /**
   * Where the bucket's state lives: 3 Float64 slots (tokens, one-time burst left, time of the
   * last refill). Default: a private array. A bucket shared by several threads (a NIC's receive
   * budget, charged by every sender) keeps its state in a SharedArrayBuffer; its users then
   * serialize their calls (a lock) and read the same clock (`now`, e.g. timeOrigin + now()).
   */
  state?: Float64Array;
  /** With `state`: the state is already initialized by another user of it; leave it. Default false. */
  attach?: boolean;
}

/** Float64 slots a TokenBucket's state takes (see `TokenBucketOptions.state`). */
export const TOKEN_BUCKET_SLOTS = 3;
const TOKENS = 0;
const BURST = 1;
const LAST = 2;

/** Outcome of `reduce`, as an explicit value rather than a boolean. */
export type BucketOutcome = 'ok' | 'denied';

export class TokenBucket {
  readonly capacity: number;
  readonly refillTimeMs: number;
  /** tokens, burst, last (see the slot constants). */
  private readonly s: Float64Array;
  private readonly now: () => number;
  private readonly ratePerMs: number;

  constructor(options: TokenBucketOptions) {
    const { capacity, refillTimeMs } = options;
    if (!(capacity > 0) || !Number.isFinite(capacity)) throw new RangeError(`token bucket capacity must be a positive finite number, got ${capacity}`);
    if (!(refillTimeMs > 0) || !Number.isFinite(refillTimeMs)) throw new RangeError(`token bucket refillTimeMs must be a positive finite number, got ${refillTimeMs}`);
    const burst = options.oneTimeBurst ?? 0;
    if (!(burst >= 0) || !Number.isFinite(burst)) throw new RangeError(`token bucket oneTimeBurst must be >= 0, got ${burst}`);
    this.capacity = capacity;
    this.refillTimeMs = refillTimeMs;
    this.ratePerMs = capacity / refillTimeMs;
    this.now = options.now ?? (() => performance.now());
    if (options.state !== undefined && options.state.length < TOKEN_BUCKET_SLOTS) throw new RangeError(`token bucket state needs ${TOKEN_BUCKET_SLOTS} slots`);
    this.s = options.state ?? new Float64Array(TOKEN_BUCKET_SLOTS);
    if (options.state === undefined || options.attach !== true) {
      this.s[TOKENS] = capacity;
      this.s[BURST] = burst;
      this.s[LAST] = this.now();
    }
  }

  /**
   * Takes `n` tokens if all of them are available; otherwise takes nothing. `t` is the time now
   * (default: read the clock): a caller that asks several buckets about one request reads the
   * clock once and passes it, a clock read being a native call on a hot path.
   */
  reduce(n: number, t: number = this.now()): BucketOutcome {
    this.refill(t);
    const s = this.s;
    if (n <= s[BURST]!) {
      s[BURST] = s[BURST]! - n;
      return 'ok';
    }
    const fromBucket = n - s[BURST]!;
    if (fromBucket <= s[TOKENS]!) {
      s[BURST] = 0;
      s[TOKENS] = s[TOKENS]! - fromBucket;
      return 'ok';
    }
    return 'denied';
  }

  /** Milliseconds until `n` tokens could be taken; 0 if now; Infinity if n exceeds what can ever be held. */
  waitTimeMs(n: number, t: number = this.now()): number {
    this.refill(t);
    const s = this.s;
    const missing = n - s[BURST]! - s[TOKENS]!;
    if (missing <= 0) return 0;
    if (n - s[BURST]! > this.capacity) return Infinity;
    return missing / this.ratePerMs;
  }

  /** Tokens available now (burst included). */
  available(t: number = this.now()): number {
    this.refill(t);
    return this.s[BURST]! + this.s[TOKENS]!;
  }

  private refill(t: number): void {
    const s = this.s;
    const elapsed = t - s[LAST]!;
    if (elapsed <= 0) return; // a clock that stood still (or went back) refills nothing
    s[LAST] = t;
    s[TOKENS] = Math.min(this.capacity, s[TOKENS]! + elapsed * this.ratePerMs);
  }
}
