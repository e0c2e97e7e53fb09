import { HV_HYPERCALL, HV_MODULE } from '../abi/codes.ts';
import {
  FeatureDeniedError,
  ImportDeniedError,
  InternalError,
  InvalidArgumentError,
  LimitMemoryError,
  LimitTableError,
  ModuleInvalidError,
  WasmvisorError,
} from '../errors.ts';
import { guestText, quoted } from '../escape.ts';
import { resolveModuleLimits, type ModuleLimits } from './bounds.ts';
import { RESERVED_PREFIX } from './instrument.ts';
import { functionType, type ExternKind, type FuncSig, type Limits, type ModuleInfo } from './sections.ts';

/** An export the guest must provide; `sig` is checked only for functions. */
export interface RequiredExport {
  readonly name: string;
  readonly kind: ExternKind;
  readonly sig?: FuncSig;
}

/** What a module may import, how large it may be, and what it must export. */
export interface LoadPolicy {
  /** Allowed imports: module → name → signature. Anything else is ERR_IMPORT_DENIED. */
  readonly imports: ReadonlyMap<string, ReadonlyMap<string, FuncSig>>;
  /** Largest initial and maximum memory size, in 64 KiB pages (0..65536). Default 256 (16 MiB). */
  readonly memoryPages: number;
  /** Largest initial and maximum size of each table, in elements. Default 10000. */
  readonly tableElements: number;
  /**
   * Default true: a missing or too-large maximum is rewritten down to the limit, so the
   * guest's own `memory.grow`/`table.grow` fail at the limit. False: such a module is refused.
   */
  readonly clampMaximum: boolean;
  /** Exports the guest must provide. Default: `memory` (memory) and `_start: () -> ()`. */
  readonly requiredExports: readonly RequiredExport[];
  /** Structural bounds (bounds.ts), checked by the section reader before the engine sees the module. */
  readonly moduleLimits: ModuleLimits;
}

/**
 * New maxima for the rewriter. `null` means "leave as declared" (already within the limit).
 * `tableMaxima` has one entry per defined table, in order.
 */
export interface ClampPlan {
  readonly memoryMaximum: number | null;
  readonly tableMaxima: readonly (number | null)[];
  /** True when any maximum above is non-null, i.e. the bytes that run differ from the original. */
  readonly needsRewrite: boolean;
}

/** The outcome of judging a module: admitted with a plan, or refused with a typed error. */
export type PolicyVerdict = { readonly admitted: true; readonly plan: ClampPlan } | { readonly admitted: false; readonly error: WasmvisorError };

/** The hv interface's one function: `hypercall(call, in_ptr, in_len, out_ptr, out_cap) -> i32`. */
export const HYPERCALL_SIG: FuncSig = { params: ['i32', 'i32', 'i32', 'i32', 'i32'], results: ['i32'] };

/** Largest memory32 size in pages (4 GiB). */
const MAX_MEMORY_PAGES = 65536;
/** Largest table size the binary format can express for a 32-bit table. */
const MAX_TABLE_ELEMENTS = 0xffff_ffff;

/**
 * The default policy with `overrides` applied (an `undefined` override keeps the default).
 * Safe by default: only `hv.hypercall`, 256 pages, 10000 table elements, maxima clamped.
 * Throws InvalidArgumentError for out-of-range limits. Each call returns fresh maps, so no
 * caller can widen another's policy by mutating a shared default.
 */
export function defaultPolicy(overrides: Partial<Omit<LoadPolicy, 'moduleLimits'>> & { moduleLimits?: Partial<ModuleLimits> } = {}): LoadPolicy {
  const policy: LoadPolicy = {
    imports: overrides.imports ?? new Map([[HV_MODULE, new Map([[HV_HYPERCALL, HYPERCALL_SIG]])]]),
    memoryPages: overrides.memoryPages ?? 256,
    tableElements: overrides.tableElements ?? 10000,
    clampMaximum: overrides.clampMaximum ?? true,
    requiredExports: overrides.requiredExports ?? [
      { name: 'memory', kind: 'memory' },
      { name: '_start', kind: 'function', sig: { params: [], results: [] } },
    ],
    moduleLimits: resolveModuleLimits(overrides.moduleLimits),
  };
  const problem = policyProblem(policy);
  if (problem !== null) throw problem;
  return policy;
}

