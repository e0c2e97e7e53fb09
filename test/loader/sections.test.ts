import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FeatureDeniedError, ModuleInvalidError } from '../../host/errors.ts';
import { ByteReader, SectionId, functionType, functionTypeIndices, readSections } from '../../host/loader/sections.ts';
import { guest, leb, name, rawModule, wat } from './wat.ts';

const reader = (...bytes: number[]): ByteReader => new ByteReader(Uint8Array.from(bytes));

describe('ByteReader LEB128', () => {
  it('reads u32 at its edges and refuses one past', () => {
    expect(reader(0x00).u32('x')).toBe(0);
    expect(reader(0x7f).u32('x')).toBe(127);
    expect(reader(0x80, 0x01).u32('x')).toBe(128);
    // Non-canonical padding is legal within 5 bytes.
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x00).u32('x')).toBe(0);
    expect(reader(0xff, 0xff, 0xff, 0xff, 0x0f).u32('x')).toBe(0xffff_ffff);
    // 2^32: the 5th byte sets bit 32.
    expect(() => reader(0x80, 0x80, 0x80, 0x80, 0x10).u32('x')).toThrow(ModuleInvalidError);
    // A 6th byte is never allowed.
    expect(() => reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x00).u32('x')).toThrow(ModuleInvalidError);
    expect(() => reader(0x80).u32('x')).toThrow(/unexpected end of x/);
  });

  it('reads i32 at its edges and refuses one past', () => {
    expect(reader(0x7f).i32('x')).toBe(-1);
    expect(reader(0x3f).i32('x')).toBe(63);
    expect(reader(0x40).i32('x')).toBe(-64);
    expect(reader(0xff, 0xff, 0xff, 0xff, 0x07).i32('x')).toBe(0x7fff_ffff);
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x78).i32('x')).toBe(-0x8000_0000);
    // 2^31 (positive, one past i32 max) and -2^31 - 1.
    expect(() => reader(0x80, 0x80, 0x80, 0x80, 0x08).i32('x')).toThrow(ModuleInvalidError);
    expect(() => reader(0xff, 0xff, 0xff, 0xff, 0x77).i32('x')).toThrow(ModuleInvalidError);
    expect(() => reader(0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).i32('x')).toThrow(ModuleInvalidError);
  });

  it('reads u64 up to 10 bytes', () => {
    expect(reader(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f).u64('x')).toBe(2 ** 53 - 1);
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01).u64('x')).toBe(2 ** 63);
    expect(() => reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02).u64('x')).toThrow(ModuleInvalidError);
  });

  it('never reads past its end, and refuses counts that cannot fit', () => {
    const r = new ByteReader(Uint8Array.from([0x05, 1, 2, 3, 4, 5, 6]), 0, 3);
    expect(() => r.count('item')).toThrow(/count 5 exceeds the 2 bytes left/);
    const s = new ByteReader(Uint8Array.from([0x02, 0x61]), 0, 2);
    expect(() => s.name('n')).toThrow(ModuleInvalidError);
    expect(() => new ByteReader(Uint8Array.from([0x01, 0xff])).name('n')).toThrow(/not valid UTF-8/);
  });

  it('keeps the property: any byte string gives a number in range or ModuleInvalidError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), (bytes) => {
        for (const read of ['u32', 'i32', 'u64'] as const) {
          try {
            const v = new ByteReader(bytes)[read]('x');
            if (read === 'u32') expect(v >= 0 && v <= 0xffff_ffff).toBe(true);
            if (read === 'i32') expect(v | 0).toBe(v);
          } catch (error) {
            expect(error).toBeInstanceOf(ModuleInvalidError);
          }
        }
      }),
    );
  });
});

