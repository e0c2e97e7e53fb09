#!/usr/bin/env node
/**
 * Plugin-call benchmark: latency and throughput of calling a guest's export with 64 bytes in and
 * 64 bytes out, measured in one run for
 *   (a) Wasmvisor: a reactor partition in its own worker (`transform.wasm`, export `echo`),
 *       sequential calls; a pool of 2 reactors with 2 calls in flight against one reactor, one
 *       call at a time, measured in alternated slices (each side's median calls/s, the median
 *       of the per-pair ratios and their spread; for both and their bare floors the CPU per call
 *       of the median slice in all threads and in the root, and the cores used, from
 *       /proc/self/task: what a ratio can reach on this machine);
 *       the same reactor on a shared worker; and calls to a randomly chosen one of 100
 *       live reactors, each in its own worker, then in shared workers (median and p99, against
 *       one hot reactor of the same 100), and the floor under the dedicated case: 100 bare workers
 *       asleep in Atomics.wait, one woken per call, its reply taken with Atomics.waitAsync;
 *   (b) bare: the same module instantiated in this thread, called directly, with a minimal
 *       hypercall that does the same copying (input into guest memory, output out of it) and no
 *       checks, queue, isolation or worker;
 *   (c) Extism's JS SDK (@extism/extism) with an equivalent echo plugin (bench/extism-echo.wat:
 *       copies in and out through the Extism kernel), in a worker (`runInWorker: true`) and in
 *       this thread.
 * Run after `npm run build`: `node bench/plugin.mjs [--json]`. A benchmark, not a test.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';
import createPlugin from '@extism/extism';
import { Hypervisor } from '../dist/index.js';
import { INPUT, bareWorkers, barePoolVsOne, checkEcho as check, poolVsOne, quantile, throughput, timedCalls } from './lib/plugin.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const json = process.argv.includes('--json');
const WARMUP = 2000;
const N = 20000;
const module = `${root}build/guests/transform.wasm`;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Runs `fn` n times sequentially in 10 batches; returns median µs per call over the batches. */
async function latency(fn, n = N, warmup = WARMUP) {
  for (let i = 0; i < warmup; i++) await fn();
  const batches = [];
  const per = n / 10;
  for (let b = 0; b < 10; b++) {
    const t0 = performance.now();
    for (let i = 0; i < per; i++) await fn();
    batches.push(((performance.now() - t0) * 1000) / per);
  }
  return median(batches);
}

const results = [];
const record = (name, usPerCall, callsPerSec, extra = {}) => results.push({ name, usPerCall, callsPerSec, ...extra });

