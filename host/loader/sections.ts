import { FeatureDeniedError, ModuleInvalidError } from '../errors.ts';
import { DEFAULT_MODULE_LIMITS, checkBound, type ModuleLimits } from './bounds.ts';
import { scanCode, type CodeShape } from './code.ts';

/**
 * A small, bounded reader for the parts of a WebAssembly binary the loader judges: types,
 * imports, functions, tables, memories, exports, start, and where every section lies. It
 * also enforces the module's structural bounds (bounds.ts): every count is checked against
 * its bound before anything is read or allocated for it, and the code section's bodies are
 * scanned (code.ts) for their size, locals and nesting depth. Globals, elements and data are
 * counted and skipped by their declared size. The cost is linear in the module's bytes and
 * nothing recurses.
 *
 * Invariants:
 * - Every read is bounds-checked against the end of the enclosing section (or the file):
 *   malformed input raises ModuleInvalidError, never a RangeError or a silent wrap.
 * - LEB128 numbers have a length limit (5 bytes for 32 bits, 10 for 64) and unused high
 *   bits are checked, as the spec requires.
 * - A vector count larger than the bytes left cannot be honest (each element takes at least
 *   one byte), so it is refused before any loop or allocation: a 5-byte count cannot make
 *   the reader spin or allocate.
 * - A section the reader parses must be consumed exactly to its declared end.
 * - Type forms and reference types beyond the MVP + reference-types vocabulary (GC rec
 *   groups, struct/array, typed function references) raise FeatureDeniedError: the loader's
 *   vocabulary has no names for them, and the policy refuses what it cannot describe.
 */

/** Value types the loader can name. */
export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'funcref' | 'externref';

/** Reference types a table may hold. */
export type RefType = 'funcref' | 'externref';

