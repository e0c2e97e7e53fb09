/**
 * Bench guard for reactor calls: a 64-byte call to a reactor in its own worker may not regress,
 * measured only as a ratio to the bare mechanism under it in the same process, never as a time:
 * a plain worker asleep in Atomics.wait, woken with Atomics.notify, its 64-byte reply taken with
 * Atomics.waitAsync on the root's event loop (bench/lib/plugin.mjs, bareWorkers). Both sides are
 * timed call by call and compared by their medians.
 *
 * On the 2-core development machine under a load average of 15-25, the median call took 3.5x to
 * 5x the bare round trip (54-68 µs against 13-15 µs: the ring records, the dispatcher's three
 * hypercalls, the guest and the partition's queue on top of the same two wake-ups). The limit,
 * 15x, is 3x the worst of those: a call path 3x slower fails, a noisy measurement passes. A
 * measurement over the limit is repeated twice and the best of the three counts.
 *
 * The pool row (two calls in flight) is not guarded here: on this machine under load its ratio to
 * one reactor ranged 0.3x-1.7x between runs, and so did two bare workers' (bench/README.md), a
 * spread wider than the 3x a guard must catch.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { INPUT, bareWorkers, checkEcho, quantile, timedCalls } from '../../bench/lib/plugin.mjs';
import { Hypervisor } from '../../host/index.ts';

const CALLS = 1500;
const WARMUP = 1500;
const MAX_RATIO = 15;
const module = fileURLToPath(new URL('../../build/guests/transform.wasm', import.meta.url));

async function ratio(): Promise<{ ours: number; bare: number }> {
  const hv = new Hypervisor();
  let ours: number;
  try {
    const p = await hv.createPartition({ name: 'guard', module, kind: 'reactor' });
    await p.start();
    checkEcho(await p.call('echo', INPUT));
    const echo = async (): Promise<void> => checkEcho(await p.call('echo', INPUT));
    await timedCalls(() => p, echo, WARMUP);
    ours = quantile(await timedCalls(() => p, echo, CALLS), 0.5);
    await p.destroy();
  } finally {
    await hv.close();
  }
  const bare = await bareWorkers(1);
  try {
    const w = bare.workers[0]!;
    await timedCalls(() => w, bare.call, WARMUP);
    return { ours, bare: quantile(await timedCalls(() => w, bare.call, CALLS), 0.5) };
  } finally {
    await bare.close();
  }
}

describe('bench guard: reactor calls (ratio to bare workers in the same run)', () => {
  it('a 64-byte call to a dedicated reactor costs at most 15x a bare worker round trip', async () => {
    let best = Infinity;
    let seen = '';
    for (let attempt = 0; attempt < 3 && best > MAX_RATIO; attempt++) {
      const r = await ratio();
      seen += ` ${r.ours.toFixed(1)}/${r.bare.toFixed(1)} µs`;
      best = Math.min(best, r.ours / r.bare);
    }
    expect(best, `median call / bare round trip:${seen}; best ratio ${best.toFixed(2)} (limit ${MAX_RATIO})`).toBeLessThanOrEqual(MAX_RATIO);
  }, 120_000);
});
