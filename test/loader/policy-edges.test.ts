// The policy's rules judged in this thread (evaluatePolicy), where loads through the loader's
// thread do not reach them: the reserved instrumentation prefix on each side of an import and on
// an export, the limits' ranges at their edges, the messages that list what a policy allows, and
// a policy object that is not one (a fault of the embedder, reported as such).
import { describe, expect, it } from 'vitest';
import { InternalError, InvalidArgumentError, type ErrorCode } from '../../host/errors.ts';
import { HYPERCALL_SIG, checkPolicy, defaultPolicy, evaluatePolicy, type LoadPolicy } from '../../host/loader/policy.ts';
import { readSections } from '../../host/loader/sections.ts';
import { guestWat, wat, type GuestParts } from './wat.ts';

function refusal(parts: GuestParts, overrides: Partial<LoadPolicy> = {}): { code: ErrorCode; message: string } {
  const v = evaluatePolicy(readSections(wat(guestWat(parts))), defaultPolicy(overrides));
  if (v.admitted) throw new Error('expected a refusal, got admitted');
  return { code: v.error.code, message: v.error.message };
}

function admitted(parts: GuestParts, overrides: Partial<LoadPolicy> = {}): boolean {
  return evaluatePolicy(readSections(wat(guestWat(parts))), defaultPolicy(overrides)).admitted;
}

const hypercallType = '(param i32 i32 i32 i32 i32) (result i32)';
const only = (module: string, name: string) => new Map([[module, new Map([[name, HYPERCALL_SIG]])]]);

describe('the reserved prefix __wasmvisor_', () => {
  it('refuses an import whose module or name starts with it, even when the policy allows it', () => {
    expect(refusal({ imports: `(import "__wasmvisor_hv" "hypercall" (func ${hypercallType}))` }, { imports: only('__wasmvisor_hv', 'hypercall') })).toEqual({
      code: 'ERR_MODULE_INVALID',
      message: "import __wasmvisor_hv.hypercall uses the prefix __wasmvisor_, reserved for the host's instrumentation",
    });
    expect(refusal({ imports: `(import "hv" "__wasmvisor_fuel_exhausted" (func ${hypercallType}))` }, { imports: only('hv', '__wasmvisor_fuel_exhausted') })).toEqual({
      code: 'ERR_MODULE_INVALID',
      message: "import hv.__wasmvisor_fuel_exhausted uses the prefix __wasmvisor_, reserved for the host's instrumentation",
    });
  });

  it('refuses an export that starts with it', () => {
    expect(refusal({ extra: '(func (export "__wasmvisor_start"))' })).toEqual({
      code: 'ERR_MODULE_INVALID',
      message: "export __wasmvisor_start uses the prefix __wasmvisor_, reserved for the host's instrumentation",
    });
  });

  it('admits names that only end with it or have it inside', () => {
    expect(admitted({ imports: `(import "hv" "x__wasmvisor_" (func ${hypercallType}))`, extra: '(func (export "y__wasmvisor_"))' }, { imports: only('hv', 'x__wasmvisor_') })).toBe(true);
    expect(admitted({ imports: `(import "m__wasmvisor_" "call" (func ${hypercallType}))` }, { imports: only('m__wasmvisor_', 'call') })).toBe(true);
  });
});

describe('policy limits at their edges', () => {
  it('takes 0 and 2^32 - 1 table elements, and names the range of anything else', () => {
    expect(defaultPolicy({ tableElements: 0 }).tableElements).toBe(0);
    expect(defaultPolicy({ tableElements: 0xffff_ffff }).tableElements).toBe(0xffff_ffff);
    expect(() => defaultPolicy({ tableElements: -1 })).toThrow(new InvalidArgumentError('policy tableElements must be an integer in 0..4294967295, got the number -1'));
    expect(() => defaultPolicy({ tableElements: 2 ** 32 })).toThrow(new InvalidArgumentError('policy tableElements must be an integer in 0..4294967295, got the number 4294967296'));
  });

  it('names the range of memory pages', () => {
    expect(defaultPolicy({ memoryPages: 0 }).memoryPages).toBe(0);
    expect(() => defaultPolicy({ memoryPages: 65537 })).toThrow(new InvalidArgumentError('policy memoryPages must be an integer in 0..65536, got the number 65537'));
  });
});

describe('what an import refusal says the policy allows', () => {
  it('lists the allowed modules when they are not just hv, or says none', () => {
    const imports = `(import "hv" "hypercall" (func ${hypercallType}))`;
    expect(refusal({ imports }, { imports: only('env', 'call') }).message).toBe('hv.hypercall is not part of the hv interface (allowed import modules: env)');
    expect(refusal({ imports }, { imports: new Map() }).message).toBe('hv.hypercall is not part of the hv interface (allowed import modules: none)');
    expect(refusal({ imports: `(import "env" "call" (func ${hypercallType}))` }).message).toBe('env.call is not part of the hv interface');
  });

  it('lists what the module provides, or says nothing', () => {
    const imports = `(import "hv" "other" (func ${hypercallType}))`;
    expect(refusal({ imports }).message).toBe('hv.other is not part of the hv interface (module hv provides: hypercall)');
    expect(refusal({ imports }, { imports: new Map([['hv', new Map()]]) }).message).toBe('hv.other is not part of the hv interface (module hv provides: nothing)');
  });
});

describe('a policy object that is not one', () => {
  it('is reported as a fault of the policy evaluation, not as a verdict on the module', () => {
    const policy = { ...defaultPolicy(), imports: {} } as unknown as LoadPolicy;
    const v = evaluatePolicy(readSections(wat(guestWat())), policy);
    expect(v.admitted).toBe(false);
    if (v.admitted) return;
    expect(v.error).toBeInstanceOf(InternalError);
    expect(v.error.message).toMatch(/^policy evaluation failed: .+/);
    expect((v.error as Error & { cause?: unknown }).cause).toBeInstanceOf(TypeError);
  });
});

describe('shapes at the edges of the rules', () => {
  it('refuses a 64-bit table when it is the first one', () => {
    expect(refusal({ extra: '(table i64 1 funcref)' })).toEqual({ code: 'ERR_FEATURE_DENIED', message: 'table 0: 64-bit tables (table64) are not allowed' });
  });

  it('plans no rewrite for tables and a memory already within the limits', () => {
    const plan = checkPolicy(readSections(wat(guestWat({ memory: '(memory (export "memory") 1 2)', extra: '(table 1 10 funcref) (table 0 5 externref)' }))), defaultPolicy());
    expect(plan).toEqual({ memoryMaximum: null, tableMaxima: [null, null], needsRewrite: false });
  });

  it('checks a required function export without a signature by its name and kind only', () => {
    const requiredExports = [{ name: 'run', kind: 'function' as const }];
    expect(admitted({ extra: '(func (export "run") (param i32) (result i64) (i64.const 0))' }, { requiredExports })).toBe(true);
    expect(refusal({}, { requiredExports })).toEqual({ code: 'ERR_MODULE_INVALID', message: 'guest must export a function named run' });
    expect(refusal({ extra: '(global (export "run") i32 (i32.const 0))' }, { requiredExports })).toEqual({
      code: 'ERR_MODULE_INVALID',
      message: 'guest must export a function named run (it exports a global named run)',
    });
  });
});
