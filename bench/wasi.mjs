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

/** Wall time of a child process with stdout on /dev/null. */
function timeChild(args) {
  return new Promise((resolve, reject) => {
    const out = openSync('/dev/null', 'w');
    const t = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', out, 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => {
      closeSync(out);
      if (code !== 0) reject(new Error(`${args.join(' ')} exited ${code}`));
      else resolve(performance.now() - t);
    });
  });
}

const viaCli = (bytes) => timeChild([cli, 'run', '--timeout', '0', streamWasm, '--', 'gen', String(bytes)]);
const viaNode = (bytes) => timeChild(['--no-warnings', '--input-type=module', '-e', NODE_WASI_CHILD, streamWasm, 'gen', String(bytes)]);

/** Best rate over ROUNDS of (N units) / (time(N) - time(0)). */
async function rate(run, n) {
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const base = await run(0);
    const full = await run(n);
    best = Math.max(best, n / ((full - base) / 1000));
  }
  return best;
}

const fmt = (x) => Math.round(x).toLocaleString('en-US');
const mine = await rate(ours, LINES);
const theirs = await rate(node, LINES);
console.log(`fd_write, 64-byte lines, ${LINES} per run, best of ${ROUNDS}`);
console.log(`  wasmvisor WASI (partition, console byte stream): ${fmt(mine)} calls/s`);
console.log(`  node:wasi (stdout to /dev/null):                 ${fmt(theirs)} calls/s`);
console.log(`  ratio: ${(mine / theirs).toFixed(2)}x`);

// Interleaved, so a burst of load on the shared machine hits both sides alike.
let cliBest = 0;
let nodeBest = 0;
for (let r = 0; r < ROUNDS; r++) {
  cliBest = Math.max(cliBest, await rate(viaCli, BYTES));
  nodeBest = Math.max(nodeBest, await rate(viaNode, BYTES));
}
const mb = (x) => (x / 1e6).toFixed(0);
console.log(`stdout, ${mb(BYTES)} MB in 64 KiB writes to /dev/null, fresh process each, best of ${ROUNDS * ROUNDS}`);
console.log(`  wasmvisor run (CLI): ${mb(cliBest)} MB/s`);
console.log(`  node:wasi:           ${mb(nodeBest)} MB/s`);
console.log(`  ratio: ${(cliBest / nodeBest).toFixed(2)}x (target >= 0.8x)`);
