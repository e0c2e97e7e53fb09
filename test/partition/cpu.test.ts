import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type PartitionExit, type PartitionLimits } from '../../host/index.ts';
import { collect, guest, runToExit, hypervisor } from '../helpers.ts';

let hv: Hypervisor;
afterEach(async () => {
  await hv?.close();
});

let serial = 0;
async function run(name: string, args: string[], limits: PartitionLimits): Promise<{ exit: PartitionExit; stdout: string[] }> {
  hv ??= hypervisor();
  // No line may be dropped by the console's rate limit: a slower (capped) run would drop fewer.
  const console = { linesPerSecond: 1_000_000 };
  const p = await hv.createPartition({ name: `${name}-${serial++}`, module: guest(name), args, limits, devices: { console } });
  const out = collect(p);
  const exit = await runToExit(p);
  await p.destroy();
  return { exit, stdout: out.stdout };
}

describe('CPU caps', () => {
  it('refuses a cap that is not a share 1..100 of a period 1..10000 ms', async () => {
    hv = hypervisor();
    const bad = [
      { maxPercent: 0 },
      { maxPercent: 101 },
      { maxPercent: 12.5 },
      { maxPercent: Number.NaN },
      {},
      { maxPercent: 50, periodMs: 0 },
      { maxPercent: 50, periodMs: 10_001 },
      { maxPercent: 50, slice: 3 },
      50,
      null,
    ];
    for (const cpu of bad) {
      await expect(hv.createPartition({ name: 'bad', module: guest('count'), limits: { cpu: cpu as never } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    }
    expect(() => hypervisor({ defaultLimits: { cpu: { maxPercent: 0 } } })).toThrow(/defaultLimits.cpu.maxPercent/);
  });

  it('a capped guest completes with the same output, paused rather than killed', async () => {
    hv = hypervisor();
    const plain = await run('work', ['20000', '20'], {});
    const capped = await run('work', ['20000', '20'], { cpu: { maxPercent: 20, periodMs: 20 } });
    expect(capped.exit).toMatchObject({ state: 'exited', code: 0 });
    expect(capped.stdout).toEqual(plain.stdout);
    const c = capped.exit.metrics.cpu;
    expect(c.fuel).toBeGreaterThan(0);
    expect(c.timeMs).toBeGreaterThan(0);
    // Long enough to be capped: it was paused, for about 80% of its run on an idle machine. The
    // run's time is wall time, which a machine busier than its cores stretches (a slice that
    // waited for a core) while the pauses it earns stay a period's rest: at a load of 17 on 2
    // cores the paused share fell to 0.88 of the run time. Half still shows the cap at work (an
    // uncapped run pauses never, below).
    if (c.timeMs > 40) {
      expect(c.pauses).toBeGreaterThan(0);
      expect(c.pausedMs).toBeGreaterThan(c.timeMs / 2);
    }
    expect(plain.exit.metrics.cpu.pauses).toBe(0);
    expect(plain.exit.metrics.cpu.fuel).toBe(0); // not metered
  });

  it('keeps a fuel budget deterministic: a capped run stops at the same point as an uncapped one', async () => {
    hv = hypervisor();
    const limits = { fuel: 3_000_000 };
    const a = await run('count', ['100000'], limits);
    const b = await run('count', ['100000'], { ...limits, cpu: { maxPercent: 30, periodMs: 10 } });
    const c = await run('count', ['100000'], { ...limits, cpu: { maxPercent: 100 } });
    expect(a.exit.reason).toBe('ERR_LIMIT_CPU');
    for (const r of [b, c]) {
      expect(r.exit).toMatchObject({ state: 'killed', reason: 'ERR_LIMIT_CPU' });
      expect(r.stdout).toEqual(a.stdout);
      expect(r.exit.metrics.fuel).toEqual({ budget: 3_000_000, consumed: 3_000_000 });
      expect(r.exit.metrics.hypercalls).toBe(a.exit.metrics.hypercalls);
      expect(r.exit.metrics.console.linesDropped).toBe(0);
    }
  });

  it('a 25%-capped spinner does about half the work of a 50%-capped one (real time, ~2.5 s)', async () => {
    hv = hypervisor();
    /** Work (fuel) done by a capped partition alone, in a 300 ms window after a 150 ms start. */
    async function work(maxPercent: number): Promise<{ fuel: number; share: number }> {
      const p = await hv.createPartition({ name: `share-${serial++}`, module: guest('work'), args: ['100000', '1000000'], limits: { cpu: { maxPercent } } });
      await p.start();
      await new Promise((r) => setTimeout(r, 150));
      const m0 = p.metrics().cpu;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 300));
      const m1 = p.metrics().cpu;
      const wall = performance.now() - t0;
      await p.destroy();
      return { fuel: m1.fuel - m0.fuel, share: (m1.timeMs - m0.timeMs) / wall };
    }
    // Alone, one after the other, interleaved: two partitions running at once on a small
    // (shared) runner slow each other down, which would measure the machine rather than the cap.
    await work(100); // warm-up: the engine's optimizing tier for this module
    // A measurement on a machine busier than its cores can be off by the other tenants' share: it
    // is taken again (up to three times) rather than the bounds widened; the cap's behaviour is
    // what the bounds check, and one clean measurement proves it.
    let failure: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const quarter = { fuel: 0, share: 0 };
      const half = { fuel: 0, share: 0 };
      for (let i = 0; i < 2; i++) {
        for (const [pct, sum] of [[25, quarter], [50, half]] as const) {
          const r = await work(pct);
          sum.fuel += r.fuel;
          sum.share += r.share / 2;
        }
      }
      try {
        const ratio = half.fuel / quarter.fuel;
        expect(ratio).toBeGreaterThan(1.5);
        expect(ratio).toBeLessThan(2.7);
        // The cap's own clock: at most the share (a checkpoint can be up to one slice late).
        expect(quarter.share).toBeGreaterThan(0.1);
        expect(quarter.share).toBeLessThan(0.32);
        expect(half.share).toBeGreaterThan(0.25);
        expect(half.share).toBeLessThan(0.6);
        return;
      } catch (error) {
        failure = error;
      }
    }
    throw failure;
  }, 60_000);

  it('stop() ends a paused partition at once', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'paused', module: guest('attack-spin'), limits: { cpu: { maxPercent: 1, periodMs: 10_000 } } });
    await p.start();
    await new Promise((r) => setTimeout(r, 300)); // its 100 ms quota is used: paused for ~9.9 s
    const t0 = performance.now();
    const exit = await p.stop();
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_KILLED' });
  });
});
