/**
 * The one timer behind every run's and call's budget (host/partition/watchdogs.ts): a watchdog
 * fires once its deadline passed and never before, disarming stops it, re-arming moves it, and
 * many armings cost one timer. Bounds are generous: only "not before" is exact.
 */
import { describe, expect, it } from 'vitest';
import { Watchdog, armedWatchdogs } from '../../host/partition/watchdogs.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function fired(): { w: Watchdog; at: number[]; wait: () => Promise<number> } {
  const at: number[] = [];
  let wake: ((t: number) => void) | null = null;
  const w = new Watchdog(() => {
    const t = performance.now();
    at.push(t);
    wake?.(t);
  });
  return { w, at, wait: () => new Promise<number>((resolve) => (wake = resolve)) };
}

describe('watchdogs on one timer', () => {
  it('fires once its deadline passed, never before, and once only', async () => {
    const a = fired();
    const t0 = performance.now();
    a.w.arm(30);
    expect(a.w.armed).toBe(true);
    const t = await a.wait();
    expect(t - t0).toBeGreaterThanOrEqual(30);
    expect(a.w.armed).toBe(false);
    await sleep(40);
    expect(a.at).toHaveLength(1);
    expect(armedWatchdogs()).toBe(0);
  });

  it('a disarmed watchdog never fires; re-arming moves the deadline later or earlier', async () => {
    const a = fired();
    const b = fired();
    const c = fired();
    a.w.arm(20);
    a.w.disarm();
    const t0 = performance.now();
    b.w.arm(10);
    b.w.arm(60); // later: the timer set for 10 ms finds nothing due and waits again
    c.w.arm(500);
    c.w.arm(25); // earlier: the timer moves
    const tc = await c.wait();
    expect(tc - t0).toBeGreaterThanOrEqual(25);
    expect(b.at).toHaveLength(0);
    const tb = await b.wait();
    expect(tb - t0).toBeGreaterThanOrEqual(60);
    await sleep(30);
    expect(a.at).toHaveLength(0);
    expect(armedWatchdogs()).toBe(0);
  });

  it('many watchdogs: each fires after its own deadline, in any order of arming; a handler may arm another', async () => {
    const n = 50;
    const ws = Array.from({ length: n }, () => fired());
    const t0 = performance.now();
    const deadlines = ws.map((_, i) => 5 + ((i * 37) % 60));
    ws.forEach((x, i) => x.w.arm(deadlines[i]!));
    // One of them re-arms itself once from its handler.
    let again = 0;
    const chained = new Watchdog(() => {
      if (again++ === 0) chained.arm(10);
    });
    chained.arm(15);
    await sleep(200);
    ws.forEach((x, i) => {
      expect(x.at).toHaveLength(1);
      expect(x.at[0]! - t0).toBeGreaterThanOrEqual(deadlines[i]!);
    });
    expect(again).toBe(2);
    expect(armedWatchdogs()).toBe(0);
  });

  it('Infinity (or NaN) arms nothing and disarms what was armed', () => {
    const a = fired();
    a.w.arm(1000);
    expect(armedWatchdogs()).toBe(1);
    a.w.arm(Infinity);
    expect(a.w.armed).toBe(false);
    a.w.arm(Number.NaN);
    expect(armedWatchdogs()).toBe(0);
  });
});
