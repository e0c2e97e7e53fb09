/**
 * Edges of the limits (host/limits/): each bound at its edge and one past it, the error that
 * names a bad value, a bucket's state shared between two users (a NIC's receive budget), the
 * counters a rate limiter adds to a partition's stats, and the CPU governor's non-blocking half
 * (due / resumed) that a shared worker drives.
 */
import { describe, expect, it } from 'vitest';
import { CpuGovernor } from '../../host/limits/cpu-governor.ts';
import { RATE_LIMITER_SLOTS, RateLimiter, resolveRateLimit, sleepSync } from '../../host/limits/rate-limiter.ts';
import { TOKEN_BUCKET_SLOTS, TokenBucket } from '../../host/limits/token-bucket.ts';

function clock(start = 0) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('TokenBucket edges', () => {
  it('names each nonsense option in its error', () => {
    for (const [options, message] of [
      [{ capacity: -1, refillTimeMs: 1 }, 'token bucket capacity must be a positive finite number, got -1'],
      [{ capacity: Infinity, refillTimeMs: 1 }, 'token bucket capacity must be a positive finite number, got Infinity'],
      [{ capacity: 1, refillTimeMs: 0 }, 'token bucket refillTimeMs must be a positive finite number, got 0'],
      [{ capacity: 1, refillTimeMs: Infinity }, 'token bucket refillTimeMs must be a positive finite number, got Infinity'],
      [{ capacity: 1, refillTimeMs: 1, oneTimeBurst: -1 }, 'token bucket oneTimeBurst must be >= 0, got -1'],
      [{ capacity: 1, refillTimeMs: 1, oneTimeBurst: Infinity }, 'token bucket oneTimeBurst must be >= 0, got Infinity'],
      [{ capacity: 1, refillTimeMs: 1, oneTimeBurst: Number.NaN }, 'token bucket oneTimeBurst must be >= 0, got NaN'],
      [{ capacity: 1, refillTimeMs: 1, state: new Float64Array(TOKEN_BUCKET_SLOTS - 1) }, `token bucket state needs ${TOKEN_BUCKET_SLOTS} slots`],
    ] as const) {
      expect(() => new TokenBucket(options), JSON.stringify(options)).toThrow(new RangeError(message));
    }
    // The smallest valid sizes.
    expect(new TokenBucket({ capacity: Number.MIN_VALUE, refillTimeMs: Number.MIN_VALUE, oneTimeBurst: 0 }).capacity).toBe(Number.MIN_VALUE);
  });

  it('a request of exactly the capacity waits for a full refill; one token more never fits', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 4, refillTimeMs: 400, now: c.now });
    expect(b.reduce(4)).toBe('ok');
    expect(b.waitTimeMs(4)).toBe(400);
    expect(b.waitTimeMs(5)).toBe(Infinity);
    c.advance(400);
    expect(b.waitTimeMs(4)).toBe(0);
    expect(b.reduce(4)).toBe('ok');
  });

  it('the one-time burst counts towards what a request may take at once', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 4, refillTimeMs: 400, oneTimeBurst: 2, now: c.now });
    expect(b.available()).toBe(6);
    // 6 fit now; 7 need one more token than both hold, but are not more than the bucket plus burst.
    expect(b.waitTimeMs(6)).toBe(0);
    expect(b.waitTimeMs(7)).toBe(Infinity);
    expect(b.reduce(3)).toBe('ok'); // 2 from the burst, 1 from the bucket
    expect(b.available()).toBe(3);
    c.advance(100);
    expect(b.available()).toBe(4);
    expect(b.waitTimeMs(4)).toBe(0);
    expect(b.waitTimeMs(5)).toBe(Infinity);
  });

  it('takes the time it is given, not its clock: one clock read serves several buckets', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 10, refillTimeMs: 1000, now: c.now });
    expect(b.reduce(10, 0)).toBe('ok');
    expect(b.available(500)).toBe(5); // the clock still says 0
    expect(b.reduce(6, 500)).toBe('denied');
    expect(b.waitTimeMs(6, 500)).toBe(100);
  });

  it('two buckets over one state share their tokens; attach leaves the state as the first left it', () => {
    const c = clock(50);
    const state = new Float64Array(TOKEN_BUCKET_SLOTS);
    const first = new TokenBucket({ capacity: 10, refillTimeMs: 1000, oneTimeBurst: 1, now: c.now, state });
    expect(first.reduce(6)).toBe('ok');
    const second = new TokenBucket({ capacity: 10, refillTimeMs: 1000, oneTimeBurst: 1, now: c.now, state, attach: true });
    expect(second.available()).toBe(5);
    expect(second.reduce(5)).toBe('ok');
    expect(first.reduce(1)).toBe('denied');
    // Without attach, a new user initializes the state again: full bucket, burst, its clock.
    const fresh = new TokenBucket({ capacity: 10, refillTimeMs: 1000, oneTimeBurst: 1, now: c.now, state, attach: false });
    expect(fresh.available()).toBe(11);
    expect([...state]).toEqual([10, 1, 50]);
  });
});