function policyProblem(policy: LoadPolicy): InvalidArgumentError | null {
  const { memoryPages, tableElements } = policy;
  if (!Number.isInteger(memoryPages) || memoryPages < 0 || memoryPages > MAX_MEMORY_PAGES) {
    return new InvalidArgumentError(`policy memoryPages must be an integer in 0..${MAX_MEMORY_PAGES}, got ${quoted(memoryPages)}`);
  }
  if (!Number.isInteger(tableElements) || tableElements < 0 || tableElements > MAX_TABLE_ELEMENTS) {
    return new InvalidArgumentError(`policy tableElements must be an integer in 0..${MAX_TABLE_ELEMENTS}, got ${quoted(tableElements)}`);
  }
  return null;
}

/** `(i32, i32) -> i32`, `() -> ()`, `(i32) -> (i32, i64)`: the form every message uses. */
export function formatSig(sig: FuncSig): string {
  const results = sig.results.length === 1 ? (sig.results[0] as string) : `(${sig.results.join(', ')})`;
  return `(${sig.params.join(', ')}) -> ${results}`;
}

function sameSig(a: FuncSig, b: FuncSig): boolean {
  const same = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && x.every((t, i) => t === y[i]);
  return same(a.params, b.params) && same(a.results, b.results);
}

/**
 * Judges a module against a policy. Never throws: a refusal is a value, so `inspect` can
 * show it. Rules apply in a fixed order and the first refusal wins (see `judge`).
 */
