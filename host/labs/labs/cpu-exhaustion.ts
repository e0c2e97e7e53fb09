import type { Hypervisor } from '../../hypervisor.ts';
import type { LabContext } from '../context.ts';
import type { LabDefinition } from '../lab.ts';

/** The neighbour's workload: a heap sort and a hash, a few hundred ms of work on a quiet core. */
const WORK_ARGS = ['200000', '6'];
const SPINNERS = 2;
const CAP_PERCENT = 20;
const FUEL = 20_000_000;

/**
 * Runs `work` alone, then next to spinning neighbours (capped at `capPercent`), and reports both
 * run times and how much each neighbour ran and was paused. A cap of 100% never pauses anyone:
 * it is used for the uncapped case so the dashboard measures every partition with the same clock.
 */
async function noisyNeighbours(ctx: LabContext, hv: Hypervisor, capPercent: number): Promise<{ alone: number; crowded: number; paused: number[] }> {
  const metered = { cpu: { maxPercent: 100 }, timeoutMs: 60_000 };
  ctx.step(`The neighbour runs its workload alone (sort and hash ${WORK_ARGS[0]} numbers ${WORK_ARGS[1]} times)`);
  const solo = await ctx.create(hv, { name: 'neighbour-alone', module: ctx.guest('work'), args: WORK_ARGS, devices: { console: true }, limits: metered });
  const alone = (await ctx.run(solo)).runTimeMs;
  ctx.evidence('alone', `${alone.toFixed(0)} ms`);
  ctx.step(capPercent < 100 ? `Now ${SPINNERS} spinning partitions start beside it, each capped at ${capPercent}% of a core` : `Now ${SPINNERS} spinning partitions start beside it, without caps`);
  const spinners = [];
  for (let i = 1; i <= SPINNERS; i++) {
    const s = await ctx.create(hv, { name: `spinner-${i}`, module: ctx.guest('attack-spin'), devices: { console: true }, limits: { cpu: { maxPercent: capPercent }, timeoutMs: 60_000 } });
    await s.start();
    spinners.push(s);
  }
  await ctx.sleep(200);
  const crowdedP = await ctx.create(hv, { name: 'neighbour', module: ctx.guest('work'), args: WORK_ARGS, devices: { console: true }, limits: metered });
  const crowded = (await ctx.run(crowdedP)).runTimeMs;
  const paused: number[] = [];
  for (const s of spinners) {
    const m = s.metrics().cpu;
    paused.push(m.pausedMs);
    const share = m.timeMs + m.pausedMs > 0 ? (100 * m.timeMs) / (m.timeMs + m.pausedMs) : 0;
    ctx.evidence(s.name, `ran ${m.timeMs.toFixed(0)} ms, paused ${m.pausedMs.toFixed(0)} ms by its cap (${m.pauses} pauses): ${share.toFixed(0)}% of its time`);
    await s.stop();
  }
  ctx.evidence('beside the spinners', `${crowded.toFixed(0)} ms: ${(crowded / alone).toFixed(2)}x its time alone`);
  return { alone, crowded, paused };
}

export const cpuExhaustion: LabDefinition = {
  id: 'cpu-exhaustion',
  title: 'CPU exhaustion',
  order: 5,
  minutes: 15,
  goal: 'availability',
  concept: [
    'A guest that computes forever must not take the host, or its neighbours, with it. Wasmvisor meters a partition\'s work deterministically with fuel (the module is instrumented to count what it does; a budget that runs out ends the run with ERR_LIMIT_CPU at the same instruction every time), caps its share of a core (over its share it is paused until the next period, not killed), and keeps a wall-clock watchdog behind both.',
    'Denial of service by CPU is the everyday attack on shared hosts: a crypto miner in a plugin, a regular expression that backtracks for minutes, a parser fed a quadratic input, or simply an infinite loop. On a shared machine the "noisy neighbour" slows every other tenant even when it does nothing malicious.',
    'First a spinning guest is given a fuel budget: it ends with ERR_LIMIT_CPU after exactly that much work. Then a neighbour runs a sorting workload alone, and again beside two spinning partitions capped at 20% of a core each: the spinners are paused most of the time and the neighbour keeps most of its speed. Watch the CPU share plot while it runs.',
  ],
  feature: 'fuel-and-caps',
  guests: ['attack-spin', 'work'],
  expect: {
    code: 'ERR_LIMIT_CPU',
    audit: { action: 'partition.exit', outcome: 'failure', code: 'ERR_LIMIT_CPU' },
  },
  async run(ctx) {
    const hv = ctx.hypervisor();
    ctx.step(`A spinner with a fuel budget of ${FUEL.toLocaleString('en')} units`);
    const spin = await ctx.create(hv, { name: 'fuelled-spinner', module: ctx.guest('attack-spin'), devices: { console: true }, limits: { fuel: FUEL, timeoutMs: 30_000 } });
    const exit = await ctx.run(spin);
    const fuel = exit.metrics.fuel;
    ctx.evidence('fuel', fuel ? `${fuel.consumed.toLocaleString('en')} of ${fuel.budget.toLocaleString('en')} units used` : 'not metered');
    if (exit.reason !== 'ERR_LIMIT_CPU') ctx.problem(`the fuelled spinner ended with ${exit.reason}, not ERR_LIMIT_CPU`);
    const r = await noisyNeighbours(ctx, hv, CAP_PERCENT);
    if (r.paused.some((p) => p === 0)) ctx.problem('a capped spinner was never paused');
  },
  defenceOff: {
    title: 'The same neighbours without caps',
    text: 'The same workload beside the same two spinners, with no cap. (They get a cap of 100%, which never pauses anyone, only so that the dashboard can show their share with the same clock.) The spinners are stopped by the lab as soon as the workload ends.',
    async run(ctx) {
      const hv = ctx.hypervisor();
      const r = await noisyNeighbours(ctx, hv, 100);
      if (r.paused.every((p) => p === 0)) ctx.breach(`the spinners were never paused: they took every cycle they could, and the workload took ${(r.crowded / r.alone).toFixed(2)}x its time alone`);
      else ctx.problem('an uncapped spinner was paused');
    },
  },
};
