#!/usr/bin/env node
/**
 * Builds the demo and attack guests into build/guests/<name>.wasm:
 *   guests/*.ts   AssemblyScript, with asconfig.json (release target) and the SDK in assembly/
 *   guests/*.wat  WebAssembly text, with wabt (threads enabled so shared memory parses)
 *
 * A guest is skipped when its .wasm exists and the hash of its inputs matches the one recorded
 * in build/guests/.cache.json. Inputs: for .ts the source, every file of assembly/, asconfig.json
 * and the assemblyscript version; for .wat the source and the wabt version; plus RECIPE for both.
 *
 * Usage: node scripts/build-guests.mjs [--quiet] [--force]
 * API:   import { buildGuests } from './scripts/build-guests.mjs'; await buildGuests({ quiet: true });
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const GUESTS_DIR = path.join(ROOT, 'guests');
const SDK_DIR = path.join(ROOT, 'assembly');
const ASCONFIG = path.join(ROOT, 'asconfig.json');
const OUT_DIR = path.join(ROOT, 'build', 'guests');
const CACHE_FILE = path.join(OUT_DIR, '.cache.json');

/** Bump when the way guests are compiled changes, so every cached output is rebuilt. */
const RECIPE = 'build-guests/4 asc:--target release reactor:incremental runtime-marker wabt:threads';
/** wabt features for .wat guests: threads so that attack-shared-memory.wat parses. */
const WAT_FEATURES = { threads: true };

const require = createRequire(import.meta.url);
const toolVersion = (pkg) => require(`${pkg}/package.json`).version;

/** Every guest source, as { name, file, kind } sorted by name. */
async function listGuests() {
  const entries = await readdir(GUESTS_DIR);
  return entries
    .filter((f) => f.endsWith('.ts') || f.endsWith('.wat'))
    .sort()
    .map((f) => ({
      name: f.replace(/\.(ts|wat)$/, ''),
      file: path.join(GUESTS_DIR, f),
      kind: f.endsWith('.ts') ? 'as' : 'wat',
    }));
}

async function sdkFingerprint() {
  const hash = createHash('sha256');
  hash.update(`${RECIPE}\0assemblyscript ${toolVersion('assemblyscript')}\0`);
  hash.update(await readFile(ASCONFIG));
  const walk = async (dir) => {
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else {
        hash.update(`\0${path.relative(ROOT, full)}\0`);
        hash.update(await readFile(full));
      }
    }
  };
  await walk(SDK_DIR);
  return hash.digest('hex');
}

async function inputHash(guest, sdk) {
  const hash = createHash('sha256');
  if (guest.kind === 'as') hash.update(`${sdk}\0`);
  else hash.update(`${RECIPE}\0wabt ${toolVersion('wabt')}\0`);
  hash.update(await readFile(guest.file));
  return hash.digest('hex');
}

