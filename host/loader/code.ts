import { FeatureDeniedError, ModuleInvalidError } from '../errors.ts';
import { checkBound, type ModuleLimits } from './bounds.ts';
import type { ByteReader } from './sections.ts';

/**
 * Scans the code section's function bodies for the structural bounds (bounds.ts): body size,
 * locals, nesting depth and br_table width. It decodes instructions only as far as needed to
 * step over their immediates; validating them is the engine's job, which runs after this scan
 * and only when it passed.
 *
 * Invariants:
 * - Iterative, constant memory: the depth is a counter, never a stack, so a module of 2
 *   million nested blocks costs this scan one integer, not 2 million frames.
 * - Time linear in the section's bytes; every read is bounds-checked against the body's end.
 * - For every instruction the engine accepts, the scan steps over exactly the bytes the engine
 *   reads, so the two never disagree on where an instruction starts. An opcode the scan does
 *   not know is refused (ERR_MODULE_INVALID), never skipped: skipping would leave the rest of
 *   the body unbounded. Opcodes of the typed-function-references and GC proposals are refused
 *   as ERR_FEATURE_DENIED, like their types (sections.ts).
 */

/** What the scan measured, for tests and diagnostics. */
export interface CodeShape {
  /** Function bodies. */
  readonly bodies: number;
  readonly maxBodyBytes: number;
  readonly maxLocals: number;
  readonly totalLocals: number;
  readonly maxDepth: number;
}

/** How an instruction's immediates are encoded. */
const enum Imm {
  /** Not a known instruction. */
  UNKNOWN,
  NONE,
  /** A block type; opens a block. */
  BLOCK,
  /** `end`: closes a block (or, at depth 0, the body). */
  END,
  U32,
  U32_U32,
  MEMARG,
  I32,
  I64,
  F32,
  F64,
  BR_TABLE,
  /** `select t*`: a vector of value types. */
  SELECT_T,
  /** `ref.null`: a heap type. */
  HEAP_TYPE,
  /** `delegate`: a label index; closes the `try` it belongs to. */
  DELEGATE,
  /** Typed function references / GC instruction: refused. */
  DENIED,
  /** One of the prefixes 0xfc, 0xfd, 0xfe: a u32 sub-opcode follows. */
  PREFIX,
}

const single = new Uint8Array(256).fill(Imm.UNKNOWN);
const set = (from: number, to: number, imm: Imm): void => {
  for (let op = from; op <= to; op++) single[op] = imm;
};
set(0x00, 0x01, Imm.NONE); // unreachable, nop
set(0x02, 0x04, Imm.BLOCK); // block, loop, if
single[0x05] = Imm.NONE; // else
single[0x06] = Imm.BLOCK; // try (legacy exception handling)
set(0x07, 0x09, Imm.U32); // catch, throw, rethrow
single[0x0b] = Imm.END;
set(0x0c, 0x0d, Imm.U32); // br, br_if
single[0x0e] = Imm.BR_TABLE;
single[0x0f] = Imm.NONE; // return
single[0x10] = Imm.U32; // call
single[0x11] = Imm.U32_U32; // call_indirect
single[0x12] = Imm.U32; // return_call
single[0x13] = Imm.U32_U32; // return_call_indirect
set(0x14, 0x15, Imm.DENIED); // call_ref, return_call_ref
single[0x18] = Imm.DELEGATE;
single[0x19] = Imm.NONE; // catch_all
set(0x1a, 0x1b, Imm.NONE); // drop, select
single[0x1c] = Imm.SELECT_T;
set(0x20, 0x26, Imm.U32); // local.get/set/tee, global.get/set, table.get/set
set(0x28, 0x3e, Imm.MEMARG); // loads and stores
set(0x3f, 0x40, Imm.U32); // memory.size, memory.grow (memory index)
single[0x41] = Imm.I32;
single[0x42] = Imm.I64;
single[0x43] = Imm.F32;
single[0x44] = Imm.F64;
set(0x45, 0xc4, Imm.NONE); // numeric, conversions, sign extension
single[0xd0] = Imm.HEAP_TYPE; // ref.null
single[0xd1] = Imm.NONE; // ref.is_null
single[0xd2] = Imm.U32; // ref.func
set(0xd3, 0xd6, Imm.DENIED); // ref.as_non_null, br_on_null, ref.eq, br_on_non_null
single[0xfb] = Imm.DENIED; // GC
set(0xfc, 0xfe, Imm.PREFIX);