describe('resolveRateLimit defaults', () => {
  it('a bucket without a burst holds one second of its rate, and at least the largest request', () => {
    expect(resolveRateLimit({ bytesPerSecond: 1000 }, 'x', 64)).toEqual({ bytes: { perSecond: 1000, burst: 1000, oneTimeBurst: 0 }, ops: null, mode: 'reject' });
    expect(resolveRateLimit({ bytesPerSecond: 10 }, 'x', 64)!.bytes!.burst).toBe(64);
    expect(resolveRateLimit({ bytesPerSecond: 10 }, 'x')!.bytes!.burst).toBe(10);
    expect(resolveRateLimit({ opsPerSecond: 50 }, 'x')).toEqual({ bytes: null, ops: { perSecond: 50, burst: 50, oneTimeBurst: 0 }, mode: 'reject' });
    // Less than one operation per second still lets one operation through at a time.
    expect(resolveRateLimit({ opsPerSecond: 0.5 }, 'x')!.ops!.burst).toBe(1);
    expect(
      resolveRateLimit({ bytesPerSecond: 1, burstBytes: 5, oneTimeBurstBytes: 7, opsPerSecond: 2, burstOps: 3, oneTimeBurstOps: 4, mode: 'block' }, 'x'),
    ).toEqual({ bytes: { perSecond: 1, burst: 5, oneTimeBurst: 7 }, ops: { perSecond: 2, burst: 3, oneTimeBurst: 4 }, mode: 'block' });
  });

  it('names the burst that lacks its rate', () => {
    expect(() => resolveRateLimit({ oneTimeBurstBytes: 1 }, 'devices.block.rateLimit')).toThrow('devices.block.rateLimit.oneTimeBurstBytes: needs devices.block.rateLimit.bytesPerSecond');
    expect(() => resolveRateLimit({ burstOps: 1 }, 'y')).toThrow('y.burstOps: needs y.opsPerSecond');
    expect(() => resolveRateLimit({ oneTimeBurstOps: 1 }, 'y')).toThrow('y.oneTimeBurstOps: needs y.opsPerSecond');
  });
});

