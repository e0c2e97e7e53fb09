#!/usr/bin/env node
/**
 * Process-isolated partitions (issue #17, part 1): what a partition process costs against a
 * partition in a worker thread, measured side by side in one run.
 *
 *   - start: createPartition + start() of an idle reactor (transform.wasm, module cached), median
 *     and p90 over N partitions: a partition process (spawned, sandboxed, compiles its module)
 *     and a slot on a shared partition process (isolation 'process', placement 'shared': the
 *     child is already running) against a dedicated worker taken cold (spawned on demand:
 *     warmWorkers 0) and a shared one;
 *   - call latency: 64 B calls to transform's `echo`, one at a time, median and p99, to one
 *     process partition and one on a shared process against one dedicated-worker partition (the
 *     baseline);
 *   - memory: per partition process, its own RSS (from /proc, Linux) and what it adds to the
 *     root's RSS; per shared-process partition, its process's RSS over the partitions in it; per
 *     dedicated worker, what it adds to the root's RSS (after a GC).
 *
 * `--spread N` then holds N idle reactors on shared partition processes (`--processes K` of
 * them, default 2, N/K each: past one process's ~13,000 Wasm memories when N > 13,000), calls
 * random ones, and reports the memory of the root and of each child.
 *
 * `node bench/process.mjs [--n 10] [--calls 2000] [--spread N --processes K] [--json]` after `npm run build`.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { ROOT, numberOption, requireExposedGc } from './lib/script.mjs';

requireExposedGc(import.meta.url);

const { Hypervisor } = await import('../dist/index.js');
const root = ROOT;
const args = process.argv.slice(2);
const option = numberOption;
const N = option('n', 10);
const CALLS = option('calls', 2000);
const JSON_OUT = args.includes('--json');
const MODULE = readFileSync(`${root}build/guests/transform.wasm`);
const INPUT = new Uint8Array(64).fill(97);
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const MiB = 1024 * 1024;
async function rss() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  return process.memoryUsage().rss;
}
const childRss = (pid) => {
  const path = `/proc/${pid}/status`;
  if (!existsSync(path)) return null;
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(path, 'utf8'));
  return m ? Number(m[1]) * 1024 : null;
};

/** N idle reactors with `spec` extras: start times, and memory before/after. */
async function starts(label, tag, options, extra) {
  const hv = new Hypervisor({ warmWorkers: 0, ...options });
  // Warm the module caches (instrumentation, compilation) outside the timing.
  const first = await hv.createPartition({ name: `${tag}-warm`, module: MODULE, kind: 'reactor', ...extra });
  await first.start();
  await first.destroy();
  const before = await rss();
  const times = [];
  const parts = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    const p = await hv.createPartition({ name: `${tag}-${i}`, module: MODULE, kind: 'reactor', ...extra });
    await p.start();
    times.push(performance.now() - t);
    parts.push(p);
  }
  const after = await rss();
  // Each child once (a shared one hosts several of the partitions), over the partitions.
  const pids = extra.isolation === 'process' ? [...new Set(parts.map((p) => p.workerId))] : [];
  const children = pids.map(childRss).filter((x) => x !== null);
  await hv.close();
  return {
    label,
    startMedianMs: quantile(times, 0.5),
    startP90Ms: quantile(times, 0.9),
    rootRssPerPartitionMiB: (after - before) / N / MiB,
    childRssPerPartitionMiB: children.length > 0 ? children.reduce((a, b) => a + b, 0) / N / MiB : null,
  };
}

/** One reactor: CALLS calls of 64 B, one at a time. */
async function latency(label, tag, extra) {
  const hv = new Hypervisor({ warmWorkers: 0, process: { sharedProcesses: 1 } });
  const p = await hv.createPartition({ name: tag, module: MODULE, kind: 'reactor', ...extra });
  await p.start();
  for (let i = 0; i < 200; i++) await p.call('echo', INPUT);
  const us = [];
  for (let i = 0; i < CALLS; i++) {
    const t = performance.now();
    await p.call('echo', INPUT);
    us.push((performance.now() - t) * 1000);
  }
  await hv.close();
  return { label, medianUs: quantile(us, 0.5), p99Us: quantile(us, 0.99) };
}

const load = os.loadavg()[0].toFixed(2);
const startRows = [
  await starts('dedicated worker (cold)', 'dedicated', {}, {}),
  await starts('shared worker', 'shared', {}, { placement: 'shared' }),
  await starts('partition process', 'process', {}, { isolation: 'process' }),
  // One shared process for them all (it is started by the warm-up partition, outside the timing).
  await starts('shared partition process', 'sharedproc', { process: { sharedProcesses: 1 } }, { isolation: 'process', placement: 'shared' }),
];
const latRows = [
  await latency('dedicated worker', 'dedicated', {}),
  await latency('partition process', 'process', { isolation: 'process' }),
  await latency('shared partition process', 'sharedproc', { isolation: 'process', placement: 'shared' }),
];
const base = latRows[0];
const proc = latRows[1];
const sharedProc = latRows[2];

