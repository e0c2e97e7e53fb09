import { FeatureDeniedError, ModuleInvalidError, WasmvisorError, type ErrorCode } from '../errors.ts';
import { ModuleCache, compileModule } from './compile.ts';
import { INSTRUMENTATION_VERSION } from './instrument.ts';
import { ASYNCIFY_VERSION, transformModule } from './transform.ts';
import { checkIntegrity, validateIntegrityOptions } from '../security/integrity.ts';
import { measure } from './measure.ts';
import { defaultPolicy, evaluatePolicy, proposalRefusal, type ClampPlan, type LoadPolicy, type PolicyVerdict } from './policy.ts';
import { DEFAULT_MAX_MODULE_BYTES, readModuleSource, type ModuleSource } from './read.ts';
import { applyClampPlan } from './rewrite.ts';
import {
  functionTypeIndices,
  readSections,
  type ExportInfo,
  type FuncSig,
  type ImportInfo,
  type MemoryInfo,
  type ModuleInfo,
  type TableInfo,
} from './sections.ts';
import { validateModule } from './validate.ts';

export type { ModuleSource } from './read.ts';

/** Options for `loadModule` and `inspectModule`. Every field is optional; defaults are safe. */
export interface LoadOptions {
  /** Size cap in bytes. Default DEFAULT_MAX_MODULE_BYTES (16 MiB). */
  maxModuleBytes?: number;
  /** Overrides applied to `defaultPolicy()`. */
  policy?: Partial<LoadPolicy>;
  /** Pinned SHA-256 of the original bytes (64 hex digits, any case). */
  expectedSha256?: string;
  /** Admitted SHA-256 measurements; enforced when given (an empty set admits nothing). */
  allowList?: ReadonlySet<string>;
  /** Where compiled modules are shared; without one, every load compiles. */
  cache?: ModuleCache;
  /**
   * Instrument the module to meter fuel (see instrument.ts). Default false: a partition
   * without a fuel limit runs the bytes as clamped and never loads binaryen.
   */
  fuel?: boolean;
  /**
   * Make the module suspendable for shared placement (fuel instrumentation, then Asyncify; see
   * asyncify.ts). Default false.
   */
  suspendable?: boolean;
}

/** A module that passed every step, compiled and ready to hand to a partition's worker. */
export interface LoadedModule {
  /** SHA-256 of the original bytes (lowercase hex). */
  measurement: string;
  /** The structure of the original bytes. */
  info: ModuleInfo;
  /** The maxima the loader imposed. */
  plan: ClampPlan;
  /** The bytes as run: after the clamp rewrite and, when metered, the fuel instrumentation. */
  bytes: Uint8Array;
  /** True when `bytes` meter fuel: the instance needs the instrumenter's two imports. */
  fuelMetered: boolean;
  /** Length of the original bytes. */
  originalSize: number;
  /** The compiled module (of `bytes`). */
  module: WebAssembly.Module;
}

/** An import as `inspect` shows it: function imports carry their signature. */
export type InspectedImport = ImportInfo & { readonly sig?: FuncSig };
/** An export as `inspect` shows it: function exports carry their signature. */
export type InspectedExport = ExportInfo & { readonly sig?: FuncSig };

/** `loadModule`'s answer without compiling: admitted with a plan, or the refusal's code and message. */
export type InspectionVerdict = { readonly admitted: true; readonly plan: ClampPlan } | { readonly admitted: false; readonly code: ErrorCode; readonly message: string };

/** What `wasmvisor inspect` prints. */
export interface Inspection {
  measurement: string;
  /** Size of the module in bytes. */
  size: number;
  imports: readonly InspectedImport[];
  exports: readonly InspectedExport[];
  memories: readonly MemoryInfo[];
  tables: readonly TableInfo[];
  /** Start function index, or null. */
  start: number | null;
  verdict: InspectionVerdict;
}

/**
 * The module pipeline: read → validate → sections → policy → measure → integrity →
 * rewrite (clamp) → instrument (fuel, only when asked) → compile (cache). Each step throws
 * its own typed error and the first failure ends the load.
 *
 * Invariants:
 * - Options are checked (policy limits, pin and allow-list format) before anything is read.
 * - Every refusal happens before anything is compiled; nothing here instantiates.
 * - The measurement is of the original bytes; the cache key adds the plan and, when metered,
 *   the instrumentation version, because each of them changes the bytes that run.
 * - Instrumentation runs after the policy has judged the original: the imports it adds are
 *   the host's, never the guest's, and the guest may not use their reserved names.
 */
export async function loadModule(source: ModuleSource, options: LoadOptions = {}): Promise<LoadedModule> {
  const policy = defaultPolicy(options.policy);
  validateIntegrityOptions(options);

  const original = await readModuleSource(source, options.maxModuleBytes ?? DEFAULT_MAX_MODULE_BYTES);
  const { info, verdict } = judgeModule(original, policy);
  if (!verdict.admitted) throw verdict.error;
  const { plan } = verdict;
  const measurement = measure(original);
  checkIntegrity(measurement, options);
  const clamped = applyClampPlan(original, info, plan);
  const suspendable = options.suspendable === true;
  const fuelMetered = options.fuel === true || suspendable;
  const key = cacheKey(measurement, plan, fuelMetered, suspendable);
  // binaryen's passes run in the transform worker, never on the root's event loop.
  const bytes = fuelMetered ? await instrumentedBytes(key, () => transformModule(clamped, suspendable)) : clamped;
  const module = options.cache !== undefined ? await options.cache.compile(key, bytes) : await compileModule(bytes);
  return { measurement, info, plan, bytes, fuelMetered, originalSize: original.length, module };
}

