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

  it('rejects nonsense sizes', () => {
    expect(() => new TokenBucket({ capacity: 0, refillTimeMs: 1 })).toThrow(RangeError);
    expect(() => new TokenBucket({ capacity: 1, refillTimeMs: Number.NaN })).toThrow(RangeError);
  });
});
