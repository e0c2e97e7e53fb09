#!/usr/bin/env node
/**
 * Wasmvisor benchmarks. Run after a build: `npm run bench`, or `node bench/core.mjs [--json]`.
 * Every number is measured in this run next to its baseline, on this machine; nothing is
 * compared against numbers recorded elsewhere.
 *
 * 1. Hypercall cost, ns per call (median and p90 over several runs of N calls each), measured
 *    by bench/lib/hypercalls.ts (shared with the bench guard in `npm test`; its header says
 *    exactly what each row does). In short: a tiny wasm module calls its one import
 *    `hv.hypercall` in a loop, in this thread (the guest and its dispatcher share one thread in
 *    a worker, so this is the same call path minus the worker), instantiated once with a bare JS
 *    function (the baselines) and once with the real Dispatcher over a real GuestMemory:
 *    - HV_CALL_VERSION with every buffer empty vs a bare no-op import: the difference is
 *      counting, the table lookup, the window checks and the handler call;
 *    - HV_CALL_ARGS_GET with in_len = out_cap = 64 vs a bare import copying 64 bytes in and 64
 *      out: the checks, the input copied once into scratch, the handler's copy into scratch and
 *      the scratch copied out. Two bare baselines: `subarray` + `set` (the issue's baseline, as
 *      GuestMemory copied before), and 32-bit words (as GuestMemory copies small transfers now);
 *    - ENTROPY_GET 64/64 on a seeded entropy device, for reference (includes AES-256-CTR).
 *    Times are CPU time per run (robust to other tenants on a shared machine).
 *    The Dispatcher is not exported by dist/index.js (only the public API is), so the bench
 *    bundles bench/lib/hypercalls.ts and host/ on the fly with esbuild (platform node, ESM,
 *    target node20, not minified: as scripts/build.mjs builds dist/worker.js) and imports the
 *    bundle from a data: URL.
 *
 * 2. A partition from a cached module, ms (exit.wasm with args ['0'], which exits at once).
 *    The module bytes are read once; the first createPartition compiles them (cache miss,
 *    shown as one sample), every later one is a cache hit. Per iteration, measured:
 *    createPartition alone (read, validate, section reader, policy, SHA-256, clamp, cache
 *    lookup), start() until it resolves (the worker has started and reported 'running'), and
 *    the total from createPartition to `exited`. destroy() is not timed.
 *    Baseline: `WebAssembly.instantiate(module, imports)` in this thread, of the same compiled
 *    WebAssembly.Module the hypervisor hands its worker. The hypervisor does not expose that
 *    module, so the bench reads the partition's private `config.module` field (TypeScript
 *    privacy is not enforced at run time). For reference, "in-thread instantiate + _start"
 *    does the guest's whole run in this thread the way the worker does (real Dispatcher and
 *    GuestMemory, args ['0'], until GuestExit): the gap between it and the partition total is
 *    the price of the worker, the rings and the lifecycle. (That row also pays for the
 *    Dispatcher's two 64 KiB scratch buffers each time, and for the GC their churn causes.)
 *
 * 3. Worker start, ms (median and p90 of 20): `new Worker(src, { eval: true })` until its
 *    'online' event for an empty script, and until the first reply for a script that echoes
 *    one message (posted right after construction). This is the floor under row 2's start().
 *
 * The whole bench takes about 20-30 s on a 2-core machine (more when the machine is busy:
 * the header line prints the load average).
 */
import { build } from 'esbuild';
import wabtInit from 'wabt';
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const JSON_OUT = process.argv.includes('--json');
/** `--only hypercall,partition,worker`: run only those sections (all by default). */
const onlyArg = process.argv.find((a) => a.startsWith('--only='));
const ONLY = new Set(onlyArg ? onlyArg.slice('--only='.length).split(',') : ['hypercall', 'partition', 'worker']);
const EXIT_WASM = `${ROOT}build/guests/exit.wasm`;

