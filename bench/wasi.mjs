#!/usr/bin/env node
/**
 * fd_write of 64-byte lines, calls per second: Wasmvisor's WASI (in a partition, stdout through
 * the console device and the event ring to the root) vs node:wasi (stdout to /dev/null), same
 * module (guests/c/writebench.wasm), same run. Start-up is taken out by timing N lines and 0
 * lines and dividing N by the difference. Needs `npm run build` (dist/) first.
 *
 * Usage: node --no-warnings bench/wasi.mjs [lines=200000] [rounds=3]   (or npm run bench:wasi)
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WASI } from 'node:wasi';
import { Hypervisor } from '../dist/index.js';

const LINES = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const file = fileURLToPath(new URL('../guests/c/writebench.wasm', import.meta.url));
const bytes = readFileSync(file);

async function ours(n) {
  const hv = new Hypervisor();
  const p = await hv.createPartition({
    name: 'bench',
    module: bytes,
    // The default console rate limit (1000 lines/s) is a DoS guard; lift it to measure the path itself.
    devices: { console: { linesPerSecond: 1_000_000, burstLines: 1_000_000 } },
    limits: { timeoutMs: 120_000 },
    wasi: { args: ['writebench', String(n)], stdin: 'none' },
  });
  let lines = 0;
  p.on('console', () => lines++);
  const t = performance.now();
  await p.start();
  const exit = await p.exited;
  const ms = performance.now() - t;
  await hv.close();
  if (exit.code !== 0 || lines !== n) throw new Error(`ours: exit ${exit.code} ${exit.reason}, ${lines}/${n} lines (dropped ${exit.metrics.console.linesDropped})`);
  return ms;
}

async function node(n) {
  const fd = openSync('/dev/null', 'w');
  try {
    const wasi = new WASI({ version: 'preview1', args: ['writebench', String(n)], stdout: fd, returnOnExit: true });
    const t = performance.now();
    const { instance } = await WebAssembly.instantiate(bytes, wasi.getImportObject());
    const code = wasi.start(instance);
    const ms = performance.now() - t;
    if (code !== 0) throw new Error(`node:wasi exit ${code}`);
    return ms;
  } finally {
    closeSync(fd);
  }
}

async function rate(run) {
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const base = await run(0);
    const full = await run(LINES);
    best = Math.max(best, LINES / ((full - base) / 1000));
  }
  return best;
}

const mine = await rate(ours);
const theirs = await rate(node);
const fmt = (x) => Math.round(x).toLocaleString('en-US');
console.log(`fd_write, 64-byte lines, ${LINES} per run, best of ${ROUNDS}`);
console.log(`  wasmvisor WASI (partition, console device): ${fmt(mine)} calls/s`);
console.log(`  node:wasi (stdout to /dev/null):            ${fmt(theirs)} calls/s`);
console.log(`  ratio: ${(mine / theirs).toFixed(2)}x`);
