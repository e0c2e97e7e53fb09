#!/usr/bin/env node
// Noisy neighbours: how much do capped hostile partitions slow a well-behaved one?
// 1. CPU share: two spinning partitions capped at 25% and 50%, side by side, then each alone;
//    the work (fuel) each does in the same window should be about 1:2.
// 2. The well-behaved partition (guests/work.wasm: xorshift fill, heap sort, FNV hash; no cap)
//    runs its fixed task alone, then next to 3 hostile partitions: a CPU spinner capped at 25%,
//    a console flooder capped at 25% with a console rate limit, and a memory bomb (grows to its
//    page cap, then spins, capped at 25%). Prints the median run times and their ratio
//    (target: under 1.5x on a 2-core machine).
// Run after `npm run build`: node bench/noisy.mjs [runs] [elements] [rounds]
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Hypervisor } from '../dist/index.js';

const runs = Number(process.argv[2] ?? 5);
const elements = process.argv[3] ?? '200000';
const rounds = process.argv[4] ?? '3';
const wasm = (name) => fileURLToPath(new URL(`../build/guests/${name}.wasm`, import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const hv = new Hypervisor({ defaultLimits: { timeoutMs: 600_000 } });
let n = 0;

// --- 1. CPU share ---------------------------------------------------------------------------
/** Starts capped spinners (work.wasm with endless rounds: its loops are in re-entered functions, so
 * the engine's optimizing tier reaches them all alike), measures the fuel each does over `ms`. */
async function share(percents, ms) {
  const ps = await Promise.all(
    percents.map((maxPercent) =>
      hv.createPartition({ name: `share-${n++}`, module: wasm('work'), args: ['100000', '100000000'], limits: { cpu: { maxPercent } } }),
    ),
  );
  await Promise.all(ps.map((p) => p.start()));
  await sleep(200);
  const before = ps.map((p) => p.metrics().cpu);
  const t0 = performance.now();
  await sleep(ms);
  const after = ps.map((p) => p.metrics().cpu);
  const wall = performance.now() - t0;
  await Promise.all(ps.map((p) => p.destroy()));
  return percents.map((pct, i) => ({ pct, fuel: after[i].fuel - before[i].fuel, share: (after[i].timeMs - before[i].timeMs) / wall }));
}

await share([100], 300); // warm-up: compile and tier up work.wasm
const together = await share([25, 50], 1000);
const alone = [...(await share([25], 1000)), ...(await share([50], 1000))];
const fmt = (rs) => rs.map((r) => `${r.pct}%: ${(r.fuel / 1e6).toFixed(0)}M fuel, ran ${(r.share * 100).toFixed(1)}% of the time`).join('; ');
console.log(`CPU share, two spinners (guests/work.wasm, endless) capped at 25% and 50%, 1 s window, ${os.cpus().length} CPUs`);
console.log(`  side by side   ${fmt(together)}  -> work ratio 50%/25% = ${(together[1].fuel / together[0].fuel).toFixed(2)}`);
console.log(`  one at a time  ${fmt(alone)}  -> work ratio 50%/25% = ${(alone[1].fuel / alone[0].fuel).toFixed(2)}`);
console.log(`  time ratio (the cap's own clock), side by side: ${(together[1].share / together[0].share).toFixed(2)}`);

// --- 2. Noisy neighbours --------------------------------------------------------------------
async function wellBehaved() {
  const p = await hv.createPartition({ name: `work-${n++}`, module: wasm('work'), args: [elements, rounds], devices: { console: true } });
  const out = [];
  p.on('console', (line) => out.push(line));
  await p.start();
  const exit = await p.exited;
  await p.destroy();
  if (exit.reason !== 'exit' || exit.code !== 0) throw new Error(`work guest failed: ${exit.reason} ${exit.error?.message ?? ''}`);
  return { ms: exit.runTimeMs, cpuMs: exit.metrics.cpu.timeMs, out: out.join('\n') };
}

const cap = { maxPercent: 25 };
/** The hostile partitions; `capped` false gives the same ones without CPU caps (the baseline showing what the caps buy). */
const hostileSpecsFor = (capped) => hostileSpecs.map((s) => ({ ...s, limits: capped ? s.limits : { ...s.limits, cpu: undefined } }));
const hostileSpecs = [
  { name: 'spin', module: wasm('attack-spin'), limits: { cpu: cap }, devices: { console: true } },
  {
    name: 'flood',
    module: wasm('attack-flood'),
    limits: { cpu: cap },
    devices: { console: { linesPerSecond: 1000, rateLimit: { bytesPerSecond: 64 * 1024, opsPerSecond: 2000, mode: 'block' } } },
  },
  // A memory bomb: grows linear memory to its cap, then the guest keeps spinning on growth.
  { name: 'membomb', module: wasm('attack-memgrow'), limits: { cpu: cap, memoryPages: 1024 }, devices: { console: true } },
];

/** Starts the hostile partitions (a memory bomb that exits is restarted in a loop). */
async function startHostiles(capped = true) {
  const live = new Set();
  let stopping = false;
  const counts = { floodLines: 0 };
  async function keep(spec) {
    while (!stopping) {
      const p = await hv.createPartition({ ...spec, name: `${spec.name}-${n++}` });
      live.add(p);
      p.on('console', () => spec.name === 'flood' && counts.floodLines++);
      await p.start();
      await p.exited;
      await p.destroy();
      live.delete(p);
    }
  }
  const loops = hostileSpecsFor(capped).map(keep);
  await sleep(300); // let them get going
  return {
    counts,
    metrics: () => [...live].map((p) => ({ name: p.name, ...p.metrics() })),
    async stop() {
      stopping = true;
      await Promise.all([...live].map((p) => p.stop()));
      await Promise.all(loops);
    },
  };
}

await wellBehaved(); // warm-up
const quiet = [];
const noisy = [];
let sample = null;
let floodLines = 0;
for (let i = 0; i < runs; i++) {
  quiet.push((await wellBehaved()).ms);
  const hostiles = await startHostiles();
  const t0 = performance.now();
  noisy.push((await wellBehaved()).ms);
  const window = (performance.now() - t0) / 1000;
  sample = hostiles.metrics();
  floodLines += hostiles.counts.floodLines / window;
  await hostiles.stop();
}
// The same hostile partitions without CPU caps: what the caps buy.
const uncapped = [];
for (let i = 0; i < runs; i++) {
  const hostiles = await startHostiles(false);
  uncapped.push((await wellBehaved()).ms);
  await hostiles.stop();
}
await hv.close();

const mq = median(quiet);
const mn = median(noisy);
console.log(`\nnoisy neighbours: guests/work.wasm ${elements} elements x ${rounds} rounds, ${runs} runs each (median), ${os.cpus().length} CPUs`);
console.log(`  alone                     ${mq.toFixed(1)} ms`);
console.log(`  next to 3 hostile (25%)   ${mn.toFixed(1)} ms`);
console.log(`  slowdown                  ${(mn / mq).toFixed(3)}x   (target < 1.5x)`);
console.log(`  next to 3 hostile, no caps ${median(uncapped).toFixed(1)} ms   (slowdown ${(median(uncapped) / mq).toFixed(3)}x)`);
console.log(`  runs alone ${quiet.map((x) => x.toFixed(0)).join(', ')}; noisy ${noisy.map((x) => x.toFixed(0)).join(', ')}`);
console.log(`  flooder delivered ~${(floodLines / runs).toFixed(0)} lines/s to the root`);
for (const m of sample ?? []) {
  console.log(
    `  ${m.name.padEnd(12)} cpu ${m.cpu.timeMs.toFixed(0)} ms, paused ${m.cpu.pausedMs.toFixed(0)} ms, memory ${m.memoryPages} pages, ` +
      `console ${m.console.linesOut} out / ${m.console.linesDropped} dropped, throttled ${m.throttled.console.calls} (${m.throttled.console.waitedMs.toFixed(0)} ms)`,
  );
}