for (const file of [`${ROOT}dist/index.js`, `${ROOT}dist/worker.js`, EXIT_WASM]) {
  if (!existsSync(file)) {
    console.error(`bench: ${file} is missing; run \`npm run build\` first (or use \`npm run bench\`).`);
    process.exit(1);
  }
}
const { Hypervisor } = await import('../dist/index.js');

// ---------------------------------------------------------------------------------------------
// Statistics and output

const results = [];
const median = (xs) => quantile(xs, 0.5);
const p90 = (xs) => quantile(xs, 0.9);
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  // Linear interpolation between closest ranks.
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return s[lo] + (s[hi] - s[lo]) * (at - lo);
}

function record(section, id, label, unit, samples, extra = {}) {
  const r = { section, id, label, unit, median: median(samples), p90: samples.length > 1 ? p90(samples) : null, samples: samples.length, ...extra };
  results.push(r);
  return r;
}

const ms = () => performance.now();
const progress = (msg) => {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${msg}`);
};

// ---------------------------------------------------------------------------------------------
// The dispatcher, bundled from source (it is not part of the public bundle)

async function loadInternals() {
  const contents = [
    "export { Dispatcher, GuestExit, GuestAbort } from './host/abi/dispatcher.ts';",
    "export { GuestMemory } from './host/abi/guest-memory.ts';",
    "export { EntropyDevice } from './host/devices/entropy.ts';",
    "export { allocateStats } from './host/channel/stats.ts';",
    "export { HvCall, HV_ABI_VERSION } from './host/abi/codes.ts';",
    "export { measureHypercalls, LOOP_WAT } from './bench/lib/hypercalls.ts';",
  ].join('\n');
  const out = await build({
    stdin: { contents, resolveDir: ROOT, sourcefile: 'bench-internals.ts', loader: 'ts' },
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  const code = out.outputFiles[0].text;
  // A data: URL may import node: builtins, which is all the host uses.
  return import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
}

// ---------------------------------------------------------------------------------------------
// 1. Hypercall cost

async function benchHypercalls(I) {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat('bench-loop.wat', I.LOOP_WAT);
  const loop = parsed.toBinary({}).buffer;
  parsed.destroy();
  // N calls per run (>= 1e6), median and p90 over RUNS runs after a warm-up long enough for V8
  // to tier the wasm loop and the JS imports up; the ENTROPY_GET row (reference only, ~10x
  // slower) gets fewer runs to keep the whole bench short.
  const N = 1_000_000;
  const cases = await I.measureHypercalls({ loop, calls: N, runs: 9, warmup: 3, onProgress: (m) => progress(`1/3 ${m}`) });
  for (const c of cases) {
    record('hypercall', c.id, c.label, 'ns', c.samples, { callsPerRun: N, ...(c.baseline ? { baseline: c.baseline } : {}), ...(c.alsoVs ? { alsoVs: c.alsoVs } : {}) });
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Partition from a cached module

async function benchPartitions(I) {
  const bytes = new Uint8Array(await readFile(EXIT_WASM));
  const hv = new Hypervisor();
  const spec = (i) => ({ name: `bench-${i}`, module: bytes, args: ['0'], limits: { timeoutMs: 20_000 } });

  let module = null;
  async function once(i) {
    const t0 = ms();
    const p = await hv.createPartition(spec(i));
    const t1 = ms();
    await p.start();
    const t2 = ms();
    const exit = await p.exited;
    const t3 = ms();
    if (exit.state !== 'exited' || exit.code !== 0) throw new Error(`bench: exit.wasm ended ${exit.state} ${exit.code} ${exit.reason}`);
    module ??= p.config?.module ?? null;
    await p.destroy();
    return { create: t1 - t0, start: t2 - t1, total: t3 - t0 };
  }

  const first = await once(0); // compiles: the only cache miss
  const WARMUP = 3;
  const RUNS = 25;
  for (let i = 1; i <= WARMUP; i++) await once(i);
  const create = [];
  const start = [];
  const total = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await once(100 + i);
    create.push(r.create);
    start.push(r.start);
    total.push(r.total);
    progress(`2/3 partitions: ${i + 1}/${RUNS}`);
  }
  // Sanity check through the private cache counters: one compilation, every other load a hit.
  const cache = hv.cache ? { hits: hv.cache.hits, misses: hv.cache.misses } : null;
  if (cache && cache.misses !== 1) throw new Error(`bench: expected 1 module cache miss, got ${cache.misses}`);
  await hv.close();

  let moduleNote = 'the partition\'s own compiled module (private config.module)';
  if (!(module instanceof WebAssembly.Module)) {
    // Fallback if the private field moves: the raw bytes, without the loader's memory clamp.
    module = await WebAssembly.compile(bytes);
    moduleNote = 'exit.wasm compiled here (config.module not found; no memory clamp)';
  }

  // Baseline: instantiate only, in this thread.
  const imports = { hv: { hypercall: (call, inPtr, inLen, outPtr, outCap) => 0 } };
  const INST = 200;
  const inst = [];
  for (let i = 0; i < 20; i++) await WebAssembly.instantiate(module, imports);
  for (let i = 0; i < INST; i++) {
    const t0 = ms();
    await WebAssembly.instantiate(module, imports);
    inst.push(ms() - t0);
  }
  // Reference: the guest's whole run in this thread, as the worker does it.
  const run = [];
  const inThread = async () => {
    const t0 = ms();
    const memory = new I.GuestMemory();
    const stats = new Float64Array(I.allocateStats());
    const d = new I.Dispatcher({ memory, devices: [], args: ['0'], stats, onViolation: () => {} });
    const instance = await WebAssembly.instantiate(module, { hv: { hypercall: d.hypercall } });
    memory.bind(instance.exports.memory);
    let code = null;
    try {
      instance.exports._start();
    } catch (error) {
      if (!(error instanceof I.GuestExit)) throw error;
      code = error.code;
    }
    memory.scrub();
    if (code !== 0) throw new Error(`bench: in-thread exit.wasm exited with ${code}`);
    return ms() - t0;
  };
  for (let i = 0; i < 20; i++) await inThread();
  for (let i = 0; i < INST; i++) run.push(await inThread());

  record('partition', 'instantiate', 'WebAssembly.instantiate(module) in-thread (baseline)', 'ms', inst, { module: moduleNote });
  record('partition', 'in_thread_run', 'in-thread instantiate + _start via Dispatcher (ref.)', 'ms', run);
  record('partition', 'create_first', 'createPartition, first (cache miss: compiles)', 'ms', [first.create]);
  record('partition', 'create', 'createPartition (cache hit)', 'ms', create, cache ? { moduleCache: cache } : {});
  record('partition', 'start', 'start() until running', 'ms', start);
  record('partition', 'total', 'createPartition + start() + exited (cache hit)', 'ms', total, { baseline: 'instantiate' });
}

// ---------------------------------------------------------------------------------------------
// 3. Worker start

async function benchWorkers() {
  const RUNS = 20;
  const WARMUP = 3;
  const ECHO = "const { parentPort } = require('node:worker_threads'); parentPort.once('message', (m) => parentPort.postMessage(m));";

  async function online() {
    const t0 = ms();
    const w = new Worker('', { eval: true });
    const exited = new Promise((resolve) => w.once('exit', resolve));
    await new Promise((resolve, reject) => {
      w.once('online', resolve);
      w.once('error', reject);
    });
    const t = ms() - t0;
    await exited; // the empty script ends by itself; never overlap two workers
    return t;
  }
  async function roundTrip() {
    const t0 = ms();
    const w = new Worker(ECHO, { eval: true });
    const exited = new Promise((resolve) => w.once('exit', resolve));
    const reply = new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    w.postMessage(1);
    await reply;
    const t = ms() - t0;
    await w.terminate();
    await exited;
    return t;
  }

  for (let i = 0; i < WARMUP; i++) {
    await online();
    await roundTrip();
  }
  const on = [];
  const rt = [];
  for (let i = 0; i < RUNS; i++) {
    on.push(await online());
    rt.push(await roundTrip());
    progress(`3/3 workers: ${i + 1}/${RUNS}`);
  }
  record('worker', 'online', "new Worker (empty, eval) until 'online'", 'ms', on);
  record('worker', 'round_trip', 'new Worker (echo, eval) until first reply', 'ms', rt);
}

// ---------------------------------------------------------------------------------------------
// Output

function fmt(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return '';
  if (unit === 'ns') return `${value.toFixed(1)} ns`;
  if (value < 1) return `${(value * 1000).toFixed(0)} µs`;
  return `${value.toFixed(value < 10 ? 2 : 1)} ms`;
}

function printTable(env) {
  const byId = new Map(results.map((r) => [`${r.section}.${r.id}`, r]));
  const hc = results.find((r) => r.section === 'hypercall');
  const sections = [
    ['hypercall', `1. Hypercall from wasm, in-thread, ns per call (n runs of ${hc?.callsPerRun.toLocaleString('en')} calls each)`],
    ['partition', "2. Partition from a cached module (exit.wasm, args ['0'], exits at once)"],
    ['worker', '3. Worker start (no baseline: this is the floor under start())'],
  ];
  const head = ['', 'median', 'p90', 'n', 'vs baseline (median)'];
  const groups = sections.filter(([section]) => ONLY.has(section)).map(([section, title]) => ({
    title,
    rows: results
      .filter((r) => r.section === section)
      .map((r) => {
        let vs = '';
        if (r.baseline) {
          const b = byId.get(`${section}.${r.baseline}`);
          const d = r.median - b.median;
          vs = `${d >= 0 ? '+' : '-'}${fmt(Math.abs(d), r.unit)}  (x${(r.median / b.median).toFixed(2)})`;
          if (r.alsoVs) vs += `; x${(r.median / byId.get(`${section}.${r.alsoVs}`).median).toFixed(2)} vs ${r.alsoVs}`;
        }
        return [`  ${r.label}`, fmt(r.median, r.unit), fmt(r.p90, r.unit), String(r.samples), vs];
      }),
  }));
  const all = groups.flatMap((g) => g.rows);
  const w = head.map((h, i) => Math.max(h.length, ...all.map((cells) => cells[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  const out = [`Wasmvisor bench: node ${env.node}, ${env.platform}/${env.arch}, ${env.cpus} x ${env.cpuModel}, load avg ${env.loadavg}, took ${env.totalSeconds.toFixed(1)} s`, '', line(head)];
  for (const [i, g] of groups.entries()) {
    if (i > 0) out.push('');
    out.push(g.title);
    for (const cells of g.rows) out.push(line(cells));
  }
  const inst = byId.get('partition.instantiate');
  const create = byId.get('partition.create');
  out.push('');
  out.push(`Dispatcher, GuestMemory, EntropyDevice: bundled from host/ with esbuild (not exported by dist/index.js).`);
  if (inst) out.push(`Partition baseline module: ${inst.module}.`);
  if (create?.moduleCache) out.push(`Module cache after the partition runs: ${create.moduleCache.misses} miss, ${create.moduleCache.hits} hits.`);
  console.log(out.join('\n'));
}

const startedAt = ms();
const internals = await loadInternals();
if (ONLY.has('hypercall')) await benchHypercalls(internals);
if (ONLY.has('partition')) await benchPartitions(internals);
if (ONLY.has('worker')) await benchWorkers();
progress('');
const env = {
  node: process.version,
  platform: process.platform,
  arch: process.arch,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model?.trim() ?? 'unknown',
  loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  totalSeconds: (ms() - startedAt) / 1000,
};
if (JSON_OUT) {
  console.log(JSON.stringify({ env, results }, null, 2));
} else {
  printTable(env);
}