export function evaluatePolicy(info: ModuleInfo, policy: LoadPolicy): PolicyVerdict {
  try {
    const problem = policyProblem(policy);
    if (problem !== null) return { admitted: false, error: problem };
    return { admitted: true, plan: judge(info, policy) };
  } catch (error) {
    if (error instanceof WasmvisorError) return { admitted: false, error };
    // The rules throw only typed refusals: anything else is a bug in them, not a verdict on
    // the module, and is reported as such rather than hidden.
    return { admitted: false, error: new InternalError(`policy evaluation failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error }) };
  }
}

/** Like `evaluatePolicy`, but throws the refusal; returns the clamp plan when admitted. */
export function checkPolicy(info: ModuleInfo, policy: LoadPolicy): ClampPlan {
  const verdict = evaluatePolicy(info, policy);
  if (!verdict.admitted) throw verdict.error;
  return verdict.plan;
}

/**
 * The rules, in order: reserved names (an import or export named `__wasmvisor_*`: those
 * belong to the host's instrumentation, ERR_MODULE_INVALID), imports (non-function kinds,
 * then each function import), memory
 * shape (count, shared, memory64), table shape (table64), memory limits, table limits,
 * required exports. Throws the first refusal.
 */
function judge(info: ModuleInfo, policy: LoadPolicy): ClampPlan {
  // First, so a guest cannot pose as the instrumenter whatever the import rules allow.
  for (const imp of info.imports) {
    if (imp.module.startsWith(RESERVED_PREFIX) || imp.name.startsWith(RESERVED_PREFIX)) {
      throw new ModuleInvalidError(`import ${guestText(`${imp.module}.${imp.name}`)} uses the prefix ${RESERVED_PREFIX}, reserved for the host's instrumentation`);
    }
  }
  for (const exp of info.exports) {
    if (exp.name.startsWith(RESERVED_PREFIX)) throw new ModuleInvalidError(`export ${guestText(exp.name)} uses the prefix ${RESERVED_PREFIX}, reserved for the host's instrumentation`);
  }
  for (const imp of info.imports) {
    if (imp.kind !== 'function') {
      const advice = imp.kind === 'memory' ? '; a guest defines its own memory' : '';
      throw new ImportDeniedError(`${guestText(`${imp.module}.${imp.name}`)}: ${imp.kind} imports are not allowed${advice}`);
    }
  }
  for (const imp of info.imports) {
    if (imp.kind !== 'function') continue;
    const allowed = policy.imports.get(imp.module);
    // Names are the module's: quoted through guestText (escaped, cut), like all guest text.
    const qualified = guestText(`${imp.module}.${imp.name}`);
    if (allowed === undefined) {
      const modules = [...policy.imports.keys()];
      const list = modules.length === 1 && modules[0] === HV_MODULE ? '' : ` (allowed import modules: ${modules.join(', ') || 'none'})`;
      throw new ImportDeniedError(`${qualified} is not part of the hv interface${list}`);
    }
    const expected = allowed.get(imp.name);
    if (expected === undefined) {
      throw new ImportDeniedError(`${qualified} is not part of the hv interface (module ${guestText(imp.module)} provides: ${[...allowed.keys()].join(', ') || 'nothing'})`);
    }
    const actual = info.types[imp.typeIndex];
    if (actual === undefined || !sameSig(actual, expected)) {
      throw new ImportDeniedError(`${qualified} has type ${actual === undefined ? 'unknown' : formatSig(actual)}, expected ${formatSig(expected)}`);
    }
  }

  // No memory at all is the documented "missing memory export" (README, ERR_MODULE_INVALID), as
  // a memory that is not exported is: the guest lacks what the ABI requires, and uses no refused
  // feature. Several memories, shared or 64-bit ones are ERR_FEATURE_DENIED (proposalRefusal).
  const [memory] = info.memories;
  if (memory === undefined) throw new ModuleInvalidError('guest must export a memory named memory (it defines no memory)');
  const refusal = proposalRefusal(info);
  if (refusal !== null) throw refusal;

  const memoryMaximum = clamp(memory, policy.memoryPages, policy.clampMaximum, (detail) => new LimitMemoryError(`memory ${detail}`), 'pages');
  const tableMaxima = info.tables.map((table, i) => clamp(table, policy.tableElements, policy.clampMaximum, (detail) => new LimitTableError(`table ${i} ${detail}`), 'elements'));

  for (const required of policy.requiredExports) requireExport(info, required);

  return { memoryMaximum, tableMaxima, needsRewrite: memoryMaximum !== null || tableMaxima.some((m) => m !== null) };
}

/**
 * The refusals that concern Wasm proposals (multi-memory, threads' shared memory, memory64,
 * table64), in rule order, or null. Separate from `judge` because the pipeline also asks it
 * about modules the engine rejected: whether an engine accepts these proposals depends on
 * its version, and the answer should not change the error code a user sees.
 */
export function proposalRefusal(info: ModuleInfo): FeatureDeniedError | null {
  if (info.memories.length > 1) return new FeatureDeniedError(`guest defines ${info.memories.length} memories; exactly one is allowed (multi-memory is refused)`);
  if (info.memories.some((m) => m.shared)) return new FeatureDeniedError('shared memory is not allowed: partitions never share memory');
  if (info.memories.some((m) => m.memory64)) return new FeatureDeniedError('64-bit memory (memory64) is not allowed');
  const wide = info.tables.findIndex((t) => t.table64);
  if (wide >= 0) return new FeatureDeniedError(`table ${wide}: 64-bit tables (table64) are not allowed`);
  return null;
}

/**
 * Initial above the limit: refused, whatever clampMaximum says (the guest would start
 * already over budget). Maximum missing or above the limit: the new maximum (the limit) if
 * clamping, else refused. Otherwise null: nothing to rewrite.
 */
function clamp(limits: Limits, limit: number, clampMaximum: boolean, refuse: (detail: string) => Error, unit: string): number | null {
  if (limits.initial > limit) throw refuse(`initial size ${limits.initial} ${unit} exceeds the limit of ${limit} ${unit}`);
  if (limits.maximum !== null && limits.maximum <= limit) return null;
  if (clampMaximum) return limit;
  const declared = limits.maximum === null ? `has no maximum size; the limit is ${limit} ${unit}` : `maximum size ${limits.maximum} ${unit} exceeds the limit of ${limit} ${unit}`;
  throw refuse(`${declared} (clampMaximum is off)`);
}

function requireExport(info: ModuleInfo, required: RequiredExport): void {
  const wanted = required.kind === 'function' && required.sig !== undefined ? `a function ${required.name}: ${formatSig(required.sig)}` : `a ${required.kind} named ${required.name}`;
  const found = info.exports.find((e) => e.name === required.name);
  if (found === undefined) throw new ModuleInvalidError(`guest must export ${wanted}`);
  if (found.kind !== required.kind) throw new ModuleInvalidError(`guest must export ${wanted} (it exports a ${found.kind} named ${required.name})`);
  if (required.kind === 'function' && required.sig !== undefined) {
    const actual = functionType(info, found.index);
    if (actual === null || !sameSig(actual, required.sig)) {
      throw new ModuleInvalidError(`guest must export ${wanted} (it has type ${actual === null ? 'unknown' : formatSig(actual)})`);
    }
  }
}
