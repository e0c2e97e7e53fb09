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
}

/** Outcome of `reduce`, as an explicit value rather than a boolean. */
export type BucketOutcome = 'ok' | 'denied';

export class TokenBucket {
  readonly capacity: number;
  readonly refillTimeMs: number;
  private tokens: number;
  private burst: number;
  private last: number;
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
    this.tokens = capacity;
    this.burst = burst;
    this.last = this.now();
  }

  /** Takes `n` tokens if all of them are available; otherwise takes nothing. */
  reduce(n: number): BucketOutcome {
    this.refill();
    if (n <= this.burst) {
      this.burst -= n;
      return 'ok';
    }
    const fromBucket = n - this.burst;
    if (fromBucket <= this.tokens) {
      this.burst = 0;
      this.tokens -= fromBucket;
      return 'ok';
    }
    return 'denied';
  }

  /** Milliseconds until `n` tokens could be taken; 0 if now; Infinity if n exceeds what can ever be held. */
  waitTimeMs(n: number): number {
    this.refill();
    const missing = n - this.burst - this.tokens;
    if (missing <= 0) return 0;
    if (n - this.burst > this.capacity) return Infinity;
    return missing / this.ratePerMs;
  }

  /** Tokens available now (burst included). */
  available(): number {
    this.refill();
    return this.burst + this.tokens;
  }

  private refill(): void {
    const t = this.now();
    const elapsed = t - this.last;
    if (elapsed <= 0) return; // a clock that stood still (or went back) refills nothing
    this.last = t;
    this.tokens = Math.min(this.capacity, this.tokens + elapsed * this.ratePerMs);
  }
}
