// applyClampPlan at its edges: the maxima it may write (the initial size, the declared maximum,
// 0, the largest u32), the flags it keeps, the sections it must leave byte for byte, and the
// plans or module descriptions that do not fit the bytes, each refused with a message naming the
// mismatch (splicing by someone else's offsets or counts would corrupt the module).
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../host/errors.ts';
import type { ClampPlan } from '../../host/loader/policy.ts';
import { applyClampPlan } from '../../host/loader/rewrite.ts';
import { SectionId, readSections, type ModuleInfo, type SectionSpan } from '../../host/loader/sections.ts';
import { wasmEngine } from '../../host/loader/wasm-api.ts';
import { guest, rawModule, thrownBy } from './wat.ts';

const plan = (memoryMaximum: number | null, tableMaxima: readonly (number | null)[]): ClampPlan => ({ memoryMaximum, tableMaxima, needsRewrite: true });

/** The section spans of a binary, read independently of the loader's reader: id byte, LEB size, payload. */
function spansOf(bytes: Uint8Array): SectionSpan[] {
  const spans: SectionSpan[] = [];
  let at = 8;
  while (at < bytes.length) {
    const start = at;
    const id = bytes[at++]!;
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[at++]!;
      size += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) break;
    }
    spans.push({ id, start, payloadStart: at, end: at + size });
    at += size;
  }
  return spans;
}

/** A description of `bytes` with some fields replaced (what a caller with stale or foreign info would pass). */
function infoFor(bytes: Uint8Array, replace: Partial<ModuleInfo> = {}): ModuleInfo {
  return { ...readSections(guest()), sections: spansOf(bytes), ...replace };
}

/** The payload of the first section with this id. */
function payload(bytes: Uint8Array, id: number): Uint8Array {
  const span = spansOf(bytes).find((s) => s.id === id);
  if (span === undefined) throw new Error(`no section ${id}`);
  return bytes.slice(span.payloadStart, span.end);
}

const refusal = (run: () => unknown): InvalidArgumentError => thrownBy(run, InvalidArgumentError);

describe('applyClampPlan: the maxima it writes, at their edges', () => {
  it('sets a maximum equal to the initial size, and one equal to the declared maximum', () => {
    const bytes = guest({ memory: '(memory (export "memory") 2 8)', extra: '(table 3 funcref) (table 1 9 funcref)' });
    const info = readSections(bytes);
    const atInitial = applyClampPlan(bytes, info, plan(2, [3, null]));
    expect(readSections(atInitial).memories[0]?.maximum).toBe(2);
    expect(readSections(atInitial).tables.map((t) => t.maximum)).toEqual([3, 9]);
    expect(wasmEngine.validate(atInitial)).toBe(true);
    const atDeclared = applyClampPlan(bytes, info, plan(8, [null, 9]));
    expect(readSections(atDeclared).memories[0]?.maximum).toBe(8);
    expect(readSections(atDeclared).tables.map((t) => t.maximum)).toEqual([null, 9]);
    expect(wasmEngine.validate(atDeclared)).toBe(true);
  });

  it('clamps an empty memory to 0 pages', () => {
    const bytes = guest({ memory: '(memory (export "memory") 0)' });
    const out = applyClampPlan(bytes, readSections(bytes), plan(0, []));
    expect(readSections(out).memories).toEqual([{ initial: 0, maximum: 0, shared: false, memory64: false }]);
    expect(wasmEngine.validate(out)).toBe(true);
  });

  it('writes the largest u32 as a maximum, and refuses one past it or a fraction', () => {
    const bytes = guest({ extra: '(table 1 funcref)' });
    const info = readSections(bytes);
    const out = applyClampPlan(bytes, info, plan(null, [0xffff_ffff]));
    expect(readSections(out).tables[0]?.maximum).toBe(0xffff_ffff);
    expect(refusal(() => applyClampPlan(bytes, info, plan(null, [2 ** 32]))).message).toBe('cannot encode 4294967296 as u32');
    expect(refusal(() => applyClampPlan(bytes, info, plan(null, [1.5]))).message).toBe('cannot encode 1.5 as u32');
  });

  it('names the entry, the maximum and the bounds of a plan outside them', () => {
    const bytes = guest({ memory: '(memory (export "memory") 2 8)', extra: '(table 1 funcref) (table 3 funcref)' });
    const info = readSections(bytes);
    expect(refusal(() => applyClampPlan(bytes, info, plan(9, [null, null]))).message).toBe(
      'clamp plan would set memory 0 maximum to 9, outside [initial 2, declared maximum 8]',
    );
    expect(refusal(() => applyClampPlan(bytes, info, plan(null, [null, 2]))).message).toBe(
      'clamp plan would set table 1 maximum to 2, outside [initial 3, declared maximum none]',
    );
  });

  it('keeps a 64-bit memory 64-bit and a shared memory shared', () => {
    const wide = guest({ memory: '(memory i64 1)' });
    const wideOut = applyClampPlan(wide, readSections(wide), plan(10, []));
    expect(readSections(wideOut).memories).toEqual([{ initial: 1, maximum: 10, shared: false, memory64: true }]);
    const shared = guest({ memory: '(memory (export "memory") 1 100 shared)' });
    const sharedOut = applyClampPlan(shared, readSections(shared), plan(10, []));
    expect(readSections(sharedOut).memories).toEqual([{ initial: 1, maximum: 10, shared: true, memory64: false }]);
    expect(wasmEngine.validate(sharedOut)).toBe(true);
  });
});

