import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONTROL_SLOT, DOORBELL_SLOTS, Doorbell } from '../../host/channel/doorbell.ts';

function taken(bell: Doorbell): number[] {
  const slots: number[] = [];
  bell.take((slot) => slots.push(slot));
  return slots.sort((a, b) => a - b);
}

describe('a shared worker’s doorbell', () => {
  it('reports every rung slot once per take, at any slot from the control slot to the last, and nothing twice (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: CONTROL_SLOT, max: DOORBELL_SLOTS - 1 }), { maxLength: 200 }), fc.array(fc.integer({ min: 0, max: DOORBELL_SLOTS - 1 }), { maxLength: 50 }), (first, second) => {
        const bell = new Doorbell(Doorbell.allocate());
        const seq = bell.seq;
        for (const s of first) bell.ring(s);
        expect(bell.seq).toBe(seq + first.length);
        expect(taken(bell)).toEqual([...new Set(first)].sort((a, b) => a - b));
        expect(taken(bell)).toEqual([]);
        for (const s of second) bell.ring(s);
        expect(taken(bell)).toEqual([...new Set(second)].sort((a, b) => a - b));
      }),
    );
  });

  it('a slot rung while a take is under way is reported by that take or the next, never lost', () => {
    const bell = new Doorbell(Doorbell.allocate());
    bell.ring(5);
    bell.ring(40_000 % DOORBELL_SLOTS);
    const seen: number[] = [];
    // The callback rings other slots (as the root may while the worker takes): in other summary words and in the same word.
    bell.take((slot) => {
      seen.push(slot);
      if (slot === 5) {
        bell.ring(6);
        bell.ring(DOORBELL_SLOTS - 1);
      }
    });
    seen.push(...taken(bell));
    expect(seen.sort((a, b) => a - b)).toEqual([5, 6, 40_000 % DOORBELL_SLOTS, DOORBELL_SLOTS - 1].sort((a, b) => a - b));
  });

  it('a wait returns at once when the counter has moved, and after its timeout otherwise; the sleeper count is restored either way', () => {
    const bell = new Doorbell(Doorbell.allocate());
    const words = new Int32Array(bell.sab);
    const seq = bell.seq;
    bell.ring(1);
    bell.wait(seq, 10_000); // the counter moved: no sleep
    bell.wait(bell.seq, 1); // times out
    expect(words[2]).toBe(0);
  });
});
