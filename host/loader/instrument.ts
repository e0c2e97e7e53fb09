import { guestText, quoted } from '../escape.ts';
import { FeatureDeniedError, InternalError, LimitMemoryError, LimitModuleError, WasmvisorError } from '../errors.ts';

/**
 * Fuel metering: rewrites a guest so it counts the work it does.
 *
 * The cost model (version INSTRUMENTATION_VERSION, documented in docs/ABI.md):
 * - Checkpoints are function entries and loop headers. A checkpoint's *region* is the code of
 *   its function or loop body outside any nested loop. Every Binaryen IR node in the region
 *   costs 1, except `block` and `nop` (structure, not work), and nested loops (they have their
 *   own checkpoint). A region costs at least 1.
 * - At each checkpoint the counter is decremented by its region's cost, then, if negative,
 *   the host import `hv.__wasmvisor_fuel_exhausted` is called (it ends the run).
 *
 * Why this bounds the work: between two checkpoints control only moves forward inside one
 * region (backward jumps target loop headers, which are checkpoints; a call reaches a
 * function entry), so each instruction runs at most once per charge of its region. The
 * charge is therefore an upper bound of the instructions executed (forward branches that skip
 * code, such as an untaken `if` arm, are charged anyway), and any infinite run passes
 * checkpoints infinitely often. The count is static, so the same guest with the same budget
 * stops at the same checkpoint every time.
 *
 * Per checkpoint the guest runs: global.get, i64.const, i64.sub, global.set, global.get,
 * i64.const, i64.lt_s, if (call not taken): a few cycles.
 *
 * The counter is a *defined* mutable i64 global, exported as `__wasmvisor_fuel`, initialised
 * from an imported immutable global (`hv.__wasmvisor_fuel_budget`): the budget is not baked
 * into the bytes (they are cached across budgets), and a defined global is cheaper to update
 * than an imported mutable one (measured: about 10% of the guest's run time less in
 * guests/work.wasm, CPU time). Because exports are reachable only once instantiation is done,
 * the instrumenter moves a wasm start function out of the start section and exports it as
 * `__wasmvisor_start`; the worker calls it right after instantiation, before it binds the
 * guest's memory, so the guest sees the same start-function behaviour as without fuel, and the
 * remaining fuel is readable however the run ends.
 */

/** Bump whenever the cost model or the inserted code changes: it is part of every cache key. */
export const INSTRUMENTATION_VERSION = 1;

/** Guest names starting with this are reserved for the instrumenter (refused by the policy). */
export const RESERVED_PREFIX = '__wasmvisor_';
/** Import module of the instrumenter's imports (the hv module; the guest never declares them). */
export const FUEL_MODULE = 'hv';
/** Export name of the fuel counter: a mutable i64 global holding the remaining fuel. */
export const FUEL_GLOBAL = `${RESERVED_PREFIX}fuel`;
/** Import name of the budget: an immutable i64 global the counter starts from. */
export const FUEL_BUDGET = `${RESERVED_PREFIX}fuel_budget`;
/** Export name of the module's wasm start function, when it had one (see above). */
export const START_EXPORT = `${RESERVED_PREFIX}start`;
/** Called by the guest when the counter went negative; the host ends the run. `() -> ()`. */
export const FUEL_EXHAUSTED = `${RESERVED_PREFIX}fuel_exhausted`;

/** What the instrumenter found, for tests and `inspect`. */
export interface InstrumentResult {
  bytes: Uint8Array;
  /** Checkpoints inserted: instrumented function bodies plus loop headers. */
  checkpoints: number;
}

type Binaryen = typeof import('binaryen').default;
type ExpressionRef = number;

let binaryenPromise: Promise<Binaryen> | null = null;

/**
 * Loads binaryen once per process, on first use: it takes about a second to load. It is a
 * dependency of the package; should an install have lost it, the error says what to install
 * rather than surfacing Node's untyped ERR_MODULE_NOT_FOUND.
 */
export function loadBinaryen(): Promise<Binaryen> {
  binaryenPromise ??= import('binaryen').then(
    (m) => m.default,
    (error: unknown) => {
      binaryenPromise = null;
      const reason = error instanceof Error ? error.message : String(error);
      throw new InternalError(`fuel metering and CPU caps need the binaryen package, which could not be loaded (${reason}); it is a dependency of wasmvisor: reinstall it (npm install)`, { cause: error });
    },
  );
  return binaryenPromise;
}

