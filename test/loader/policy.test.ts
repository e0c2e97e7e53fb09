import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, type ErrorCode } from '../../host/errors.ts';
import { checkPolicy, defaultPolicy, evaluatePolicy, formatSig, HYPERCALL_SIG, type LoadPolicy, type PolicyVerdict } from '../../host/loader/policy.ts';
import { readSections, type FuncSig } from '../../host/loader/sections.ts';
import { guestWat, wat, type GuestParts } from './wat.ts';

function verdict(parts: GuestParts | string, overrides: Partial<LoadPolicy> = {}): PolicyVerdict {
  const source = typeof parts === 'string' ? parts : guestWat(parts);
  return evaluatePolicy(readSections(wat(source)), defaultPolicy(overrides));
}

function refusal(parts: GuestParts | string, overrides: Partial<LoadPolicy> = {}): { code: ErrorCode; message: string } {
  const v = verdict(parts, overrides);
  if (v.admitted) throw new Error('expected a refusal, got admitted');
  return { code: v.error.code, message: v.error.message };
}

function plan(parts: GuestParts | string, overrides: Partial<LoadPolicy> = {}) {
  const v = verdict(parts, overrides);
  if (!v.admitted) throw new Error(`expected admitted, got ${v.error.toString()}`);
  return v.plan;
}

const memory = (spec: string): GuestParts => ({ memory: `(memory (export "memory") ${spec})` });

