import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../host/errors.ts';
import { compileModule } from '../../host/loader/compile.ts';
import { checkPolicy, defaultPolicy, type ClampPlan, type LoadPolicy } from '../../host/loader/policy.ts';
import { applyClampPlan } from '../../host/loader/rewrite.ts';
import { SectionId, readSections } from '../../host/loader/sections.ts';
import { wasmEngine } from '../../host/loader/wasm-api.ts';
import { guest, instantiate, wat } from './wat.ts';

/** Reads, plans and rewrites, checking the engine accepts the result. */
function clamp(bytes: Uint8Array, overrides: Partial<LoadPolicy>): { out: Uint8Array; plan: ClampPlan } {
  const info = readSections(bytes);
  const plan = checkPolicy(info, defaultPolicy(overrides));
  const out = applyClampPlan(bytes, info, plan);
  expect(wasmEngine.validate(out)).toBe(true);
  return { out, plan };
}

/** Payload bytes of every section except the given ids, in order. */
function otherSections(bytes: Uint8Array, except: readonly number[]): Uint8Array[] {
  return readSections(bytes)
    .sections.filter((s) => !except.includes(s.id))
    .map((s) => bytes.slice(s.payloadStart, s.end));
}

describe('applyClampPlan', () => {
  it('returns the very same bytes when nothing needs rewriting', () => {
    const bytes = guest();
    const info = readSections(bytes);
    expect(applyClampPlan(bytes, info, checkPolicy(info, defaultPolicy()))).toBe(bytes);
  });

  it('adds a missing memory maximum, and the guest cannot grow past it', async () => {
    const bytes = guest({
      memory: '(memory (export "memory") 1)',
      extra: '(func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))',
    });
    const { out, plan } = clamp(bytes, { memoryPages: 4 });
    expect(plan.memoryMaximum).toBe(4);
    expect(readSections(out).memories).toEqual([{ initial: 1, maximum: 4, shared: false, memory64: false }]);
    const exports = instantiate(await compileModule(out));
    const grow = exports.grow as (pages: number) => number;
    const mem = exports.memory as WebAssembly.Memory;
    expect(grow(2)).toBe(1); // 1 → 3 pages
    expect(grow(2)).toBe(-1); // 5 > 4: the guest's own memory.grow fails
    expect(grow(1)).toBe(3); // exactly at the limit
    expect(mem.buffer.byteLength).toBe(4 * 65536);
    expect(() => mem.grow(1)).toThrow(RangeError); // and so does the host side
    // Without the rewrite the same guest grows freely.
    const unclamped = instantiate(await compileModule(bytes));
    expect((unclamped.grow as (pages: number) => number)(10)).toBe(1);
  });

  it('lowers a too-large memory maximum (and shrinks its LEB encoding)', async () => {
    const bytes = guest({ memory: '(memory (export "memory") 2 60000)' });
    const { out } = clamp(bytes, { memoryPages: 3 });
    expect(out.length).toBe(bytes.length - 2); // 60000 takes 3 LEB bytes, 3 takes 1
    expect(readSections(out).memories[0]?.maximum).toBe(3);
    const mem = instantiate(await compileModule(out)).memory as WebAssembly.Memory;
    expect(mem.grow(1)).toBe(2);
    expect(() => mem.grow(1)).toThrow(RangeError);
  });

  it('clamps table maxima, and tables cannot grow past them', async () => {
    const bytes = guest({ extra: '(table (export "t0") 2 funcref) (table (export "t1") 1 3 externref) (table (export "t2") 1 100 funcref)' });
    const { out, plan } = clamp(bytes, { tableElements: 5 });
    expect(plan).toEqual({ memoryMaximum: null, tableMaxima: [5, null, 5], needsRewrite: true });
    expect(readSections(out).tables.map((t) => t.maximum)).toEqual([5, 3, 5]);
    const exports = instantiate(await compileModule(out));
    const t0 = exports.t0 as WebAssembly.Table;
    expect(t0.grow(3)).toBe(2);
    expect(t0.length).toBe(5);
    expect(() => t0.grow(1)).toThrow(RangeError);
    expect(() => (exports.t1 as WebAssembly.Table).grow(3)).toThrow(RangeError);
    expect((exports.t2 as WebAssembly.Table).grow(4)).toBe(1);
  });

  it('re-encodes a section size that crosses a LEB128 byte boundary', () => {
    // 30 tables of 3 bytes each (91-byte payload, 1-byte size) become 5 bytes each once
    // they get a 3-byte maximum (151-byte payload, 2-byte size).
    const bytes = guest({ extra: '(table 0 funcref)'.repeat(30) });
    const { out } = clamp(bytes, { tableElements: 10000 });
    const table = readSections(out).sections.find((s) => s.id === SectionId.TABLE);
    expect(table && table.payloadStart - table.start).toBe(3);
    expect(readSections(out).tables.every((t) => t.maximum === 10000)).toBe(true);
  });

  it('leaves every other section byte for byte, custom sections included', () => {
    const bytes = wat(`(module
      (import "hv" "hypercall" (func (param i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (table 1 funcref)
      (global $g (mut i32) (i32.const 5))
      (func $f (export "_start") (global.set $g (i32.const 6)))
      (elem (i32.const 0) $f)
      (data (i32.const 8) "payload")
      (@custom "producers" "x")
    )`);
    const { out } = clamp(bytes, {});
    const rewritten = [SectionId.MEMORY, SectionId.TABLE];
    expect(otherSections(out, rewritten)).toEqual(otherSections(bytes, rewritten));
    expect(readSections(out).sections.map((s) => s.id)).toEqual(readSections(bytes).sections.map((s) => s.id));
  });

  it('keeps the property: any admissible memory gets exactly the clamped maximum and stays valid', () => {
    const spec = fc
      .record({ limit: fc.integer({ min: 0, max: 65536 }), initial: fc.nat(), maximum: fc.option(fc.nat()) })
      .map(({ limit, initial, maximum }) => {
        const init = initial % (limit + 1);
        const max = maximum === null ? null : init + (maximum % (65536 - init + 1));
        return { limit, init, max };
      });
    fc.assert(
      fc.property(spec, ({ limit, init, max }) => {
        const bytes = guest({ memory: `(memory (export "memory") ${init} ${max ?? ''})` });
        const { out } = clamp(bytes, { memoryPages: limit });
        const expected = max === null || max > limit ? limit : max;
        expect(readSections(out).memories[0]).toEqual({ initial: init, maximum: expected, shared: false, memory64: false });
      }),
      { numRuns: 200 },
    );
  });

  it('refuses plans that do not fit the module', () => {
    const bytes = guest({ memory: '(memory (export "memory") 2 8)', extra: '(table 1 funcref)' });
    const info = readSections(bytes);
    const raise: ClampPlan = { memoryMaximum: 9, tableMaxima: [null], needsRewrite: true };
    const belowInitial: ClampPlan = { memoryMaximum: 1, tableMaxima: [null], needsRewrite: true };
    const wrongTables: ClampPlan = { memoryMaximum: null, tableMaxima: [], needsRewrite: true };
    expect(() => applyClampPlan(bytes, info, raise)).toThrow(InvalidArgumentError);
    expect(() => applyClampPlan(bytes, info, belowInitial)).toThrow(InvalidArgumentError);
    expect(() => applyClampPlan(bytes, info, wrongTables)).toThrow(InvalidArgumentError);
    const plan: ClampPlan = { memoryMaximum: 4, tableMaxima: [null], needsRewrite: true };
    expect(() => applyClampPlan(guest(), info, plan)).toThrow(/does not describe these bytes/);
  });
});
