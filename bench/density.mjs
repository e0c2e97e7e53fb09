#!/usr/bin/env node
/**
 * Density benchmark (issue #15): how many partitions one Hypervisor holds, what each costs, how
 * fast they start and answer. For each placement, side by side in one run:
 *
 *   - idle reactor partitions of transform.wasm (2 pages of linear memory each) created and
 *     started up to a target count (dedicated: 200 by default, one thread each; shared: 10,000);
 *   - host memory per partition: RSS growth / count (after a GC, before and after), and the same
 *     less each partition's linear memory (its 128 KiB are counted as resident, an upper bound);
 *   - create + start time per partition (median, p99);
 *   - 64 B calls (transform `echo`) to randomly chosen live partitions: median and p99, against the
 *     baseline of the same calls to one partition (same run, same placement).
 *
 * Then the cost of the suspend transform (Asyncify) that shared placement applies: module size,
 * and the run time of a CPU-bound guest (work.wasm) metered for fuel alone (dedicated, with a fuel
 * budget) vs metered and suspendable (shared), each alone on its worker. Start-up from a cached
 * module (warm, cold and shared, against a bare instantiation and a bare worker round trip) is
 * bench/core.mjs's section 2.
 *
 * `node bench/density.mjs [--shared N] [--dedicated N] [--edge] [--json]` after `npm run build`.
 * `--edge` keeps adding shared partitions until the process's WebAssembly.Memory reservations
 * run out (about 13,000 on 64-bit Linux) and reports where and with which error (minutes).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { ROOT, numberOption, requireExposedGc } from './lib/script.mjs';

requireExposedGc(import.meta.url);

const { Hypervisor } = await import('../dist/index.js');
const root = ROOT;
const args = process.argv.slice(2);
const option = numberOption;
const JSON_OUT = args.includes('--json');
const TARGET = { dedicated: option('dedicated', 200), shared: option('shared', 10_000) };
const CALLS = 2000;
const INPUT = new Uint8Array(64).fill(97);
const MODULE = readFileSync(`${root}build/guests/transform.wasm`);
/** Pages of linear memory each idle partition has (transform.wasm's initial size). */
const PAGES = 2;
const KiB = 1024;
const progress = (m) => (process.env.BENCH_TRACE ? process.stderr.write(`${m}\n`) : process.stderr.isTTY && process.stderr.write(`\r\x1b[K${m}`));
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
async function settleRss() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  return process.memoryUsage().rss;
}

const spec = (name, placement) => ({
  name,
  module: MODULE,
  kind: 'reactor',
  placement,
  // The module starts with 2 pages; up to 16 so the hot partition's allocator (AssemblyScript's
  // stub runtime never frees) has room for thousands of calls.
  limits: { memoryPages: 16, maxInputBytes: 4096, maxOutputBytes: 4096 },
});

async function density(placement, target) {
  const hv = new Hypervisor({ placement, memoryBudgetBytes: 2 ** 50, warmWorkers: placement === 'dedicated' ? 2 : 0 });
  // Warm-up: compile (and, shared, transform) the module; load every code path once.
  const w = await hv.createPartition(spec('warm', placement));
  await w.start();
  await w.call('echo', INPUT);
  await w.destroy();
  const rss0 = await settleRss();
  const parts = [];
  const starts = [];
  let refused = null;
  for (let i = 0; i < target; i++) {
    const t0 = performance.now();
    let p;
    try {
      p = await hv.createPartition(spec(`p${i}`, placement));
      await p.start();
    } catch (error) {
      refused = { at: i, code: error.code ?? 'untyped', message: String(error.message).slice(0, 160) };
      break;
    }
    if (p.state !== 'running') {
      const exit = await p.exited;
      refused = { at: i, code: exit.reason, message: String(exit.error?.message).slice(0, 160) };
      break;
    }
    starts.push(performance.now() - t0);
    parts.push(p);
    if (i % 100 === 0) progress(`${placement}: ${i}/${target} partitions`);
  }
  const rss1 = await settleRss();
  const n = parts.length;
  // Calls: one hot partition (baseline), then random ones.
  const hot = parts[0];
  for (let i = 0; i < 500; i++) await hot.call('echo', INPUT);
  const one = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await hot.call('echo', INPUT);
    one.push(performance.now() - t0);
  }
  const rand = [];
  for (let i = 0; i < CALLS; i++) {
    const p = parts[Math.floor(Math.random() * n)];
    const t0 = performance.now();
    const out = await p.call('echo', INPUT);
    rand.push(performance.now() - t0);
    if (out.length !== 64) throw new Error('bench: wrong echo');
  }
  const perPartition = (rss1 - rss0) / n;
  const sched = hv.scheduler();
  progress(`${placement}: closing ${n} partitions`);
  await hv.close();
  return {
    placement,
    partitions: n,
    refused,
    rssPerPartitionKiB: perPartition / KiB,
    rssBeyondLinearKiB: (perPartition - PAGES * 65536) / KiB,
    startMedianMs: quantile(starts, 0.5),
    startP99Ms: quantile(starts, 0.99),
    callOneMedianUs: quantile(one, 0.5) * 1000,
    callOneP99Us: quantile(one, 0.99) * 1000,
    callRandomMedianUs: quantile(rand, 0.5) * 1000,
    callRandomP99Us: quantile(rand, 0.99) * 1000,
    workers: placement === 'shared' ? sched.workers.length : n,
  };
}

