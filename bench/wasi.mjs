#!/usr/bin/env node
/**
 * WASI stdout throughput, Wasmvisor against node:wasi, same modules, same run:
 *
 * 1. fd_write of 64-byte lines, calls per second (guests/c/writebench.wasm): Wasmvisor in a
 *    partition (every byte through the console's byte stream and the event ring to the root,
 *    counted from `output` events) vs node:wasi writing to /dev/null. Start-up is taken out by
 *    timing N lines and 0 lines and dividing N by the difference.
 * 2. 100 MB through the real CLI: `wasmvisor run guests/c/stream.wasm -- gen <bytes>` with stdout
 *    on /dev/null, vs the same module under node:wasi in a child process with stdout on
 *    /dev/null; both as fresh processes, start-up taken out the same way (a 0-byte run).
 *
 * Needs `npm run build` (dist/) first.
 * Usage: node --no-warnings bench/wasi.mjs [lines=200000] [rounds=3] [megabytes=100]   (or npm run bench:wasi)
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WASI } from 'node:wasi';
import { Hypervisor } from '../dist/index.js';

const LINES = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const BYTES = Number(process.argv[4] ?? 100) * 1_000_000;
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const writebench = readFileSync(here('../guests/c/writebench.wasm'));
const streamWasm = here('../guests/c/stream.wasm');
const cli = here('../dist/cli.js');

async function ours(n) {
  const hv = new Hypervisor();
  const p = await hv.createPartition({
    name: 'bench',
    module: writebench,
    devices: { console: true },
    limits: { timeoutMs: 120_000 },
    wasi: { args: ['writebench', String(n)], stdin: 'none' },
  });
  let bytes = 0;
  p.on('output', (chunk) => (bytes += chunk.length));
  const t = performance.now();
  await p.start();
  const exit = await p.exited;
  const ms = performance.now() - t;
  await hv.close();
  if (exit.code !== 0 || bytes !== n * 64) throw new Error(`ours: exit ${exit.code} ${exit.reason}, ${bytes}/${n * 64} bytes`);
  return ms;
}

async function node(n) {
  const fd = openSync('/dev/null', 'w');
  try {
    const wasi = new WASI({ version: 'preview1', args: ['writebench', String(n)], stdout: fd, returnOnExit: true });
    const t = performance.now();
    const { instance } = await WebAssembly.instantiate(writebench, wasi.getImportObject());
    const code = wasi.start(instance);
    const ms = performance.now() - t;
    if (code !== 0) throw new Error(`node:wasi exit ${code}`);
    return ms;
  } finally {
    closeSync(fd);
  }
}

/** node:wasi as its own process, like the CLI: stdout is the inherited fd 1. */
const NODE_WASI_CHILD = `
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';
const [file, ...args] = process.argv.slice(1);
const wasi = new WASI({ version: 'preview1', args: ['stream', ...args], returnOnExit: true });
const { instance } = await WebAssembly.instantiate(readFileSync(file), wasi.getImportObject());
process.exitCode = wasi.start(instance);
`;

const CPU_USAGE = here('./cpu-usage.cjs');

/**
 * A child process with stdout on /dev/null: its wall time, and the CPU time all its threads
 * used (reported on fd 3 by cpu-usage.cjs), in ms.
 */
function timeChild(args) {
  return new Promise((resolve, reject) => {
    const out = openSync('/dev/null', 'w');
    const t = performance.now();
    const child = spawn(process.execPath, ['--require', CPU_USAGE, ...args], { stdio: ['ignore', out, 'inherit', 'pipe'] });
    let cpu = '';
    child.stdio[3].setEncoding('utf8').on('data', (d) => (cpu += d));
    child.on('error', reject);
    child.on('close', (code) => {
      closeSync(out);
      if (code !== 0) reject(new Error(`${args.join(' ')} exited ${code}`));
      else resolve({ wall: performance.now() - t, cpu: Number(cpu) });
    });
  });
}

const viaCli = (bytes) => timeChild([cli, 'run', '--timeout', '0', streamWasm, '--', 'gen', String(bytes)]);
const viaNode = (bytes) => timeChild(['--no-warnings', '--input-type=module', '-e', NODE_WASI_CHILD, streamWasm, 'gen', String(bytes)]);

/**
 * Rate of `run`: N units / (fastest time(N) - fastest time(0)) over `rounds` rounds, each timing
 * both. The fastest of each is the least disturbed by other load; a ratio of single pairs would
 * let one slow start-up make a run look free.
 */
async function timings(run, n, rounds = ROUNDS) {
  let base = Infinity;
  let full = Infinity;
  for (let r = 0; r < rounds; r++) {
    base = Math.min(base, await run(0));
    full = Math.min(full, await run(n));
  }
  return { base, full };
}
const rateOf = (n, t) => n / ((t.full - t.base) / 1000);
async function rate(run, n) {
  return rateOf(n, await timings(run, n));
}

const fmt = (x) => Math.round(x).toLocaleString('en-US');
const mine = await rate(ours, LINES);
const theirs = await rate(node, LINES);
console.log(`fd_write, 64-byte lines, ${LINES} per run, best of ${ROUNDS}`);
console.log(`  wasmvisor WASI (partition, console byte stream): ${fmt(mine)} calls/s`);
console.log(`  node:wasi (stdout to /dev/null):                 ${fmt(theirs)} calls/s`);
console.log(`  ratio: ${(mine / theirs).toFixed(2)}x`);

// Interleaved, so a burst of load on the shared machine hits both sides alike. Fastest of each
// (wall and CPU apart): the least disturbed by other load.
const fastest = () => ({ base: { wall: Infinity, cpu: Infinity }, full: { wall: Infinity, cpu: Infinity } });
const cliT = fastest();
const nodeT = fastest();
for (let r = 0; r < ROUNDS; r++) {
  for (const [run, t] of [[viaCli, cliT], [viaNode, nodeT]]) {
    for (const [n, slot] of [[0, 'base'], [BYTES, 'full']]) {
      const one = await run(n);
      t[slot].wall = Math.min(t[slot].wall, one.wall);
      t[slot].cpu = Math.min(t[slot].cpu, one.cpu);
    }
  }
}
const mb = (x) => (x / 1e6).toFixed(0);
const per = (t, k) => BYTES / ((t.full[k] - t.base[k]) / 1000);
const show = (t, k) => `${mb(per(t, k))} MB/s (${t.full[k].toFixed(0)} ms, ${t.base[k].toFixed(0)} ms for 0 bytes)`;
console.log(`stdout, ${mb(BYTES)} MB in 64 KiB writes to /dev/null, fresh process each, fastest of ${ROUNDS}`);
console.log(`  by wall time:  wasmvisor run (CLI) ${show(cliT, 'wall')}`);
console.log(`                 node:wasi           ${show(nodeT, 'wall')}`);
console.log(`                 ratio: ${(per(cliT, 'wall') / per(nodeT, 'wall')).toFixed(2)}x (target >= 0.8x)`);
console.log(`  by CPU time (all threads; steadier on a loaded machine):`);
console.log(`                 wasmvisor run (CLI) ${show(cliT, 'cpu')}`);
console.log(`                 node:wasi           ${show(nodeT, 'cpu')}`);
console.log(`                 ratio: ${(per(cliT, 'cpu') / per(nodeT, 'cpu')).toFixed(2)}x`);
