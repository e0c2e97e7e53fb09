/**
 * Random valid modules (binaryen's translate-to-fuzz, ttf.ts) through the loader, and
 * differentially through fuel instrumentation.
 *
 * Invariants:
 * - the loader (read, bounds, validate, policy, measure, rewrite, fuel instrumentation, compile,
 *   on its own thread) admits the module or refuses it with a typed error, never ERR_INTERNAL,
 *   within a bounded time; the time and the process's memory are recorded (`stats`);
 * - instrumented and plain modules behave the same when fuel suffices: the same imported calls
 *   with the same arguments, the same results and the same traps, export by export;
 * - exhaustion is deterministic: with a small budget, two runs stop at the same point.
 */
import fc from 'fast-check';
import { WasmvisorError } from '../../../host/errors.ts';
import { FUEL_BUDGET, FUEL_EXHAUSTED, FUEL_MODULE, START_EXPORT, instrumentFuel } from '../../../host/loader/instrument.ts';
import { loadModule } from '../../../host/loader/pipeline.ts';
import { functionTypeIndices, readSections, type FuncSig, type ModuleInfo } from '../../../host/loader/sections.ts';
import { invariant, type Target } from '../framework.ts';
import { translateToFuzz } from '../ttf.ts';

export interface ModuleInput {
  readonly seed: Uint8Array;
  /** A small fuel budget for the determinism check. */
  readonly budget: number;
}

/** Recorded over a run: the slowest load and the largest resident set seen. */
export const stats = { loads: 0, slowestLoadMs: 0, peakRssMiB: 0, admitted: 0, refused: new Map<string, number>(), compared: 0, inconclusive: 0 };

/** The most a load of a random module (≤ tens of KiB) may take, even on a loaded machine. */
const LOAD_BUDGET_MS = 30_000;

class OutOfFuel {}

let runs = 0;

interface Trace {
  readonly events: string[];
  /** True when the engine's stack ran out: deeper frames in instrumented code may move that point. */
  readonly stackExhausted: boolean;
  readonly outOfFuel: boolean;
}

/** A result as text; a function reference by kind only (an instrumented module has one more import, so its indices differ). */
const show = (v: unknown): string => (typeof v === 'function' ? 'funcref' : typeof v === 'object' && v !== null ? 'externref' : String(v));
const zero = (t: string): unknown => (t === 'i64' ? 0n : t === 'funcref' || t === 'externref' ? null : 0);
const callable = (sig: FuncSig | undefined): sig is FuncSig => sig !== undefined && ![...sig.params, ...sig.results].includes('v128');

/** Instantiates `bytes` with logging stubs and calls every export it can; returns what happened. */
function trace(bytes: Uint8Array, info: ModuleInfo, fuel: number | null): Trace {
  const events: string[] = [];
  const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  const sigOf = (typeIndex: number) => info.types[typeIndex];
  for (const imp of info.imports) {
    imports[imp.module] ??= {};
    if (imp.kind === 'function') {
      const sig = sigOf(imp.typeIndex);
      imports[imp.module]![imp.name] = (...args: unknown[]) => {
        events.push(`${imp.name}(${args.map(show).join(',')})`);
        return sig && sig.results.length === 1 ? zero(sig.results[0]!) : undefined;
      };
    } else if (imp.kind === 'global') {
      imports[imp.module]![imp.name] = new WebAssembly.Global({ value: imp.global.type as WebAssembly.ValueType, mutable: imp.global.mutable }, zero(imp.global.type));
    }
  }
  if (fuel !== null) {
    imports[FUEL_MODULE] ??= {};
    imports[FUEL_MODULE]![FUEL_BUDGET] = new WebAssembly.Global({ value: 'i64', mutable: false }, BigInt(fuel));
    imports[FUEL_MODULE]![FUEL_EXHAUSTED] = () => {
      throw new OutOfFuel();
    };
  }
  let stackExhausted = false;
  let outOfFuel = false;
  const record = (what: string, error: unknown): void => {
    if (error instanceof OutOfFuel) outOfFuel = true;
    else if (error instanceof RangeError && /call stack/i.test(error.message)) stackExhausted = true;
    events.push(`${what}: ${error instanceof WebAssembly.RuntimeError ? `trap ${error.message}` : error instanceof OutOfFuel ? 'out of fuel' : `threw ${String(error)}`}`);
  };
  let instance: WebAssembly.Instance;
  try {
    instance = new WebAssembly.Instance(module, imports);
    // As the partition's worker does: a metered module's start function was moved out of the
    // start section (instrument.ts) and runs right after instantiation, as part of it.
    const start = instance.exports[START_EXPORT];
    if (typeof start === 'function') start();
  } catch (error) {
    record('instantiate', error);
    return { events, stackExhausted, outOfFuel };
  }
  const funcTypes = functionTypeIndices(info);
  for (const exp of info.exports) {
    if (outOfFuel || exp.kind !== 'function') continue;
    const sig = sigOf(funcTypes[exp.index] ?? -1);
    if (!callable(sig)) continue;
    const fn = instance.exports[exp.name] as (...a: unknown[]) => unknown;
    try {
      events.push(`${exp.name} = ${show(fn(...sig.params.map(zero)))}`);
    } catch (error) {
      record(exp.name, error);
    }
  }
  return { events, stackExhausted, outOfFuel };
}