/**
 * The suspend transform's cost: size, transform time, and a CPU-bound guest's run time in this
 * thread (no worker, no scheduler: only the code), metered for fuel vs metered and suspendable,
 * alternating, median of 7. The guest (work.wasm: a heap sort and a hash) gets a minimal `hv`:
 * its arguments, console writes swallowed, a fuel budget it never reaches.
 */
async function asyncifyCost() {
  const { transformModule } = await importInternals();
  const bytes = new Uint8Array(readFileSync(`${root}build/guests/work.wasm`));
  const t1 = performance.now();
  const metered = await transformModule(bytes, false);
  const t2 = performance.now();
  const suspendable = await transformModule(bytes, true);
  const t3 = performance.now();
  const args = new TextEncoder().encode('100000\u00005\u0000');
  const EXIT = new Error('exit');
  const run = (module) => {
    let memory = null;
    const hypercall = (call, inPtr, inLen, outPtr, outCap) => {
      if (call === 0x0004) return args.length;
      if (call === 0x0005) {
        new Uint8Array(memory.buffer, outPtr, args.length).set(args);
        return args.length;
      }
      if (call === 0x0002) throw EXIT;
      return inLen;
    };
    const imports = {
      hv: {
        hypercall,
        __wasmvisor_fuel_budget: new WebAssembly.Global({ value: 'i64', mutable: false }, BigInt(Number.MAX_SAFE_INTEGER)),
        __wasmvisor_fuel_exhausted: () => {},
      },
    };
    const instance = new WebAssembly.Instance(module, imports);
    memory = instance.exports.memory;
    const t0 = performance.now();
    try {
      instance.exports.__wasmvisor_start?.();
      instance.exports._start();
    } catch (error) {
      if (error !== EXIT) throw error;
    }
    return performance.now() - t0;
  };
  const m1 = new WebAssembly.Module(metered);
  const m2 = new WebAssembly.Module(suspendable);
  run(m1);
  run(m2);
  const a = [];
  const b = [];
  for (let i = 0; i < 7; i++) {
    a.push(run(m1));
    b.push(run(m2));
    progress(`asyncify cost: round ${i + 1}/7`);
  }
  return {
    workMeteredMs: quantile(a, 0.5),
    workSuspendableMs: quantile(b, 0.5),
    originalBytes: bytes.length,
    meteredBytes: metered.length,
    suspendableBytes: suspendable.length,
    meterMs: t2 - t1,
    suspendableMs: t3 - t2,
  };
}

/** The transform (not part of the public API), bundled into dist/ so it finds dist/transform.js. */
async function importInternals() {
  const { build } = await import('esbuild');
  const file = `${root}dist/bench-internals.mjs`;
  await build({
    stdin: { contents: "export { transformModule } from './host/loader/transform.ts';", resolveDir: root, loader: 'ts' },
    bundle: true,
    outfile: file,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'warning',
  });
  return import(file);
}

const t0 = performance.now();
const results = [];
results.push(await density('dedicated', TARGET.dedicated));
results.push(await density('shared', TARGET.shared));
const cost = await asyncifyCost();
let edge = null;
if (args.includes('--edge')) edge = await density('shared', 100_000);
progress('');

const env = { node: process.version, cpus: os.cpus().length, loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '), seconds: (performance.now() - t0) / 1000 };
if (JSON_OUT) {
  console.log(JSON.stringify({ env, results, asyncify: cost, edge }, null, 2));
} else {
  const f = (x, d = 1) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
  console.log(`Density: node ${env.node}, ${env.cpus} cores, load avg ${env.loadavg}, took ${env.seconds.toFixed(0)} s`);
  console.log('');
  console.log('placement  partitions  RSS/partition  less 128 KiB linear  create+start med/p99  64 B call: one hot (baseline) med/p99   random med/p99');
  for (const r of results) {
    console.log(
      `${r.placement.padEnd(9)}  ${String(r.partitions).padStart(10)}  ${f(r.rssPerPartitionKiB).padStart(9)} KiB  ${f(r.rssBeyondLinearKiB).padStart(9)} KiB  ` +
        `${f(r.startMedianMs, 3).padStart(8)} / ${f(r.startP99Ms, 2).padStart(6)} ms  ` +
        `${f(r.callOneMedianUs).padStart(12)} / ${f(r.callOneP99Us).padStart(7)} µs  ${f(r.callRandomMedianUs).padStart(12)} / ${f(r.callRandomP99Us).padStart(7)} µs` +
        (r.refused ? `  (stopped at ${r.refused.at}: ${r.refused.code})` : ''),
    );
  }
  console.log('');
  console.log(
    `Asyncify (shared placement's suspend transform) on work.wasm: ${cost.originalBytes} B, metered ${cost.meteredBytes} B, ` +
      `metered + suspendable ${cost.suspendableBytes} B (x${(cost.suspendableBytes / cost.meteredBytes).toFixed(2)}); ` +
      `transform time in the transform worker: metering ${f(cost.meterMs, 0)} ms (first use: includes loading binaryen), metering + Asyncify ${f(cost.suspendableMs, 0)} ms`,
  );
  console.log(
    `  CPU-bound run (work.wasm, 100000 x 5): ${f(cost.workMeteredMs)} ms metered (dedicated) vs ${f(cost.workSuspendableMs)} ms metered + suspendable (shared): ` +
      `x${(cost.workSuspendableMs / cost.workMeteredMs).toFixed(2)} (median of 7, in this thread, alternating)`,
  );
  if (edge) console.log(`Edge: ${edge.partitions} shared partitions live; the next was refused with ${edge.refused?.code}: ${edge.refused?.message}`);
}
