// The code scan (host/loader/code.ts) steps over each instruction's immediates without decoding
// them. Its invariant: for every instruction the engine accepts, it steps over exactly the bytes
// the engine reads. Each case below puts one instruction (or a few) in a body, then three nested
// blocks. The immediates are chosen so that a scan that reads too few bytes meets 0x0b (`end`) or
// a block opcode where an immediate was, and a scan that reads too many eats the first block:
// either way the measured depth (or the scan itself) goes wrong. The engine checks every fixture.
import { describe, expect, it } from 'vitest';
import { FeatureDeniedError, ModuleInvalidError } from '../../host/errors.ts';
import { readSections } from '../../host/loader/sections.ts';
import { wasmEngine } from '../../host/loader/wasm-api.ts';
import { leb, rawModule, wat } from './wat.ts';

const MARK = '(block (block (block)))';
const v128 = '(v128.const i64x2 0 0)';
const lanes11 = Array(16).fill(11).join(' ');

/** A module with a shared memory, 12 passive data and element segments and 12 tables, around one function. */
function moduleWith(body: string, types = ''): Uint8Array {
  const tables = Array.from({ length: 12 }, (_, i) => `(table $t${i} 1 funcref)`).join(' ');
  const elems = Array.from({ length: 12 }, (_, i) => `(elem $e${i} func $f)`).join(' ');
  const datas = Array.from({ length: 12 }, (_, i) => `(data $d${i} "x")`).join(' ');
  return wat(`(module ${types} (memory 1 1 shared) ${tables} ${elems} ${datas} (func $f ${body} ${MARK}))`);
}

/** The depth the scan measured for the module's last function (the one under test). */
function scannedDepth(bytes: Uint8Array): number {
  return readSections(bytes).shape.code.maxDepth;
}

