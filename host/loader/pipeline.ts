import { FeatureDeniedError, LimitModuleError, ModuleInvalidError, WasmvisorError, type ErrorCode } from '../errors.ts';
import { ModuleCache, compileModule } from './compile.ts';
import { INSTRUMENTATION_VERSION, instrumentFuel } from './instrument.ts';
import { ASYNCIFY_VERSION, transformModule } from './transform.ts';
import { checkIntegrity, validateIntegrityOptions, type IntegrityOptions } from '../security/integrity.ts';
import { measure } from './measure.ts';
import { loaderThread, transferable } from './offthread.ts';
import { defaultPolicy, evaluatePolicy, proposalRefusal, type ClampPlan, type LoadPolicy, type PolicyVerdict } from './policy.ts';
import { DEFAULT_MAX_MODULE_BYTES, peekModuleBytes, readModuleSource, type ModuleSource } from './read.ts';
import { applyClampPlan } from './rewrite.ts';
import { checkBound } from './bounds.ts';
import {
  SectionId,
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
  policy?: Parameters<typeof defaultPolicy>[0];
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
export interface LoadedModule extends PreparedModule {
  /** The compiled module (of `bytes`). */
  module: WebAssembly.Module;
}

/**
 * What the loader's thread answers for an admitted module: small, whatever the module's size
 * (the bounds cap the number of exports), because the root's thread deserializes it.
 */
export interface PreparedModule {
  /** SHA-256 of the original bytes (lowercase hex). */
  measurement: string;
  /** The module's exports (names, kinds, indices). */
  exports: readonly ExportInfo[];
  /** Exports a host may call: functions `() -> i32` whose names do not start with `_`. */
  callable: readonly string[];
  /** The maxima the loader imposed. */
  plan: ClampPlan;
  /** The bytes as run: after the clamp rewrite and, when metered, the fuel instrumentation. */
  bytes: Uint8Array;
  /** True when `bytes` meter fuel: the instance needs the instrumenter's two imports. */
  fuelMetered: boolean;
  /** Length of the original bytes. */
  originalSize: number;
  /** Initial pages of the module's first memory (defined or imported), 0 when it has none. */
  memoryInitial: number;
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
 * The module pipeline: read → sections and structural bounds → validate → policy → measure
 * → integrity → rewrite (clamp) → instrument (fuel, only when asked) → compile (cache). Each
 * step throws its own typed error and the first failure ends the load.
 *
 * Only the read happens on the caller's thread; every step whose cost grows with the module
 * runs on the loader's thread (offthread.ts), so a module of any shape costs the root's event
 * loop a message, not its validation or compilation.
 *
 * Invariants:
 * - Options are checked (policy limits, pin and allow-list format) before anything is read.
 * - Every refusal happens before anything is compiled; nothing here instantiates.
 * - The structural bounds are checked by our own linear, iterative reader before the engine
 *   sees the bytes: the engine's validation and compilation are not linear in the size.
 * - The measurement is of the original bytes; the cache key adds the plan and, when metered,
 *   the instrumentation version, because each of them changes the bytes that run.
 * - Instrumentation runs after the policy has judged the original: the imports it adds are
 *   the host's, never the guest's, and the guest may not use their reserved names.
 */
export async function loadModule(source: ModuleSource, options: LoadOptions = {}): Promise<LoadedModule> {
  const policy = defaultPolicy(options.policy);
  validateIntegrityOptions(options);

  const maxBytes = options.maxModuleBytes ?? DEFAULT_MAX_MODULE_BYTES;
  const memoized = options.cache !== undefined && options.allowList === undefined;
  const integrity = integrityOf(options);
  const fuel = options.fuel === true;
  const suspendable = options.suspendable === true;
  // A module in memory is looked up in the memo without copying it first: the lookup hashes the
  // caller's bytes synchronously and keeps nothing of them (a hit answers with the memo's own
  // data, prepared from bytes with the same SHA-256). Only a miss copies, and hashes its copy.
  const peeked = memoized ? peekModuleBytes(source, maxBytes) : null;
  if (peeked !== null && peeked.length <= PREPARED_MEMO_MAX_BYTES) {
    const hit = remembered(preparedKey(peeked, policy, fuel, suspendable), integrity, suspendable, options.cache!);
    if (hit !== null) return hit;
  }
  const original = await readModuleSource(source, maxBytes);
  const request: PrepareRequest = { original, policy, integrity, fuel, suspendable };
  const memo = memoized && original.length <= PREPARED_MEMO_MAX_BYTES ? preparedKey(original, policy, fuel, suspendable) : null;
  if (memo !== null) {
    const hit = remembered(memo, integrity, suspendable, options.cache!);
    if (hit !== null) return hit;
  }
  const { instrumented, ...prepared } = await loaderThread().request<PreparedAnswer>('prepare', request, transferable(original));
  if (instrumented === 'hit') instrumentationCache.hits++;
  else if (instrumented === 'miss') instrumentationCache.misses++;
  const key = cacheKey(prepared.measurement, prepared.plan, prepared.fuelMetered, request.suspendable);
  const module = options.cache !== undefined ? await options.cache.compile(key, prepared.bytes) : await compileModule(prepared.bytes);
  if (memo !== null) rememberPrepared(memo, prepared);
  return { ...prepared, module };
}

/**
 * The loader thread's answers for small modules, by everything an answer depends on: the
 * original bytes' SHA-256, the policy, and the transforms asked for (fuel, suspendable). A
 * partition created again from a module already prepared (issue #15's warm start: a cached
 * module) then skips the round trip to the loader's thread, which was most of a cache-hit
 * createPartition (0.7 of 1.1 ms at load 21). Only the answer is remembered, never a verdict
 * the root did not get from the loader; the integrity pin is checked again on every hit, and a
 * load with an allow-list always takes the full path. Bounded: modules up to
 * PREPARED_MEMO_MAX_BYTES (the root hashes those itself, a few µs; larger ones keep the root's
 * thread free of long hashes), PREPARED_MEMO_ENTRIES answers, least recently used dropped.
 */
const PREPARED_MEMO_MAX_BYTES = 64 * 1024;
const PREPARED_MEMO_ENTRIES = 64;
const preparedMemo = new Map<string, PreparedModule>();

function preparedKey(original: Uint8Array, policy: LoadPolicy, fuel: boolean, suspendable: boolean): string {
  // Every field of the policy, the import table (a map of maps) as its entries. Written out
  // rather than through a JSON.stringify replacer, which called back for every value and was
  // a fifth of a warm createPartition.
  const { imports, memoryPages, tableElements, clampMaximum, requiredExports, moduleLimits } = policy;
  let table = '';
  for (const [module, names] of imports) {
    table += `${JSON.stringify(module)}{`;
    for (const [name, sig] of names) table += `${JSON.stringify(name)}(${sig.params.join(',')})(${sig.results.join(',')})`;
    table += '}';
  }
  const rest = `${JSON.stringify([memoryPages, tableElements, clampMaximum, requiredExports])}${limitsJson(moduleLimits)}`;
  return `${measure(original)}:${fuel ? 1 : 0}${suspendable ? 1 : 0}:${table}:${rest}`;
}

/** Module bounds as JSON, once per resolved (frozen) bounds object: two dozen numbers per load otherwise. */
const limitsJsonMemo = new WeakMap<object, string>();
function limitsJson(limits: LoadPolicy['moduleLimits']): string {
  let json = Object.isFrozen(limits) ? limitsJsonMemo.get(limits) : undefined;
  if (json === undefined) {
    json = JSON.stringify(limits);
    if (Object.isFrozen(limits)) limitsJsonMemo.set(limits, json);
  }
  return json;
}

function rememberPrepared(key: string, prepared: PreparedModule): void {
  preparedMemo.delete(key);
  // A copy of the bytes: the caller's answer is its own.
  preparedMemo.set(key, { ...prepared, bytes: prepared.bytes.slice() });
  for (const old of preparedMemo.keys()) {
    if (preparedMemo.size <= PREPARED_MEMO_ENTRIES) break;
    preparedMemo.delete(old);
  }
}

/** A load answered from the memo, when the module cache still holds its compiled module; else null. */
function remembered(key: string, integrity: IntegrityOptions, suspendable: boolean, cache: ModuleCache): LoadedModule | null {
  const prepared = preparedMemo.get(key);
  if (prepared === undefined) return null;
  const module = cache.get(cacheKey(prepared.measurement, prepared.plan, prepared.fuelMetered, suspendable));
  if (module === undefined) return null;
  checkIntegrity(prepared.measurement, integrity);
  preparedMemo.delete(key);
  preparedMemo.set(key, prepared);
  cache.hits++;
  if (prepared.fuelMetered) instrumentationCache.hits++;
  return withOwnBytes(prepared, module);
}

/**
 * The memo's answer with bytes of the caller's own, copied when first read: most partitions
 * never read them (only a partition process does), and a copy per creation was one more
 * allocation on the warm start's path.
 */
function withOwnBytes(prepared: PreparedModule, module: WebAssembly.Module): LoadedModule {
  const held = prepared.bytes;
  let own: Uint8Array | null = null;
  // Field by field: a rest pattern (`{ bytes, ...rest }`) is a slow generic copy in V8.
  return {
    measurement: prepared.measurement,
    exports: prepared.exports,
    callable: prepared.callable,
    plan: prepared.plan,
    fuelMetered: prepared.fuelMetered,
    originalSize: prepared.originalSize,
    memoryInitial: prepared.memoryInitial,
    module,
    get bytes(): Uint8Array {
      own ??= held.slice();
      return own;
    },
  };
}

/** How often the loader thread's instrumentation cache answered, for tests and diagnostics. */
export const instrumentationCache = { hits: 0, misses: 0 };

/** The `prepare` job: what `loadModule` hands to the loader's thread. */
export interface PrepareRequest {
  readonly original: Uint8Array;
  readonly policy: LoadPolicy;
  readonly integrity: IntegrityOptions;
  readonly fuel: boolean;
  /** Shared placement: the module is also made suspendable (Asyncify, in the transform worker). */
  readonly suspendable: boolean;
}

/** The `prepare` job's answer: the prepared module and whether instrumentation was cached. */
export type PreparedAnswer = PreparedModule & { readonly instrumented: 'hit' | 'miss' | null };

/** The `inspect` job. */
export interface InspectRequest {
  readonly bytes: Uint8Array;
  readonly policy: LoadPolicy;
  readonly integrity: IntegrityOptions;
  /**
   * Judge it as a metered load would (a fuel limit or a CPU cap): an admitted module is also
   * instrumented, and what the instrumenter refuses is the verdict. Default false.
   */
  readonly fuel?: boolean;
}

function integrityOf(options: LoadOptions): IntegrityOptions {
  return {
    ...(options.expectedSha256 !== undefined ? { expectedSha256: options.expectedSha256 } : {}),
    ...(options.allowList !== undefined ? { allowList: new Set(options.allowList) } : {}),
  };
}

/**
 * The loader thread's side of `loadModule`: every step after the read, up to (not including)
 * the compile, which the caller's cache decides on. Runs on the loader's thread only.
 */
export async function prepareModule(request: PrepareRequest): Promise<PreparedAnswer> {
  const { original, policy, integrity, suspendable } = request;
  // A suspendable module is always metered: its slices are counted in fuel.
  const fuel = request.fuel || suspendable;
  const measurement = measure(original);
  const { info, verdict } = judgeModule(original, measurement, policy);
  if (!verdict.admitted) throw verdict.error;
  const { plan } = verdict;
  checkIntegrity(measurement, integrity);
  const clamped = applyClampPlan(original, info, plan);
  const key = cacheKey(measurement, plan, fuel, suspendable);
  let instrumented: PreparedAnswer['instrumented'] = null;
  let bytes = clamped;
  if (fuel) {
    instrumented = instrumentedCache.has(key) ? 'hit' : 'miss';
    // A copy: the answer's buffer is transferred to the root, the cache keeps its own.
    bytes = (await meteredBytes(clamped, info, policy, key, suspendable)).slice();
  }
  return { measurement, exports: info.exports, callable: callableExports(info), plan, bytes, fuelMetered: fuel, originalSize: original.length, memoryInitial: info.memories[0]?.initial ?? 0, instrumented };
}

/**
 * The metered module (loader thread): the metered code-section bound, then the instrumentation
 * (cached by `key`). Throws what either refuses (ERR_LIMIT_MODULE, ERR_FEATURE_DENIED for code
 * the meter cannot see): prepareModule for a load, describeMetered for an inspection, so the two
 * never disagree.
 */
async function meteredBytes(clamped: Uint8Array, info: ModuleInfo, policy: LoadPolicy, key: string, suspendable: boolean): Promise<Uint8Array> {
  const code = info.sections.find((span) => span.id === SectionId.CODE);
  const codeBytes = code === undefined ? 0 : code.end - code.payloadStart;
  checkBound(policy.moduleLimits, 'meteredCodeBytes', codeBytes, `the code section of this metered module has ${codeBytes} bytes`);
  const transform = suspendable ? () => transformModule(clamped, true) : () => instrumentFuel(clamped).then((r) => r.bytes);
  return instrumentedBytes(key, clamped.length, transform);
}

/** Exports a host may call: functions `() -> i32` whose names do not start with `_`. */
export function callableExports(info: ModuleInfo): string[] {
  const funcTypes = functionTypeIndices(info);
  const callable: string[] = [];
  for (const e of info.exports) {
    if (e.kind !== 'function' || e.name.startsWith('_')) continue;
    const typeIndex = funcTypes[e.index];
    const sig = typeIndex === undefined ? undefined : info.types[typeIndex];
    if (sig !== undefined && sig.params.length === 0 && sig.results.length === 1 && sig.results[0] === 'i32') callable.push(e.name);
  }
  return callable;
}

/**
 * Instrumented bytes by cache key, most recent last (loader thread): at most
 * INSTRUMENTED_ENTRIES entries, and entries whose originals total at most
 * INSTRUMENTED_BYTES (an instrumented module is a little larger than its original).
 */
const instrumentedCache = new Map<string, Promise<Uint8Array>>();
const instrumentedSizes = new Map<string, number>();
const INSTRUMENTED_ENTRIES = 64;
const INSTRUMENTED_BYTES = 64 * 1024 * 1024;

/**
 * Instrumentation costs far more than compilation (binaryen reads, rewrites and writes the
 * module), so its output is kept per key, and concurrent loads of one key share one run. A
 * failed run is not kept.
 */
function instrumentedBytes(key: string, size: number, transform: () => Promise<Uint8Array>): Promise<Uint8Array> {
  const held = instrumentedCache.get(key);
  if (held !== undefined) {
    instrumentedCache.delete(key);
    instrumentedCache.set(key, held);
    return held;
  }
  threadCounters.instrumentations++;
  const promise = transform();
  instrumentedCache.set(key, promise);
  instrumentedSizes.set(key, size);
  promise.catch(() => {
    if (instrumentedCache.get(key) === promise) {
      instrumentedCache.delete(key);
      instrumentedSizes.delete(key);
    }
  });
  let total = 0;
  for (const size of instrumentedSizes.values()) total += size;
  for (const k of instrumentedCache.keys()) {
    if (k === key || (instrumentedCache.size <= INSTRUMENTED_ENTRIES && total <= INSTRUMENTED_BYTES)) break;
    total -= instrumentedSizes.get(k) ?? 0;
    instrumentedCache.delete(k);
    instrumentedSizes.delete(k);
  }
  return promise;
}

/**
 * Describes a module and says whether `loadModule` would admit it, without compiling.
 * Throws only when there is nothing to describe: unreadable or over the size cap, over a
 * structural bound, invalid, or using type forms the section reader refuses (GC, typed
 * references). Policy and integrity refusals are part of the answer, and with `fuel` the
 * instrumenter's (as a metered load). Runs on the loader's thread; the description's size is
 * bounded by the module bounds (imports, exports).
 */
export async function inspectModule(source: ModuleSource, options: LoadOptions = {}): Promise<Inspection> {
  const policy = defaultPolicy(options.policy);
  validateIntegrityOptions(options);

  const bytes = await readModuleSource(source, options.maxModuleBytes ?? DEFAULT_MAX_MODULE_BYTES);
  const request: InspectRequest = { bytes, policy, integrity: integrityOf(options), fuel: options.fuel === true };
  return loaderThread().request<Inspection>('inspect', request, transferable(bytes));
}

/**
 * The loader thread's side of `inspectModule`: describeModule, and for a metered inspection
 * (`request.fuel`) an admitted module is instrumented as prepareModule would, so a module the
 * meter refuses (table.fill, ...; docs/ABI.md#fuel-metering) is refused here too. The
 * instrumented bytes stay in the thread's cache for the load that may follow.
 */
export async function describeMetered(request: InspectRequest): Promise<Inspection> {
  const { inspection, info } = describe(request);
  const verdict = inspection.verdict;
  if (request.fuel !== true || !verdict.admitted) return inspection;
  try {
    const clamped = applyClampPlan(request.bytes, info, verdict.plan);
    await meteredBytes(clamped, info, request.policy, cacheKey(inspection.measurement, verdict.plan, true, false), false);
  } catch (error) {
    if (!(error instanceof WasmvisorError)) throw error;
    inspection.verdict = { admitted: false, code: error.code, message: error.message };
  }
  return inspection;
}

/** Describes a module without metering it (see describeMetered). */
export function describeModule(request: InspectRequest): Inspection {
  return describe(request).inspection;
}

function describe(request: InspectRequest): { inspection: Inspection; info: ModuleInfo } {
  const { bytes, policy, integrity } = request;
  const measurement = measure(bytes);
  const { info, verdict } = judgeModule(bytes, measurement, policy);
  // One lookup table, not a walk of the imports per export: inspect must stay linear.
  const funcTypes = functionTypeIndices(info);
  const sigOf = (typeIndex: number | undefined): FuncSig | undefined => (typeIndex === undefined ? undefined : info.types[typeIndex]);
  let answer: InspectionVerdict = verdict.admitted ? verdict : { admitted: false, code: verdict.error.code, message: verdict.error.message };
  if (verdict.admitted) {
    try {
      checkIntegrity(measurement, integrity);
    } catch (error) {
      if (!(error instanceof WasmvisorError)) throw error;
      answer = { admitted: false, code: error.code, message: error.message };
    }
  }
  const inspection: Inspection = {
    measurement,
    size: bytes.length,
    imports: info.imports.map((imp) => (imp.kind === 'function' ? withSig(imp, sigOf(imp.typeIndex)) : imp)),
    exports: info.exports.map((exp) => (exp.kind === 'function' ? withSig(exp, sigOf(funcTypes[exp.index])) : exp)),
    memories: info.memories,
    tables: info.tables,
    start: info.start,
    verdict: answer,
  };
  return { inspection, info };
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

/** Work done on the loader's thread, counted there (see `loaderCounters`). */
export interface LoaderCounters {
  /** Modules read by the section reader (a cached read is not counted). */
  reads: number;
  /** Modules validated by the engine (a cached verdict is not counted). */
  validations: number;
  /** Fuel instrumentations run. */
  instrumentations: number;
}
/** This thread's counters; meaningful on the loader's thread. */
export const threadCounters: LoaderCounters = { reads: 0, validations: 0, instrumentations: 0 };

/** The loader thread's counters: how much reading, validation and instrumentation it did. */
export function loaderCounters(): Promise<LoaderCounters> {
  return loaderThread().request<LoaderCounters>('counters', null);
}

/** Modules read by the section reader, by measurement and bounds (loader thread): a module
 * inspected and then loaded, or loaded by a pool of partitions, is read and validated once. */
const readCache = new Map<string, ModuleInfo>();
/** The engine's verdict by measurement: null (valid) or its refusal. */
const engineCache = new Map<string, ModuleInvalidError | null>();
const FACT_ENTRIES = 32;

function remember<V>(cache: Map<string, V>, key: string, value: V): V {
  cache.delete(key);
  cache.set(key, value);
  for (const k of cache.keys()) {
    if (cache.size <= FACT_ENTRIES) break;
    cache.delete(k);
  }
  return value;
}

/**
 * sections (with the structural bounds) → validate → policy, with two refinements:
 * - Our reader goes first: it is linear and iterative and enforces the bounds, so the engine
 *   (whose cost is not linear) only ever sees modules within them. When the reader refuses a
 *   module, its error stands and the engine is not asked.
 * - Engines differ in which proposals they accept (Node 20 rejects memory64 and multi-memory
 *   modules as invalid; later versions accept them). When the engine rejects a module that
 *   uses a proposal the policy refuses anyway (`proposalRefusal`), the policy's refusal is
 *   reported instead of ERR_MODULE_INVALID, so the code a user sees does not depend on the
 *   Node version. In every other case the engine's ERR_MODULE_INVALID stands.
 * Either way nothing the engine rejects is ever admitted.
 */
function judgeModule(bytes: Uint8Array, measurement: string, policy: LoadPolicy): { info: ModuleInfo; verdict: PolicyVerdict } {
  const readKey = `${measurement}/${JSON.stringify(policy.moduleLimits)}`;
  let info = readCache.get(readKey);
  if (info === undefined) {
    threadCounters.reads++;
    info = remember(readCache, readKey, readSections(bytes, policy.moduleLimits));
  }
  let invalid = engineCache.get(measurement);
  if (invalid === undefined) {
    threadCounters.validations++;
    invalid = null;
    try {
      validateModule(bytes);
    } catch (error) {
      if (!(error instanceof ModuleInvalidError)) throw error;
      invalid = error;
    }
    remember(engineCache, measurement, invalid);
  }
  const verdict = evaluatePolicy(info, policy);
  if (invalid !== null && (verdict.admitted || proposalRefusal(info) === null)) throw invalid;
  return { info, verdict };
}