/** A function signature: parameter and result types, in order. */
export interface FuncSig {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

/** The kinds of things a module imports or exports. */
export type ExternKind = 'function' | 'table' | 'memory' | 'global' | 'tag';

/** Size limits in units of the entity (pages for memories, elements for tables). */
export interface Limits {
  readonly initial: number;
  /** `null` when the module declares no maximum (unbounded up to the engine's limit). */
  readonly maximum: number | null;
}

/** A memory type. Numbers above 2^53 (only possible for memory64) are approximate. */
export interface MemoryInfo extends Limits {
  readonly shared: boolean;
  readonly memory64: boolean;
}

/** A table type. */
export interface TableInfo extends Limits {
  readonly elementType: RefType;
  readonly table64: boolean;
}

/** A global type. */
export interface GlobalInfo {
  readonly type: ValType;
  readonly mutable: boolean;
}

/** One import, discriminated by `kind`. */
export type ImportInfo =
  | { readonly module: string; readonly name: string; readonly kind: 'function'; readonly typeIndex: number }
  | { readonly module: string; readonly name: string; readonly kind: 'table'; readonly table: TableInfo }
  | { readonly module: string; readonly name: string; readonly kind: 'memory'; readonly memory: MemoryInfo }
  | { readonly module: string; readonly name: string; readonly kind: 'global'; readonly global: GlobalInfo }
  | { readonly module: string; readonly name: string; readonly kind: 'tag'; readonly typeIndex: number };

/** One export: `index` is in the index space of its kind (imports first). */
export interface ExportInfo {
  readonly name: string;
  readonly kind: ExternKind;
  readonly index: number;
}

/** Where a section lies in the file, so the rewriter can splice around it. */
export interface SectionSpan {
  /** Section id (0 = custom, 1 = type, ... 13 = tag). */
  readonly id: number;
  /** Offset of the id byte. */
  readonly start: number;
  /** Offset of the first payload byte (after the id and the size LEB). */
  readonly payloadStart: number;
  /** Offset just past the payload. */
  readonly end: number;
}

/** What the loader knows about a module after reading its sections. */
export interface ModuleInfo {
  /** Function types, by type index. */
  readonly types: readonly FuncSig[];
  readonly imports: readonly ImportInfo[];
  /** Type index of each function the module defines (not imports), in order. */
  readonly functions: readonly number[];
  /** Memories the module defines (not imports). */
  readonly memories: readonly MemoryInfo[];
  /** Tables the module defines (not imports). */
  readonly tables: readonly TableInfo[];
  readonly exports: readonly ExportInfo[];
  /** Function index of the start function, or null. */
  readonly start: number | null;
  /** Every section in file order, custom sections included. */
  readonly sections: readonly SectionSpan[];
  /** What the structural bounds measured (the bounds themselves are checked while reading). */
  readonly shape: ModuleShape;
}

/** Counts and maxima the structural bounds apply to, beyond the lists above. */
export interface ModuleShape {
  readonly globals: number;
  readonly tags: number;
  readonly dataSegments: number;
  readonly elementSegments: number;
  readonly customSections: number;
  /** The code section's bodies: sizes, locals, nesting depth. */
  readonly code: CodeShape;
}

/** Section ids, as the binary format numbers them. */
export const SectionId = {
  CUSTOM: 0,
  TYPE: 1,
  IMPORT: 2,
  FUNCTION: 3,
  TABLE: 4,
  MEMORY: 5,
  GLOBAL: 6,
  EXPORT: 7,
  START: 8,
  ELEMENT: 9,
  CODE: 10,
  DATA: 11,
  DATA_COUNT: 12,
  TAG: 13,
} as const;

/** Required position of each non-custom section id (the tag and data-count sections sit out of numeric order). */
const sectionOrder: ReadonlyMap<number, number> = new Map([
  [SectionId.TYPE, 1], [SectionId.IMPORT, 2], [SectionId.FUNCTION, 3], [SectionId.TABLE, 4],
  [SectionId.MEMORY, 5], [SectionId.TAG, 6], [SectionId.GLOBAL, 7], [SectionId.EXPORT, 8],
  [SectionId.START, 9], [SectionId.ELEMENT, 10], [SectionId.DATA_COUNT, 11], [SectionId.CODE, 12],
  [SectionId.DATA, 13],
]);

const valTypes: ReadonlyMap<number, ValType> = new Map([
  [0x7f, 'i32'], [0x7e, 'i64'], [0x7d, 'f32'], [0x7c, 'f64'], [0x7b, 'v128'], [0x70, 'funcref'], [0x6f, 'externref'],
]);
/** Reference type encodings from the function-references, GC and exception proposals: known, refused. */
const deniedRefTypes: ReadonlySet<number> = new Set([0x63, 0x64, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x71, 0x72, 0x73, 0x74]);
/** Type-section forms from the GC proposal: rec, sub, sub final, struct, array. */
const deniedTypeForms: ReadonlySet<number> = new Set([0x4e, 0x50, 0x4f, 0x5f, 0x5e]);
const externKinds: readonly ExternKind[] = ['function', 'table', 'memory', 'global', 'tag'];

const LIMITS_HAS_MAX = 0x01;
const LIMITS_SHARED = 0x02;
const LIMITS_64 = 0x04;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function malformed(message: string, offset: number): ModuleInvalidError {
  return new ModuleInvalidError(`malformed module: ${message} at byte offset ${offset}`);
}

/** Builds the typed error a format raises for malformed input (`at` is the byte offset). */
export type Fail = (message: string, at: number) => Error;

/**
 * A cursor over `bytes[pos, end)`, for the WebAssembly binary encoding and the formats built on
 * it (the tool-conventions signature data: host/security/signature.ts). Every method checks the
 * bound first, never allocates before it has checked that the bytes it is about to take exist,
 * and throws `fail`'s error (ModuleInvalidError unless the format gives its own) naming what it
 * was reading and where; `end` is the enclosing section's end, so one section can never read
 * into the next.
 */
export class ByteReader {
  /** Offset of the next byte to read. */
  pos: number;