/** Instructions whose immediates the scan must step over, by the rule that reads them. */
const instructions: Record<string, string> = {
  // 0xfd: SIMD
  'v128.load (0xfd 0, memarg)': `(drop (v128.load offset=11 (i32.const 0)))`,
  'v128.store (0xfd 11, memarg)': `(v128.store offset=11 (i32.const 0) ${v128})`,
  'v128.const (0xfd 12, 16 bytes)': `(drop (v128.const i8x16 ${lanes11}))`,
  'i8x16.shuffle (0xfd 13, 16 lanes)': `(drop (i8x16.shuffle ${lanes11} ${v128} ${v128}))`,
  'i8x16.swizzle (0xfd 14, none)': `(drop (i8x16.swizzle ${v128} ${v128}))`,
  'f64x2.splat (0xfd 20, none)': `(drop (f64x2.splat (f64.const 0)))`,
  'i8x16.extract_lane_s (0xfd 21, lane)': `(drop (i8x16.extract_lane_s 11 ${v128}))`,
  'i8x16.replace_lane (0xfd 23, lane)': `(drop (i8x16.replace_lane 11 ${v128} (i32.const 0)))`,
  'i8x16.eq (0xfd 35, none)': `(drop (i8x16.eq ${v128} ${v128}))`,
  'v128.any_true (0xfd 83, none)': `(drop (v128.any_true ${v128}))`,
  'v128.load8_lane (0xfd 84, memarg and lane)': `(drop (v128.load8_lane offset=11 11 (i32.const 0) ${v128}))`,
  'v128.store8_lane (0xfd 88, memarg and lane)': `(v128.store8_lane offset=11 11 (i32.const 0) ${v128})`,
  'v128.store64_lane (0xfd 91, memarg and lane)': `(v128.store64_lane offset=11 1 (i32.const 0) ${v128})`,
  'v128.load32_zero (0xfd 92, memarg)': `(drop (v128.load32_zero offset=11 (i32.const 0)))`,
  'v128.load64_zero (0xfd 93, memarg)': `(drop (v128.load64_zero offset=11 (i32.const 0)))`,
  'f32x4.demote_f64x2_zero (0xfd 94, none)': `(drop (f32x4.demote_f64x2_zero ${v128}))`,
  'i32x4.trunc_sat_f64x2_u_zero (0xfd 0xfd, none)': `(drop (i32x4.trunc_sat_f64x2_u_zero ${v128}))`,
  // 0xfe: atomics
  'memory.atomic.notify (0xfe 0, memarg)': `(drop (memory.atomic.notify offset=12 (i32.const 0) (i32.const 0)))`,
  'memory.atomic.wait64 (0xfe 2, memarg)': `(drop (memory.atomic.wait64 offset=16 (i32.const 0) (i64.const 0) (i64.const 0)))`,
  'atomic.fence (0xfe 3, flags)': `(atomic.fence)`,
  'i32.atomic.load (0xfe 0x10, memarg)': `(drop (i32.atomic.load offset=12 (i32.const 0)))`,
  'i64.atomic.rmw32.cmpxchg_u (0xfe 0x4e, memarg)': `(drop (i64.atomic.rmw32.cmpxchg_u offset=12 (i32.const 0) (i64.const 0) (i64.const 0)))`,
  // 0xfc: saturating truncation, bulk memory and tables
  'i32.trunc_sat_f32_s (0xfc 0, none)': `(drop (i32.trunc_sat_f32_s (f32.const 0)))`,
  'i64.trunc_sat_f64_u (0xfc 7, none)': `(drop (i64.trunc_sat_f64_u (f64.const 0)))`,
  'memory.init (0xfc 8, data and memory)': `(memory.init $d11 (i32.const 0) (i32.const 0) (i32.const 0))`,
  'data.drop (0xfc 9, data)': `(data.drop $d11)`,
  'memory.copy (0xfc 10, two memories)': `(memory.copy (i32.const 0) (i32.const 0) (i32.const 0))`,
  'memory.fill (0xfc 11, memory)': `(memory.fill (i32.const 0) (i32.const 0) (i32.const 0))`,
  'table.init (0xfc 12, element and table)': `(table.init $t11 $e11 (i32.const 0) (i32.const 0) (i32.const 0))`,
  'elem.drop (0xfc 13, element)': `(elem.drop $e11)`,
  'table.copy (0xfc 14, two tables)': `(table.copy $t11 $t11 (i32.const 0) (i32.const 0) (i32.const 0))`,
  'table.grow (0xfc 15, table)': `(drop (table.grow $t11 (ref.null func) (i32.const 0)))`,
  'table.size (0xfc 16, table)': `(drop (table.size $t11))`,
  'table.fill (0xfc 17, table)': `(table.fill $t11 (i32.const 0) (ref.null func) (i32.const 0))`,
  // single-byte opcodes with immediates
  'i32.load (memarg)': `(drop (i32.load offset=11 (i32.const 0)))`,
  'i64.store (memarg)': `(i64.store offset=11 (i32.const 0) (i64.const 11))`,
  'select t (a vector of value types)': `(drop (select (result i32) (i32.const 11) (i32.const 11) (i32.const 0)))`,
  'ref.null func (heap type)': `(drop (ref.null func))`,
  'ref.null extern (heap type)': `(drop (ref.null extern))`,
  'call_indirect (type and table)': `(call_indirect $t11 (param) (result) (i32.const 0))`,
  // LEB128 constants of every length, at the ends of their ranges
  'i32.const 1000 (2 bytes)': `(drop (i32.const 1000))`,
  'i32.const -2^31 (5 bytes)': `(drop (i32.const -2147483648))`,
  'i32.const 2^31 - 1 (5 bytes)': `(drop (i32.const 2147483647))`,
  'i64.const 1000 (2 bytes)': `(drop (i64.const 1000))`,
  'i64.const -2^63 (10 bytes)': `(drop (i64.const -9223372036854775808))`,
  'i64.const 2^63 - 1 (10 bytes)': `(drop (i64.const 9223372036854775807))`,
  'i64.const -1 (1 byte)': `(drop (i64.const -1))`,
};