// (a) Wasmvisor
const hv = new Hypervisor();
const p = await hv.createPartition({ name: 'bench', module, kind: 'reactor' });
await p.start();
check(await p.call('echo', INPUT));
record('wasmvisor reactor (own worker)', await latency(() => p.call('echo', INPUT)), await throughput(() => p.call('echo', INPUT), 1, N));
await p.destroy();
// The pool row: one reactor (baseline, spinning as it may) and the pool of 2, both alive in one
// Hypervisor, warmed up in two alternated rounds of 5,000 calls each (fresh workers' code is still
// being optimized well past 2,000 calls, and the root's call path, shared by both, is compiled for
// both), then measured in 7 alternated slices of 15,000 calls each (baseline, pool, baseline …):
// a stall or a compilation burst lands in one slice, not in a whole row, and the ratio is the
// median of the per-pair ratios. The reactor makes 1 + 10,000 + 105,000 calls on one instance
// (transform.wasm is a reactor built with the incremental collector: no call-count ceiling).
const SLICES = { calls: 15000, pairs: 7, warmup: 5000, rounds: 2 };
const sliced = (r) => ({ slices: r.pairs, sliceCalls: SLICES.calls });
const slicesRates = (r) => ({ sliceRates: { one: r.oneRates.map(Math.round), pool: r.poolRates.map(Math.round) } });
const pool = await poolVsOne(Hypervisor, module, SLICES);
record('one reactor, one call at a time (baseline)', null, pool.one, { cpu: pool.oneCpu, ...sliced(pool) });
record('wasmvisor pool of 2, 2 in flight', null, pool.pool, { vsOneReactor: pool.ratio, ratioMin: pool.ratioMin, ratioMax: pool.ratioMax, baseline: pool.one, cpu: pool.poolCpu, ...sliced(pool), ...slicesRates(pool) });
// The same on bare workers (no ring, guest or checks), measured the same way: what two calls in
// flight gain on this machine now.
const barePool = await barePoolVsOne({ ...SLICES, warmup: WARMUP });
record('bare worker, one call at a time (floor)', null, barePool.one, { cpu: barePool.oneCpu, ...sliced(barePool) });
record('2 bare workers, 2 in flight (floor)', null, barePool.pool, { vsOneReactor: barePool.ratio, ratioMin: barePool.ratioMin, ratioMax: barePool.ratioMax, baseline: barePool.one, cpu: barePool.poolCpu, ...sliced(barePool), ...slicesRates(barePool) });
const shared = await hv.createPartition({ name: 'bench-shared', module, kind: 'reactor', placement: 'shared' });
await shared.start();
check(await shared.call('echo', INPUT));
record('wasmvisor reactor (shared worker)', await latency(() => shared.call('echo', INPUT)), await throughput(() => shared.call('echo', INPUT), 1, N));
await shared.destroy();
// 100 live reactors, one worker each: a call to a random one vs the same call to one hot reactor.
// Then the same with the 100 reactors in shared workers (a few threads that stay hot). Then the
// floor under the dedicated case: 100 bare workers asleep in Atomics.wait, woken the same way.
const hundred = async (placement) => {
  const rs = [];
  for (let i = 0; i < 100; i++) {
    const r = await hv.createPartition({ name: `many-${placement}-${i}`, module, kind: 'reactor', placement });
    await r.start();
    rs.push(r);
  }
  for (const r of rs) check(await r.call('echo', INPUT));
  return rs;
};
const echo = (r) => r.call('echo', INPUT);
for (const placement of ['dedicated', 'shared']) {
  const many = await hundred(placement);
  await timedCalls(() => many[0], echo, WARMUP);
  const hot = await timedCalls(() => many[0], echo, 5000);
  const random = await timedCalls(() => many[Math.floor(Math.random() * many.length)], echo, 5000);
  const where = placement === 'shared' ? ' (shared workers)' : '';
  record(`one hot reactor of 100${where} (baseline)`, quantile(hot, 0.5), null, { p99: quantile(hot, 0.99) });
  record(`a random one of 100 reactors${where}`, quantile(random, 0.5), null, { p99: quantile(random, 0.99), vsHot: quantile(random, 0.5) / quantile(hot, 0.5) });
  await Promise.all(many.map((r) => r.destroy()));
}
{
  const bare = await bareWorkers(100);
  await timedCalls(() => bare.workers[0], bare.call, WARMUP);
  const hot = await timedCalls(() => bare.workers[0], bare.call, 5000);
  const random = await timedCalls(() => bare.workers[Math.floor(Math.random() * bare.workers.length)], bare.call, 5000);
  await bare.close();
  record('one hot bare worker of 100 (wake floor)', quantile(hot, 0.5), null, { p99: quantile(hot, 0.99) });
  record('a random one of 100 bare workers (wake floor)', quantile(random, 0.5), null, { p99: quantile(random, 0.99), vsHot: quantile(random, 0.5) / quantile(hot, 0.5) });
  const ours = results.find((r) => r.name === 'a random one of 100 reactors');
  ours.vsFloor = ours.usPerCall / quantile(random, 0.5);
}
await hv.close();