/**
 * The features binaryen reads and writes. Everything a guest may use on Node 20, and nothing
 * that changes how binaryen encodes plain modules (GC and friends would enable new type
 * encodings); the policy refuses GC types, shared and 64-bit memories before we get here.
 */
export function binaryenFeatures(b: Binaryen): number {
  const f = b.Features;
  return (
    f.MutableGlobals |
    f.NontrappingFPToInt |
    f.SIMD128 |
    f.BulkMemory |
    f.BulkMemoryOpt |
    f.SignExt |
    f.ExceptionHandling |
    f.TailCall |
    f.ReferenceTypes |
    f.Multivalue |
    f.ExtendedConst |
    f.Atomics
  );
}

/**
 * Child-bearing fields per expression kind. Fields not listed hold numbers that are not
 * expressions (offsets, lane indices), so this table, not a guess, says what to walk.
 * A kind missing from the table cannot be metered and is refused.
 */
function childFields(b: Binaryen): Map<number, readonly string[]> {
  const t: [number, string[]][] = [
    [b.BlockId, ['children']],
    [b.IfId, ['condition', 'ifTrue', 'ifFalse']],
    [b.LoopId, ['body']],
    [b.BreakId, ['condition', 'value']],
    [b.SwitchId, ['condition', 'value']],
    [b.CallId, ['operands']],
    [b.CallIndirectId, ['target', 'operands']],
    [b.LocalGetId, []],
    [b.LocalSetId, ['value']],
    [b.GlobalGetId, []],
    [b.GlobalSetId, ['value']],
    [b.LoadId, ['ptr']],
    [b.StoreId, ['ptr', 'value']],
    [b.AtomicRMWId, ['ptr', 'value']],
    [b.AtomicCmpxchgId, ['ptr', 'expected', 'replacement']],
    [b.AtomicWaitId, ['ptr', 'expected', 'timeout']],
    [b.AtomicNotifyId, ['ptr', 'notifyCount']],
    [b.AtomicFenceId, []],
    [b.SIMDExtractId, ['vec']],
    [b.SIMDReplaceId, ['vec', 'value']],
    [b.SIMDShuffleId, ['left', 'right']],
    [b.SIMDTernaryId, ['a', 'b', 'c']],
    [b.SIMDShiftId, ['vec', 'shift']],
    [b.SIMDLoadId, ['ptr']],
    [b.SIMDLoadStoreLaneId, ['ptr', 'vec']],
    [b.MemoryInitId, ['dest', 'offset', 'size']],
    [b.DataDropId, []],
    [b.MemoryCopyId, ['dest', 'source', 'size']],
    [b.MemoryFillId, ['dest', 'value', 'size']],
    [b.ConstId, []],
    [b.UnaryId, ['value']],
    [b.BinaryId, ['left', 'right']],
    [b.SelectId, ['ifTrue', 'ifFalse', 'condition']],
    [b.DropId, ['value']],
    [b.ReturnId, ['value']],
    [b.MemorySizeId, []],
    [b.MemoryGrowId, ['delta']],
    [b.NopId, []],
    [b.UnreachableId, []],
    [b.PopId, []],
    [b.RefNullId, []],
    [b.RefIsNullId, ['value']],
    [b.RefFuncId, []],
    [b.RefEqId, ['left', 'right']],
    [b.TableGetId, ['index']],
    [b.TableSetId, ['index', 'value']],
    [b.TableSizeId, []],
    [b.TableGrowId, ['value', 'delta']],
    [b.TryId, ['body', 'catchBodies']],
    [b.ThrowId, ['operands']],
    [b.RethrowId, []],
    [b.TupleMakeId, ['operands']],
    [b.TupleExtractId, ['tuple']],
  ];
  return new Map(t);
}

/**
 * binaryen.js 132 exposes no child getters for the bulk table instructions, so their operands
 * (which may nest a loop) cannot be walked: a module using them is refused rather than run
 * with code the meter cannot see.
 */
function unsupportedName(b: Binaryen, id: number): string {
  const raw = b as unknown as Record<string, (() => number) | undefined>;
  const known: [string, string][] = [
    ['_BinaryenTableFillId', 'table.fill'],
    ['_BinaryenTableCopyId', 'table.copy'],
    ['_BinaryenTableInitId', 'table.init'],
    ['_BinaryenElemDropId', 'elem.drop'],
  ];
  for (const [fn, name] of known) if (raw[fn]?.() === id) return name;
  return `an instruction of binaryen expression kind ${id}`;
}

/** A function or loop body whose cost is charged at its checkpoint. */
interface Region {
  cost: number;
  /** The loop whose body this is, or null for a function body. */
  loop: ExpressionRef | null;
  body: ExpressionRef;
}

