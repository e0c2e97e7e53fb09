import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../host/limits/token-bucket.ts';

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('TokenBucket', () => {
  it('spends up to capacity at once, then refuses', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 10, refillTimeMs: 1000, now: c.now });
    for (let i = 0; i < 10; i++) expect(b.reduce(1)).toBe('ok');
    expect(b.reduce(1)).toBe('denied');
  });

  it('refills linearly and never above capacity', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 10, refillTimeMs: 1000, now: c.now });
    expect(b.reduce(10)).toBe('ok');
    c.advance(100);
    expect(b.available()).toBeCloseTo(1, 9);
    expect(b.reduce(2)).toBe('denied'); // nothing taken on refusal
    expect(b.reduce(1)).toBe('ok');
    c.advance(1_000_000);
    expect(b.available()).toBe(10);
  });

  it('spends the one-time burst first, and it never comes back', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 2, refillTimeMs: 1000, oneTimeBurst: 3, now: c.now });
    expect(b.reduce(5)).toBe('ok');
    expect(b.reduce(1)).toBe('denied');
    c.advance(10_000);
    expect(b.available()).toBe(2);
  });

  it('reports the wait for tokens, and Infinity for more than it can ever hold', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 4, refillTimeMs: 400, now: c.now });
    b.reduce(4);
    expect(b.waitTimeMs(2)).toBeCloseTo(200, 9);
    expect(b.waitTimeMs(5)).toBe(Infinity);
  });

  it('ignores a clock that goes backwards', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 4, refillTimeMs: 400, now: c.now });
    b.reduce(4);
    c.advance(-1000);
    expect(b.available()).toBe(0);
  });

  it('a request smaller than the burst takes from the burst alone and leaves the rest of it', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 4, refillTimeMs: 400, oneTimeBurst: 10, now: c.now });
    expect(b.reduce(3)).toBe('ok');
    expect(b.available()).toBe(11); // 7 of the burst + the full bucket
    c.advance(1); // a refill (of a full bucket) keeps the burst apart from the bucket
    expect(b.available()).toBe(11);
    expect(b.reduce(7)).toBe('ok'); // exactly what is left of the burst
    expect(b.available()).toBe(4);
  });

  it('waits 0 while enough is there, and a burst counts towards what can ever be taken', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 4, refillTimeMs: 400, oneTimeBurst: 2, now: c.now });
    expect(b.waitTimeMs(1)).toBe(0); // plenty: never a negative wait
    expect(b.waitTimeMs(6)).toBe(0);
    expect(b.reduce(5)).toBe('ok'); // the burst (2) and 3 tokens: 1 token left
    // 4 tokens: 3 missing, each 100 ms away; the spent burst does not make 4 more than it can hold.
    expect(b.waitTimeMs(4)).toBeCloseTo(300, 9);
    expect(b.waitTimeMs(5)).toBe(Infinity);
  });

  it('a burst left over counts towards what can ever be taken', () => {
    // Shared state (tokens, burst, last) another user left with an empty bucket and 2 of the burst.
    const c = clock();
    const b = new TokenBucket({ capacity: 4, refillTimeMs: 400, state: new Float64Array([0, 2, 0]), attach: true, now: c.now });
    expect(b.available()).toBe(2);
    expect(b.waitTimeMs(4)).toBeCloseTo(200, 9);
    expect(b.waitTimeMs(6)).toBeCloseTo(400, 9); // 2 from the burst + a full bucket
    expect(b.waitTimeMs(7)).toBe(Infinity);
  });

  it('a bucket told to attach to no state starts full', () => {
    const c = clock();
    const b = new TokenBucket({ capacity: 4, refillTimeMs: 400, attach: true, now: c.now });
    expect(b.available()).toBe(4);
  });

  it('without a clock of its own it reads the real one', () => {
    // A refill time far beyond the test's length: what it refills while the test runs is < 1 token.
    const b = new TokenBucket({ capacity: 10, refillTimeMs: 1e12 });
    expect(b.available()).toBe(10);
    expect(b.reduce(10)).toBe('ok');
    const left = b.available();
    expect(Number.isFinite(left) && left >= 0 && left < 1).toBe(true);
  });

  it('rejects nonsense sizes', () => {
    expect(() => new TokenBucket({ capacity: 0, refillTimeMs: 1 })).toThrow(RangeError);
    expect(() => new TokenBucket({ capacity: 1, refillTimeMs: Number.NaN })).toThrow(RangeError);
  });
});
