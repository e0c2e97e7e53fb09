/**
 * Reactor-call measurements shared by bench/plugin.mjs and the bench guard in `npm test`
 * (test/bench/plugin-guard.test.ts). Plain JS, so the bench runs it after `npm run build`
 * without a TypeScript loader; types in plugin.d.mts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { workerEvent } from './worker.mjs';

/** 64 bytes of input, the same for every echo call. */
export const INPUT = new Uint8Array(64).map((_, i) => 65 + (i % 26));

/** Throws unless `out` is INPUT echoed. */
export function checkEcho(out) {
  if (out.length !== 64 || out[0] !== 65 || out[63] !== INPUT[63]) throw new Error('wrong echo output');
}

/** Calls per second of `fn` with `inFlight` callers, each awaiting its call before the next. */
export async function throughput(fn, inFlight, total) {
  let left = total;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (left-- > 0) await fn();
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

/**
 * CPU time of every thread of this process so far, ns by thread id, from
 * /proc/self/task/<tid>/schedstat (its first field: time on a CPU); null where there is no /proc.
 * The root is the thread whose id is the process id.
 */
export function threadCpu() {
  try {
    const m = new Map();
    for (const t of readdirSync('/proc/self/task')) {
      try {
        m.set(t, Number(readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ')[0]));
      } catch {
        // The thread ended between the listing and the read.
      }
    }
    return m;
  } catch {
    return null;
  }
}

/**
 * What `calls` calls cost in CPU between two threadCpu() readings `wallMs` apart:
 * `{ cpuUs, rootUs, cores }`, µs of CPU per call in all threads of the process (the root, the
 * workers, V8's and libuv's helpers) and in the root alone, and the cores used on average
 * (all CPU time / wall time). Null without /proc. A thread that ended between the readings is
 * not counted (the measured ones end after the second reading).
 */
export function cpuPerCall(before, after, wallMs, calls) {
  if (before === null || after === null) return null;
  let total = 0;
  let root = 0;
  for (const [t, ns] of after) {
    const d = ns - (before.get(t) ?? 0);
    total += d;
    if (t === String(process.pid)) root = d;
  }
  return { cpuUs: total / 1000 / calls, rootUs: root / 1000 / calls, cores: total / 1e6 / wallMs };
}

/** Calls/s and CPU (cpuPerCall) of `run(calls)`, which makes `calls` calls: `{ rate, cpu }`. */
async function slice(run, calls) {
  const before = threadCpu();
  const t0 = performance.now();
  await run(calls);
  const wall = performance.now() - t0;
  return { rate: calls / (wall / 1000), cpu: cpuPerCall(before, threadCpu(), wall, calls) };
}

/**
 * A baseline and a pool measured in alternated slices of `calls` calls each (baseline, pool,
 * baseline, pool …, `pairs` of each), both already warmed up and alive side by side: a stall or a
 * compilation burst lands in one slice, not in a whole side, and the two sides share the
 * machine's state slice by slice. `run(calls)` makes that many calls. Each side's median calls/s
 * with the CPU of that median slice; the median of the per-pair ratios (pool / baseline) and
 * their spread, and every slice's calls/s in order:
 * `{ one, pool, ratio, ratioMin, ratioMax, pairs, oneCpu, poolCpu, oneRates, poolRates }`.
 */
export async function alternatedSlices(runOne, runPool, pairs, calls) {
  const ones = [];
  const pools = [];
  for (let i = 0; i < pairs; i++) {
    ones.push(await slice(runOne, calls));
    pools.push(await slice(runPool, calls));
  }
  const ratios = pools.map((p, i) => p.rate / ones[i].rate).sort((a, b) => a - b);
  const mid = (xs) => [...xs].sort((a, b) => a.rate - b.rate)[Math.floor(xs.length / 2)];
  const one = mid(ones);
  const pool = mid(pools);
  return {
    one: one.rate,
    pool: pool.rate,
    ratio: ratios[Math.floor(ratios.length / 2)],
    ratioMin: ratios[0],
    ratioMax: ratios[ratios.length - 1],
    pairs,
    oneCpu: one.cpu,
    poolCpu: pool.cpu,
    oneRates: ones.map((x) => x.rate),
    poolRates: pools.map((x) => x.rate),
  };
}

/** `run(calls)` for `inFlight` callers sharing `calls` calls of `fn`, each awaiting its call before the next. */
const caller = (fn, inFlight) => (calls) => throughput(fn, inFlight, calls);

/**
 * One reactor's calls/s (one call at a time, spinning as it may) against a pool of 2's (two calls
 * in flight), both alive side by side in one Hypervisor, warmed up in alternated rounds of
 * `warmup` calls each (`rounds` of each: the root's call path, shared by both, is compiled for
 * both before the clock starts, each the way it is measured), then measured in `pairs`
 * alternated slices of `calls` calls (alternatedSlices). The reactor makes
 * 1 + rounds × warmup + pairs × calls calls on one instance (reactor guests are built with the
 * incremental collector, so that count has no ceiling; test/partition/reactor-memory.test.ts).
 */
export async function poolVsOne(Hypervisor, module, { calls, pairs, warmup, rounds = 2 }) {
  const hv = new Hypervisor();
  try {
    const p = await hv.createPartition({ name: 'bench-one', module, kind: 'reactor' });
    await p.start();
    checkEcho(await p.call('echo', INPUT));
    const pool = await hv.createPool({ name: 'bench-pool', module }, { size: 2 });
    checkEcho(await pool.call('echo', INPUT));
    const runOne = caller(() => p.call('echo', INPUT), 1);
    const runPool = caller(() => pool.call('echo', INPUT), 2);
    for (let r = 0; r < rounds; r++) {
      await runOne(warmup);
      await runPool(warmup);
    }
    return await alternatedSlices(runOne, runPool, pairs, calls);
  } finally {
    await hv.close();
  }
}

/**
 * Microseconds of `n` sequential calls, each to the worker `pick()` returns: `call(w)` is timed
 * from before it starts to its end.
 */
export async function timedCalls(pick, call, n) {
  const xs = [];
  for (let i = 0; i < n; i++) {
    const w = pick();
    const t0 = performance.now();
    await call(w);
    xs.push((performance.now() - t0) * 1000);
  }
  return xs;
}

// A bare worker: sleeps in Atomics.wait on word 0 until the root bumps it, copies 64 bytes from
// the input area to the output area of the shared buffer, bumps word 1 and notifies it.
const BARE_WORKER = `
const { workerData } = require('node:worker_threads');
const a = new Int32Array(workerData);
const bytes = new Uint8Array(workerData);
let seen = 0;
for (;;) {
  // Reply only to a new request: a wait can end with the request counter unmoved (a late notify),
  // and a second reply to one request would let the root's next call end on it.
  while (Atomics.load(a, 0) === seen) Atomics.wait(a, 0, seen);
  seen = Atomics.load(a, 0);
  bytes.copyWithin(64, 128, 192);
  Atomics.add(a, 1, 1);
  Atomics.notify(a, 1);
}`;

/**
 * The floor under a call to a dedicated reactor: `count` plain workers, each asleep in
 * Atomics.wait; a call writes 64 bytes into the worker's shared buffer, wakes it with
 * Atomics.notify, and takes the reply (64 bytes copied back) with Atomics.waitAsync on the
 * root's event loop, as a reactor's reply is taken. No ring, no guest, no checks: only the two
 * wake-ups and the copies. Returns the workers and `call(w)`; `close()` ends them.
 *
 * A worker that dies (throws, exits) fails the call waiting on it, or its next one, naming it,
 * with nothing added to a call: its 'error' and 'exit' listeners, added here, outside any timed
 * call, mark it dead and from then on keep moving its reply counter (now, then every 10 ms until
 * close()), so that no wait on it lasts; the call then finds no echo and says why. Before, a
 * dying worker left the wait pending for ever (Node exited 13, with no message).
 */
export async function bareWorkers(count) {
  const workers = [];
  const undertakers = [];
  let closing = false;
  for (let i = 0; i < count; i++) {
    const sab = new SharedArrayBuffer(256);
    const worker = new Worker(BARE_WORKER, { eval: true, workerData: sab });
    const w = { worker, a: new Int32Array(sab), bytes: new Uint8Array(sab), name: `bare worker ${i}`, dead: null };
    const wake = () => {
      Atomics.add(w.a, 1, 1);
      Atomics.notify(w.a, 1);
    };
    const died = (why) => {
      if (closing || w.dead !== null) return;
      w.dead = why;
      wake();
      undertakers.push(setInterval(wake, 10));
    };
    worker.on('error', (error) => died(`failed: ${error instanceof Error ? error.message : String(error)}`));
    worker.on('exit', (code) => died(`exited with code ${code}`));
    workers.push(w);
  }
  await Promise.all(workers.map((w) => workerEvent(w.worker, w.name, { event: 'online' })));
  const call = async (w) => {
    w.bytes.set(INPUT, 128);
    const seq = Atomics.load(w.a, 1);
    Atomics.add(w.a, 0, 1);
    Atomics.notify(w.a, 0);
    // A wait may end without the reply (V8 wakes an async waiter spuriously now and then under
    // load): wait until the counter moved, as the ring's readers do.
    while (Atomics.load(w.a, 1) === seq) {
      const r = Atomics.waitAsync(w.a, 1, seq);
      if (r.async) await r.value;
    }
    if (w.bytes[64] !== INPUT[0] || w.bytes[127] !== INPUT[63]) throw new Error(w.dead !== null ? `bench: ${w.name} ${w.dead} before its reply` : 'wrong bare echo');
    w.bytes.fill(0, 64, 128);
  };
  const close = () => {
    closing = true;
    for (const u of undertakers) clearInterval(u);
    return Promise.all(workers.map((w) => w.worker.terminate()));
  };
  return { workers, call, close };
}

/**
 * The floor under the pool row, measured the same way (alternatedSlices after alternated warm-up
 * rounds): bare workers (see bareWorkers) answering one call at a time from one worker, against
 * two calls in flight on two workers, each caller keeping to its own worker (a pool of 2 with two
 * calls in flight). Same result as poolVsOne.
 */
export async function barePoolVsOne({ calls, pairs, warmup, rounds = 2 }) {
  const bare = await bareWorkers(2);
  try {
    const [a, b] = bare.workers;
    const runOne = caller(() => bare.call(a), 1);
    const runPool = async (total) => {
      let left = total;
      await Promise.all(
        [a, b].map(async (w) => {
          while (left-- > 0) await bare.call(w);
        }),
      );
    };
    for (let r = 0; r < rounds; r++) {
      await runOne(warmup);
      await runPool(warmup);
    }
    return await alternatedSlices(runOne, runPool, pairs, calls);
  } finally {
    await bare.close();
  }
}

/** The q-quantile of xs (0.5: the median). */
export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
