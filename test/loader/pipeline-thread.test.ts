/**
 * The loader thread's side of the pipeline, called in this thread: prepareModule (loadModule's
 * `prepare` job) and describeModule (inspectModule's `inspect` job). test/loader/pipeline reaches
 * them only through the loader's worker; here each decision they take is checked where it is made:
 * the verdict and the integrity pin, the clamp, the metered-code bound (fuel and suspendable alike),
 * the instrumentation and its cache, the callable exports, and the description's signatures.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { WasmvisorError, type ErrorCode } from '../../host/errors.ts';
import { callableExports, describeModule, prepareModule, threadCounters, type PrepareRequest } from '../../host/loader/pipeline.ts';
import { defaultPolicy } from '../../host/loader/policy.ts';
import { readSections } from '../../host/loader/sections.ts';
import { guest, wat } from './wat.ts';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

function request(original: Uint8Array, overrides: Partial<PrepareRequest> = {}): PrepareRequest {
  return { original, policy: defaultPolicy(), integrity: {}, fuel: false, suspendable: false, ...overrides };
}

async function codeOf(run: () => Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await run();
    return 'resolved';
  } catch (error) {
    if (error instanceof WasmvisorError) return error.code;
    throw error;
  }
}

describe('prepareModule (the loader thread’s prepare job)', () => {
  it('answers an admissible module unchanged and unmetered, with its measurement, exports and first memory', async () => {
    const bytes = guest({ memory: '(memory (export "memory") 3 4)', extra: '(func (export "tick") (result i32) i32.const 1)' });
    const answer = await prepareModule(request(bytes));
    expect(answer).toMatchObject({
      measurement: sha256(bytes),
      callable: ['tick'],
      plan: { memoryMaximum: null, tableMaxima: [], needsRewrite: false },
      fuelMetered: false,
      originalSize: bytes.length,
      memoryInitial: 3,
      instrumented: null,
    });
    expect(answer.exports.map((e) => e.name)).toEqual(['memory', '_start', 'tick']);
    expect(answer.bytes).toEqual(bytes);
  });

  it('clamps an unbounded memory to the policy and measures the original', async () => {
    const bytes = guest({ memory: '(memory (export "memory") 1)' });
    const answer = await prepareModule(request(bytes, { policy: defaultPolicy({ memoryPages: 5 }) }));
    expect(answer.measurement).toBe(sha256(bytes));
    expect(answer.plan.memoryMaximum).toBe(5);
    expect(readSections(answer.bytes).memories[0]).toMatchObject({ initial: 1, maximum: 5 });
  });

  it('throws the policy’s refusal, then the integrity pin’s, each with its code', async () => {
    const denied = guest({ imports: '(import "env" "system" (func))' });
    expect(await codeOf(() => prepareModule(request(denied)))).toBe('ERR_IMPORT_DENIED');
    const bytes = guest();
    expect(await codeOf(() => prepareModule(request(bytes, { integrity: { expectedSha256: 'ab'.repeat(32) } })))).toBe('ERR_INTEGRITY');
    expect(await codeOf(() => prepareModule(request(bytes, { integrity: { expectedSha256: sha256(bytes) } })))).toBe('resolved');
    expect(await codeOf(() => prepareModule(request(bytes, { integrity: { allowList: new Set([sha256(bytes)]) } })))).toBe('resolved');
    expect(await codeOf(() => prepareModule(request(bytes, { integrity: { allowList: new Set() } })))).toBe('ERR_INTEGRITY');
  });

  it('bounds the code section of a metered module, at the bound and one past it, for fuel and suspendable alike', async () => {
    const bytes = guest({ extra: '(func (export "f") (result i32) i32.const 7)' });
    const info = readSections(bytes);
    const code = info.sections.find((s) => s.id === 10)!;
    const codeBytes = code.end - code.payloadStart;
    const limited = (n: number) => defaultPolicy({ moduleLimits: { meteredCodeBytes: n } });
    // Unmetered: the bound does not apply.
    expect(await codeOf(() => prepareModule(request(bytes, { policy: limited(codeBytes - 1) })))).toBe('resolved');
    expect(await codeOf(() => prepareModule(request(bytes, { policy: limited(codeBytes - 1), fuel: true })))).toBe('ERR_LIMIT_MODULE');
    expect(await codeOf(() => prepareModule(request(bytes, { policy: limited(codeBytes - 1), suspendable: true })))).toBe('ERR_LIMIT_MODULE');
    const error = await prepareModule(request(bytes, { policy: limited(codeBytes - 1), fuel: true })).catch((e: unknown) => e);
    expect((error as Error).message).toContain(`the code section of this metered module has ${codeBytes} bytes`);
    expect(await codeOf(() => prepareModule(request(bytes, { policy: limited(codeBytes), fuel: true })))).toBe('resolved');
  });

  it('a metered module without a code section has 0 code bytes, within any bound', async () => {
    const bytes = wat('(module (memory (export "memory") 1 2))');
    const answer = await prepareModule(request(bytes, { policy: defaultPolicy({ requiredExports: [], moduleLimits: { meteredCodeBytes: 0 } }), fuel: true }));
    expect(answer.fuelMetered).toBe(true);
  });

  it('instruments a fuel-metered module once: a miss, then a hit with the same bytes in a buffer of its own', async () => {
    // A module no other test of this file prepares with fuel (each file has its own thread and caches), so the first answer is a miss.
    const bytes = guest({ extra: '(func (export "g") (result i32) i32.const 4242)' });
    const before = threadCounters.instrumentations;
    const first = await prepareModule(request(bytes, { fuel: true }));
    expect(first).toMatchObject({ fuelMetered: true, instrumented: 'miss' });
    expect(first.bytes).not.toEqual(bytes);
    const imports = readSections(first.bytes).imports.map((i) => `${i.module}.${i.name}`);
    expect(imports).toContain('hv.hypercall');
    expect(imports.length).toBeGreaterThan(1); // the instrumenter's own imports
    const second = await prepareModule(request(Uint8Array.from(bytes), { fuel: true }));
    expect(second.instrumented).toBe('hit');
    expect(second.bytes).toEqual(first.bytes);
    expect(second.bytes).not.toBe(first.bytes); // each answer's own copy: it is transferred away
    expect(threadCounters.instrumentations).toBe(before + 1);
  });
});

describe('callableExports', () => {
  it('lists the functions () -> i32 whose names do not start with _, and nothing else', () => {
    const bytes = wat(`(module
      (import "hv" "hypercall" (func (param i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (global (export "g") i32 (i32.const 0))
      (func (export "ok") (result i32) i32.const 0)
      (func (export "_hidden") (result i32) i32.const 0)
      (func (export "takes") (param i32) (result i32) i32.const 0)
      (func (export "none"))
      (func (export "two") (result i32 i32) i32.const 0 i32.const 0)
      (func (export "wide") (result i64) i64.const 0)
      (export "imported" (func 0)))`);
    expect(callableExports(readSections(bytes))).toEqual(['ok']);
  });
});

describe('describeModule (the loader thread’s inspect job)', () => {
  it('describes an admitted module with its plan and the signature of every function import and export', () => {
    const bytes = guest({ memory: '(memory (export "memory") 1)', extra: '(func (export "f") (param i64) (result f32) f32.const 0) (global (export "g") i32 (i32.const 0))' });
    const inspection = describeModule({ bytes, policy: defaultPolicy(), integrity: {} });
    expect(inspection).toMatchObject({ measurement: sha256(bytes), size: bytes.length, start: null });
    expect(inspection.imports).toEqual([{ module: 'hv', name: 'hypercall', kind: 'function', typeIndex: 0, sig: { params: ['i32', 'i32', 'i32', 'i32', 'i32'], results: ['i32'] } }]);
    expect(inspection.exports).toEqual([
      { name: 'memory', kind: 'memory', index: 0 },
      { name: '_start', kind: 'function', index: 1, sig: { params: [], results: [] } },
      { name: 'f', kind: 'function', index: 2, sig: { params: ['i64'], results: ['f32'] } },
      { name: 'g', kind: 'global', index: 0 },
    ]);
    expect(inspection.verdict).toEqual({ admitted: true, plan: { memoryMaximum: 256, tableMaxima: [], needsRewrite: true } });
  });

  it('answers a policy or integrity refusal in the verdict, with its code and message', () => {
    const denied = describeModule({ bytes: guest({ imports: '(import "env" "system" (func))' }), policy: defaultPolicy(), integrity: {} });
    expect(denied.verdict).toEqual({ admitted: false, code: 'ERR_IMPORT_DENIED', message: 'env.system is not part of the hv interface' });
    const bytes = guest();
    const pinned = describeModule({ bytes, policy: defaultPolicy(), integrity: { expectedSha256: 'ab'.repeat(32) } });
    expect(pinned.verdict).toMatchObject({ admitted: false, code: 'ERR_INTEGRITY' });
    expect((pinned.verdict as { message: string }).message).toContain(sha256(bytes));
    expect(describeModule({ bytes, policy: defaultPolicy(), integrity: { expectedSha256: sha256(bytes) } }).verdict.admitted).toBe(true);
  });

  it('throws for a module the engine rejects and the policy would admit (ERR_MODULE_INVALID)', () => {
    const invalid = wat('(module (func (result i32)))');
    expect(() => describeModule({ bytes: invalid, policy: defaultPolicy(), integrity: {} })).toThrow(expect.objectContaining({ code: 'ERR_MODULE_INVALID' }));
  });
});
