#!/usr/bin/env node
/**
 * Plugin-call benchmark: latency and throughput of calling a guest's export with 64 bytes in and
 * 64 bytes out, measured in one run for
 *   (a) Wasmvisor: a reactor partition in its own worker (`transform.wasm`, export `echo`),
 *       sequential calls; a pool of 2 reactors with 2 calls in flight (its ratio to one reactor's
 *       calls/s); the same reactor on a shared worker; and calls to a randomly chosen one of 100
 *       live reactors, each in its own worker, then in shared workers (median and p99, against
 *       one hot reactor of the same 100);
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

const root = fileURLToPath(new URL('..', import.meta.url));
const json = process.argv.includes('--json');
const INPUT = new Uint8Array(64).map((_, i) => 65 + (i % 26));
const WARMUP = 2000;
const N = 20000;

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

/** Calls per second with `inFlight` concurrent callers. */
async function throughput(fn, inFlight, total = N) {
  let left = total;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (left-- > 0) await fn();
  }));
  return total / ((performance.now() - t0) / 1000);
}

function check(out) {
  if (out.length !== 64 || out[0] !== 65 || out[63] !== INPUT[63]) throw new Error('wrong echo output');
}

const results = [];
const record = (name, usPerCall, callsPerSec, extra = {}) => results.push({ name, usPerCall, callsPerSec, ...extra });
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

// (a) Wasmvisor
const hv = new Hypervisor();
const p = await hv.createPartition({ name: 'bench', module: `${root}build/guests/transform.wasm`, kind: 'reactor' });
await p.start();
check(await p.call('echo', INPUT));
const oneRate = await throughput(() => p.call('echo', INPUT), 1);
record('wasmvisor reactor (own worker)', await latency(() => p.call('echo', INPUT)), oneRate);
await p.destroy();
const pool = await hv.createPool({ name: 'benchpool', module: `${root}build/guests/transform.wasm` }, { size: 2 });
for (let i = 0; i < WARMUP; i++) await pool.call('echo', INPUT);
const poolRate = await throughput(() => pool.call('echo', INPUT), 2);
record('wasmvisor pool of 2, 2 in flight', null, poolRate, { vsOneReactor: poolRate / oneRate });
await pool.destroy();
const shared = await hv.createPartition({ name: 'bench-shared', module: `${root}build/guests/transform.wasm`, kind: 'reactor', placement: 'shared' });
await shared.start();
check(await shared.call('echo', INPUT));
record('wasmvisor reactor (shared worker)', await latency(() => shared.call('echo', INPUT)), await throughput(() => shared.call('echo', INPUT), 1));
await shared.destroy();
// 100 live reactors, one worker each: a call to a random one vs the same call to one hot reactor.
// Then the same with the 100 reactors in shared workers (a few threads that stay hot).
const hundred = async (placement) => {
  const rs = [];
  for (let i = 0; i < 100; i++) {
    const r = await hv.createPartition({ name: `many-${placement}-${i}`, module: `${root}build/guests/transform.wasm`, kind: 'reactor', placement });
    await r.start();
    rs.push(r);
  }
  for (const r of rs) await r.call('echo', INPUT);
  return rs;
};
const timed = async (pick, n) => {
  const xs = [];
  for (let i = 0; i < n; i++) {
    const r = pick();
    const t0 = performance.now();
    await r.call('echo', INPUT);
    xs.push((performance.now() - t0) * 1000);
  }
  return xs;
};
for (const placement of ['dedicated', 'shared']) {
  const many = await hundred(placement);
  await timed(() => many[0], WARMUP);
  const hot = await timed(() => many[0], 5000);
  const random = await timed(() => many[Math.floor(Math.random() * many.length)], 5000);
  const where = placement === 'shared' ? ' (shared workers)' : '';
  record(`one hot reactor of 100${where} (baseline)`, quantile(hot, 0.5), null, { p99: quantile(hot, 0.99) });
  record(`a random one of 100 reactors${where}`, quantile(random, 0.5), null, { p99: quantile(random, 0.99), vsHot: quantile(random, 0.5) / quantile(hot, 0.5) });
  await Promise.all(many.map((r) => r.destroy()));
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
  record('bare in-thread exports.echo()', await latency(async () => call()), await throughput(async () => call(), 1));
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
  console.log('plugin calls, 64 B in and 64 B out (median µs per call over 10 batches; calls/s)');
  for (const r of results) {
    const us = r.usPerCall === null ? '-' : r.usPerCall.toFixed(1);
    const rate = r.callsPerSec === null ? '-' : Math.round(r.callsPerSec).toString();
    const extra = r.p99 !== undefined ? `  p99 ${r.p99.toFixed(1)} µs${r.vsHot !== undefined ? `  x${r.vsHot.toFixed(2)} the hot one` : ''}` : r.vsOneReactor !== undefined ? `  x${r.vsOneReactor.toFixed(2)} one reactor's calls/s` : '';
    console.log(`  ${r.name.padEnd(52)} ${us.padStart(8)} µs  ${rate.padStart(9)} calls/s${extra}`);
  }
  console.log(`  load avg ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}
