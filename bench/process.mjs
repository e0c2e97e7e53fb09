#!/usr/bin/env node
/**
 * Process-isolated partitions (issue #17, part 1): what a partition process costs against a
 * partition in a worker thread, measured side by side in one run.
 *
 *   - start: createPartition + start() of an idle reactor (transform.wasm, module cached), median
 *     and p90 over N partitions: a partition process (spawned, sandboxed, compiles its module)
 *     against a dedicated worker taken cold (spawned on demand: warmWorkers 0) and a shared one;
 *   - call latency: 64 B calls to transform's `echo`, one at a time, median and p99, to one
 *     process partition against one dedicated-worker partition (the baseline);
 *   - memory: per partition process, its own RSS (from /proc, Linux) and what it adds to the
 *     root's RSS; per dedicated worker, what it adds to the root's RSS (after a GC).
 *
 * `node bench/process.mjs [--n 10] [--calls 2000] [--json]` after `npm run build`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', '--no-warnings', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { Hypervisor } = await import('../dist/index.js');
const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
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
  const children = parts.map((p) => (extra.isolation === 'process' ? childRss(p.workerId) : null)).filter((x) => x !== null);
  await hv.close();
  return {
    label,
    startMedianMs: quantile(times, 0.5),
    startP90Ms: quantile(times, 0.9),
    rootRssPerPartitionMiB: (after - before) / N / MiB,
    childRssPerPartitionMiB: children.length > 0 ? children.reduce((a, b) => a + b, 0) / children.length / MiB : null,
  };
}

/** One reactor: CALLS calls of 64 B, one at a time. */
async function latency(label, tag, extra) {
  const hv = new Hypervisor({ warmWorkers: 0 });
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
];
const latRows = [await latency('dedicated worker', 'dedicated', {}), await latency('partition process', 'process', { isolation: 'process' })];
const base = latRows[0];
const proc = latRows[1];
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
  },
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
}
