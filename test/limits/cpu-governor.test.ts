import { describe, expect, it } from 'vitest';
import { CpuGovernor } from '../../host/limits/cpu-governor.ts';

/** A governor on a fake clock: `run(ms)` is guest work between checkpoints; sleeping advances the clock. */
function fake(maxPercent: number, periodMs = 100) {
  let t = 1000;
  const sleeps: number[] = [];
  const g = new CpuGovernor({
    maxPercent,
    periodMs,
    now: () => t,
    sleep: (ms) => {
      sleeps.push(ms);
      t += ms;
    },
  });
  return {
    g,
    sleeps,
    now: () => t,
    idle(ms: number) {
      t += ms;
    },
    /** Runs `total` ms of guest work in checkpoints of `step` ms. */
    run(total: number, step: number) {
      for (let done = 0; done < total; done += step) {
        t += step;
        g.checkpoint();
      }
    },
  };
}

describe('CpuGovernor', () => {
  it.each([1, 10, 25, 50, 75])('keeps a busy partition at %i%% of the time', (pct) => {
    const f = fake(pct);
    const start = f.now();
    f.run(2000, 0.5);
    const elapsed = f.now() - start;
    expect(f.g.runningMs).toBe(2000);
    expect(f.g.runningMs / elapsed).toBeCloseTo(pct / 100, 2);
    expect(f.g.pausedMs).toBeCloseTo(elapsed - 2000, 6);
    // Every pause ends at a period boundary.
    for (const ms of f.sleeps) expect(ms).toBeLessThanOrEqual(100);
  });

  it('pauses exactly when the quota is used, until the end of the period', () => {
    const f = fake(25);
    f.run(24, 1);
    expect(f.g.pauses).toBe(0);
    f.run(1, 1); // 25 ms used: the quota of a 100 ms period at 25%
    expect(f.g.pauses).toBe(1);
    expect(f.sleeps).toEqual([75]);
    expect(f.now()).toBe(1100);
  });

  it('never pauses at 100%', () => {
    const f = fake(100, 10);
    f.run(1000, 0.7);
    expect(f.g.pauses).toBe(0);
    expect(f.g.pausedMs).toBe(0);
  });

  it('carries a late checkpoint\'s overshoot into the next period, at most one quota', () => {
    const f = fake(50);
    f.run(60, 60); // one slice of 60 ms: 10 ms over the 50 ms quota
    expect(f.sleeps).toEqual([40]);
    f.run(40, 40); // 10 ms of debt + 40 ms: the next quota is used at 40 ms
    expect(f.sleeps).toEqual([40, 60]);
    // A very long stretch without checkpoints (a blocking call) costs at most one more pause.
    f.run(1000, 1000);
    expect(f.sleeps.length).toBeLessThanOrEqual(3);
    for (const ms of f.sleeps) expect(ms).toBeLessThanOrEqual(100);
  });

  it('does not count idle time: resume() restarts the running clock', () => {
    const f = fake(10);
    f.run(5, 1);
    // Idle for a while (a reactor between calls: the clock moves, no checkpoint), then work again.
    f.idle(10_000);
    f.g.resume();
    f.run(5, 1);
    expect(f.g.runningMs).toBe(10);
  });
});
