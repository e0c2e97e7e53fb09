import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { InvalidArgumentError, ModuleInvalidError, WasmvisorError, type ErrorCode } from '../../host/errors.ts';
import { ModuleCache } from '../../host/loader/compile.ts';
import { cacheKey, inspectModule, loadModule, type LoadOptions } from '../../host/loader/pipeline.ts';
import { loaderThread } from '../../host/loader/offthread.ts';
import { readSections } from '../../host/loader/sections.ts';
import { guest, instantiate, wat } from './wat.ts';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    if (error instanceof WasmvisorError) return error.code;
    throw error;
  }
}

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wasmvisor-pipeline-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadModule', () => {
  it('loads an admissible guest unchanged', async () => {
    const bytes = guest();
    const loaded = await loadModule(bytes);
    expect(loaded.measurement).toBe(sha256(bytes));
    expect(loaded.plan).toEqual({ memoryMaximum: null, tableMaxima: [], needsRewrite: false });
    expect(loaded.bytes).toEqual(bytes);
    expect(loaded.bytes).not.toBe(bytes); // a private copy
    expect(loaded.originalSize).toBe(bytes.length);
    expect(loaded.exports.map((e) => e.name)).toEqual(['memory', '_start']);
    expect(typeof instantiate(loaded.module)._start).toBe('function');
  });

  it('loads from a file path', async () => {
    const path = join(dir, 'guest.wasm');
    await writeFile(path, guest());
    expect((await loadModule(path)).measurement).toBe(sha256(guest()));
  });

  it('measures the original bytes and runs the clamped ones', async () => {
    const bytes = guest({ memory: '(memory (export "memory") 1)' });
    const loaded = await loadModule(bytes, { policy: { memoryPages: 2 } });
    expect(loaded.measurement).toBe(sha256(bytes));
    expect(loaded.plan.memoryMaximum).toBe(2);
    expect(loaded.bytes).not.toEqual(bytes);
    expect(loaded.originalSize).toBe(bytes.length);
    const memory = instantiate(loaded.module).memory as WebAssembly.Memory;
    expect(memory.grow(1)).toBe(1);
    expect(() => memory.grow(1)).toThrow(RangeError);
    // Same original under another policy: same measurement.
    expect((await loadModule(bytes, { policy: { memoryPages: 3 } })).measurement).toBe(loaded.measurement);
  });

  it('measures the bytes as passed, even if the caller mutates its buffer right after the call', async () => {
    const bytes = guest();
    const expected = sha256(bytes);
    const pending = loadModule(bytes);
    bytes.fill(0);
    expect((await pending).measurement).toBe(expected);
  });

  it('applies the size cap at exactly the cap and one past', async () => {
    const bytes = guest();
    await expect(loadModule(bytes, { maxModuleBytes: bytes.length })).resolves.toBeDefined();
    await expect(loadModule(bytes, { maxModuleBytes: bytes.length - 1 })).rejects.toThrow(ModuleInvalidError);
  });

  it('refuses with each step’s code', async () => {
    const cases: [Uint8Array, LoadOptions, ErrorCode][] = [
      [Uint8Array.from([0, 1, 2]), {}, 'ERR_MODULE_INVALID'],
      [wat('(module (func (result i32)))'), {}, 'ERR_MODULE_INVALID'],
      [guest({ imports: '(import "env" "system" (func))' }), {}, 'ERR_IMPORT_DENIED'],
      [guest({ memory: '(memory (export "memory") 1 2 shared)' }), {}, 'ERR_FEATURE_DENIED'],
      [guest({ memory: '(memory (export "memory") 3)' }), { policy: { memoryPages: 2 } }, 'ERR_LIMIT_MEMORY'],
      [guest({ extra: '(table 3 funcref)' }), { policy: { tableElements: 2 } }, 'ERR_LIMIT_TABLE'],
      [guest({ start: '' }), {}, 'ERR_MODULE_INVALID'],
      [guest(), { expectedSha256: 'ab'.repeat(32) }, 'ERR_INTEGRITY'],
      [guest(), { allowList: new Set(['ab'.repeat(32)]) }, 'ERR_INTEGRITY'],
    ];
    for (const [bytes, options, code] of cases) expect(await codeOf(loadModule(bytes, options))).toBe(code);
  });

  it('refuses memory64 and multi-memory as ERR_FEATURE_DENIED even where the engine calls them invalid', async () => {
    // Node 20's engine rejects both as invalid; later engines accept them. The code is the same either way.
    expect(await codeOf(loadModule(guest({ memory: '(memory (export "memory") i64 1 2)' })))).toBe('ERR_FEATURE_DENIED');
    expect(await codeOf(loadModule(guest({ memory: '(memory (export "memory") 1 2) (memory 1 2)' })))).toBe('ERR_FEATURE_DENIED');
    expect(await codeOf(loadModule(guest({ extra: '(table i64 1 2 funcref)' })))).toBe('ERR_FEATURE_DENIED');
  });

  it('admits a pinned or allow-listed module', async () => {
    const bytes = guest();
    await expect(loadModule(bytes, { expectedSha256: sha256(bytes).toUpperCase() })).resolves.toBeDefined();
    await expect(loadModule(bytes, { allowList: new Set([sha256(bytes)]) })).resolves.toBeDefined();
  });

  it('rejects bad options before reading anything', async () => {
    const missing = join(dir, 'does-not-exist.wasm');
    await expect(loadModule(missing, { expectedSha256: 'not-a-hash' })).rejects.toThrow(InvalidArgumentError);
    await expect(loadModule(missing, { policy: { memoryPages: -1 } })).rejects.toThrow(InvalidArgumentError);
    await expect(loadModule(missing)).rejects.toThrow(ModuleInvalidError);
  });

  it('refuses before compiling: a refused module never reaches the cache', async () => {
    const cache = new ModuleCache();
    const refused: [Uint8Array, LoadOptions][] = [
      [guest({ imports: '(import "env" "system" (func))' }), { cache }],
      [guest({ memory: '(memory (export "memory") 300)' }), { cache }],
      [guest(), { cache, expectedSha256: 'cd'.repeat(32) }],
    ];
    for (const [bytes, options] of refused) await expect(loadModule(bytes, options)).rejects.toThrow(WasmvisorError);
    expect({ hits: cache.hits, misses: cache.misses, size: cache.size }).toEqual({ hits: 0, misses: 0, size: 0 });
  });

  it('caches by measurement and plan', async () => {
    const cache = new ModuleCache();
    const bytes = guest({ memory: '(memory (export "memory") 1)' });
    const a = await loadModule(bytes, { cache });
    const b = await loadModule(Uint8Array.from(bytes), { cache });
    expect(b.module).toBe(a.module);
    const c = await loadModule(bytes, { cache, policy: { memoryPages: 8 } });
    expect(c.module).not.toBe(a.module);
    expect({ hits: cache.hits, misses: cache.misses, size: cache.size }).toEqual({ hits: 1, misses: 2, size: 2 });
    expect(cacheKey(a.measurement, a.plan)).toBe(`${a.measurement}/m256/t`);
    expect(cacheKey('x', { memoryMaximum: null, tableMaxima: [null, 5], needsRewrite: true })).toBe('x/m-/t-,5');
  });

  it('a module loaded again under the same policy is answered without the loader thread; another policy, a pin or an allow-list is judged again', async () => {
    const cache = new ModuleCache();
    const bytes = guest({ memory: '(memory (export "memory") 3)' });
    const thread = loaderThread();
    const asked = vi.spyOn(thread, 'request');
    try {
      const a = await loadModule(bytes, { cache, policy: { memoryPages: 4 } });
      const before = asked.mock.calls.length;
      const b = await loadModule(Uint8Array.from(bytes), { cache, policy: { memoryPages: 4 } });
      expect(asked.mock.calls.length).toBe(before); // answered from the memo
      expect(b.module).toBe(a.module);
      expect({ ...b, module: null, bytes: [...b.bytes] }).toEqual({ ...a, module: null, bytes: [...a.bytes] });
      expect(b.bytes).not.toBe(a.bytes); // each caller's own copy
      expect(cache.hits).toBe(1);
      // A lower limit is judged by the loader again, and refuses what the higher one admitted.
      await expect(loadModule(bytes, { cache, policy: { memoryPages: 2 } })).rejects.toMatchObject({ code: 'ERR_LIMIT_MEMORY' });
      // A pin is checked on every load, memo or not; an allow-list always takes the full path.
      await expect(loadModule(bytes, { cache, policy: { memoryPages: 4 }, expectedSha256: 'cd'.repeat(32) })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
      expect((await loadModule(bytes, { cache, policy: { memoryPages: 4 }, expectedSha256: sha256(bytes).toUpperCase() })).module).toBe(a.module);
      const calls = asked.mock.calls.length;
      await expect(loadModule(bytes, { cache, policy: { memoryPages: 4 }, allowList: new Set(['ab'.repeat(32)]) })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
      expect(asked.mock.calls.length).toBe(calls + 1);
      // Without the compiled module in the cache there is no shortcut: a fresh cache compiles.
      const fresh = new ModuleCache();
      await loadModule(bytes, { cache: fresh, policy: { memoryPages: 4 } });
      expect(fresh.misses).toBe(1);
    } finally {
      asked.mockRestore();
    }
  });

  it('a memo answer looks at the caller’s bytes without keeping them: the size cap holds, a changed buffer is a new module, each answer’s bytes are its own', async () => {
    const cache = new ModuleCache();
    const bytes = guest({ memory: '(memory (export "memory") 2)' });
    const policy = { memoryPages: 4 };
    const a = await loadModule(bytes, { cache, policy });
    // A cap below the module's size refuses it, though the memo holds its answer.
    expect(await codeOf(loadModule(bytes, { cache, policy, maxModuleBytes: bytes.length - 1 }))).toBe('ERR_MODULE_INVALID');
    const b = await loadModule(bytes, { cache, policy, maxModuleBytes: bytes.length });
    expect(b.module).toBe(a.module);
    // The caller's buffer, changed after a load, changes nothing that load answered; loaded
    // again it is another module (here an invalid one), never the memo's answer.
    const mine = Uint8Array.from(bytes);
    const c = await loadModule(mine, { cache, policy });
    mine[mine.length - 1]! ^= 0xff;
    expect(c.measurement).toBe(sha256(bytes));
    expect(await codeOf(loadModule(mine, { cache, policy }))).toBe('ERR_MODULE_INVALID');
    // An answer's bytes are made when first read, then stay that answer's: writing to them
    // reaches neither the memo nor another answer.
    expect(c.bytes).toBe(c.bytes);
    c.bytes.fill(0);
    const d = await loadModule(bytes, { cache, policy });
    expect(d.bytes).toEqual(a.bytes);
    expect(d.bytes).not.toBe(a.bytes);
  });

  it('refuses every truncation of a valid module as ERR_MODULE_INVALID, except at section boundaries', async () => {
    const bytes = guest({ extra: '(table 1 funcref) (func $f) (elem (i32.const 0) $f) (data (i32.const 0) "x")' });
    const boundaries = new Set([8, ...readSections(bytes).sections.map((s) => s.end)]);
    for (let cut = 0; cut < bytes.length; cut++) {
      const code = await codeOf(loadModule(bytes.slice(0, cut)));
      // A cut on a section boundary is a valid module, possibly missing its memory or exports.
      const allowed = boundaries.has(cut) ? ['resolved', 'ERR_MODULE_INVALID', 'ERR_FEATURE_DENIED'] : ['ERR_MODULE_INVALID'];
      expect(allowed, `cut at ${cut}`).toContain(code);
    }
  });

  it('keeps the property: random mutations load or fail with a typed error, never another exception', async () => {
    const base = guest({ extra: '(table 1 4 funcref) (func (export "f") (param i32) (result i32) local.get 0)' });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), fc.nat(), async (edits, cut) => {
        const bytes = Uint8Array.from(base);
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        const truncated = cut % 4 === 0 ? bytes.subarray(0, cut % (bytes.length + 1)) : bytes;
        await codeOf(loadModule(truncated));
      }),
      { numRuns: 300 },
    );
  });
});

