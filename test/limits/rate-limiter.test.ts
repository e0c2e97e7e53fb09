import { describe, expect, it } from 'vitest';
import { RateLimiter, resolveRateLimit } from '../../host/limits/rate-limiter.ts';
import { check } from '../../host/schema/check.ts';
import { rateLimitSchema } from '../../host/schema/limits.ts';

function clocked(spec: Parameters<typeof resolveRateLimit>[0]) {
  let t = 0;
  const sleeps: number[] = [];
  const limiter = new RateLimiter(resolveRateLimit(spec, 'rateLimit')!, {
    now: () => t,
    sleep: (ms) => {
      sleeps.push(ms);
      t += ms;
    },
  });
  return { limiter, sleeps, advance: (ms: number) => (t += ms), now: () => t };
}

describe('RateLimiter', () => {
  it('reject mode: refuses over the ops limit, takes nothing, counts it, and recovers with the refill', () => {
    const { limiter, advance } = clocked({ opsPerSecond: 10, burstOps: 2 });
    expect(limiter.admit(0)).toBe('ok');
    expect(limiter.admit(0)).toBe('ok');
    expect(limiter.admit(0)).toBe('limited');
    expect(limiter.throttled).toBe(1);
    advance(99);
    expect(limiter.admit(0)).toBe('limited'); // 0.99 of a token
    advance(1);
    expect(limiter.admit(0)).toBe('ok'); // exactly one token after 100 ms at 10/s
    expect(limiter.throttled).toBe(2);
    expect(limiter.waitedMs).toBe(0);
  });

  it('reject mode on bytes: a write that does not fit takes no ops token either', () => {
    const { limiter } = clocked({ bytesPerSecond: 1000, burstBytes: 100, opsPerSecond: 1000, burstOps: 2 });
    expect(limiter.admit(100)).toBe('ok');
    expect(limiter.admit(1)).toBe('limited');
    expect(limiter.admit(0)).toBe('ok'); // the ops token refused above was not spent
  });

  it('block mode: waits exactly for the refill, counts the request and the time', () => {
    const { limiter, sleeps, now } = clocked({ bytesPerSecond: 1000, burstBytes: 500, mode: 'block' });
    expect(limiter.admit(500)).toBe('ok');
    expect(limiter.admit(250)).toBe('ok');
    expect(sleeps).toEqual([250]);
    expect(now()).toBe(250);
    expect(limiter.throttled).toBe(1);
    expect(limiter.waitedMs).toBe(250);
  });

  it('a request larger than the bucket can ever hold is refused in both modes', () => {
    for (const mode of ['reject', 'block'] as const) {
      const { limiter, sleeps } = clocked({ bytesPerSecond: 100, burstBytes: 100, mode });
      expect(limiter.admit(101)).toBe('limited');
      expect(sleeps).toEqual([]);
    }
  });

  it('the one-time burst is spent first and never refills', () => {
    const { limiter, advance } = clocked({ opsPerSecond: 1, burstOps: 1, oneTimeBurstOps: 3 });
    for (let i = 0; i < 4; i++) expect(limiter.admit(0)).toBe('ok');
    expect(limiter.admit(0)).toBe('limited');
    advance(10_000);
    expect(limiter.admit(0)).toBe('ok');
    expect(limiter.admit(0)).toBe('limited');
  });

  it('wouldAdmit peeks without taking or counting', () => {
    const { limiter } = clocked({ bytesPerSecond: 100, burstBytes: 100, opsPerSecond: 10, burstOps: 1 });
    expect(limiter.wouldAdmit(100)).toBe(true);
    expect(limiter.wouldAdmit(101)).toBe(false);
    expect(limiter.admit(100)).toBe('ok');
    expect(limiter.wouldAdmit(0)).toBe(false); // the one ops token is spent
    expect(limiter.throttled).toBe(0);
  });

  it('a limit on operations alone admits and takes any size, and its waits name only operations', () => {
    const { limiter, advance } = clocked({ opsPerSecond: 10, burstOps: 1 });
    expect(limiter.waitTimeMs(1 << 20)).toBe(0);
    expect(limiter.tryTake(1 << 20)).toBe(true);
    expect(limiter.tryTake(1)).toBe(false);
    expect(limiter.waitTimeMs(1 << 20)).toBeCloseTo(100, 9);
    advance(100);
    expect(limiter.tryTake(5)).toBe(true);
  });

  it('without a clock of its own it reads the real one', () => {
    // One operation per 1000 s: what refills while the test runs is far less than one.
    const limiter = new RateLimiter({ ops: { perSecond: 0.001, burst: 1, oneTimeBurst: 0 }, bytes: null, mode: 'reject' });
    expect(limiter.wouldAdmit(0)).toBe(true);
    expect(limiter.admit(0)).toBe('ok');
    expect(limiter.admit(0)).toBe('limited');
    expect(limiter.waitTimeMs(0)).toBeGreaterThan(900_000);
  });

  it('validates its spec', () => {
    expect(resolveRateLimit(undefined, 'x')).toBeNull();
    expect(resolveRateLimit({}, 'x')).toEqual({ bytes: null, ops: null, mode: 'reject' });
    // Types and ranges are the schema's, a burst without its rate the resolver's: createPartition runs both.
    const resolve = (spec: unknown) => resolveRateLimit(check(rateLimitSchema(64), spec, 'x'), 'x', 64);
    for (const bad of [{ bytesPerSecond: 0 }, { opsPerSecond: -1 }, { mode: 'drop' }, { burstBytes: 100 }, { oneTimeBurstOps: 1 }, { rate: 1 }, { bytesPerSecond: 100, burstBytes: 63 }]) {
      expect(() => resolve(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
    expect(() => resolve({ burstBytes: 100 })).toThrow('x.burstBytes: needs x.bytesPerSecond');
    expect(() => resolve({ rate: 1 })).toThrow('x: rate: unknown key');
    expect(resolve({ bytesPerSecond: 100, burstBytes: 64 })).toMatchObject({ bytes: { burst: 64 } });
  });
});