/** Block types other than the empty one: each value type, and a type index (s33). */
const blockTypes: Record<string, string> = {
  i32: `(drop (block (result i32) (i32.const 11)))`,
  i64: `(drop (block (result i64) (i64.const 11)))`,
  f32: `(drop (block (result f32) (f32.const 0)))`,
  f64: `(drop (block (result f64) (f64.const 0)))`,
  v128: `(drop (block (result v128) ${v128}))`,
  funcref: `(drop (block (result funcref) (ref.null func)))`,
  externref: `(drop (block (result externref) (ref.null extern)))`,
  // A type with a parameter cannot be written as a value type: its index (0) is the block type.
  'type index 0': `i32.const 11 block (type $pair) (param i32) (result i32) end drop`,
  'type index 1': `i32.const 11 i32.const 11 block (type $two) (param i32 i32) (result i32) i32.add end drop`,
};

describe('the code scan steps over exactly the immediates the engine reads', () => {
  for (const [name, body] of Object.entries({ ...instructions, ...Object.fromEntries(Object.entries(blockTypes).map(([k, v]) => [`block type ${k}`, v])) })) {
    it(name, () => {
      const bytes = moduleWith(body, '(type $pair (func (param i32) (result i32))) (type $two (func (param i32 i32) (result i32)))');
      expect(wasmEngine.validate(bytes), 'the fixture is a valid module').toBe(true);
      expect(scannedDepth(bytes)).toBe(3);
    });
  }

  it('counts a try closed by delegate as one level, opened and closed', () => {
    const bytes = wat(`(module (func (try (do (nop)) (delegate 0)) (try (do ${MARK}) (delegate 0)) ${MARK}))`);
    expect(wasmEngine.validate(bytes)).toBe(true);
    expect(scannedDepth(bytes)).toBe(4);
  });

  it('steps over the label of a delegate', () => {
    // Label 11, under 11 blocks: a scan that did not read it would take 0x0b for an `end`.
    const open = '(block '.repeat(11);
    const bytes = wat(`(module (func ${open}(try (do) (delegate 11))${')'.repeat(11)} ${MARK}))`);
    expect(wasmEngine.validate(bytes)).toBe(true);
    expect(scannedDepth(bytes)).toBe(12);
  });

  it('steps over relaxed SIMD (0xfd 0x100 to 0x113, no immediates) and leaves the verdict to the engine', () => {
    const v0 = [0xfd, 0x0c, ...Array(16).fill(0)];
    const body = [0x00, ...v0, ...v0, ...v0, 0xfd, ...leb(0x113), 0x1a, 0x02, 0x40, 0x02, 0x40, 0x0b, 0x0b];
    expect(scannedDepth(moduleOfBody(body))).toBe(2);
  });
});

/** A module of one function `() -> ()` with this body (locals declaration included, final end not). */
function moduleOfBody(body: readonly number[]): Uint8Array {
  const full = [...body, 0x0b];
  return rawModule([1, [0x01, 0x60, 0x00, 0x00]], [3, [0x01, 0x00]], [10, [0x01, ...leb(full.length), ...full]]);
}

function refusal(bytes: Uint8Array): Error {
  try {
    readSections(bytes);
  } catch (error) {
    return error as Error;
  }
  throw new Error('the scan accepted the module');
}