describe('applyClampPlan: what it leaves alone', () => {
  // Both sections encode their entry count in two bytes (0x81 0x00, valid LEB128, not the
  // shortest form): re-encoding a section would change its bytes even without a new maximum.
  const memorySection = [0x81, 0x00, 0x00, 0x01];
  const tableSection = [0x81, 0x00, 0x70, 0x00, 0x01];
  const bytes = rawModule([SectionId.TABLE, tableSection], [SectionId.MEMORY, memorySection]);

  it('copies the table section byte for byte when only the memory is clamped', () => {
    const out = applyClampPlan(bytes, readSections(bytes), plan(4, [null]));
    expect(readSections(out).memories[0]?.maximum).toBe(4);
    expect([...payload(out, SectionId.TABLE)]).toEqual(tableSection);
    expect(wasmEngine.validate(out)).toBe(true);
  });

  it('copies the memory section byte for byte when only a table is clamped', () => {
    const out = applyClampPlan(bytes, readSections(bytes), plan(null, [6]));
    expect(readSections(out).tables[0]?.maximum).toBe(6);
    expect([...payload(out, SectionId.MEMORY)]).toEqual(memorySection);
    expect(wasmEngine.validate(out)).toBe(true);
  });

  it('clamps the tables of a module without a memory', () => {
    const noMemory = guest({ memory: '', extra: '(table 1 funcref)' });
    const out = applyClampPlan(noMemory, readSections(noMemory), plan(null, [7]));
    expect(readSections(out).tables[0]?.maximum).toBe(7);
    expect(readSections(out).memories).toEqual([]);
    expect(wasmEngine.validate(out)).toBe(true);
  });
});

describe('applyClampPlan: plans and descriptions that do not fit the bytes', () => {
  it('refuses a memory maximum for a module with no memory, or with two', () => {
    const noMemory = guest({ memory: '' });
    expect(refusal(() => applyClampPlan(noMemory, readSections(noMemory), plan(4, []))).message).toBe(
      'clamp plan sets a memory maximum but the module defines 0 memories',
    );
    const one = guest();
    const info = readSections(one);
    const two = { ...info, memories: [info.memories[0]!, info.memories[0]!] };
    expect(refusal(() => applyClampPlan(one, two, plan(4, []))).message).toBe('clamp plan sets a memory maximum but the module defines 2 memories');
  });

  it('refuses a plan whose table count differs from the module’s', () => {
    const bytes = guest({ extra: '(table 1 funcref)' });
    expect(refusal(() => applyClampPlan(bytes, readSections(bytes), plan(null, [5, 5]))).message).toBe(
      'clamp plan has 2 table maxima but the module defines 1 tables',
    );
  });

  it('refuses section spans that do not tile the bytes: a byte more, a section left out, a span out of shape', () => {
    const bytes = guest({ memory: '(memory (export "memory") 1)' });
    const info = readSections(bytes);
    const clamp = plan(4, []);
    const tile = /^module info does not describe these bytes \(section spans do not tile the file\)$/;
    const longer = Uint8Array.from([...bytes, 0]);
    expect(refusal(() => applyClampPlan(longer, info, clamp)).message).toMatch(tile);
    const gap = info.sections.filter((_, i) => i !== 1);
    expect(refusal(() => applyClampPlan(bytes, { ...info, sections: gap }, clamp)).message).toMatch(tile);
    // The first span with no room for its id byte.
    const [first, ...rest] = info.sections;
    const noId = [{ ...first!, payloadStart: first!.start }, ...rest];
    expect(refusal(() => applyClampPlan(bytes, { ...info, sections: noId }, clamp)).message).toMatch(tile);
    // The first span ending before its payload starts, the second taking up the difference:
    // the spans still reach from the preamble to the end, one of them is upside down.
    const [a, b, ...others] = info.sections;
    const upsideDown = [{ ...a!, end: a!.payloadStart - 1 }, { ...b!, start: a!.payloadStart - 1 }, ...others];
    expect(refusal(() => applyClampPlan(bytes, { ...info, sections: upsideDown }, clamp)).message).toMatch(tile);
  });

  it('refuses a section whose entry count differs from the description', () => {
    const bytes = guest({ extra: '(table 1 funcref)' });
    const info = readSections(bytes);
    const twoTables = { ...info, tables: [info.tables[0]!, info.tables[0]!] };
    expect(refusal(() => applyClampPlan(bytes, twoTables, plan(null, [5, 5]))).message).toBe('table section has 1 entries, the clamp plan 2');
    // Two memories in the bytes, one in the description.
    const twoMemories = rawModule([SectionId.MEMORY, [0x02, 0x00, 0x01, 0x00, 0x01]]);
    expect(refusal(() => applyClampPlan(twoMemories, infoFor(twoMemories, { tables: [] }), plan(4, []))).message).toBe(
      'memory section has 2 entries, the clamp plan 1',
    );
  });

  it('refuses a memory or table section with bytes after its entries', () => {
    const memory = rawModule([SectionId.MEMORY, [0x01, 0x00, 0x01, 0xff]]);
    expect(refusal(() => applyClampPlan(memory, infoFor(memory, { tables: [] }), plan(4, []))).message).toBe('memory section has trailing bytes');
    const table = rawModule([SectionId.TABLE, [0x01, 0x70, 0x00, 0x01, 0xff]]);
    const info = readSections(guest({ extra: '(table 1 funcref)' }));
    expect(refusal(() => applyClampPlan(table, infoFor(table, { tables: info.tables }), plan(null, [4]))).message).toBe('table section has trailing bytes');
  });
});