/** 0xfc sub-opcodes: saturating truncation (0-7), bulk memory and table instructions (8-17). */
function miscImm(sub: number): Imm {
  if (sub <= 7) return Imm.NONE;
  switch (sub) {
    case 8: // memory.init data mem
    case 10: // memory.copy mem mem
    case 12: // table.init elem table
    case 14: // table.copy table table
      return Imm.U32_U32;
    case 9: // data.drop
    case 11: // memory.fill
    case 13: // elem.drop
    case 15: // table.grow
    case 16: // table.size
    case 17: // table.fill
      return Imm.U32;
    default:
      return Imm.UNKNOWN;
  }
}

/** Reads the immediates of a 0xfd (SIMD) instruction. False for an unknown sub-opcode. */
function simd(r: ByteReader, sub: number): boolean {
  if (sub <= 11 || sub === 92 || sub === 93) {
    memarg(r); // loads, splats, v128.store, load32_zero, load64_zero
  } else if (sub === 12 || sub === 13) {
    r.take(16, 'v128 immediate'); // v128.const, i8x16.shuffle
  } else if (sub >= 21 && sub <= 34) {
    r.u8('lane index'); // extract_lane, replace_lane
  } else if (sub >= 84 && sub <= 91) {
    memarg(r); // load_lane, store_lane
    r.u8('lane index');
  } else if (sub > 0x113) {
    // Beyond relaxed SIMD (0x100-0x113, no immediates): not an instruction.
    return false;
  }
  return true;
}

/** Reads the immediates of a 0xfe (atomics) instruction. False for an unknown sub-opcode. */
function atomic(r: ByteReader, sub: number): boolean {
  if (sub === 0x03) {
    r.u8('atomic.fence flags');
    return true;
  }
  if (sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e)) {
    memarg(r);
    return true;
  }
  return false;
}

/** `align` (bit 6: a memory index follows, multi-memory) and `offset` (u64 for memory64). */
function memarg(r: ByteReader): void {
  const align = r.u32('memarg alignment');
  if ((align & 0x40) !== 0) r.u32('memarg memory index');
  r.u64('memarg offset');
}

/** Reads a block type: 0x40, a value type (one byte), or a type index (s33). */
function blockType(r: ByteReader): void {
  const at = r.pos;
  const first = r.u8('block type');
  if (first === 0x40 || first === 0x7f || first === 0x7e || first === 0x7d || first === 0x7c || first === 0x7b || first === 0x70 || first === 0x6f) return;
  if (first === 0x63 || first === 0x64 || (first >= 0x69 && first <= 0x74)) {
    throw new FeatureDeniedError(`block type 0x${first.toString(16)} at byte offset ${at} is a typed reference: typed function references and GC types are refused`);
  }
  r.pos = at;
  const index = r.s64('block type index');
  if (index < 0) throw malformed(`unknown block type`, at);
}

function malformed(message: string, offset: number): ModuleInvalidError {
  return new ModuleInvalidError(`malformed module: ${message} at byte offset ${offset}`);
}

/**
 * Scans `count` function bodies from `r` (positioned after the count). `firstIndex` is the
 * function index of the first body (the number of imported functions), for messages.
 */
export function scanCode(r: ByteReader, count: number, firstIndex: number, limits: ModuleLimits): CodeShape {
  let maxBodyBytes = 0;
  let maxLocals = 0;
  let totalLocals = 0;
  let maxDepth = 0;
  const tables = { targets: 0 };
  for (let i = 0; i < count; i++) {
    const index = firstIndex + i;
    const at = r.pos;
    const size = r.u32('function body size');
    checkBound(limits, 'functionBodyBytes', size, `function ${index} at byte offset ${at} has a body of ${size} bytes`);
    if (size > r.remaining) throw malformed(`function ${index} body (${size} bytes) runs past the code section`, at);
    const end = r.pos + size;
    maxBodyBytes = Math.max(maxBodyBytes, size);
    const body = r.sub(end);
    const locals = readLocals(body, index, limits);
    maxLocals = Math.max(maxLocals, locals);
    totalLocals += locals;
    checkBound(limits, 'totalLocals', totalLocals, `functions up to ${index} declare ${totalLocals} locals together`);
    maxDepth = Math.max(maxDepth, scanBody(body, index, limits, tables));
    r.pos = end;
  }
  return { bodies: count, maxBodyBytes, maxLocals, totalLocals, maxDepth };
}