  /** Reads `bytes[start, end)`; `end` defaults to the whole array. */
  constructor(
    private readonly bytes: Uint8Array,
    start = 0,
    readonly end: number = bytes.length,
    private readonly fail: Fail = malformed,
  ) {
    this.pos = start;
  }

  /** Bytes left before `end`. */
  get remaining(): number {
    return this.end - this.pos;
  }

  /** One byte. */
  u8(what: string): number {
    if (this.pos >= this.end) throw this.fail(`unexpected end of ${what}`, this.pos);
    // The bound check above guarantees the index is inside the array.
    return this.bytes[this.pos++] as number;
  }

  /** Unsigned LEB128, at most 5 bytes, value < 2^32. */
  u32(what: string): number {
    const at = this.pos;
    let result = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.u8(what);
      // The 5th byte holds bits 28..31 only: a continuation bit or any higher bit overflows u32.
      if (i === 4 && b > 0x0f) throw this.fail(`${what}: u32 LEB128 out of range`, at);
      // Multiplication, not <<, so bit 31 does not turn the result negative.
      result += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return result;
    }
    // Unreachable: the 5th byte either ended the number or threw above.
    throw this.fail(`${what}: u32 LEB128 too long`, at);
  }

  /** Signed LEB128, at most 5 bytes, value in the i32 range. */
  i32(what: string): number {
    const at = this.pos;
    let result = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.u8(what);
      if (i === 4) {
        // Bits 32..34 of the 5th byte must repeat bit 31 (sign extension), and it must end the number.
        const sign = b & 0x08;
        if ((b & 0x80) !== 0 || (b & 0x70) !== (sign !== 0 ? 0x70 : 0)) throw this.fail(`${what}: i32 LEB128 out of range`, at);
        // `|` truncates to int32, which is exactly the two's-complement reading of bit 31.
        return result | ((b & 0x0f) << 28);
      }
      result |= (b & 0x7f) << (7 * i);
      if ((b & 0x80) === 0) {
        const shift = 7 * (i + 1);
        // Sign-extend from the last bit read (shift <= 28 here, so the mask is well defined).
        return (b & 0x40) !== 0 ? result | (~0 << shift) : result;
      }
    }
    throw this.fail(`${what}: i32 LEB128 too long`, at);
  }

  /**
   * Unsigned LEB128, at most 10 bytes, value < 2^64. Returned as a number: exact below
   * 2^53, approximate above; 64-bit limits are only ever reported and refused.
   */
  u64(what: string): number {
    const at = this.pos;
    let result = 0;
    for (let i = 0; i < 10; i++) {
      const b = this.u8(what);
      // The 10th byte holds bit 63 only.
      if (i === 9 && b > 0x01) throw this.fail(`${what}: u64 LEB128 out of range`, at);
      result += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return result;
    }
    throw this.fail(`${what}: u64 LEB128 too long`, at);
  }

  /**
   * Signed LEB128, at most 10 bytes, value in the i64 range. Returned as a number (exact
   * within ±2^53): the scan only steps over these, it never computes with them.
   */
  s64(what: string): number {
    const at = this.pos;
    let result = 0;
    for (let i = 0; i < 10; i++) {
      const b = this.u8(what);
      if (i === 9) {
        // The 10th byte holds bit 63 only, which must be repeated in its unused bits.
        if (b !== 0x00 && b !== 0x7f) throw this.fail(`${what}: i64 LEB128 out of range`, at);
        return b === 0x7f ? result - 2 ** 63 : result;
      }
      result += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return (b & 0x40) !== 0 ? result - 2 ** (7 * (i + 1)) : result;
    }
    throw this.fail(`${what}: i64 LEB128 too long`, at);
  }

  /** A reader over `[pos, end)` of the same bytes: a sub-range that cannot read past `end`. */
  sub(end: number): ByteReader {
    if (end < this.pos || end > this.end) throw this.fail(`range end ${end} outside [${this.pos}, ${this.end}]`, this.pos);
    return new ByteReader(this.bytes, this.pos, end, this.fail);
  }

  /** A value type (see readValType). */
  valType(): ValType {
    return readValType(this);
  }

  /** `n` raw bytes, as a view (no copy). */
  take(n: number, what: string): Uint8Array {
    if (n > this.remaining) throw this.fail(`${what} (${n} bytes) runs past its end`, this.pos);
    const view = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return view;
  }

  /**
   * A vector length: refused over `max`, and when it could not possibly fit in the bytes left
   * (each item takes at least `minItemBytes`), before anything is allocated for the items.
   */
  count(what: string, max = Infinity, minItemBytes = 1): number {
    const at = this.pos;
    const n = this.u32(`${what} count`);
    if (n > max) throw this.fail(`${what} count ${n} exceeds the limit of ${max}`, at);
    if (n * minItemBytes > this.remaining) throw this.fail(`${what} count ${n} exceeds the ${this.remaining} bytes left`, at);
    return n;
  }

  /** A u32 length, then that many bytes (a view): refused over `max`, before anything is taken. */
  slice(what: string, max = Infinity): Uint8Array {
    const at = this.pos;
    const n = this.u32(`${what} length`);
    if (n > max) throw this.fail(`${what}: length ${n} exceeds the limit of ${max} bytes`, at);
    return this.take(n, what);
  }

  /** Refuses bytes left before `end`. */
  expectEnd(what: string): void {
    if (this.pos !== this.end) throw this.fail(`${what}: ${this.end - this.pos} unexpected trailing bytes`, this.pos);
  }

  /** A name: length-prefixed, valid UTF-8. */
  name(what: string): string {
    const at = this.pos;
    const raw = this.take(this.u32(`${what} length`), what);
    try {
      return utf8.decode(raw);
    } catch {
      throw this.fail(`${what} is not valid UTF-8`, at);
    }
  }
}