async function run(input: ModuleInput): Promise<void> {
  const bytes = await translateToFuzz(input.seed);
  // 1. The loader, end to end, on its own thread: admitted or refused with a typed error. The
  // policy admits the module's own function imports (ttf modules log through imports) and asks
  // for no export, so that most modules get through every step: rewrite, instrument, compile.
  // The reader may refuse what ttf writes (e.g. a typed-reference instruction): that module
  // still goes through the loader below, which must refuse it the same typed way.
  let info: ModuleInfo | null = null;
  try {
    info = readSections(bytes);
  } catch (error) {
    invariant(error instanceof WasmvisorError && error.code !== 'ERR_INTERNAL', () => `the section reader failed with ${String(error)}`);
  }
  const allowed = new Map<string, Map<string, FuncSig>>();
  for (const imp of info?.imports ?? []) {
    if (imp.kind !== 'function' || info!.types[imp.typeIndex] === undefined) continue;
    if (!allowed.has(imp.module)) allowed.set(imp.module, new Map());
    allowed.get(imp.module)!.set(imp.name, info!.types[imp.typeIndex]!);
  }
  for (const fuel of [false, true]) {
    const started = performance.now();
    try {
      await loadModule(bytes, { fuel, policy: { imports: allowed, requiredExports: [] } });
      stats.admitted++;
    } catch (error) {
      invariant(error instanceof WasmvisorError && error.code !== 'ERR_INTERNAL', () => `the loader${fuel ? ' (fuel)' : ''} failed with ${error instanceof WasmvisorError ? `${error.code}: ${error.message}` : String(error)}`);
      stats.refused.set(error.code, (stats.refused.get(error.code) ?? 0) + 1);
    }
    const ms = performance.now() - started;
    stats.loads++;
    stats.slowestLoadMs = Math.max(stats.slowestLoadMs, ms);
    stats.peakRssMiB = Math.max(stats.peakRssMiB, process.memoryUsage().rss / 1048576);
    invariant(ms < LOAD_BUDGET_MS, () => `loading a ${bytes.length}-byte module took ${ms.toFixed(0)} ms`);
  }
  if (info === null) return;
  // Compiled code and memories of the instances below live outside the JS heap, so V8 feels no
  // pressure to collect them: a long run collects now and then (scripts/fuzz.mjs exposes gc).
  if (++runs % 10 === 0) (globalThis as { gc?: () => void }).gc?.();
  // 2. Differential: plain vs instrumented with fuel to spare, then exhaustion twice.
  let metered: Uint8Array;
  try {
    metered = (await instrumentFuel(bytes)).bytes;
  } catch (error) {
    invariant(error instanceof WasmvisorError && error.code !== 'ERR_INTERNAL', () => `instrumentation failed with ${error instanceof WasmvisorError ? `${error.code}: ${error.message}` : String(error)}`);
    return;
  }
  const plain = trace(bytes, info, null);
  const rich = trace(metered, info, Number.MAX_SAFE_INTEGER);
  if (plain.stackExhausted || rich.stackExhausted) {
    stats.inconclusive++;
  } else {
    stats.compared++;
    invariant(!rich.outOfFuel, () => 'ran out of a practically unlimited budget');
    invariant(JSON.stringify(plain.events) === JSON.stringify(rich.events), () => `plain and metered runs differ:\n  plain:   ${plain.events.slice(0, 20).join(' | ')}\n  metered: ${rich.events.slice(0, 20).join(' | ')}`);
  }
  const a = trace(metered, info, input.budget);
  const b = trace(metered, info, input.budget);
  invariant(JSON.stringify(a.events) === JSON.stringify(b.events), () => `two runs with a budget of ${input.budget} stopped differently`);
}

export const modules: Target<ModuleInput> = {
  name: 'modules',
  surface: 'random valid modules (wasm-opt -ttf) through the loader, and plain vs fuel-metered',
  input: fc.record({ seed: fc.uint8Array({ minLength: 64, maxLength: 4096 }), budget: fc.integer({ min: 1, max: 200_000 }) }),
  run,
};
