import { InvalidArgumentError, LimitModuleError } from '../errors.ts';
import { quoted } from '../escape.ts';

/**
 * Structural bounds of a module, checked by the section reader (sections.ts, code.ts) as it
 * reads, before the engine validates or compiles anything.
 *
 * Why: the engine's cost is not linear in a module's size. 150k functions of 50k locals each
 * (1.2 MB) cost seconds to validate; one function of 2 million nested blocks (6 MB) drives
 * lazy compilation past 1.8 GB. Every bound here caps one such multiplier, so that the time
 * and memory to load any module under the size cap stay bounded (docs/ABI.md, "Module
 * bounds", gives the measured figures). The defaults are far above what compilers emit for
 * real programs (the C, Rust and AssemblyScript guests of this repository use a tiny fraction
 * of each) and never above the engine's own limits (V8's `wasm-limits.h`), so a module the
 * engine would accept is only refused here for a bound an embedder can raise.
 *
 * Invariants:
 * - Counts are compared with their bound before any loop or allocation sized by them.
 * - A refusal is LimitModuleError naming the bound (`moduleLimits.<key>`), the value found,
 *   where, and the limit.
 */
export interface ModuleLimits {
  /** Function types in the type section. Engine limit 1,000,000. */
  readonly types: number;
  /** Parameters of one function type. Engine limit 1,000. */
  readonly params: number;
  /** Results of one function type. Engine limit 1,000. */
  readonly results: number;
  /** Imports. Engine limit 100,000. */
  readonly imports: number;
  /** Exports. Engine limit 100,000. */
  readonly exports: number;
  /** Functions, imported and defined. Engine limit 1,000,000. */
  readonly functions: number;
  /** Bytes of one function body. Engine limit 7,654,321. */
  readonly functionBodyBytes: number;
  /** Locals of one function (parameters excluded). Engine limit 50,000. */
  readonly localsPerFunction: number;
  /** Locals of all functions together: the engine's validation time grows with this sum. */
  readonly totalLocals: number;
  /** Blocks (block, loop, if, try) open at once in one function: compiler memory grows with it. */
  readonly nestingDepth: number;
  /** Targets of one br_table. Engine limit 65,520. */
  readonly brTableTargets: number;
  /** Targets of all br_tables together: compiled code grows by tens of bytes per target. */
  readonly totalBrTableTargets: number;
  /** Globals, imported and defined. Engine limit 1,000,000. */
  readonly globals: number;
  /** Tables, imported and defined. Engine limit 100,000. */
  readonly tables: number;
  /** Memories, imported and defined (the policy admits exactly one). Engine limit 1 (100 with multi-memory). */
  readonly memories: number;
  /** Tags (exception handling). Engine limit 1,000,000. */
  readonly tags: number;
  /** Data segments. Engine limit 100,000. */
  readonly dataSegments: number;
  /** Element segments. */
  readonly elementSegments: number;
  /** Custom sections (names, producers, debug info, ...). */
  readonly customSections: number;
  /**
   * Bytes of the code section of a module metered for fuel or a CPU cap: binaryen rewrites it
   * on the loader's thread at some microseconds per byte, so this bounds how long one metered
   * module can hold that thread. Not applied to modules that are not metered.
   */
  readonly meteredCodeBytes: number;
}

/** The defaults: generous for real programs, each at or below the engine's own limit. */
export const DEFAULT_MODULE_LIMITS: Readonly<ModuleLimits> = Object.freeze({
  types: 100_000,
  params: 1_000,
  results: 1_000,
  imports: 10_000,
  exports: 10_000,
  functions: 250_000,
  functionBodyBytes: 2 * 1024 * 1024,
  localsPerFunction: 50_000,
  totalLocals: 16 * 1024 * 1024,
  nestingDepth: 10_000,
  brTableTargets: 65_520,
  totalBrTableTargets: 1024 * 1024,
  globals: 100_000,
  tables: 100,
  memories: 100,
  tags: 10_000,
  dataSegments: 100_000,
  elementSegments: 100_000,
  customSections: 1_000,
  meteredCodeBytes: 4 * 1024 * 1024,
});

/** The keys of ModuleLimits, in a fixed order (for messages and docs). */
export const MODULE_LIMIT_KEYS = Object.keys(DEFAULT_MODULE_LIMITS) as readonly (keyof ModuleLimits)[];

/** Largest value a bound may be set to: every count in the binary format is a u32. */
const MAX_BOUND = 0xffff_ffff;

/** Objects resolveModuleLimits returned: frozen and complete, so they resolve to themselves. */
const resolvedLimits = new WeakSet<object>();

/**
 * The defaults with `overrides` applied. Throws InvalidArgumentError for an unknown key or a
 * value that is not an integer in 0..2^32-1. Returns a frozen object: `overrides` itself when it
 * is one this function returned (a hypervisor resolves its bounds once and passes them to every
 * load; checking them again was a tenth of a warm createPartition), else a fresh one.
 */
export function resolveModuleLimits(overrides: Partial<ModuleLimits> = {}, what = 'moduleLimits'): ModuleLimits {
  if (typeof overrides !== 'object' || overrides === null) throw new InvalidArgumentError(`${what} must be an object`);
  if (resolvedLimits.has(overrides)) return overrides as ModuleLimits;
  const limits: Record<string, number> = { ...DEFAULT_MODULE_LIMITS };
  for (const [key, value] of Object.entries(overrides)) {
    if (!(key in DEFAULT_MODULE_LIMITS)) {
      throw new InvalidArgumentError(`${what}.${key} is not a module bound (known: ${MODULE_LIMIT_KEYS.join(', ')})`);
    }
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_BOUND) {
      throw new InvalidArgumentError(`${what}.${key} must be an integer from 0 to ${MAX_BOUND}, got ${quoted(value)}`);
    }
    limits[key] = value;
  }
  const frozen = Object.freeze(limits as unknown as ModuleLimits);
  resolvedLimits.add(frozen);
  return frozen;
}

/**
 * Throws LimitModuleError when `value` exceeds `limits[key]`. `what` says what was counted and
 * where, e.g. `function 3 at byte offset 120 declares 60000 locals`.
 */
export function checkBound(limits: ModuleLimits, key: keyof ModuleLimits, value: number, what: string): void {
  const limit = limits[key];
  if (value > limit) throw new LimitModuleError(`${what}, over the limit of ${limit} (moduleLimits.${key})`);
}