describe('inspectModule', () => {
  it('describes an admitted module with its plan', async () => {
    const bytes = guest({ memory: '(memory (export "memory") 1)', extra: '(table 2 funcref)' });
    const inspection = await inspectModule(bytes);
    expect(inspection.measurement).toBe(sha256(bytes));
    expect(inspection.size).toBe(bytes.length);
    expect(inspection.imports).toEqual([
      { module: 'hv', name: 'hypercall', kind: 'function', typeIndex: 0, sig: { params: ['i32', 'i32', 'i32', 'i32', 'i32'], results: ['i32'] } },
    ]);
    expect(inspection.exports).toEqual([
      { name: 'memory', kind: 'memory', index: 0 },
      { name: '_start', kind: 'function', index: 1, sig: { params: [], results: [] } },
    ]);
    expect(inspection.memories).toEqual([{ initial: 1, maximum: null, shared: false, memory64: false }]);
    expect(inspection.tables).toEqual([{ elementType: 'funcref', initial: 2, maximum: null, table64: false }]);
    expect(inspection.start).toBeNull();
    expect(inspection.verdict).toEqual({ admitted: true, plan: { memoryMaximum: 256, tableMaxima: [10000], needsRewrite: true } });
  });

  it('reports policy and integrity refusals in the verdict instead of throwing', async () => {
    const denied = await inspectModule(guest({ imports: '(import "env" "system" (func))' }));
    expect(denied.verdict).toEqual({ admitted: false, code: 'ERR_IMPORT_DENIED', message: 'env.system is not part of the hv interface' });
    expect(denied.imports[0]).toMatchObject({ module: 'env', name: 'system', sig: { params: [], results: [] } });
    const pinned = await inspectModule(guest(), { expectedSha256: 'ab'.repeat(32) });
    expect(pinned.verdict).toMatchObject({ admitted: false, code: 'ERR_INTEGRITY' });
    const wide = await inspectModule(guest({ memory: '(memory (export "memory") i64 1)' }));
    expect(wide.verdict).toMatchObject({ admitted: false, code: 'ERR_FEATURE_DENIED' });
    expect(wide.memories[0]?.memory64).toBe(true);
  });

  it('throws for modules it cannot describe', async () => {
    await expect(inspectModule(Uint8Array.from([1, 2, 3]))).rejects.toThrow(ModuleInvalidError);
    await expect(inspectModule(join(dir, 'nope.wasm'))).rejects.toThrow(ModuleInvalidError);
    await expect(inspectModule(guest(), { maxModuleBytes: 10 })).rejects.toThrow(ModuleInvalidError);
  });

  it('never compiles', async () => {
    const cache = new ModuleCache();
    await inspectModule(guest(), { cache });
    expect(cache.misses + cache.hits).toBe(0);
  });
});
