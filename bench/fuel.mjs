#!/usr/bin/env node
// Fuel metering overhead: a CPU-bound guest (guests/work.ts: xorshift fill, heap sort, FNV
// hash) run uninstrumented and fuel-metered in the same process, alternating, several times
// each; prints the median run times and their ratio (target: under 1.3x).
// Run after `npm run build`: node bench/fuel.mjs [runs] [elements] [rounds]
import { fileURLToPath } from 'node:url';
import { Hypervisor } from '../dist/index.js';

const runs = Number(process.argv[2] ?? 7);
const elements = process.argv[3] ?? '200000';
const rounds = process.argv[4] ?? '5';
const module = fileURLToPath(new URL('../build/guests/work.wasm', import.meta.url));
const FUEL = Number.MAX_SAFE_INTEGER;

const hv = new Hypervisor({ defaultLimits: { timeoutMs: 600_000 } });
let n = 0;

/** One run; returns the guest's run time in ms, its output and its fuel metrics. */
async function once(fuel) {
  const p = await hv.createPartition({
    name: `work-${n++}`,
    module,
    args: [elements, rounds],
    devices: { console: true },
    ...(fuel ? { limits: { fuel: FUEL } } : {}),
  });
  const out = [];
  p.on('console', (line) => out.push(line));
  await p.start();
  const exit = await p.exited;
  await p.destroy();
  if (exit.reason !== 'exit' || exit.code !== 0) throw new Error(`work guest failed: ${exit.reason} ${exit.error?.message ?? ''}`);
  return { ms: exit.runTimeMs, out: out.join('\n'), fuel: exit.metrics.fuel };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Warm-up: the first metered creation loads binaryen and instruments (cached afterwards).
const t0 = performance.now();
const warmPlain = await once(false);
const warmFuel = await once(true);
const setupMs = performance.now() - t0;
if (warmPlain.out !== warmFuel.out) throw new Error(`outputs differ: ${warmPlain.out} vs ${warmFuel.out}`);

const plain = [];
const metered = [];
let consumed = 0;
for (let i = 0; i < runs; i++) {
  plain.push((await once(false)).ms);
  const r = await once(true);
  metered.push(r.ms);
  consumed = r.fuel.consumed;
}
await hv.close();

const mp = median(plain);
const mf = median(metered);
console.log(`fuel overhead: guests/work.wasm ${elements} elements x ${rounds} rounds, ${runs} runs each (median)`);
console.log(`  uninstrumented  ${mp.toFixed(1)} ms`);
console.log(`  fuel-metered    ${mf.toFixed(1)} ms   (fuel consumed ${consumed})`);
console.log(`  ratio           ${(mf / mp).toFixed(3)}x   (target < 1.3x)`);
console.log(`  output          ${warmFuel.out} (same both ways)`);
console.log(`  first load incl. binaryen + instrumentation: ${setupMs.toFixed(0)} ms`);
