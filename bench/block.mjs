#!/usr/bin/env node
/**
 * Block device throughput: a guest doing sequential and random 4 KiB (and full-call) reads and
 * writes on its encrypted disk, against Node's own fs doing the same operations on a plain file
 * of the same size, in the same run, in the same directory. Rate limits are lifted for the guest.
 *
 * Each run measures the guest, then the baseline; with --runs N (default 3) the table shows the
 * median of the N runs for each side and the median of the N same-run ratios. The header prints
 * the load average: on a busy machine only the ratios mean anything.
 *
 * Usage: npm run build && node bench/block.mjs [--mib 64] [--random-ops 8192] [--runs 3] [--json]
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Hypervisor } from '../dist/index.js';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '64' },
    'random-ops': { type: 'string', default: '8192' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const MIB = Number(values.mib);
const RANDOM_OPS = Number(values['random-ops']);
const RUNS = Number(values.runs);
const S = 4096;
const SECTORS = (MIB * 1024 * 1024) / S;
const dir = mkdtempSync(path.join(values.dir ?? tmpdir(), 'wv-bench-block-'));

function lcg(seed) {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x >>> 8) % SECTORS;
  };
}

/** Node's fs, synchronous (like the device front-end), the same operations in the same order. */
function baseline(run) {
  const file = path.join(dir, `baseline-${run}.img`);
  const fd = openSync(file, 'w+');
  const buf = Buffer.alloc(16 * S, 1);
  const results = {};
  const time = (phase, bytes, fn) => {
    const t0 = process.hrtime.bigint();
    fn();
    results[phase] = { ns: Number(process.hrtime.bigint() - t0), bytes };
  };
  time('seq-write-4k', SECTORS * S, () => {
    for (let s = 0; s < SECTORS; s++) writeSync(fd, buf, 0, S, s * S);
    fsyncSync(fd);
  });
  time('seq-read-4k', SECTORS * S, () => {
    for (let s = 0; s < SECTORS; s++) readSync(fd, buf, 0, S, s * S);
  });
  let next = lcg(12345);
  time('rand-write-4k', RANDOM_OPS * S, () => {
    for (let i = 0; i < RANDOM_OPS; i++) writeSync(fd, buf, 0, S, next() * S);
    fsyncSync(fd);
  });
  next = lcg(777);
  time('rand-read-4k', RANDOM_OPS * S, () => {
    for (let i = 0; i < RANDOM_OPS; i++) readSync(fd, buf, 0, S, next() * S);
  });
  time('seq-write-60k', Math.floor(SECTORS / 15) * 15 * S, () => {
    for (let s = 0; s + 15 <= SECTORS; s += 15) writeSync(fd, buf, 0, 15 * S, s * S);
    fsyncSync(fd);
  });
  time('seq-read-64k', Math.floor(SECTORS / 16) * 16 * S, () => {
    for (let s = 0; s + 16 <= SECTORS; s += 16) readSync(fd, buf, 0, 16 * S, s * S);
  });
  closeSync(fd);
  return results;
}

async function guest(run) {
  const hv = new Hypervisor({ dataDir: path.join(dir, `wasmvisor-${run}`) });
  const p = await hv.createPartition({
    name: 'bench',
    module: new URL('../build/guests/disk-bench.wasm', import.meta.url),
    args: [String(SECTORS), String(RANDOM_OPS)],
    limits: { timeoutMs: 600_000 },
    devices: {
      console: true,
      clock: { resolutionMs: 0.001 },
      block: { sizeMiB: MIB, bytesPerSecond: 2 ** 40, opsPerSecond: 1e9 },
    },
  });
  const results = {};
  const errors = [];
  p.on('console', (line, stream) => {
    const m = /^(\S+) (\d+) (\d+)$/.exec(line);
    if (stream === 'stdout' && m) results[m[1]] = { ns: Number(m[2]), bytes: Number(m[3]) };
    else errors.push(line);
  });
  await p.start();
  const exit = await p.exited;
  await hv.close();
  if (exit.reason !== 'exit' || exit.code !== 0) throw new Error(`bench guest failed: ${exit.reason} ${errors.join('\n')}`);
  return results;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mbps = (r) => r.bytes / (1024 * 1024) / (r.ns / 1e9);
try {
  const load0 = loadavg()[0];
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push({ ours: await guest(r), base: baseline(r) });
  const phases = Object.keys(runs[0].base);
  const results = phases.map((phase) => {
    const size = phase.endsWith('64k') ? 16 * S : phase.endsWith('60k') ? 15 * S : S;
    const ours = median(runs.map((x) => mbps(x.ours[phase])));
    const base = median(runs.map((x) => mbps(x.base[phase])));
    return { phase, oursMiBs: ours, fsMiBs: base, oursOps: (ours * 1048576) / size, fsOps: (base * 1048576) / size, ratio: median(runs.map((x) => mbps(x.ours[phase]) / mbps(x.base[phase]))) };
  });
  const env = { node: process.version, mib: MIB, randomOps: RANDOM_OPS, runs: RUNS, loadavg: [load0, loadavg()[0]].map((l) => Number(l.toFixed(2))) };
  if (values.json) {
    console.log(JSON.stringify({ env, results }, null, 2));
  } else {
    console.log(`Block device vs node:fs, ${MIB} MiB, ${RANDOM_OPS} random ops, median of ${RUNS} run(s), node ${process.version}, load ${env.loadavg.join(' -> ')}`);
    console.log('phase            wasmvisor guest          node:fs (plain file)     guest/fs (median of same-run ratios)');
    const fmt = (mibs, ops) => `${mibs.toFixed(1).padStart(7)} MiB/s ${Math.round(ops).toString().padStart(7)} op/s`;
    for (const r of results) console.log(`${r.phase.padEnd(16)} ${fmt(r.oursMiBs, r.oursOps)}   ${fmt(r.fsMiBs, r.fsOps)}   ${r.ratio.toFixed(2)}x`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