describe('readSections', () => {
  it('describes a module: types, imports, functions, memories, tables, exports, start, spans', () => {
    const bytes = wat(`(module
      (type $unused (func (param f32 f64 v128) (result i64 externref)))
      (import "hv" "hypercall" (func (param i32 i32 i32 i32 i32) (result i32)))
      (import "env" "g" (global (mut i32)))
      (import "env" "t" (table 3 7 externref))
      (import "env" "m" (memory 1 4 shared))
      (memory (export "memory") 2 9)
      (table 5 funcref)
      (table 0 10 externref)
      (func $main (export "_start"))
      (func (param i32) (result i32) local.get 0)
      (global (export "gg") i32 (i32.const 1))
      (start $main)
      (@custom "note" "hello")
    )`);
    const info = readSections(bytes);
    expect(info.types[0]).toEqual({ params: ['f32', 'f64', 'v128'], results: ['i64', 'externref'] });
    expect(info.imports).toEqual([
      { module: 'hv', name: 'hypercall', kind: 'function', typeIndex: 1 },
      { module: 'env', name: 'g', kind: 'global', global: { type: 'i32', mutable: true } },
      { module: 'env', name: 't', kind: 'table', table: { elementType: 'externref', initial: 3, maximum: 7, table64: false } },
      { module: 'env', name: 'm', kind: 'memory', memory: { initial: 1, maximum: 4, shared: true, memory64: false } },
    ]);
    expect(info.functions).toHaveLength(2);
    expect(functionTypeIndices(info)).toEqual([1, 2, 3]);
    expect(functionType(info, 0)).toEqual({ params: ['i32', 'i32', 'i32', 'i32', 'i32'], results: ['i32'] });
    expect(functionType(info, 1)).toEqual({ params: [], results: [] });
    expect(functionType(info, 2)).toEqual({ params: ['i32'], results: ['i32'] });
    expect(functionType(info, 3)).toBeNull();
    expect(info.memories).toEqual([{ initial: 2, maximum: 9, shared: false, memory64: false }]);
    expect(info.tables).toEqual([
      { elementType: 'funcref', initial: 5, maximum: null, table64: false },
      { elementType: 'externref', initial: 0, maximum: 10, table64: false },
    ]);
    expect(info.exports).toEqual([
      { name: 'memory', kind: 'memory', index: 1 }, // the imported memory is index 0
      { name: '_start', kind: 'function', index: 1 },
      { name: 'gg', kind: 'global', index: 1 },
    ]);
    expect(info.start).toBe(1);
    // Spans tile the file exactly, in order, and the custom section is among them.
    let cursor = 8;
    for (const span of info.sections) {
      expect(span.start).toBe(cursor);
      expect(span.payloadStart).toBeGreaterThan(span.start);
      cursor = span.end;
    }
    expect(cursor).toBe(bytes.length);
    expect(info.sections.map((s) => s.id)).toContain(SectionId.CUSTOM);
  });

  it('reads huge vectors without exhausting the stack', () => {
    // 250k defined functions of type 0 (the default bound, moduleLimits.functions): far more
    // arguments than a spread into push() survives.
    const n = 250_000;
    const bytes = rawModule([SectionId.TYPE, [0x01, 0x60, 0x00, 0x00]], [SectionId.FUNCTION, [...leb(n), ...new Array<number>(n).fill(0)]]);
    const info = readSections(bytes);
    expect(info.functions).toHaveLength(n);
    expect(functionTypeIndices(info)).toHaveLength(n);
  });

  it('reads 64-bit memories and tables', () => {
    const info = readSections(wat('(module (memory i64 1 3) (table i64 2 funcref))'));
    expect(info.memories).toEqual([{ initial: 1, maximum: 3, shared: false, memory64: true }]);
    expect(info.tables).toEqual([{ elementType: 'funcref', initial: 2, maximum: null, table64: true }]);
  });

  it('reads tag imports', () => {
    const info = readSections(wat('(module (import "hv" "oops" (tag (param i32))))'));
    expect(info.imports).toEqual([{ module: 'hv', name: 'oops', kind: 'tag', typeIndex: 0 }]);
  });

  it('refuses GC type definitions with FeatureDeniedError', () => {
    // (rec (type (func))): 0x4e, count 1, 0x60 0 0.
    expect(() => readSections(rawModule([SectionId.TYPE, [0x01, 0x4e, 0x01, 0x60, 0x00, 0x00]]))).toThrow(FeatureDeniedError);
    expect(() => readSections(rawModule([SectionId.TYPE, [0x01, 0x5f, 0x00]]))).toThrow(/GC type definitions/);
  });

  it('refuses typed references and the table-initialiser form with FeatureDeniedError', () => {
    // (func (param (ref null 0))): 0x63 heap type 0.
    expect(() => readSections(rawModule([SectionId.TYPE, [0x01, 0x60, 0x01, 0x63, 0x00, 0x00]]))).toThrow(FeatureDeniedError);
    // (table 1 funcref (ref.null func)) in the function-references form: 0x40 0x00 reftype limits expr.
    const table = rawModule([SectionId.TABLE, [0x01, 0x40, 0x00, 0x70, 0x00, 0x01, 0xd0, 0x70, 0x0b]]);
    expect(() => readSections(table)).toThrow(/table with an initialiser expression/);
  });

  it('refuses malformed structure with ModuleInvalidError', () => {
    const cases: [Uint8Array, RegExp][] = [
      [Uint8Array.from([0x00, 0x61, 0x73]), /not a WebAssembly binary/],
      [Uint8Array.from([0x00, 0x61, 0x73, 0x6e, 1, 0, 0, 0]), /not a WebAssembly binary/],
      [Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]), /unsupported binary version/],
      [rawModule([SectionId.TYPE, [0x00]], [SectionId.TYPE, [0x00]]), /duplicated or out of order/],
      [rawModule([SectionId.MEMORY, [0x00]], [SectionId.TABLE, [0x00]]), /duplicated or out of order/],
      [rawModule([14, []]), /unknown section id 14/],
      [rawModule([SectionId.TYPE, [0x00, 0x00]]), /unread bytes/],
      [rawModule([SectionId.TYPE, [0x01, 0x61, 0x00, 0x00]]), /unknown type form/],
      [rawModule([SectionId.TYPE, [0x01, 0x60, 0x01, 0x40, 0x00]]), /unknown value type/],
      [rawModule([SectionId.IMPORT, [0x01, ...name('hv'), ...name('f'), 0x00, 0x00]]), /import type index 0 is out of range/],
      [rawModule([SectionId.IMPORT, [0x01, ...name('hv'), ...name('f'), 0x05]]), /unknown import kind/],
      [rawModule([SectionId.MEMORY, [0x01, 0x08, 0x01]]), /unknown memory limits flags/],
      [rawModule([SectionId.TABLE, [0x01, 0x70, 0x02, 0x01]]), /unknown table limits flags/],
      [rawModule([SectionId.EXPORT, [0x01, ...name('x'), 0x05, 0x00]]), /unknown export kind/],
      [Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x01, 0x05, 0x00]), /runs past the end/],
    ];
    for (const [bytes, message] of cases) expect(() => readSections(bytes)).toThrow(message);
    for (const [bytes] of cases) expect(() => readSections(bytes)).toThrow(ModuleInvalidError);
  });

  it('throws ModuleInvalidError at every truncation that does not end on a section boundary', () => {
    const bytes = guest({ extra: '(table 2 funcref) (global i32 (i32.const 7)) (data (i32.const 0) "hi")' });
    const boundaries = new Set(readSections(bytes).sections.map((s) => s.end));
    boundaries.add(8);
    for (let cut = 0; cut < bytes.length; cut++) {
      const truncated = bytes.slice(0, cut);
      if (boundaries.has(cut)) {
        expect(() => readSections(truncated)).not.toThrow();
      } else {
        expect(() => readSections(truncated), `cut at ${cut}`).toThrow(ModuleInvalidError);
      }
    }
  });

  it('keeps the property: random mutations give ModuleInfo, ModuleInvalidError or FeatureDeniedError, nothing else', () => {
    const base = guest({ extra: '(table 2 10 funcref) (func (param i64) (result f32) f32.const 1)' });
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), value: fc.constant(0) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), value: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        let bytes = [...base];
        for (const m of mutations) {
          const at = m.at % (bytes.length + 1);
          if (m.kind === 'set' && at < bytes.length) bytes[at] = m.value;
          if (m.kind === 'cut') bytes = bytes.slice(0, at);
          if (m.kind === 'insert') bytes.splice(at, 0, m.value);
          if (m.kind === 'delete') bytes.splice(at, 1);
        }
        try {
          readSections(Uint8Array.from(bytes));
        } catch (error) {
          if (!(error instanceof ModuleInvalidError || error instanceof FeatureDeniedError)) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