function readValType(r: ByteReader): ValType {
  const at = r.pos;
  const code = r.u8('value type');
  const type = valTypes.get(code);
  if (type !== undefined) return type;
  if (deniedRefTypes.has(code)) {
    throw new FeatureDeniedError(`reference type 0x${hex(code)} at byte offset ${at} is not allowed: typed function references, GC and exception reference types are refused`);
  }
  throw malformed(`unknown value type 0x${hex(code)}`, at);
}

/** A table element type: funcref or externref (typed references are refused, see readValType). */
export function readRefType(r: ByteReader): RefType {
  const at = r.pos;
  const type = readValType(r);
  if (type !== 'funcref' && type !== 'externref') throw malformed(`${type} is not a reference type`, at);
  return type;
}

/** Limits of a memory or table, with the flag bits that are allowed for that kind. */
interface RawLimits extends Limits {
  readonly flags: number;
}

/**
 * Reads a limits encoding: a flags byte, the initial size, and the maximum if flagged.
 * Bit 0 = has maximum, bit 1 = shared (memories only), bit 2 = 64-bit index.
 */
export function readLimits(r: ByteReader, kind: 'memory' | 'table'): RawLimits {
  const at = r.pos;
  const flags = r.u8(`${kind} limits flags`);
  const allowed = kind === 'memory' ? LIMITS_HAS_MAX | LIMITS_SHARED | LIMITS_64 : LIMITS_HAS_MAX | LIMITS_64;
  if ((flags & ~allowed) !== 0) throw malformed(`unknown ${kind} limits flags 0x${hex(flags)}`, at);
  const wide = (flags & LIMITS_64) !== 0;
  const readSize = (what: string): number => (wide ? r.u64(what) : r.u32(what));
  const initial = readSize(`${kind} initial size`);
  const maximum = (flags & LIMITS_HAS_MAX) !== 0 ? readSize(`${kind} maximum size`) : null;
  return { flags, initial, maximum };
}

function readMemoryType(r: ByteReader): MemoryInfo {
  const { flags, initial, maximum } = readLimits(r, 'memory');
  return { initial, maximum, shared: (flags & LIMITS_SHARED) !== 0, memory64: (flags & LIMITS_64) !== 0 };
}