function readLocals(r: ByteReader, index: number, limits: ModuleLimits): number {
  const at = r.pos;
  const groups = r.count('local declaration');
  let locals = 0;
  for (let g = 0; g < groups; g++) {
    locals += r.u32('local count');
    checkBound(limits, 'localsPerFunction', locals, `function ${index} at byte offset ${at} declares ${locals} locals`);
    r.valType();
  }
  return locals;
}

/** Steps over one body's instructions; returns its deepest nesting. */
function scanBody(r: ByteReader, index: number, limits: ModuleLimits, tables: { targets: number }): number {
  let depth = 0;
  let maxDepth = 0;
  while (r.remaining > 0) {
    const at = r.pos;
    const op = r.u8('opcode');
    let imm = single[op] as Imm;
    let sub = -1;
    if (imm === Imm.PREFIX) {
      sub = r.u32('sub-opcode');
      if (op === 0xfc) imm = miscImm(sub);
      else if (op === 0xfd) imm = simd(r, sub) ? Imm.NONE : Imm.UNKNOWN;
      else imm = atomic(r, sub) ? Imm.NONE : Imm.UNKNOWN;
    }
    switch (imm) {
      case Imm.NONE:
        break;
      case Imm.BLOCK:
        blockType(r);
        depth++;
        if (depth > maxDepth) {
          maxDepth = depth;
          checkBound(limits, 'nestingDepth', depth, `function ${index} nests blocks ${depth} deep at byte offset ${at}`);
        }
        break;
      case Imm.END:
        if (depth === 0) {
          if (r.remaining !== 0) throw malformed(`function ${index} has ${r.remaining} bytes after its final end`, r.pos);
          return maxDepth;
        }
        depth--;
        break;
      case Imm.DELEGATE:
        r.u32('delegate label');
        if (depth === 0) throw malformed(`delegate outside a try in function ${index}`, at);
        depth--;
        break;
      case Imm.U32:
        r.u32('immediate');
        break;
      case Imm.U32_U32:
        r.u32('immediate');
        r.u32('immediate');
        break;
      case Imm.MEMARG:
        memarg(r);
        break;
      case Imm.I32:
        r.i32('i32 constant');
        break;
      case Imm.I64:
        r.s64('i64 constant');
        break;
      case Imm.F32:
        r.take(4, 'f32 constant');
        break;
      case Imm.F64:
        r.take(8, 'f64 constant');
        break;
      case Imm.BR_TABLE: {
        const targetsAt = r.pos;
        const targets = r.count('br_table target');
        checkBound(limits, 'brTableTargets', targets, `function ${index} has a br_table of ${targets} targets at byte offset ${targetsAt}`);
        tables.targets += targets;
        checkBound(limits, 'totalBrTableTargets', tables.targets, `the br_tables up to function ${index} have ${tables.targets} targets together`);
        for (let t = 0; t <= targets; t++) r.u32('br_table target');
        break;
      }
      case Imm.SELECT_T: {
        const n = r.count('select type');
        for (let t = 0; t < n; t++) r.valType();
        break;
      }
      case Imm.HEAP_TYPE: {
        const typeAt = r.pos;
        const type = r.u8('heap type');
        if (type !== 0x70 && type !== 0x6f) {
          throw new FeatureDeniedError(`ref.null of heap type 0x${type.toString(16)} at byte offset ${typeAt}: typed function references and GC types are refused`);
        }
        break;
      }
      case Imm.DENIED:
        throw new FeatureDeniedError(`instruction 0x${op.toString(16)} at byte offset ${at} belongs to the typed function references or GC proposal, which are refused`);
      default: {
        const name = sub < 0 ? `0x${op.toString(16)}` : `0x${op.toString(16)} ${sub}`;
        throw malformed(`unknown instruction ${name} in function ${index}`, at);
      }
    }
  }
  throw malformed(`function ${index} ends inside a block (no final end)`, r.pos);
}