/** SPREAD idle reactors over PROCESSES shared partition processes; random calls; memory of the root and each child. */
async function spread(count, processes) {
  const perProcess = Math.ceil(count / processes);
  const hv = new Hypervisor({ warmWorkers: 0, memoryBudgetBytes: 2 ** 50, sharedWorkerHeapMb: 4096, process: { sharedProcesses: processes, partitionsPerProcess: perProcess } });
  const rss0 = await rss();
  const parts = [];
  const t0 = performance.now();
  const BATCH = 50;
  for (let i = 0; i < count; i += BATCH) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + BATCH); j++) {
      batch.push(await hv.createPartition({ name: `s-${j}`, module: MODULE, kind: 'reactor', isolation: 'process', placement: 'shared', limits: { memoryPages: 2 } }));
    }
    await Promise.all(batch.map((p) => p.start()));
    parts.push(...batch);
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${parts.length} partitions`);
  }
  const createMs = performance.now() - t0;
  const running = parts.filter((p) => p.state === 'running').length;
  const us = [];
  for (let i = 0; i < CALLS; i++) {
    const p = parts[Math.floor(Math.random() * parts.length)];
    const t = performance.now();
    await p.call('echo', INPUT);
    us.push((performance.now() - t) * 1000);
  }
  const rootMiB = ((await rss()) - rss0) / MiB;
  const sched = hv.scheduler();
  const children = sched.processes.map((p) => ({ pid: p.pid, partitions: p.partitions, rssMiB: (childRss(p.pid) ?? 0) / MiB }));
  await hv.close();
  const childMiB = children.reduce((a, c) => a + c.rssMiB, 0);
  return {
    partitions: count,
    running,
    processes: children,
    perPartitionCreateStartMs: createMs / count,
    rootRssGrowthMiB: rootMiB,
    childRssMiB: childMiB,
    hostMemoryPerPartitionKiB: ((rootMiB + childMiB) * 1024) / count,
    randomCallMedianUs: quantile(us, 0.5),
    randomCallP99Us: quantile(us, 0.99),
  };
}
const SPREAD = option('spread', 0);
const spreadRow = SPREAD > 0 ? await spread(SPREAD, option('processes', 2)) : null;
const result = {
  node: process.version,
  cores: os.availableParallelism?.() ?? os.cpus().length,
  loadAverage: Number(load),
  n: N,
  calls: CALLS,
  start: startRows,
  latency: latRows,
  ratios: {
    startProcessVsDedicated: startRows[2].startMedianMs / startRows[0].startMedianMs,
    callMedianProcessVsDedicated: proc.medianUs / base.medianUs,
    callP99ProcessVsDedicated: proc.p99Us / base.p99Us,
    startSharedProcessVsDedicated: startRows[3].startMedianMs / startRows[0].startMedianMs,
    callMedianSharedProcessVsDedicated: sharedProc.medianUs / base.medianUs,
    memorySharedProcessVsProcess: startRows[3].childRssPerPartitionMiB / startRows[2].childRssPerPartitionMiB,
  },
  spread: spreadRow,
};
if (JSON_OUT) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const f = (x, d = 1) => (x === null ? '—' : x.toFixed(d));
  console.log(`Process partitions vs worker partitions (node ${process.version}, ${result.cores} cores, load ${load}, ${N} partitions each, ${CALLS} calls)`);
  console.log('\nstart (create + start, module cached)   median ms   p90 ms   root RSS/partition MiB   child RSS MiB');
  for (const r of startRows) {
    console.log(`  ${r.label.padEnd(38)}${f(r.startMedianMs).padStart(9)}${f(r.startP90Ms).padStart(9)}${f(r.rootRssPerPartitionMiB).padStart(25)}${f(r.childRssPerPartitionMiB).padStart(16)}`);
  }
  console.log('\n64 B calls, one at a time               median µs   p99 µs');
  for (const r of latRows) console.log(`  ${r.label.padEnd(38)}${f(r.medianUs).padStart(9)}${f(r.p99Us).padStart(9)}`);
  console.log(
    `\nratios (process / dedicated worker): start ${f(result.ratios.startProcessVsDedicated, 2)}x, call median ${f(result.ratios.callMedianProcessVsDedicated, 2)}x, call p99 ${f(result.ratios.callP99ProcessVsDedicated, 2)}x`,
  );
  console.log(
    `ratios (shared partition process): start ${f(result.ratios.startSharedProcessVsDedicated, 2)}x a cold dedicated worker, call median ${f(result.ratios.callMedianSharedProcessVsDedicated, 2)}x a dedicated worker's, child memory per partition ${f(result.ratios.memorySharedProcessVsProcess, 3)}x a partition process's`,
  );
  if (spreadRow !== null) {
    const r = spreadRow;
    console.log(`\nspread: ${r.running} of ${r.partitions} idle reactors running on ${r.processes.length} shared partition processes (${r.processes.map((p) => `pid ${p.pid}: ${p.partitions} partitions, ${f(p.rssMiB, 0)} MiB`).join('; ')})`);
    console.log(`  create + start ${f(r.perPartitionCreateStartMs, 2)} ms per partition (batches of 50); root RSS +${f(r.rootRssGrowthMiB, 0)} MiB, children ${f(r.childRssMiB, 0)} MiB: ${f(r.hostMemoryPerPartitionKiB, 0)} KiB per partition (linear memory included)`);
    console.log(`  64 B calls to random partitions: median ${f(r.randomCallMedianUs)} µs, p99 ${f(r.randomCallP99Us)} µs`);
  }
}