// (b) bare in-thread instance with the same copying
{
  let memory = null;
  let input = INPUT;
  let output = null;
  const bytes = readFileSync(`${root}build/guests/transform.wasm`);
  const { instance } = await WebAssembly.instantiate(bytes, {
    hv: {
      hypercall(call, inPtr, inLen, outPtr, outCap) {
        const view = new Uint8Array(memory.buffer);
        if (call === 0x0006) return input.length;
        if (call === 0x0007) {
          const offset = inLen === 4 ? new DataView(memory.buffer).getUint32(inPtr, true) : 0;
          const n = Math.min(outCap, input.length - offset);
          view.set(input.subarray(offset, offset + n), outPtr);
          return n;
        }
        if (call === 0x0008) {
          output = view.slice(inPtr, inPtr + inLen);
          return inLen;
        }
        return 0;
      },
    },
  });
  memory = instance.exports.memory;
  instance.exports._initialize();
  const call = () => {
    input = INPUT.slice();
    instance.exports.echo();
    return output;
  };
  check(call());
  record('bare in-thread exports.echo()', await latency(async () => call()), await throughput(async () => call(), 1, N));
}

// (c) Extism
{
  const wabt = await wabtInit();
  const wasm = wabt.parseWat('extism-echo.wat', readFileSync(`${root}bench/extism-echo.wat`, 'utf8')).toBinary({}).buffer;
  for (const runInWorker of [true, false]) {
    const plugin = await createPlugin({ wasm: [{ data: wasm }] }, { useWasi: false, runInWorker });
    const call = async () => (await plugin.call('echo', INPUT)).bytes();
    check(await call());
    // Fewer calls here: Extism's JS SDK (1.0.3) keeps every call's memory blocks in one plugin
    // instance, and block addresses overflow after about 16k calls with input and output.
    record(`extism ${runInWorker ? 'in a worker' : 'in-thread'}`, await latency(call, 5000, 500), await throughput(call, 1, 3000));
    await plugin.close();
  }
}

if (json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  const cores = (await import('node:os')).availableParallelism();
  console.log(`plugin calls, 64 B in and 64 B out (median µs per call over 10 batches; calls/s), ${cores} cores`);
  for (const r of results) {
    const us = r.usPerCall === null ? '-' : r.usPerCall.toFixed(1);
    const rate = r.callsPerSec === null ? '-' : Math.round(r.callsPerSec).toString();
    const vsHot = r.vsHot !== undefined ? `  x${r.vsHot.toFixed(2)} the hot one` : '';
    const vsFloor = r.vsFloor !== undefined ? `  x${r.vsFloor.toFixed(2)} the bare floor` : '';
    const spread = r.ratioMin !== undefined ? ` (median of ${r.slices} pairs of ${r.sliceCalls}-call slices, x${r.ratioMin.toFixed(2)}-${r.ratioMax.toFixed(2)})` : '';
    const slices = r.slices !== undefined && r.vsOneReactor === undefined ? `  median of ${r.slices} slices` : '';
    const extra = r.p99 !== undefined ? `  p99 ${r.p99.toFixed(1)} µs${vsHot}${vsFloor}` : r.vsOneReactor !== undefined ? `  x${r.vsOneReactor.toFixed(2)} one reactor's calls/s${spread}` : slices;
    // CPU per call of the median slice (all threads, the root's share) and cores used: what a
    // ratio of calls/s can reach on this machine. The pool's ceiling: every core busy at its CPU
    // per call, against the baseline's median calls/s.
    const ceiling = r.vsOneReactor !== undefined && r.cpu ? `, ceiling x${((cores * 1e6) / r.cpu.cpuUs / r.baseline).toFixed(2)} (${cores} cores at this CPU per call)` : '';
    const cpu = r.cpu ? `  cpu ${r.cpu.cpuUs.toFixed(1)} µs/call (root ${r.cpu.rootUs.toFixed(1)}), ${r.cpu.cores.toFixed(2)} cores${ceiling}` : '';
    console.log(`  ${r.name.padEnd(52)} ${us.padStart(8)} µs  ${rate.padStart(9)} calls/s${extra}${cpu}`);
  }

  console.log(`  load avg ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}