describe('RateLimiter edges', () => {
  it('refills at perSecond: a bucket of 100 at 1000/s is full again after 100 ms', () => {
    const c = clock();
    const limiter = new RateLimiter(resolveRateLimit({ bytesPerSecond: 1000, burstBytes: 100 }, 'x')!, { now: c.now });
    expect(limiter.admit(100)).toBe('ok');
    c.advance(99);
    expect(limiter.waitTimeMs(100)).toBeCloseTo(1, 9);
    c.advance(1);
    expect(limiter.admit(100)).toBe('ok');
  });

  it('adds throttled requests and the time waited to the partition counters, once per request however many waits it takes', () => {
    const c = clock();
    const stats = new Float64Array(8);
    const sleeps: number[] = [];
    // The first sleep returns early (a spurious wake-up): the limiter waits again for the rest.
    const sleep = (ms: number) => {
      sleeps.push(ms);
      c.advance(sleeps.length === 1 ? ms / 2 : ms);
    };
    const limiter = new RateLimiter(resolveRateLimit({ opsPerSecond: 10, burstOps: 1, mode: 'block' }, 'x')!, {
      now: c.now,
      sleep,
      counters: { stats, calls: 3, waitedMs: 5 },
    });
    expect(limiter.admit(0)).toBe('ok');
    expect(limiter.admit(0)).toBe('ok');
    expect(sleeps).toEqual([100, 50]);
    expect(limiter.throttled).toBe(1);
    expect(stats[3]).toBe(1);
    const waited = sleeps.reduce((a, b) => a + b, 0);
    expect(limiter.waitedMs).toBeCloseTo(waited, 9);
    expect(stats[5]).toBeCloseTo(waited, 9);
    expect([...stats].filter((_, i) => i !== 3 && i !== 5)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('reject mode counts the refusal in the partition counters and waits for nothing', () => {
    const stats = new Float64Array(4);
    const limiter = new RateLimiter(resolveRateLimit({ opsPerSecond: 1, burstOps: 1 }, 'x')!, {
      now: () => 0,
      sleep: () => {
        throw new Error('reject mode never sleeps');
      },
      counters: { stats, calls: 0, waitedMs: 1 },
    });
    expect(limiter.admit(0)).toBe('ok');
    expect(limiter.admit(0)).toBe('limited');
    expect(limiter.admit(0)).toBe('limited');
    expect([...stats]).toEqual([2, 0, 0, 0]);
    expect(limiter.waitedMs).toBe(0);
  });

  it('tryTake takes both tokens or none, at the time given', () => {
    const c = clock();
    const limiter = new RateLimiter(resolveRateLimit({ bytesPerSecond: 100, burstBytes: 100, opsPerSecond: 10, burstOps: 2 }, 'x')!, { now: c.now });
    expect(limiter.tryTake(60, 0)).toBe(true);
    expect(limiter.tryTake(60, 0)).toBe(false); // bytes short: the op token stays
    expect(limiter.tryTake(40, 0)).toBe(true);
    expect(limiter.tryTake(0, 0)).toBe(false); // both op tokens spent
    expect(limiter.wouldAdmit(0, 100)).toBe(true); // one op token back after 100 ms
    expect(limiter.tryTake(0, 100)).toBe(true);
    expect(limiter.throttled).toBe(0);
  });

  it('a limiter over shared state (RATE_LIMITER_SLOTS, bytes then operations) shares both buckets with an attached one', () => {
    const c = clock();
    const state = new Float64Array(RATE_LIMITER_SLOTS);
    const limit = resolveRateLimit({ bytesPerSecond: 100, burstBytes: 100, opsPerSecond: 1, burstOps: 3 }, 'x')!;
    const a = new RateLimiter(limit, { now: c.now, state });
    expect(a.admit(70)).toBe('ok');
    // Attached after the first user spent tokens: it sees what is left, it does not refill the buckets.
    const b = new RateLimiter(limit, { now: c.now, state, attach: true });
    expect(b.admit(31)).toBe('limited'); // 30 bytes left in the shared bucket
    expect(b.admit(30)).toBe('ok');
    expect(a.admit(0)).toBe('ok');
    expect(b.admit(0)).toBe('limited'); // the three op tokens are spent
    expect(state[0]).toBe(0); // bytes bucket tokens
    expect(state[TOKEN_BUCKET_SLOTS]).toBe(0); // ops bucket tokens
  });

  it('sleepSync blocks the calling thread for at least the time asked (rounded up to whole ms)', () => {
    const start = performance.now();
    sleepSync(19.2);
    expect(performance.now() - start).toBeGreaterThanOrEqual(19.5);
  });
});

describe('CpuGovernor: the non-blocking half a shared worker drives', () => {
  function fake(maxPercent: number, periodMs = 100) {
    const c = clock(1000);
    const g = new CpuGovernor({ maxPercent, periodMs, now: c.now, sleep: () => expect.unreachable('due/resumed never sleep') });
    return { g, c };
  }

  it('due is -1 under the quota and the rest of the period once it is used; resumed accounts the pause', () => {
    const { g, c } = fake(30);
    expect(g.quotaMs).toBe(30);
    c.advance(29);
    expect(g.due()).toBe(-1);
    c.advance(1);
    expect(g.due()).toBe(70);
    expect(g.runningMs).toBe(30);
    c.advance(70); // the partition is suspended while others run
    expect(g.resumed()).toBe(70);
    expect(g.pausedMs).toBe(70);
    expect(g.pauses).toBe(1);
    // A fresh period: 29 ms pass, the 30th does not.
    c.advance(29);
    expect(g.due()).toBe(-1);
    c.advance(1);
    expect(g.due()).toBe(70);
  });

  it('a resume later than the period end starts the period it falls in, and carries no more than one quota of debt', () => {
    const { g, c } = fake(20);
    c.advance(250); // one long stretch (a blocking call): 50 ms of it fall in the period that started at 1200
    expect(g.due()).toBe(50); // the rest of that period
    c.advance(150); // resumed late, at the start of the period after next (1400)
    expect(g.resumed()).toBe(150);
    c.advance(1);
    // 50 ms used in the period of 1200, 30 over its quota: carried, but at most one quota (20).
    expect(g.due()).toBe(99);
    c.advance(99);
    expect(g.resumed()).toBe(99);
    // The debt is paid: 1 ms over carried, so 19 ms run in this period and the 20th is due.
    c.advance(18);
    expect(g.due()).toBe(-1);
    c.advance(1);
    expect(g.due()).toBe(81); // at 1519: the rest of the period that started at 1500
    expect(g.pauses).toBe(2);
    expect(g.pausedMs).toBe(249);
  });

  it('a checkpoint that is not due does not count as a pause, and periods that ran under quota carry nothing', () => {
    const { g, c } = fake(50);
    c.advance(40);
    expect(g.due()).toBe(-1);
    c.advance(80); // the period ended at 1100 while the partition ran under its quota
    expect(g.due()).toBe(-1); // only the 20 ms inside the period that started at 1100 count
    c.advance(29);
    expect(g.due()).toBe(-1);
    c.advance(1);
    expect(g.due()).toBe(50);
    expect(g.pauses).toBe(0);
    expect(g.runningMs).toBe(150);
  });

  it('a period that ends exactly at a checkpoint, under its quota, carries nothing', () => {
    const { g, c } = fake(50);
    c.advance(40);
    expect(g.due()).toBe(-1);
    c.advance(60); // at 1100, the end of the first period: 100 ms ran, 40 of them before
    expect(g.due()).toBe(-1);
    c.advance(49);
    expect(g.due()).toBe(-1);
    c.advance(1);
    expect(g.due()).toBe(50);
  });

  it('time spent idle before resume() is not running time', () => {
    const { g, c } = fake(10);
    c.advance(5);
    expect(g.due()).toBe(-1);
    c.advance(500);
    g.resume();
    c.advance(4);
    expect(g.due()).toBe(-1);
    expect(g.runningMs).toBe(9);
  });
});