/** Writes via a temporary file and rename, so a concurrent reader never sees half a file. */
async function writeAtomic(file, data) {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

// ---------------------------------------------------------------------------------------------
// Compilers. Both return the module bytes or throw an Error whose message is the diagnostics.

let ascModule;
async function compileAssemblyScript(guest) {
  ascModule ??= (await import('assemblyscript/asc')).default;
  const asc = ascModule;
  let binary = null;
  const stdout = asc.createMemoryStream();
  const stderr = asc.createMemoryStream();
  // A reactor (a guest the host calls into: `// wasmvisor:reactor` on a line of its own) runs its
  // top-level statements in `_initialize` instead of `_start`, and gets the incremental garbage
  // collector: one instance serves any number of calls, and under the preset's stub runtime
  // (which never frees) every input()/inputString()/outputString() leaked until memory ran out.
  // A command whose loop runs for as long as its input lasts (console lines, frames, requests)
  // asks for the collector with `// wasmvisor:runtime incremental`: under stub, echo trapped
  // after 600 lines of 64 bytes in 4 pages (about 52,000 at the default 256). Other commands keep
  // stub: they run once and end, and allocate a bounded amount.
  const source = await readFile(guest.file, 'utf8');
  const reactor = /^\/\/ wasmvisor:reactor$/m.test(source);
  const collected = reactor || /^\/\/ wasmvisor:runtime incremental$/m.test(source);
  const { error } = await asc.main(
    [
      path.relative(ROOT, guest.file),
      '--baseDir', ROOT,
      '--config', 'asconfig.json',
      '--target', 'release',
      '--outFile', `${guest.name}.wasm`,
      '--noColors',
      ...(reactor ? ['--exportStart', '_initialize'] : []),
      ...(collected ? ['--runtime', 'incremental'] : []),
    ],
    {
      stdout,
      stderr,
      // Capture the binary instead of letting asc write it: we write it atomically ourselves.
      writeFile(filename, contents) {
        if (filename.endsWith('.wasm')) binary = contents;
      },
    },
  );
  if (error || !binary) {
    throw new Error(`${stderr.toString().trim()}\n${error ? error.message : 'no binary emitted'}`.trim());
  }
  return binary;
}

let wabtModule;
async function compileWat(guest) {
  wabtModule ??= await (await import('wabt')).default();
  const source = await readFile(guest.file, 'utf8');
  const mod = wabtModule.parseWat(path.relative(ROOT, guest.file), source, WAT_FEATURES);
  try {
    mod.resolveNames();
    mod.validate(WAT_FEATURES);
    return mod.toBinary({ write_debug_names: true }).buffer;
  } finally {
    mod.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Worker side (opt-in, BUILD_GUESTS_JOBS > 1): the AssemblyScript compiler is CPU-bound and
// single-threaded, so AS guests can be spread over worker threads running this same file. Each
// worker compiles the guests it is sent, one at a time; the main thread does all file writes.

if (!isMainThread && workerData?.buildGuestsWorker) {
  parentPort.on('message', async (guest) => {
    try {
      const bytes = await compileAssemblyScript(guest);
      parentPort.postMessage({ name: guest.name, bytes });
    } catch (err) {
      parentPort.postMessage({ name: guest.name, error: err.message });
    }
  });
}

/** Compiles `guests` (all AssemblyScript) on up to `threads` workers; resolves to name -> result. */
async function compileAllAssemblyScript(guests, threads) {
  const results = new Map();
  if (guests.length === 0) return results;
  if (threads <= 1) {
    for (const g of guests) {
      try {
        results.set(g.name, { bytes: await compileAssemblyScript(g) });
      } catch (err) {
        results.set(g.name, { error: err.message });
      }
    }
    return results;
  }
  const queue = [...guests];
  const runWorker = () =>
    new Promise((resolve, reject) => {
      const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { buildGuestsWorker: true } });
      const next = () => {
        const g = queue.shift();
        if (g) worker.postMessage(g);
        else worker.terminate().then(() => resolve(), reject);
      };
      worker.on('message', (msg) => {
        results.set(msg.name, msg.error ? { error: msg.error } : { bytes: msg.bytes });
        next();
      });
      worker.on('error', reject);
      next();
    });
  await Promise.all(Array.from({ length: Math.min(threads, guests.length) }, runWorker));
  return results;
}

// ---------------------------------------------------------------------------------------------

/**
 * Builds every guest whose inputs changed. Resolves to { outDir, built, cached, ms };
 * rejects with an Error naming each guest that failed to compile.
 */
export async function buildGuests({ quiet = false, force = false } = {}) {
  const started = performance.now();
  const log = quiet ? () => {} : (msg) => console.log(msg);
  await mkdir(OUT_DIR, { recursive: true });

  let cache = {};
  try {
    cache = JSON.parse(await readFile(CACHE_FILE, 'utf8'));
  } catch {
    // no cache yet, or unreadable: rebuild everything
  }

  const guests = await listGuests();
  const sdk = await sdkFingerprint();
  const stale = [];
  const cached = [];
  const hashes = {};
  for (const g of guests) {
    hashes[g.name] = await inputHash(g, sdk);
    const out = path.join(OUT_DIR, `${g.name}.wasm`);
    if (!force && cache[g.name] === hashes[g.name] && existsSync(out)) cached.push(g.name);
    else stale.push(g);
  }

  // Worker count: BUILD_GUESTS_JOBS, default 1. Most of a clean build is each compiler
  // instance's warm-up (loading asc and JIT-compiling binaryen, ~5 s), which every worker pays
  // again; on a 2-vCPU machine 2 workers measured slower (17-20 s) than 1 (11-13 s).
  const threads = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, Number(process.env.BUILD_GUESTS_JOBS) || 1));
  const asGuests = stale.filter((g) => g.kind === 'as');
  const watGuests = stale.filter((g) => g.kind === 'wat');
  const results = await compileAllAssemblyScript(asGuests, threads);
  for (const g of watGuests) {
    try {
      results.set(g.name, { bytes: await compileWat(g) });
    } catch (err) {
      results.set(g.name, { error: err.message });
    }
  }

  const built = [];
  const failed = [];
  const next = { ...cache };
  for (const g of stale) {
    const r = results.get(g.name);
    if (!r || r.error || !r.bytes) {
      failed.push(`guest ${g.name} (${path.relative(ROOT, g.file)}) failed to compile:\n${r?.error ?? 'no result'}`);
      delete next[g.name];
      await rm(path.join(OUT_DIR, `${g.name}.wasm`), { force: true }); // never leave a stale build behind
      continue;
    }
    await writeAtomic(path.join(OUT_DIR, `${g.name}.wasm`), r.bytes);
    next[g.name] = hashes[g.name];
    built.push(g.name);
    log(`built  build/guests/${g.name}.wasm (${r.bytes.length} bytes)`);
  }

  // Outputs of guests whose source is gone would otherwise linger and be picked up by tests.
  const names = new Set(guests.map((g) => g.name));
  for (const name of Object.keys(next)) {
    if (names.has(name)) continue;
    delete next[name];
    await rm(path.join(OUT_DIR, `${name}.wasm`), { force: true });
    log(`removed build/guests/${name}.wasm (no source)`);
  }
  await writeAtomic(CACHE_FILE, `${JSON.stringify(next, null, 2)}\n`);

  const ms = Math.round(performance.now() - started);
  if (failed.length > 0) throw new Error(`build-guests: ${failed.length} guest(s) failed\n\n${failed.join('\n\n')}`);
  log(`guests: ${built.length} built, ${cached.length} up to date (${ms} ms)`);
  return { outDir: OUT_DIR, built, cached, ms };
}

if (isMainThread && process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  buildGuests({ quiet: argv.includes('--quiet'), force: argv.includes('--force') }).catch((err) => {
    console.error(err.message);
    process.exitCode = 1;
  });
}
