import type { Hypervisor } from '../../hypervisor.ts';
import type { Partition } from '../../partition/partition.ts';
import type { LabContext } from '../context.ts';
import type { LabDefinition } from '../lab.ts';

const LIMIT = 100;
/** The flooder's fuel: about 16 000 writes' worth of work, then it ends with ERR_LIMIT_CPU wherever it is. */
const FUEL = 600_000_000;
const NEIGHBOUR_LINES = 500;

/** Floods the console from one partition while a neighbour prints its lines; reports both. */
async function flood(ctx: LabContext, hv: Hypervisor, limited: boolean): Promise<{ written: number; refused: number; seconds: number }> {
  ctx.step(limited ? `The flooder writes to its console as fast as it can; its console is limited to ${LIMIT} writes per second (reject mode)` : 'The flooder writes to its console as fast as it can, with no rate limit');
  const flooder: Partition = await ctx.create(hv, {
    name: 'flooder',
    module: ctx.guest('attack-flood'),
    devices: { console: limited ? { rateLimit: { opsPerSecond: LIMIT, burstOps: LIMIT, mode: 'reject' } } : true },
    limits: { fuel: FUEL, timeoutMs: 60_000 },
  }, { showLines: 2 });
  await flooder.start();
  ctx.step(`Meanwhile a neighbour prints ${NEIGHBOUR_LINES} lines`);
  const neighbour = await ctx.create(hv, { name: 'neighbour', module: ctx.guest('count'), args: [String(NEIGHBOUR_LINES)], devices: { console: true } }, { showLines: 3 });
  let got = 0;
  neighbour.on('console', () => got++);
  await ctx.run(neighbour);
  ctx.evidence('neighbour', `${got - 1} of ${NEIGHBOUR_LINES} lines delivered while the flood went on`);
  if (got - 1 !== NEIGHBOUR_LINES) ctx.problem('the neighbour lost lines to the flood');
  ctx.step(`The flooder never stops by itself: its fuel budget (${FUEL.toLocaleString('en')} units of work) ends it`);
  const exit = await ctx.ended(flooder);
  const m = exit.metrics;
  const seconds = exit.runTimeMs / 1000;
  const written = m.console.linesOut + m.console.linesDropped;
  const refused = m.throttled.console.calls;
  ctx.evidence('flooder', `${Math.round(written / seconds).toLocaleString('en')} writes/s accepted, ${Math.round(refused / seconds).toLocaleString('en')} writes/s refused; ${m.console.linesDropped.toLocaleString('en')} lines dropped by the console's own bound`);
  return { written, refused, seconds };
}

export const ioFlooding: LabDefinition = {
  id: 'io-flooding',
  title: 'I/O flooding and rate limits',
  order: 7,
  minutes: 10,
  goal: 'availability',
  concept: [
    'Every device a guest can reach is a queue in the host, and every queue can be flooded. Wasmvisor puts a token bucket on each device (bytes and operations, Firecracker\'s shape) and on a partition\'s hypercalls as a whole: over the limit a call returns HV_STATUS_RATE_LIMITED having done nothing (reject mode) or waits in the partition\'s own worker (block mode). Every queue between a partition and the root has a fixed size, so a flood fills its own queue and nobody else\'s.',
    'Log flooding hides an attack in noise and fills disks; a guest hammering a shared disk or network starves its neighbours\' I/O; an unbounded queue in the host turns a fast guest into host memory exhaustion. Rate limits per tenant are how clouds keep one tenant\'s burst from becoming everyone\'s outage.',
    `The flooder prints a long line in a loop, forever, ignoring every refusal. Its console is limited to ${LIMIT} writes per second: the rest are refused with HV_STATUS_RATE_LIMITED and counted. Beside it a neighbour prints ${NEIGHBOUR_LINES} lines, and every one arrives. Watch the I/O plot: the flooder's accepted rate sits on its limit.`,
  ],
  feature: 'rate-limits',
  guests: ['attack-flood', 'count'],
  expect: {
    code: 'HV_STATUS_RATE_LIMITED',
    audit: { action: 'partition.exit', outcome: 'failure', code: 'ERR_LIMIT_CPU' },
  },
  async run(ctx) {
    const hv = ctx.hypervisor();
    const r = await flood(ctx, hv, true);
    if (r.refused > 0) ctx.code('HV_STATUS_RATE_LIMITED', `${r.refused.toLocaleString('en')} console writes refused by the rate limit (metrics.throttled.console)`, 'console device of flooder');
    // The bucket starts full (a burst of LIMIT), then refills at LIMIT per second.
    if (r.written > LIMIT + LIMIT * r.seconds * 1.1 + 1) ctx.problem(`the flooder wrote ${Math.round(r.written / r.seconds)} times a second, over its limit of ${LIMIT} (with a burst of ${LIMIT})`);
  },
  defenceOff: {
    title: 'The same flood without a rate limit',
    text: 'The same flooder with no rate limit on its console. What still bounds it is the console\'s fixed line buffer (at most 1000 lines a second reach the host; the rest are dropped and counted) and its fuel. Nothing leaves the lab: the lines go to the lab, which shows the first two and counts the rest.',
    async run(ctx) {
      const hv = ctx.hypervisor();
      const r = await flood(ctx, hv, false);
      const rate = r.written / r.seconds;
      if (rate > LIMIT * 10) ctx.breach(`the flooder pushed ${Math.round(rate).toLocaleString('en')} writes a second through the console device, ${Math.round(rate / LIMIT)}x the limit it had with the defence on`);
      else ctx.problem('the unlimited flooder was not faster than the limited one');
    },
  },
};
