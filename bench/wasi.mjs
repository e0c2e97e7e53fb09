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
 *    /dev/null; both as fresh processes, start-up taken out the same way (a 0-byte run in the
 *    same round), by three clocks: the guest's run time as each side reports it (`run --json`'s
 *    runTimeMs; around node:wasi's instantiate + start), the process's CPU time, its wall time.
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

/**
 * node:wasi as its own process, like the CLI: stdout is the inherited fd 1. Its last stderr line
 * is a JSON object with the guest's run time (instantiate + start), as `wasmvisor run --json`'s.
 */
const NODE_WASI_CHILD = `
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';
const [file, ...args] = process.argv.slice(1);
const bytes = readFileSync(file);
const t = performance.now();
const wasi = new WASI({ version: 'preview1', args: ['stream', ...args], returnOnExit: true });
const { instance } = await WebAssembly.instantiate(bytes, wasi.getImportObject());
process.exitCode = wasi.start(instance);
process.stderr.write(JSON.stringify({ runTimeMs: performance.now() - t }) + '\\n');
`;

const CPU_USAGE = here('./cpu-usage.cjs');

/**
 * A child process with stdout on /dev/null: its wall time, the CPU time all its threads used
 * (reported on fd 3 by cpu-usage.cjs), and the guest's own run time (the `runTimeMs` of its last
 * stderr line), in ms.
 */
function timeChild(args) {
  return new Promise((resolve, reject) => {
    const out = openSync('/dev/null', 'w');
    const t = performance.now();
    const child = spawn(process.execPath, ['--require', CPU_USAGE, ...args], { stdio: ['ignore', out, 'pipe', 'pipe'] });
    let cpu = '';
    let err = '';
    child.stdio[3].setEncoding('utf8').on('data', (d) => (cpu += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      closeSync(out);
      const last = err.trim().split('\n').at(-1) ?? '';
      let guest = NaN;
      try {
        guest = JSON.parse(last).runTimeMs;
      } catch {
        // reported below
      }
      if (code !== 0 || !Number.isFinite(guest)) reject(new Error(`${args.join(' ')} exited ${code}: ${err}`));
      else resolve({ wall: performance.now() - t, cpu: Number(cpu), guest });
    });
  });
}

const viaCli = (bytes) => timeChild([cli, 'run', '--json', '--timeout', '0', streamWasm, '--', 'gen', String(bytes)]);
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

// Interleaved, so a burst of load hits both sides alike. Each round times, for each side, a run
// of 0 bytes and one of BYTES back to back; the cost of the bytes is their difference, and the
// median over the rounds is reported (a minimum of each side apart lets one lucky start-up make
// a run look free: start-up is most of a run). Three clocks: the guest's own run time (instantiate
// + _start, without the process's boot: the steadiest), the process's CPU time (all threads), and
// its wall time.
const ROUNDS_100MB = Math.max(ROUNDS, 5);
const KEYS = ['guest', 'cpu', 'wall'];
const diffs = { cli: { guest: [], cpu: [], wall: [] }, node: { guest: [], cpu: [], wall: [] } };
for (let r = 0; r < ROUNDS_100MB; r++) {
  for (const [run, side] of r % 2 === 0 ? [[viaCli, 'cli'], [viaNode, 'node']] : [[viaNode, 'node'], [viaCli, 'cli']]) {
    const base = await run(0);
    const full = await run(BYTES);
    for (const k of KEYS) diffs[side][k].push(full[k] - base[k]);
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mb = (x) => (x / 1e6).toFixed(0);
const per = (side, k) => BYTES / (median(diffs[side][k]) / 1000);
const LABEL = { guest: "guest run time (instantiate + _start; the target's measure)", cpu: 'process CPU time (all threads)', wall: 'process wall time' };
console.log(`stdout, ${mb(BYTES)} MB in 64 KiB writes to /dev/null, fresh process each, median of ${ROUNDS_100MB} paired rounds (time of ${mb(BYTES)} MB - time of 0 bytes)`);
for (const k of KEYS) {
  const ms = (side) => median(diffs[side][k]).toFixed(0);
  const rate = (side) => (median(diffs[side][k]) > 0 ? `${mb(per(side, k))} MB/s` : 'n/a (under the noise)');
  console.log(`  by ${LABEL[k]}:`);
  console.log(`    wasmvisor run (CLI) ${rate('cli')} (${ms('cli')} ms for ${mb(BYTES)} MB)`);
  console.log(`    node:wasi           ${rate('node')} (${ms('node')} ms)`);
  if (median(diffs.cli[k]) > 0 && median(diffs.node[k]) > 0) console.log(`    ratio: ${(per('cli', k) / per('node', k)).toFixed(2)}x${k === 'guest' ? ' (target >= 0.8x)' : ''}`);
}
