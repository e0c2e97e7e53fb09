#!/usr/bin/env node
/**
 * Plugin-call benchmark: latency and throughput of calling a guest's export with 64 bytes in and
 * 64 bytes out, measured in one run for
 *   (a) Wasmvisor: a reactor partition in its own worker (`transform.wasm`, export `echo`),
 *       sequential calls, and a pool of 2 reactors with 2 calls in flight;
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
const record = (name, usPerCall, callsPerSec) => results.push({ name, usPerCall, callsPerSec });

// (a) Wasmvisor
const hv = new Hypervisor();
const p = await hv.createPartition({ name: 'bench', module: `${root}build/guests/transform.wasm`, kind: 'reactor' });
await p.start();
check(await p.call('echo', INPUT));
record('wasmvisor reactor (own worker)', await latency(() => p.call('echo', INPUT)), await throughput(() => p.call('echo', INPUT), 1));
const pool = await hv.createPool({ name: 'benchpool', module: `${root}build/guests/transform.wasm` }, { size: 2 });
record('wasmvisor pool of 2, 2 in flight', null, await throughput(() => pool.call('echo', INPUT), 2));
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
    console.log(`  ${r.name.padEnd(36)} ${us.padStart(8)} µs  ${Math.round(r.callsPerSec).toString().padStart(9)} calls/s`);
  }
}