describe('the code scan refuses what it does not know, and the proposals the loader denies', () => {
  it.each([
    ['0x27', [0x27], 'unknown instruction 0x27 in function 0'],
    ['0xfc 18', [0xfc, 18], 'unknown instruction 0xfc 18 in function 0'],
    ['0xfd 0x114', [0xfd, ...leb(0x114)], 'unknown instruction 0xfd 276 in function 0'],
    ['0xfe 4', [0xfe, 4], 'unknown instruction 0xfe 4 in function 0'],
    ['0xfe 0x0f', [0xfe, 0x0f], 'unknown instruction 0xfe 15 in function 0'],
    ['0xfe 0x4f', [0xfe, 0x4f], 'unknown instruction 0xfe 79 in function 0'],
  ])('an unknown instruction %s is malformed, named with its place', (_, op, text) => {
    const error = refusal(moduleOfBody([0x00, ...op]));
    expect(error).toBeInstanceOf(ModuleInvalidError);
    expect(error.message).toBe(`malformed module: ${text} at byte offset 23`);
  });

  it.each(['0x63', '0x64', '0x69', '0x74'])('a block of the typed reference type %s is denied as a feature', (type) => {
    const error = refusal(moduleOfBody([0x00, 0x02, Number(type), 0x00, 0x0b]));
    expect(error).toBeInstanceOf(FeatureDeniedError);
    expect(error.message).toBe(`block type ${type} at byte offset 24 is a typed reference: typed function references and GC types are refused`);
  });

  it.each(['0x68', '0x75'])('a block type %s, a negative index, is malformed', (type) => {
    const error = refusal(moduleOfBody([0x00, 0x02, Number(type), 0x0b]));
    expect(error).toBeInstanceOf(ModuleInvalidError);
    expect(error.message).toBe('malformed module: unknown block type at byte offset 24');
  });

  it('denies ref.null of a heap type other than func and extern', () => {
    const error = refusal(moduleOfBody([0x00, 0xd0, 0x6e, 0x1a]));
    expect(error).toBeInstanceOf(FeatureDeniedError);
    expect(error.message).toBe('ref.null of heap type 0x6e at byte offset 24: typed function references and GC types are refused');
  });

  it.each([
    ['0x14', [0x14, 0x00]],
    ['0xd4', [0xd4]],
    ['0xfb', [0xfb, 0x00]],
  ])('denies instruction %s of the typed function references or GC proposal', (op, bytes) => {
    const error = refusal(moduleOfBody([0x00, ...bytes]));
    expect(error).toBeInstanceOf(FeatureDeniedError);
    expect(error.message).toBe(`instruction ${op} at byte offset 23 belongs to the typed function references or GC proposal, which are refused`);
  });

  it('denies a typed reference as the type of a select', () => {
    // select t (0x1c) with one type, (ref null 0): 0x63 0x00.
    const error = refusal(moduleOfBody([0x00, 0x1c, 0x01, 0x63, 0x00]));
    expect(error).toBeInstanceOf(FeatureDeniedError);
    expect(error.message).toMatch(/^reference type 0x63 at byte offset 25 is not allowed/);
  });

  it.each([
    ['a u32 whose 5th byte overflows', [0x10, 0x80, 0x80, 0x80, 0x80, 0x10], 'immediate: u32 LEB128 out of range'],
    ['an i32 whose 5th byte does not repeat the sign', [0x41, 0x80, 0x80, 0x80, 0x80, 0x70], 'i32 constant: i32 LEB128 out of range'],
    ['an i64 whose 10th byte is neither 0x00 nor 0x7f', [0x42, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 'i64 constant: i64 LEB128 out of range'],
  ])('refuses %s, naming what it read', (_, op, text) => {
    const error = refusal(moduleOfBody([0x00, ...op]));
    expect(error).toBeInstanceOf(ModuleInvalidError);
    expect(error.message).toBe(`malformed module: ${text} at byte offset 24`);
  });

  it('refuses a delegate outside a try', () => {
    const error = refusal(moduleOfBody([0x00, 0x18, 0x00]));
    expect(error).toBeInstanceOf(ModuleInvalidError);
    expect(error.message).toBe('malformed module: delegate outside a try in function 0 at byte offset 23');
  });

  it('refuses bytes after the final end, naming how many', () => {
    const error = refusal(moduleOfBody([0x00, 0x0b, 0x01]));
    expect(error).toBeInstanceOf(ModuleInvalidError);
    expect(error.message).toBe('malformed module: function 0 has 2 bytes after its final end at byte offset 24');
  });
});
