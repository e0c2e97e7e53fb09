#!/usr/bin/env node
/**
 * Wasmvisor benchmarks. Run after a build: `npm run bench`, or `node bench/core.mjs [--json]`.
 * Every number is measured in this run next to its baseline, on this machine; nothing is
 * compared against numbers recorded elsewhere.
 *
 * 1. Hypercall cost, ns per call (median and p90 over several runs of N calls each).
 *    A tiny wasm module (built here from WAT with wabt) exports `loop(n, call, in_ptr, in_len,
 *    out_ptr, out_cap)`, which calls its one import `hv.hypercall` n times. It is instantiated
 *    in this thread once per import:
 *    - baseline: a trivial JS function with the same (i32 x5) -> i32 signature (declared with
 *      five parameters, like the dispatcher's `hypercall`) that returns 0;
 *    - the real `Dispatcher.hypercall` over a real `GuestMemory` and a stats block in a
 *      SharedArrayBuffer, exactly as a partition's worker builds them, calling HV_CALL_VERSION
 *      with every buffer empty.
 *    Both sides pay the same wasm loop and the same wasm→JS import transition, so the
 *    difference is what the dispatcher adds: counting, the handler lookup and the window checks.
 *    The call path is the same one a guest uses in its worker (the guest and the dispatcher
 *    share the worker's thread); measuring in the main thread only leaves out the worker.
 *    For the transfer case the call is HV_CALL_ARGS_GET with in_len = out_cap = 64 and a
 *    64-byte argument block: the dispatcher checks both windows, copies the 64 input bytes
 *    into host scratch (ARGS_GET ignores them, but every call's input is copied before the
 *    handler runs), zeroes the scratch output, the handler copies the block into it and the
 *    dispatcher copies the 64 bytes back into guest memory. ARGS_GET was picked because its
 *    handler is a plain 64-byte copy, so the row shows the cost of the checks + copies and not
 *    of a device. Its baseline is a bare import that copies 64 bytes in and 64 bytes out
 *    through a Uint8Array view of the same memory (subarray + set, as GuestMemory does) with
 *    no checks at all: one view, made after instantiation and never re-validated. For reference, ENTROPY_GET 64/64 on a seeded entropy device (AES-256-CTR) is
 *    also shown (3 runs only: it is ~10x slower); that row includes the device's own cost.
 *    The Dispatcher is not exported by dist/index.js (only the public API is), so the bench
 *    bundles host/abi/dispatcher.ts and its neighbours on the fly with esbuild (platform node,
 *    ESM, target node20, not minified: as scripts/build.mjs builds dist/worker.js) and imports
 *    the bundle from a data: URL.
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

const LOOP_WAT = `(module
  (import "hv" "hypercall" (func $hypercall (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "loop") (param $n i32) (param $call i32) (param $ip i32) (param $il i32) (param $op i32) (param $oc i32) (result i32)
    (local $r i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $r (call $hypercall (local.get $call) (local.get $ip) (local.get $il) (local.get $op) (local.get $oc)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $r)))`;

async function benchHypercalls(I) {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat('bench-loop.wat', LOOP_WAT);
  const loopModule = await WebAssembly.compile(parsed.toBinary({}).buffer);
  parsed.destroy();

  const IN = 0;
  const OUT = 128;
  const LEN = 64;
  const ARG = 'a'.repeat(LEN - 1); // one argument, NUL-terminated: a 64-byte ARGS_GET block

  /** Instantiates the loop module with `hypercall` and fills the input window with 1..64. */
  async function instantiate(hypercall) {
    const inst = await WebAssembly.instantiate(loopModule, { hv: { hypercall } });
    const memory = inst.exports.memory;
    const view = new Uint8Array(memory.buffer);
    for (let i = 0; i < LEN; i++) view[IN + i] = i + 1;
    return { inst, memory };
  }

  /** A loop instance wired to a real Dispatcher, built as the partition worker builds it. */
  async function withDispatcher(devices, args) {
    const memory = new I.GuestMemory();
    const stats = new Float64Array(I.allocateStats());
    const dispatcher = new I.Dispatcher({ memory, devices: devices(stats), args, stats, onViolation: () => {} });
    const t = await instantiate(dispatcher.hypercall);
    memory.bind(t.memory);
    dispatcher.updateMemoryStats();
    return t;
  }

  // The baselines are declared with the dispatcher's five parameters (same arity, same call shape).
  // eslint-disable-next-line no-unused-vars
  const bareNoop = await instantiate(function hypercall(call, inPtr, inLen, outPtr, outCap) {
    return 0;
  });
  // The bare copy keeps one view made after instantiation and checks nothing (the loop module
  // never grows its memory): everything GuestMemory and the Dispatcher add is in the difference.
  const scratch = new Uint8Array(65536);
  let bareView = null;
  const bareCopy = await instantiate(function hypercall(call, inPtr, inLen, outPtr, outCap) {
    scratch.set(bareView.subarray(inPtr, inPtr + inLen));
    bareView.set(scratch.subarray(0, outCap), outPtr);
    return outCap;
  });
  bareView = new Uint8Array(bareCopy.memory.buffer);
  const hvVersion = await withDispatcher(() => [], []);
  const hvArgs = await withDispatcher(() => [], [ARG]);
  const hvEntropy = await withDispatcher((stats) => [new I.EntropyDevice({ seed: 'bench' }, stats)], []);

  const cases = [
    { id: 'bare_noop', label: 'bare import, no-op (baseline)', t: bareNoop, args: [0, 0, 0, 0, 0], expect: 0 },
    { id: 'version', label: 'HV_CALL_VERSION via Dispatcher', t: hvVersion, args: [I.HvCall.VERSION, 0, 0, 0, 0], expect: I.HV_ABI_VERSION, baseline: 'bare_noop' },
    { id: 'bare_copy64', label: 'bare import, copy 64 B in + 64 B out (baseline)', t: bareCopy, args: [0, IN, LEN, OUT, LEN], expect: LEN },
    { id: 'args_get64', label: 'HV_CALL_ARGS_GET 64 B in + 64 B out via Dispatcher', t: hvArgs, args: [I.HvCall.ARGS_GET, IN, LEN, OUT, LEN], expect: LEN, baseline: 'bare_copy64' },
    { id: 'entropy64', label: 'HV_CALL_ENTROPY_GET 64/64, seeded (incl. device)', t: hvEntropy, args: [I.HvCall.ENTROPY_GET, IN, LEN, OUT, LEN], expect: LEN, baseline: 'bare_copy64', runs: 3 },
  ];

  // Correctness first: every import answers what it should, so no row measures an error path.
  for (const c of cases) {
    const r = c.t.inst.exports.loop(1, ...c.args);
    if (r !== c.expect) throw new Error(`bench: ${c.id} returned ${r}, expected ${c.expect}`);
  }
  const argsOut = new Uint8Array(hvArgs.memory.buffer, OUT, LEN);
  if (new TextDecoder().decode(argsOut.subarray(0, LEN - 1)) !== ARG || argsOut[LEN - 1] !== 0) throw new Error('bench: ARGS_GET wrote the wrong bytes');
  const copyOut = new Uint8Array(bareCopy.memory.buffer, OUT, LEN);
  if (copyOut[0] !== 1 || copyOut[LEN - 1] !== LEN) throw new Error('bench: the bare copy wrote the wrong bytes');

  // N calls per run (>= 1e6), median and p90 over RUNS runs after a warm-up long enough for
  // V8 to tier both the wasm loop and the JS import up. The ENTROPY_GET row (reference only,
  // ~10x slower than the others) gets fewer runs to keep the whole bench short.
  const N = 1_000_000;
  const RUNS = 9;
  const WARMUP = 3;
  const runOnce = (c, n) => {
    const t0 = process.hrtime.bigint();
    c.t.inst.exports.loop(n, ...c.args);
    return Number(process.hrtime.bigint() - t0) / n;
  };
  for (let w = 0; w < WARMUP; w++) {
    for (const c of cases) runOnce(c, N / 4);
    progress(`1/3 hypercalls: warm-up ${w + 1}/${WARMUP}`);
  }
  // Round-robin, so drift (thermal, other load) spreads over every case alike.
  const samples = new Map(cases.map((c) => [c.id, []]));
  for (let r = 0; r < RUNS; r++) {
    for (const c of cases) if (r < (c.runs ?? RUNS)) samples.get(c.id).push(runOnce(c, N));
    progress(`1/3 hypercalls: run ${r + 1}/${RUNS}`);
  }
  for (const c of cases) {
    record('hypercall', c.id, c.label, 'ns', samples.get(c.id), { callsPerRun: N, ...(c.baseline ? { baseline: c.baseline } : {}) });
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
    ['hypercall', `1. Hypercall from wasm, in-thread, ns per call (n runs of ${hc.callsPerRun.toLocaleString('en')} calls each)`],
    ['partition', "2. Partition from a cached module (exit.wasm, args ['0'], exits at once)"],
    ['worker', '3. Worker start (no baseline: this is the floor under start())'],
  ];
  const head = ['', 'median', 'p90', 'n', 'vs baseline (median)'];
  const groups = sections.map(([section, title]) => ({
    title,
    rows: results
      .filter((r) => r.section === section)
      .map((r) => {
        let vs = '';
        if (r.baseline) {
          const b = byId.get(`${section}.${r.baseline}`);
          const d = r.median - b.median;
          vs = `${d >= 0 ? '+' : '-'}${fmt(Math.abs(d), r.unit)}  (x${(r.median / b.median).toFixed(1)})`;
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
  out.push(`Partition baseline module: ${inst.module}.`);
  if (create.moduleCache) out.push(`Module cache after the partition runs: ${create.moduleCache.misses} miss, ${create.moduleCache.hits} hits.`);
  console.log(out.join('\n'));
}

const startedAt = ms();
const internals = await loadInternals();
await benchHypercalls(internals);
await benchPartitions(internals);
await benchWorkers();
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