/** Instrumented bytes by cache key, most recent last; at most INSTRUMENTED_ENTRIES kept. */
const instrumented = new Map<string, Promise<Uint8Array>>();
const INSTRUMENTED_ENTRIES = 64;
/** How often the in-process instrumentation cache answered, for tests and diagnostics. */
export const instrumentationCache = { hits: 0, misses: 0 };

/**
 * Instrumentation costs far more than compilation (binaryen reads, rewrites and writes the
 * module), so its output is kept per key even when the caller has no ModuleCache, and
 * concurrent loads of one key share one run. A failed run is not kept.
 */
function instrumentedBytes(key: string, transform: () => Promise<Uint8Array>): Promise<Uint8Array> {
  const held = instrumented.get(key);
  if (held !== undefined) {
    instrumentationCache.hits++;
    instrumented.delete(key);
    instrumented.set(key, held);
    return held;
  }
  instrumentationCache.misses++;
  const promise = transform();
  instrumented.set(key, promise);
  promise.catch(() => {
    if (instrumented.get(key) === promise) instrumented.delete(key);
  });
  for (const k of instrumented.keys()) {
    if (instrumented.size <= INSTRUMENTED_ENTRIES) break;
    instrumented.delete(k);
  }
  return promise;
}

/**
 * Describes a module and says whether `loadModule` would admit it, without compiling.
 * Throws only when there is nothing to describe: unreadable or over the size cap, invalid,
 * or using type forms the section reader refuses (GC, typed references). Policy and
 * integrity refusals are part of the answer.
 */
export async function inspectModule(source: ModuleSource, options: LoadOptions = {}): Promise<Inspection> {
  const policy = defaultPolicy(options.policy);
  validateIntegrityOptions(options);

  const bytes = await readModuleSource(source, options.maxModuleBytes ?? DEFAULT_MAX_MODULE_BYTES);
  const { info, verdict } = judgeModule(bytes, policy);
  const measurement = measure(bytes);
  // One lookup table, not a walk of the imports per export: inspect must stay linear.
  const funcTypes = functionTypeIndices(info);
  const sigOf = (typeIndex: number | undefined): FuncSig | undefined => (typeIndex === undefined ? undefined : info.types[typeIndex]);
  let answer: InspectionVerdict = verdict.admitted ? verdict : { admitted: false, code: verdict.error.code, message: verdict.error.message };
  if (verdict.admitted) {
    try {
      checkIntegrity(measurement, options);
    } catch (error) {
      if (!(error instanceof WasmvisorError)) throw error;
      answer = { admitted: false, code: error.code, message: error.message };
    }
  }
  return {
    measurement,
    size: bytes.length,
    imports: info.imports.map((imp) => (imp.kind === 'function' ? withSig(imp, sigOf(imp.typeIndex)) : imp)),
    exports: info.exports.map((exp) => (exp.kind === 'function' ? withSig(exp, sigOf(funcTypes[exp.index])) : exp)),
    memories: info.memories,
    tables: info.tables,
    start: info.start,
    verdict: answer,
  };
}

function withSig<T extends object>(item: T, sig: FuncSig | undefined): T & { sig?: FuncSig } {
  return sig === undefined ? item : { ...item, sig };
}

/**
 * The cache key: measurement plus every planned maximum (`-` for "unchanged"), plus
 * `/fuel<version>` for fuel-metered bytes (absent: the bytes are not instrumented).
 */
export function cacheKey(measurement: string, plan: ClampPlan, fuelMetered = false, suspendable = false): string {
  const max = (m: number | null): string => (m === null ? '-' : String(m));
  const fuel = fuelMetered ? `/fuel${INSTRUMENTATION_VERSION}` : '';
  const async = suspendable ? `/async${ASYNCIFY_VERSION}` : '';
  return `${measurement}/m${max(plan.memoryMaximum)}/t${plan.tableMaxima.map(max).join(',')}${fuel}${async}`;
}

/**
 * validate → sections → policy, with one refinement: engines differ in which proposals
 * they accept (Node 20 rejects memory64 and multi-memory modules as invalid; later
 * versions accept them). When the engine rejects a module that our own reader can still
 * read and that uses a proposal the policy refuses anyway (`proposalRefusal`), the policy's
 * refusal is reported instead of ERR_MODULE_INVALID, so the code a user sees does not
 * depend on the Node version. In every other case the engine's ERR_MODULE_INVALID stands.
 * Either way nothing the engine rejects is ever admitted.
 */
function judgeModule(bytes: Uint8Array, policy: LoadPolicy): { info: ModuleInfo; verdict: PolicyVerdict } {
  let invalid: ModuleInvalidError | null = null;
  try {
    validateModule(bytes);
  } catch (error) {
    if (!(error instanceof ModuleInvalidError)) throw error;
    invalid = error;
  }
  let info: ModuleInfo;
  try {
    info = readSections(bytes);
  } catch (error) {
    // The reader's FeatureDeniedError (GC types, typed references) is a proposal refusal too.
    if (error instanceof FeatureDeniedError) throw error;
    throw invalid ?? error;
  }
  const verdict = evaluatePolicy(info, policy);
  if (invalid !== null && (verdict.admitted || proposalRefusal(info) === null)) throw invalid;
  return { info, verdict };
}