describe('defaultPolicy', () => {
  it('is safe by default', () => {
    const p = defaultPolicy();
    expect([...p.imports.keys()]).toEqual(['hv']);
    expect(p.imports.get('hv')?.get('hypercall')).toEqual(HYPERCALL_SIG);
    expect(p.memoryPages).toBe(256);
    expect(p.tableElements).toBe(10000);
    expect(p.clampMaximum).toBe(true);
    expect(p.requiredExports).toEqual([
      { name: 'memory', kind: 'memory' },
      { name: '_start', kind: 'function', sig: { params: [], results: [] } },
    ]);
  });

  it('applies overrides, keeps defaults for undefined ones, and returns fresh maps', () => {
    expect(defaultPolicy({ memoryPages: 10, tableElements: undefined }).tableElements).toBe(10000);
    expect(defaultPolicy({ memoryPages: 10 }).memoryPages).toBe(10);
    expect(defaultPolicy().imports).not.toBe(defaultPolicy().imports);
  });

  it('refuses out-of-range limits', () => {
    expect(() => defaultPolicy({ memoryPages: 65536 })).not.toThrow();
    expect(() => defaultPolicy({ memoryPages: 65537 })).toThrow(InvalidArgumentError);
    expect(() => defaultPolicy({ memoryPages: -1 })).toThrow(InvalidArgumentError);
    expect(() => defaultPolicy({ memoryPages: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => defaultPolicy({ tableElements: Number.NaN })).toThrow(InvalidArgumentError);
  });
});

describe('formatSig', () => {
  it('writes signatures the way messages show them', () => {
    expect(formatSig(HYPERCALL_SIG)).toBe('(i32, i32, i32, i32, i32) -> i32');
    expect(formatSig({ params: [], results: [] })).toBe('() -> ()');
    expect(formatSig({ params: ['i64'], results: ['i32', 'f64'] })).toBe('(i64) -> (i32, f64)');
  });
});

describe('evaluatePolicy: imports', () => {
  it('admits the standard guest, and a guest with no imports at all', () => {
    expect(plan({})).toEqual({ memoryMaximum: null, tableMaxima: [], needsRewrite: false });
    expect(plan({ imports: '' }).needsRewrite).toBe(false);
  });

  it('refuses every non-function import kind', () => {
    expect(refusal({ imports: '(import "hv" "mem" (memory 1))', memory: '' })).toEqual({
      code: 'ERR_IMPORT_DENIED',
      message: 'hv.mem: memory imports are not allowed; a guest defines its own memory',
    });
    expect(refusal({ imports: '(import "hv" "tbl" (table 1 funcref))' })).toEqual({ code: 'ERR_IMPORT_DENIED', message: 'hv.tbl: table imports are not allowed' });
    expect(refusal({ imports: '(import "hv" "g" (global i32))' })).toEqual({ code: 'ERR_IMPORT_DENIED', message: 'hv.g: global imports are not allowed' });
    expect(refusal({ imports: '(import "hv" "t" (tag (param i32)))' })).toEqual({ code: 'ERR_IMPORT_DENIED', message: 'hv.t: tag imports are not allowed' });
  });

  it('checks non-function imports before function imports, whatever their order in the module', () => {
    expect(refusal({ imports: '(import "env" "system" (func)) (import "hv" "g" (global i32))' }).message).toBe('hv.g: global imports are not allowed');
  });

  it('refuses a function import from a module outside the interface', () => {
    expect(refusal({ imports: '(import "env" "system" (func (param i32) (result i32)))' })).toEqual({
      code: 'ERR_IMPORT_DENIED',
      message: 'env.system is not part of the hv interface',
    });
  });

  it('lists the allowed modules when there are more than hv', () => {
    const imports = new Map<string, ReadonlyMap<string, FuncSig>>([
      ['hv', new Map([['hypercall', HYPERCALL_SIG]])],
      ['wasi_snapshot_preview1', new Map([['proc_exit', { params: ['i32'], results: [] }]])],
    ]);
    expect(refusal({ imports: '(import "env" "system" (func))' }, { imports }).message).toBe(
      'env.system is not part of the hv interface (allowed import modules: hv, wasi_snapshot_preview1)',
    );
    expect(plan({ imports: '(import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))' }, { imports }).needsRewrite).toBe(false);
  });

  it('refuses a name the allowed module does not provide', () => {
    expect(refusal({ imports: '(import "hv" "system" (func (param i32 i32 i32 i32 i32) (result i32)))' })).toEqual({
      code: 'ERR_IMPORT_DENIED',
      message: 'hv.system is not part of the hv interface (module hv provides: hypercall)',
    });
  });

  it('refuses a signature mismatch, stating actual and expected types', () => {
    expect(refusal({ imports: '(import "hv" "hypercall" (func (param i32) (result i32)))' })).toEqual({
      code: 'ERR_IMPORT_DENIED',
      message: 'hv.hypercall has type (i32) -> i32, expected (i32, i32, i32, i32, i32) -> i32',
    });
    // One parameter too many, a wrong type, a missing result: each refused.
    expect(refusal({ imports: '(import "hv" "hypercall" (func (param i32 i32 i32 i32 i32 i32) (result i32)))' }).code).toBe('ERR_IMPORT_DENIED');
    expect(refusal({ imports: '(import "hv" "hypercall" (func (param i32 i32 i32 i32 i64) (result i32)))' }).code).toBe('ERR_IMPORT_DENIED');
    expect(refusal({ imports: '(import "hv" "hypercall" (func (param i32 i32 i32 i32 i32)))' }).message).toBe(
      'hv.hypercall has type (i32, i32, i32, i32, i32) -> (), expected (i32, i32, i32, i32, i32) -> i32',
    );
  });
});

describe('evaluatePolicy: memory and table shape', () => {
  it('requires exactly one memory', () => {
    // No memory is a missing memory export (README's error table: ERR_MODULE_INVALID), worded
    // as a memory that is not exported is; not a refused feature.
    expect(refusal({ memory: '' })).toEqual({ code: 'ERR_MODULE_INVALID', message: 'guest must export a memory named memory (it defines no memory)' });
    expect(refusal({ memory: '(memory 1)' })).toEqual({ code: 'ERR_MODULE_INVALID', message: 'guest must export a memory named memory' });
    expect(refusal(memory('1 2) (memory 1 2'))).toEqual({ code: 'ERR_FEATURE_DENIED', message: 'guest defines 2 memories; exactly one is allowed (multi-memory is refused)' });
  });

  it('refuses shared memory, memory64 and table64', () => {
    expect(refusal(memory('1 2 shared'))).toEqual({ code: 'ERR_FEATURE_DENIED', message: 'shared memory is not allowed: partitions never share memory' });
    expect(refusal({ memory: '(memory (export "memory") i64 1 2)' })).toEqual({ code: 'ERR_FEATURE_DENIED', message: '64-bit memory (memory64) is not allowed' });
    expect(refusal({ extra: '(table 1 funcref) (table i64 1 2 funcref)' })).toEqual({ code: 'ERR_FEATURE_DENIED', message: 'table 1: 64-bit tables (table64) are not allowed' });
  });

  it('checks imports before memory shape', () => {
    expect(refusal({ imports: '(import "env" "system" (func))', memory: '' }).code).toBe('ERR_IMPORT_DENIED');
  });
});

describe('evaluatePolicy: memory limits', () => {
  it('admits initial == limit and refuses limit + 1', () => {
    expect(plan(memory('256 256'))).toEqual({ memoryMaximum: null, tableMaxima: [], needsRewrite: false });
    expect(refusal(memory('257'))).toEqual({ code: 'ERR_LIMIT_MEMORY', message: 'memory initial size 257 pages exceeds the limit of 256 pages' });
    expect(refusal(memory('300 400'))).toEqual({ code: 'ERR_LIMIT_MEMORY', message: 'memory initial size 300 pages exceeds the limit of 256 pages' });
    expect(plan(memory('10 10'), { memoryPages: 10 }).needsRewrite).toBe(false);
    expect(refusal(memory('11'), { memoryPages: 10 }).code).toBe('ERR_LIMIT_MEMORY');
  });

  it('refuses an initial size over the limit even when clamping (clamping is for maxima only)', () => {
    expect(refusal(memory('257 257'), { clampMaximum: true }).code).toBe('ERR_LIMIT_MEMORY');
  });

  it('leaves a maximum at the limit alone and clamps one past it, or a missing one', () => {
    expect(plan(memory('1 256')).memoryMaximum).toBeNull();
    expect(plan(memory('1 257'))).toEqual({ memoryMaximum: 256, tableMaxima: [], needsRewrite: true });
    expect(plan(memory('1'))).toEqual({ memoryMaximum: 256, tableMaxima: [], needsRewrite: true });
    expect(plan(memory('0'), { memoryPages: 0 })).toEqual({ memoryMaximum: 0, tableMaxima: [], needsRewrite: true });
  });

  it('refuses a missing or too-large maximum when clamping is off', () => {
    expect(plan(memory('1 256'), { clampMaximum: false }).needsRewrite).toBe(false);
    expect(refusal(memory('1 257'), { clampMaximum: false })).toEqual({
      code: 'ERR_LIMIT_MEMORY',
      message: 'memory maximum size 257 pages exceeds the limit of 256 pages (clampMaximum is off)',
    });
    expect(refusal(memory('1'), { clampMaximum: false })).toEqual({
      code: 'ERR_LIMIT_MEMORY',
      message: 'memory has no maximum size; the limit is 256 pages (clampMaximum is off)',
    });
  });
});

describe('evaluatePolicy: table limits', () => {
  it('admits initial == limit and refuses limit + 1', () => {
    expect(plan({ extra: '(table 10000 10000 funcref)' }).tableMaxima).toEqual([null]);
    expect(refusal({ extra: '(table 10001 funcref)' })).toEqual({ code: 'ERR_LIMIT_TABLE', message: 'table 0 initial size 10001 elements exceeds the limit of 10000 elements' });
    expect(refusal({ extra: '(table 1 1 funcref) (table 6 externref)' }, { tableElements: 5 }).message).toBe('table 1 initial size 6 elements exceeds the limit of 5 elements');
  });

  it('clamps each table maximum independently', () => {
    expect(plan({ extra: '(table 1 5 funcref) (table 1 6 externref) (table 0 externref)' }, { tableElements: 5 })).toEqual({
      memoryMaximum: null,
      tableMaxima: [null, 5, 5],
      needsRewrite: true,
    });
  });

  it('refuses a missing or too-large table maximum when clamping is off', () => {
    expect(refusal({ extra: '(table 1 10001 funcref)' }, { clampMaximum: false }).code).toBe('ERR_LIMIT_TABLE');
    expect(refusal({ extra: '(table 1 funcref)' }, { clampMaximum: false }).message).toBe('table 0 has no maximum size; the limit is 10000 elements (clampMaximum is off)');
  });

  it('checks memory limits before table limits', () => {
    expect(refusal({ ...memory('300'), extra: '(table 10001 funcref)' }).code).toBe('ERR_LIMIT_MEMORY');
  });
});

describe('evaluatePolicy: required exports', () => {
  it('requires _start: () -> ()', () => {
    expect(refusal({ start: '' })).toEqual({ code: 'ERR_MODULE_INVALID', message: 'guest must export a function _start: () -> ()' });
    expect(refusal({ start: '(func (export "_start") (param i32))' })).toEqual({
      code: 'ERR_MODULE_INVALID',
      message: 'guest must export a function _start: () -> () (it has type (i32) -> ())',
    });
    expect(refusal({ start: '(global (export "_start") i32 (i32.const 0))' })).toEqual({
      code: 'ERR_MODULE_INVALID',
      message: 'guest must export a function _start: () -> () (it exports a global named _start)',
    });
  });

  it('resolves the signature of an exported import', () => {
    const hv = new Map<string, FuncSig>([['hypercall', HYPERCALL_SIG], ['start', { params: [], results: [] }]]);
    const imports = new Map([['hv', hv]]);
    expect(plan({ imports: '(import "hv" "start" (func $s))', start: '(export "_start" (func $s))' }, { imports }).needsRewrite).toBe(false);
  });

  it('requires the memory export', () => {
    expect(refusal({ memory: '(memory 1 2)' })).toEqual({ code: 'ERR_MODULE_INVALID', message: 'guest must export a memory named memory' });
  });

  it('follows the policy: no required exports admits a module without them', () => {
    expect(plan({ start: '', memory: '(memory 1 2)' }, { requiredExports: [] }).needsRewrite).toBe(false);
  });

  it('checks limits before exports', () => {
    expect(refusal({ ...memory('300'), start: '' }).code).toBe('ERR_LIMIT_MEMORY');
  });
});

describe('evaluatePolicy and checkPolicy', () => {
  it('evaluatePolicy returns a bad hand-built policy as a refusal instead of throwing', () => {
    const bad: LoadPolicy = { ...defaultPolicy(), memoryPages: -5 };
    const v = evaluatePolicy(readSections(wat(guestWat())), bad);
    expect(v.admitted).toBe(false);
    if (!v.admitted) expect(v.error).toBeInstanceOf(InvalidArgumentError);
  });

  it('checkPolicy returns the plan or throws the refusal', () => {
    const info = readSections(wat(guestWat(memory('1'))));
    expect(checkPolicy(info, defaultPolicy())).toEqual({ memoryMaximum: 256, tableMaxima: [], needsRewrite: true });
    expect(() => checkPolicy(info, defaultPolicy({ clampMaximum: false }))).toThrow('memory has no maximum size');
  });
});