/** The two setters we need are in binaryen.js's C API but not in its type declarations. */
interface BodySetters {
  _BinaryenFunctionSetBody(func: number, body: ExpressionRef): void;
  _BinaryenLoopSetBody(loop: ExpressionRef, body: ExpressionRef): void;
}

/** Picks a name not used by the module's own (possibly guest-chosen) internal names. */
function freshName(base: string, taken: (name: string) => boolean): string {
  let name = base;
  for (let i = 1; taken(name); i++) name = `${base}_${i}`;
  return name;
}

/**
 * Rewrites `bytes` (already admitted by the policy and clamped) so it meters fuel, and adds the
 * two instrumenter imports. Deterministic: the same bytes give the same output.
 *
 * Custom sections are removed before binaryen reads the module: the engine ignores their
 * contents, but binaryen parses some (`name`, `target_features`, `dylink`, DWARF, ...) and
 * throws on malformed ones, and `target_features` would even change the features binaryen
 * reads and writes with. They carry nothing the module needs to run; the measurement is of the
 * original bytes, custom sections included.
 *
 * Throws FeatureDeniedError for code the instrumenter cannot meter, or that binaryen cannot
 * read although the engine validated it (a typed refusal, before anything runs); InternalError
 * only for a fault in our own rewrite.
 */
export async function instrumentFuel(bytes: Uint8Array): Promise<InstrumentResult> {
  const b = await loadBinaryen();
  let module: InstanceType<Binaryen['Module']>;
  try {
    // binaryen.js 132 takes the features as readBinary's second argument (its typings lag).
    const read = b.readBinary as unknown as (data: Uint8Array, features: number) => InstanceType<Binaryen['Module']>;
    module = read(withoutSection(bytes, CUSTOM_SECTION), binaryenFeatures(b));
  } catch (error) {
    binaryenHealthy = false;
    throw exhausted(error) ?? new FeatureDeniedError(`fuel metering cannot read this module (binaryen: ${guestText(describe(error))})`);
  }
  try {
    return rewrite(b, module);
  } catch (error) {
    if (error instanceof WasmvisorError) throw error;
    binaryenHealthy = false;
    throw exhausted(error) ?? new InternalError(`fuel instrumentation failed: ${describe(error)}`, { cause: error });
  } finally {
    try {
      module.dispose();
    } catch {
      binaryenHealthy = false;
    }
  }
}

/**
 * False once an exception has unwound through binaryen's own frames (a trap, a stack overflow,
 * anything binaryen threw): its compiled code keeps a stack pointer and a heap in its linear
 * memory that such an unwind can leave inconsistent, so this thread's binaryen must not be
 * trusted with another module. The loader's thread then retires (offthread.ts) and the next
 * instrumentation gets a fresh binaryen in a fresh thread.
 */
let binaryenHealthy = true;

/** Whether this thread's binaryen may instrument another module (see `binaryenHealthy`). */
export function instrumenterHealthy(): boolean {
  return binaryenHealthy;
}

/**
 * binaryen recurses on the module's nesting and grows its own memory with the module: a module
 * that takes it past the loader thread's stack or memory is refused with the bound to lower
 * (a typed refusal before anything runs), never reported as a fault of ours.
 */
function exhausted(error: unknown): WasmvisorError | null {
  // A stack overflow shows as the engine's RangeError (native stack) or as an out-of-bounds
  // access (binaryen's own stack, at the bottom of its linear memory).
  if ((error instanceof RangeError && /call stack/i.test(error.message)) || /memory access out of bounds/i.test(describe(error))) {
    return new LimitModuleError(
      'fuel metering ran out of stack on this module: its blocks or expressions nest too deeply for the instrumenter (lower moduleLimits.nestingDepth, or run it without fuel)',
    );
  }
  if (/out of memory|\bOOM\b|Cannot enlarge memory|Aborted/i.test(describe(error))) {
    return new LimitMemoryError(`fuel metering ran out of memory on this module (binaryen: ${guestText(describe(error))})`);
  }
  return null;
}

/**
 * A thrown value as text: binaryen.js throws strings and plain objects as well as Errors. Its C++
 * exceptions arrive as `{ gC, message }`, where `gC` is the exception's address in binaryen's
 * heap, a different number on every throw: only the message is text, so the same module is
 * always refused in the same words.
 */
function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  try {
    const message = typeof error === 'object' && error !== null ? (error as { message?: unknown }).message : undefined;
    if (typeof message === 'string') return message;
    return JSON.stringify(error) ?? quoted(error);
  } catch {
    return quoted(error);
  }
}

