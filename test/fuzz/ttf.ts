/**
 * binaryen's translate-to-fuzz (`wasm-opt -ttf`): random bytes in, a random *valid* module out.
 * The `binaryen` package ships wasm-opt as an Emscripten program; spawning it costs a second of
 * start-up per module, so it is loaded once, in this process, and its `main` called per module
 * (its files go through the real file system, in a private temporary directory).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';

/** Wasm features the modules may use: what Node 20's engine accepts by default. */
export const TTF_FEATURES = ['--enable-simd', '--enable-bulk-memory', '--enable-sign-ext', '--enable-nontrapping-float-to-int', '--enable-multivalue', '--enable-reference-types', '--enable-mutable-globals', '--enable-tail-call'] as const;

interface WasmOpt {
  callMain(args: string[]): number;
}

let loading: Promise<WasmOpt> | null = null;
let dir = '';
/** Calls into the loaded wasm-opt: its exit() unwinds without restoring its stack, so it is reloaded now and then. */
let uses = 0;
const RELOAD_EVERY = 100;

function load(): Promise<WasmOpt> {
  loading ??= new Promise((resolve, reject) => {
    const require = createRequire(import.meta.url);
    const file = path.join(path.dirname(require.resolve('binaryen')), 'bin', 'wasm-opt');
    let source = readFileSync(file, 'utf8');
    if (source.startsWith('#!')) source = `//${source}`;
    const Module: Record<string, unknown> = { noInitialRun: true, noExitRuntime: true, print: () => {}, printErr: () => {}, arguments: [] };
    Module.onRuntimeInitialized = () => resolve({ callMain: (args) => (Module.__callMain as (a: string[]) => number)(args) });
    Module.onAbort = (what: unknown) => reject(new Error(`wasm-opt aborted: ${String(what)}`));
    // Evaluated as a function of `Module`, so its `var Module = typeof Module != ...` takes ours;
    // `callMain` is exposed from its own scope.
    const fn = vm.runInThisContext(`(function (Module, require, __filename, __dirname) {${source}\n;Module.__callMain = callMain; })`, { filename: file });
    (fn as (m: unknown, r: NodeRequire, f: string, d: string) => void)(Module, require, file, path.dirname(file));
    if (dir === '') {
      dir = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-ttf-'));
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    }
  });
  return loading;
}

/** A valid module from `seed` (the same seed gives the same module). */
export async function translateToFuzz(seed: Uint8Array, extra: readonly string[] = [], retry = true): Promise<Uint8Array> {
  if (++uses % RELOAD_EVERY === 0) loading = null;
  const opt = await load();
  const input = path.join(dir, 'seed.bin');
  const output = path.join(dir, 'out.wasm');
  writeFileSync(input, seed);
  rmSync(output, { force: true });
  try {
    opt.callMain(['-ttf', input, '-o', output, '--quiet', ...TTF_FEATURES, ...extra]);
  } catch (error) {
    // Emscripten's exit() throws to unwind; a status of 0 is success.
    const status = (error as { status?: number }).status;
    if (status !== 0) {
      // A fresh wasm-opt once: a failure may be the old instance's exhausted stack, not the seed.
      loading = null;
      if (retry) return translateToFuzz(seed, extra, false);
      throw new Error(`wasm-opt -ttf failed (${String(status ?? error)})`);
    }
  }
  return new Uint8Array(readFileSync(output));
}