/** The prefix of the function-references table form `0x40 0x00 reftype limits expr`. */
const TABLE_WITH_INIT = 0x40;

function readTableType(r: ByteReader): TableInfo {
  if (r.remaining > 0 && peek(r) === TABLE_WITH_INIT) {
    // Refused rather than parsed: its initialiser is a constant expression the reader would
    // have to decode instruction by instruction, and it only exists for typed references.
    throw new FeatureDeniedError(`a table with an initialiser expression (function-references table form) at byte offset ${r.pos} is not allowed`);
  }
  const elementType = readRefType(r);
  const { flags, initial, maximum } = readLimits(r, 'table');
  return { elementType, initial, maximum, table64: (flags & LIMITS_64) !== 0 };
}

function peek(r: ByteReader): number {
  const at = r.pos;
  const b = r.u8('byte');
  r.pos = at;
  return b;
}

function readGlobalType(r: ByteReader): GlobalInfo {
  const type = readValType(r);
  const at = r.pos;
  const mut = r.u8('global mutability');
  if (mut > 1) throw malformed(`global mutability 0x${hex(mut)}`, at);
  return { type, mutable: mut === 1 };
}

function readFuncType(r: ByteReader, limits: ModuleLimits): FuncSig {
  const at = r.pos;
  const form = r.u8('type form');
  if (deniedTypeForms.has(form)) {
    throw new FeatureDeniedError(`type form 0x${hex(form)} at byte offset ${at} is not allowed: GC type definitions (rec, sub, struct, array) are refused`);
  }
  if (form !== 0x60) throw malformed(`unknown type form 0x${hex(form)}`, at);
  const owner = `the function type at byte offset ${at}`;
  const params = readVec(r, 'parameter', readValType, bounded(limits, 'params', 'parameters', 0, owner));
  const results = readVec(r, 'result', readValType, bounded(limits, 'results', 'results', 0, owner));
  return { params, results };
}

/**
 * A vector: its count is checked against the bytes left and by `check` (a structural bound),
 * before any element is read.
 */
function readVec<T>(r: ByteReader, what: string, item: (r: ByteReader) => T, check?: (n: number, at: number) => void): T[] {
  const at = r.pos;
  const n = r.count(what);
  check?.(n, at);
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(item(r));
  return out;
}

