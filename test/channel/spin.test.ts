/**
 * Adaptive spinning (host/channel/spin.ts): a waiter spins only while recent waits say a spin
 * usually sees the news, stops when many of them would have run out, and starts again by itself
 * once waits are short again; the budget never lets more spinners in than it has places.
 */
import { describe, expect, it } from 'vitest';
import { RecentWait, SpinBudget, spinUntil } from '../../host/channel/spin.ts';

describe('RecentWait', () => {
  it('does not spin before its first wait, spins while waits are short, stops when too many run past the window even if the average is under it, resumes when they are short again', () => {
    const r = new RecentWait();
    expect(r.within(50)).toBe(false);
    r.add(10);
    expect(r.within(50)).toBe(true);
    for (let i = 0; i < 20; i++) r.add(10);
    expect(r.within(50)).toBe(true);
    // Half the waits just past the window, half far under it: the average (~30 µs) is under 50,
    // but a spin would run out half the time.
    for (let i = 0; i < 40; i++) r.add(i % 2 === 0 ? 55 : 5);
    expect(r.value).toBeLessThan(50);
    expect(r.within(50)).toBe(false);
    for (let i = 0; i < 20; i++) r.add(10);
    expect(r.within(50)).toBe(true);
  });

  it('does not spin when the average wait is longer than the window', () => {
    const r = new RecentWait();
    r.within(50);
    for (let i = 0; i < 20; i++) r.add(i % 8 === 0 ? 2000 : 1);
    expect(r.value).toBeGreaterThan(50);
    expect(r.within(50)).toBe(false);
  });
});

describe('spinUntil', () => {
  it('never spins without a window, when recent waits say no, or when the budget is full; returns true when the news came while spinning', () => {
    const r = new RecentWait();
    // A short wait recorded: the refusals below are the window's and the budget's, not the history's.
    r.add(10);
    expect(r.within(1000)).toBe(true);
    let polls = 0;
    const never = () => (polls++, false);
    expect(spinUntil(never, 0, r, null)).toBe(false);
    expect(polls).toBe(0);
    const full = new SpinBudget(SpinBudget.allocate(1));
    full.hold();
    expect(spinUntil(never, 1000, r, full)).toBe(false);
    expect(polls).toBe(0);
    expect(full.spinning).toBe(1);
    let n = 0;
    const budget = new SpinBudget(SpinBudget.allocate(1));
    expect(spinUntil(() => ++n === 3, 1_000_000, r, budget)).toBe(true);
    expect(budget.spinning).toBe(0);
    for (let i = 0; i < 20; i++) r.add(5000);
    expect(spinUntil(never, 1000, r, budget)).toBe(false);
    expect(polls).toBe(0);
  });
});