function rewrite(b: Binaryen, module: InstanceType<Binaryen['Module']>): InstrumentResult {
  const fields = childFields(b);
  const fuel = freshName(FUEL_GLOBAL, (n) => module.getGlobal(n) !== 0);
  const budget = freshName(FUEL_BUDGET, (n) => module.getGlobal(n) !== 0);
  const exhausted = freshName(FUEL_EXHAUSTED, (n) => module.getFunction(n) !== 0);
  module.addGlobalImport(budget, FUEL_MODULE, FUEL_BUDGET, b.i64, false);
  module.addGlobal(fuel, b.i64, true, module.global.get(budget, b.i64));
  module.addGlobalExport(fuel, FUEL_GLOBAL);
  module.addFunctionImport(exhausted, FUEL_MODULE, FUEL_EXHAUSTED, b.none, b.none);
  const start = module.getStart();
  if (start !== 0) module.addFunctionExport(b.getFunctionInfo(start).name, START_EXPORT);

  // binaryen.js 132's i64.const takes one bigint (its typings still say low, high).
  const i64 = module.i64.const as unknown as (value: bigint) => ExpressionRef;
  const check = (cost: number): ExpressionRef =>
    module.block(null, [
      module.global.set(fuel, module.i64.sub(module.global.get(fuel, b.i64), i64(BigInt(cost)))),
      module.if(module.i64.lt_s(module.global.get(fuel, b.i64), i64(0n)), module.call(exhausted, [], b.none)),
    ]);

  const setters = b as unknown as BodySetters;
  let checkpoints = 0;
  const n = module.getNumFunctions();
  for (let i = 0; i < n; i++) {
    const fn = module.getFunctionByIndex(i);
    const info = b.getFunctionInfo(fn);
    if (info.module !== null && info.module !== '') continue; // an import: no body
    const regions: Region[] = [];
    const entry: Region = { cost: 0, loop: null, body: info.body };
    regions.push(entry);
    // Iterative walk: a deeply nested guest must not overflow the host's stack.
    const work: [ExpressionRef, Region][] = [[info.body, entry]];
    while (work.length > 0) {
      const [expr, region] = work.pop()!;
      if (expr === 0) continue;
      const id = b.getExpressionId(expr);
      const names = fields.get(id);
      if (names === undefined) throw new FeatureDeniedError(`fuel metering cannot meter ${unsupportedName(b, id)} (in function ${guestText(info.name)})`);
      let into = region;
      if (id === b.LoopId) {
        into = { cost: 0, loop: expr, body: 0 };
        regions.push(into);
      } else if (id !== b.BlockId && id !== b.NopId) {
        region.cost++;
      }
      if (names.length === 0) continue;
      // Only for kinds with children: binaryen.js has no info wrapper for nop, unreachable,
      // ref.null and pop, and getExpressionInfo throws on them.
      const e = b.getExpressionInfo(expr) as unknown as Record<string, unknown>;
      if (into !== region) into.body = e.body as ExpressionRef;
      for (const name of names) {
        const child = e[name];
        if (Array.isArray(child)) for (const c of child as number[]) work.push([c, into]);
        else if (typeof child === 'number') work.push([child, into]);
      }
    }
    for (const region of regions) {
      const cost = Math.max(1, region.cost);
      const body = module.block(null, [check(cost), region.body], b.auto);
      if (region.loop === null) setters._BinaryenFunctionSetBody(fn, body);
      else setters._BinaryenLoopSetBody(region.loop, body);
      checkpoints++;
    }
  }
  if (!module.validate()) throw new InternalError('fuel instrumentation produced an invalid module');
  const bytes = module.emitBinary();
  // binaryen.js cannot unset a start function (its setter dereferences the function), so the
  // start section is dropped from the output instead; the function stays, exported.
  return { bytes: start !== 0 ? withoutSection(bytes, START_SECTION) : bytes, checkpoints };
}

const START_SECTION = 8;
const CUSTOM_SECTION = 0;

/**
 * `bytes` without the sections of id `id`. The input is a module whose section framing is
 * known to be sound: binaryen's own output, or bytes our section reader accepted.
 */
function withoutSection(bytes: Uint8Array, id: number): Uint8Array {
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let at = 8;
  while (at < bytes.length) {
    const begin = at;
    const sectionId = bytes[at++]!;
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = bytes[at++]!;
      size += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
    }
    at += size;
    if (sectionId !== id) parts.push(bytes.subarray(begin, at));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