/** A `check` for readVec: `already + n` against `limits[bound]`. */
function bounded(limits: ModuleLimits, bound: keyof ModuleLimits, what: string, already = 0, owner = 'the module'): (n: number, at: number) => void {
  return (n, at) => checkBound(limits, bound, already + n, `${owner} has ${already + n} ${what} (vector at byte offset ${at})`);
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const VERSION = [0x01, 0x00, 0x00, 0x00];
/** Size of the preamble: magic and version. */
export const PREAMBLE_SIZE = 8;

/**
 * Reads the module's structure and enforces its structural bounds (`limits`, default
 * DEFAULT_MODULE_LIMITS). Throws ModuleInvalidError for anything malformed,
 * LimitModuleError for a bound exceeded, and FeatureDeniedError for GC type definitions,
 * typed references and the table-initialiser form. Does not validate code bodies or
 * cross-references beyond type indices: that is the engine's job (validate.ts), which the
 * pipeline runs only after this reader accepted the module.
 */
export function readSections(bytes: Uint8Array, limits: ModuleLimits = DEFAULT_MODULE_LIMITS): ModuleInfo {
  const r = new ByteReader(bytes);
  const preamble = r.take(Math.min(PREAMBLE_SIZE, bytes.length), 'preamble');
  if (preamble.length < PREAMBLE_SIZE || MAGIC.some((b, i) => preamble[i] !== b)) {
    throw new ModuleInvalidError('malformed module: not a WebAssembly binary (bad magic number or truncated preamble)');
  }
  if (VERSION.some((b, i) => preamble[4 + i] !== b)) {
    throw new ModuleInvalidError(`malformed module: unsupported binary version ${[...preamble.subarray(4)].map(hex).join(' ')} (only version 1 core modules are accepted)`);
  }

  // Assigned, not push(...spread): a spread of 100k+ elements overflows the call stack, and
  // each section appears at most once (the order check below), so there is nothing to merge.
  let types: FuncSig[] = [];
  let imports: ImportInfo[] = [];
  let functions: number[] = [];
  let memories: MemoryInfo[] = [];
  let tables: TableInfo[] = [];
  let exports: ExportInfo[] = [];
  let start: number | null = null;
  const sections: SectionSpan[] = [];
  let lastOrder = 0;
  let globals = 0;
  let tags = 0;
  let dataSegments = 0;
  let elementSegments = 0;
  let customSections = 0;
  let code: CodeShape = { bodies: 0, maxBodyBytes: 0, maxLocals: 0, totalLocals: 0, maxDepth: 0 };

  const typeIndex = (s: ByteReader, what: string): number => {
    const at = s.pos;
    const index = s.u32(what);
    if (index >= types.length) throw malformed(`${what} ${index} is out of range (${types.length} types)`, at);
    return index;
  };
  const imported = (kind: ExternKind): number => imports.reduce((n, imp) => (imp.kind === kind ? n + 1 : n), 0);
  /** A section that is only counted: its vector count against `bound`, then skipped whole. */
  const countOnly = (s: ByteReader, what: string, bound: keyof ModuleLimits, already = 0): number => {
    const at = s.pos;
    const n = s.count(what);
    checkBound(limits, bound, already + n, `the module has ${already + n} ${what}s (section at byte offset ${at})`);
    return n;
  };

  while (r.remaining > 0) {
    const sectionStart = r.pos;
    const id = r.u8('section id');
    const size = r.u32('section size');
    const payloadStart = r.pos;
    if (size > r.remaining) throw malformed(`section ${id} size ${size} runs past the end of the module`, sectionStart);
    const end = payloadStart + size;
    sections.push({ id, start: sectionStart, payloadStart, end });
    r.pos = end;

    if (id === SectionId.CUSTOM) {
      customSections++;
      checkBound(limits, 'customSections', customSections, `the module has ${customSections} custom sections (the last at byte offset ${sectionStart})`);
      continue;
    }
    const order = sectionOrder.get(id);
    if (order === undefined) throw malformed(`unknown section id ${id}`, sectionStart);
    if (order <= lastOrder) throw malformed(`section ${id} is duplicated or out of order`, sectionStart);
    lastOrder = order;

    const s = new ByteReader(bytes, payloadStart, end);
    switch (id) {
      case SectionId.TYPE:
        types = readVec(s, 'type', (s) => readFuncType(s, limits), bounded(limits, 'types', 'types'));
        break;
      case SectionId.IMPORT:
        imports = readVec(s, 'import', (s) => readImport(s, typeIndex), bounded(limits, 'imports', 'imports'));
        checkBound(limits, 'functions', imported('function'), `the module imports ${imported('function')} functions`);
        checkBound(limits, 'globals', imported('global'), `the module imports ${imported('global')} globals`);
        checkBound(limits, 'tables', imported('table'), `the module imports ${imported('table')} tables`);
        checkBound(limits, 'tags', imported('tag'), `the module imports ${imported('tag')} tags`);
        checkBound(limits, 'memories', imported('memory'), `the module imports ${imported('memory')} memories`);
        break;
      case SectionId.FUNCTION: {
        const at = s.pos;
        const n = s.count('function');
        const total = imported('function') + n;
        checkBound(limits, 'functions', total, `the module has ${total} functions (${n} defined, function section at byte offset ${at})`);
        functions = new Array<number>(n);
        for (let i = 0; i < n; i++) functions[i] = typeIndex(s, 'function type index');
        break;
      }
      case SectionId.TABLE:
        tables = readVec(s, 'table', readTableType, bounded(limits, 'tables', 'tables', imported('table')));
        break;
      case SectionId.MEMORY:
        memories = readVec(s, 'memory', readMemoryType, bounded(limits, 'memories', 'memories', imported('memory')));
        break;
      case SectionId.TAG:
        tags = countOnly(s, 'tag', 'tags', imported('tag'));
        s.pos = end;
        break;
      case SectionId.GLOBAL:
        globals = countOnly(s, 'global', 'globals', imported('global'));
        s.pos = end;
        break;
      case SectionId.EXPORT:
        exports = readVec(s, 'export', readExport, bounded(limits, 'exports', 'exports'));
        break;
      case SectionId.START:
        start = s.u32('start function index');
        break;
      case SectionId.ELEMENT:
        elementSegments = countOnly(s, 'element segment', 'elementSegments');
        s.pos = end;
        break;
      case SectionId.DATA_COUNT:
        s.u32('data count');
        break;
      case SectionId.CODE: {
        const n = s.count('function body');
        // The engine requires one body per defined function; the scan is bounded either way.
        checkBound(limits, 'functions', imported('function') + n, `the code section has ${n} function bodies`);
        code = scanCode(s, n, imported('function'), limits);
        break;
      }
      case SectionId.DATA:
        dataSegments = countOnly(s, 'data segment', 'dataSegments');
        s.pos = end;
        break;
      default:
        s.pos = end;
    }
    if (s.pos !== end) throw malformed(`section ${id} has ${end - s.pos} unread bytes (declared size ${size})`, s.pos);
  }
  return {
    types,
    imports,
    functions,
    memories,
    tables,
    exports,
    start,
    sections,
    shape: { globals: imported('global') + globals, tags: imported('tag') + tags, dataSegments, elementSegments, customSections, code },
  };
}

function readImport(r: ByteReader, typeIndex: (r: ByteReader, what: string) => number): ImportInfo {
  const module = r.name('import module name');
  const name = r.name('import name');
  const at = r.pos;
  const kind = r.u8('import kind');
  switch (kind) {
    case 0:
      return { module, name, kind: 'function', typeIndex: typeIndex(r, 'import type index') };
    case 1:
      return { module, name, kind: 'table', table: readTableType(r) };
    case 2:
      return { module, name, kind: 'memory', memory: readMemoryType(r) };
    case 3:
      return { module, name, kind: 'global', global: readGlobalType(r) };
    case 4: {
      const attrAt = r.pos;
      if (r.u8('tag attribute') !== 0) throw malformed('unknown tag attribute', attrAt);
      return { module, name, kind: 'tag', typeIndex: typeIndex(r, 'tag type index') };
    }
    default:
      throw malformed(`unknown import kind 0x${hex(kind)}`, at);
  }
}

function readExport(r: ByteReader): ExportInfo {
  const name = r.name('export name');
  const at = r.pos;
  const kindCode = r.u8('export kind');
  const kind = externKinds[kindCode];
  if (kind === undefined) throw malformed(`unknown export kind 0x${hex(kindCode)}`, at);
  return { name, kind, index: r.u32('export index') };
}

/**
 * Type index of every function in the function index space (imports first). Build it once
 * when looking up many functions: `functionType` walks the imports on every call.
 */
export function functionTypeIndices(info: ModuleInfo): number[] {
  const indices: number[] = [];
  for (const imp of info.imports) if (imp.kind === 'function') indices.push(imp.typeIndex);
  for (const t of info.functions) indices.push(t);
  return indices;
}

/** The signature of a function by its index in the function index space, or null if out of range. */
export function functionType(info: ModuleInfo, index: number): FuncSig | null {
  let seen = 0;
  for (const imp of info.imports) {
    if (imp.kind !== 'function') continue;
    if (seen === index) return info.types[imp.typeIndex] ?? null;
    seen++;
  }
  const defined = info.functions[index - seen];
  return defined === undefined ? null : (info.types[defined] ?? null);
}
