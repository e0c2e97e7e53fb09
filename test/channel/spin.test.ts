/**
 * Adaptive spinning (host/channel/spin.ts): a waiter spins only while recent waits say a spin
 * usually sees the news, stops when many of them would have run out, and starts again by itself
 * once waits are short again; the budget never lets more spinners in than it has places.
 */
import { describe, expect, it } from 'vitest';
import { PollOutruns, RecentWait, SpinBudget, SpinChoice, spinFor, spinUntil } from '../../host/channel/spin.ts';

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

describe('PollOutruns', () => {
  it('polls while most recent polls saw the news, then one wait in 8 once most ran out, and every time again once an answered poll brings the share down', () => {
    // A quarter of polls running out (a reactor called now and then) never stops the polling.
    const quick = new PollOutruns();
    for (let i = 0; i < 64; i++) {
      expect(quick.pays()).toBe(true);
      quick.record(i % 4 === 0);
    }
    // Calls that take longer than the window: every poll runs out. The 11th brings the share to
    // 1 - (7/8)^11 = 0.77, past 0.75 (the 10th: 0.74).
    const slow = new PollOutruns();
    let polled = 0;
    while (polled < 100 && slow.pays()) {
      polled++;
      slow.record(true);
    }
    expect(polled).toBe(11);
    const next = Array.from({ length: 16 }, () => slow.pays());
    expect(next.filter(Boolean)).toHaveLength(2);
    expect(next[6]).toBe(true);
    expect(next[14]).toBe(true);
    // The calls became quick: one answered probe takes the share to 0.67.
    slow.record(false);
    expect(slow.share).toBeLessThan(0.75);
    for (let i = 0; i < 8; i++) expect(slow.pays()).toBe(true);
  });
});

describe('SpinChoice', () => {
  it('spins at first, keeps to the choice whose recent waits were shorter, and tries the other one time in 8', () => {
    const c = new SpinChoice();
    expect(c.choose()).toBe(true);
    // Spun waits took 100 µs, slept ones 40: sleep, but spin one time in 8.
    for (let i = 0; i < 15; i++) {
      c.record(true, 100);
      c.record(false, 40);
    }
    const picks = Array.from({ length: 64 }, () => c.choose());
    expect(picks.filter((p) => p).length).toBe(8);
    // Conditions change: spun waits now 20 µs. Once most recent tries say so, spinning takes over.
    for (let i = 0; i < 8; i++) c.record(true, 20);
    const after = Array.from({ length: 64 }, () => c.choose());
    expect(after.filter((p) => !p).length).toBe(8);
  });

  it('is not swayed by a few very long waits (the median decides)', () => {
    const c = new SpinChoice();
    for (let i = 0; i < 15; i++) {
      c.record(true, 30);
      c.record(false, 60);
    }
    for (let i = 0; i < 5; i++) c.record(true, 5000);
    expect(c.recent(true)).toBe(30);
    expect(Array.from({ length: 8 }, () => c.choose()).filter((p) => p).length).toBe(7);
  });

  it("decides a RecentWait's waits until it has one of its own, and learns only each waiter's first wait", () => {
    const c = new SpinChoice();
    for (let i = 0; i < 15; i++) {
      c.record(true, 100);
      c.record(false, 30);
    }
    const waiters = Array.from({ length: 9 }, () => new RecentWait(c));
    // Sleep (30 < 100), except the eighth ask: a try.
    expect(waiters.map((w) => w.within(50))).toEqual([false, false, false, false, false, false, false, true, false]);
    for (const w of waiters) for (let i = 0; i < 8; i++) w.add(35);
    // Eight first waits went to "slept" (8 of its last 15 are 35 now), one to "spun" (1 of 15):
    // had every wait been learned, the try's eight would have moved the spun median to 35.
    expect({ spun: c.recent(true), slept: c.recent(false) }).toEqual({ spun: 100, slept: 35 });
    // From its first wait on, a waiter's own waits decide.
    expect(waiters[0]!.within(50)).toBe(true);
    // Without a choice, a waiter with no wait yet does not spin.
    expect(new RecentWait().within(50)).toBe(false);
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
    // spinFor: the budget's refusal, a poll that sees the news, one that runs out (its place given back each time).
    expect(spinFor(never, 1000, full)).toBe(false);
    expect(polls).toBe(0);
    n = 0;
    expect(spinFor(() => ++n === 2, 1_000_000, budget)).toBe(true);
    expect(spinFor(never, 200, budget)).toBe(false);
    expect(polls).toBeGreaterThan(0);
    expect(budget.spinning).toBe(0);
  });
});
