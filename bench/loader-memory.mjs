#!/usr/bin/env node
// Peak host memory (and time) to load and start modules of at most 16 MiB shaped to push one
// multiplier of the engine's cost each (nesting depth, body size, functions, locals, br_table
// width), at the default module bounds, plus the bombs of issue #10 (refused by a bound).
// Each case runs in a fresh process; its peak RSS covers every thread (root, the loader's thread,
// the partition's worker, the engine's compiler threads). Modes:
//   lazy     Node's defaults: functions compile on first call (only _start's function here)
//   eager    --no-wasm-lazy-compilation: every function is compiled with Liftoff at load
//   turbofan --no-liftoff --no-wasm-lazy-compilation: every function through the optimizing tier
//   fuel     limits.fuel (binaryen instruments the module on the loader's thread), lazy; the
//            cases then fill moduleLimits.meteredCodeBytes (4 MiB of code) instead of 16 MiB
// Run after `npm run build`: node bench/loader-memory.mjs [case ...] [--modes lazy,eager,...]
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { concat, guestWithBodies, leb, localsBomb, nestingBomb, straightBody } from '../test/loader/bombs.mjs';

const CAP = 16 * 1024 * 1024;

/**
 * The code budget of a case: the size cap for plain modules; for metered ones the default
 * moduleLimits.meteredCodeBytes (binaryen rewrites them), so both hit their own bound.
 */
let budget = CAP - 4096;

/** As many copies of `body` as fit in the code budget (at most `max`). */
function fill(body, max = Infinity) {
  const n = Math.min(max, Math.floor(budget / (body.length + 4)));
  return guestWithBodies(new Array(n).fill(body));
}

/** depth nested blocks, each entered with `carry` values on the stack (Liftoff saves the stack per block). */
function nestedBody(depth, carry) {
  const parts = [[0]];
  for (let i = 0; i < depth; i++) {
    for (let c = 0; c < carry; c++) parts.push([0x41, 0x00]);
    parts.push([0x02, 0x40]);
  }
  for (let i = 0; i < depth; i++) {
    parts.push([0x0b]);
    for (let c = 0; c < carry; c++) parts.push([0x1a]);
  }
  parts.push([0x0b]);
  return concat(parts);
}

/** A br_table of `targets` entries inside `depth` blocks. */
function brTableBody(targets, depth) {
  const parts = [[0]];
  for (let i = 0; i < depth; i++) parts.push([0x02, 0x40]);
  parts.push([0x41, 0x00, 0x0e, ...leb(targets)]);
  for (let t = 0; t <= targets; t++) parts.push(leb(t % depth));
  for (let i = 0; i < depth; i++) parts.push([0x0b]);
  parts.push([0x0b]);
  return concat(parts);
}

const cases = {
  // Admissible under the defaults: the figures the documentation states.
  'depth-10k': () => fill(nestedBody(10_000, 0)),
  'depth-10k-carry': () => fill(nestedBody(10_000, 1)),
  'depth-5k-carry-4': () => fill(nestedBody(5_000, 4)),
  'body-2MiB': () => fill(straightBody(Math.floor((2 * 1024 * 1024 - 2) / 3))),
  'functions-250k': () => fill(Uint8Array.from([0, 0x0b]), 250_000),
  'locals-16M': () => localsBomb(335, 50_000),
  'br_table-1M-total': () => fill(brTableBody(65_520, 64), 16),
  // Issue #10's bombs: refused by a bound before the engine sees them.
  'nest-2M (bomb)': () => nestingBomb(2_000_000),
  'nest-600k (bomb)': () => nestingBomb(600_000),
  'locals-150k×50k (bomb)': () => localsBomb(150_000, 50_000),
};

const MODES = {
  lazy: { flags: [], fuel: false },
  eager: { flags: ['--no-wasm-lazy-compilation'], fuel: false },
  turbofan: { flags: ['--no-liftoff', '--no-wasm-lazy-compilation'], fuel: false },
  fuel: { flags: [], fuel: true },
};

if (process.argv[2] === '--child') {
  const [, , , name, modeName] = process.argv;
  const { Hypervisor, DEFAULT_MODULE_LIMITS } = await import('../dist/index.js');
  if (MODES[modeName].fuel) budget = DEFAULT_MODULE_LIMITS.meteredCodeBytes - 4096;
  const bytes = cases[name]();
  const hv = new Hypervisor({ defaultLimits: { timeoutMs: 120_000 } });
  const started = performance.now();
  let outcome;
  try {
    const p = await hv.createPartition({ name: 'm', module: bytes, ...(MODES[modeName].fuel ? { limits: { fuel: 1e12 } } : {}) });
    const loadMs = performance.now() - started;
    await p.start();
    const exit = await p.exited;
    outcome = `${exit.reason === 'exit' ? `exit ${exit.code}` : exit.reason}, loaded in ${loadMs.toFixed(0)} ms`;
  } catch (error) {
    outcome = `${error.code ?? error.name} after ${(performance.now() - started).toFixed(0)} ms`;
  }
  await hv.close();
  process.stdout.write(JSON.stringify({ size: bytes.length, outcome, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
} else {
  const args = process.argv.slice(2);
  const modesAt = args.indexOf('--modes');
  const modes = modesAt >= 0 ? args[modesAt + 1].split(',') : Object.keys(MODES);
  const names = args.filter((a, i) => !a.startsWith('--') && (modesAt < 0 || i !== modesAt + 1));
  const script = fileURLToPath(import.meta.url);
  const baseline = JSON.parse(execFileSync(process.execPath, ['-e', 'console.log(JSON.stringify({ maxRssMiB: process.resourceUsage().maxRSS / 1024 }))']).toString());
  console.log(`bare node process: ${baseline.maxRssMiB.toFixed(0)} MiB peak RSS`);
  console.log('case'.padEnd(26), 'mode'.padEnd(9), 'size'.padStart(9), 'peak RSS'.padStart(10), ' outcome');
  for (const name of names.length ? names : Object.keys(cases)) {
    for (const mode of modes) {
      if (name.includes('bomb') && mode !== 'lazy' && mode !== 'fuel') continue;
      let line;
      try {
        const out = execFileSync(process.execPath, [...MODES[mode].flags, script, '--child', name, mode], { timeout: 300_000, maxBuffer: 1 << 20 }).toString();
        const r = JSON.parse(out.trim().split('\n').at(-1));
        line = [String(r.size).padStart(9), `${r.maxRssMiB.toFixed(0)} MiB`.padStart(10), ` ${r.outcome}`];
      } catch (error) {
        line = [''.padStart(9), ''.padStart(10), ` child failed: ${error.signal ?? error.status} ${String(error.stderr ?? '').split('\n')[0]}`];
      }
      console.log(name.padEnd(26), mode.padEnd(9), ...line);
    }
  }
}
