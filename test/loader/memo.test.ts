// The root's memo of the loader thread's answers (pipeline.ts, PREPARED_MEMO_MAX_BYTES): a module
// loaded again with a cache, under the same policy, is answered without a round trip to the
// loader's thread, up to 64 KiB; a larger one always takes the round trip. The bound at its edge
// and one past it, for bytes in memory and for a file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ModuleCache } from '../../host/loader/compile.ts';
import type { FuncSig } from '../../host/loader/sections.ts';
import { loaderThread } from '../../host/loader/offthread.ts';
import { instrumentationCache, loadModule, type LoadOptions } from '../../host/loader/pipeline.ts';
import { guest, leb } from './wat.ts';

const MEMO_MAX_BYTES = 64 * 1024;

/** `bytes` with a custom section appended that brings it to exactly `total` bytes. */
function padTo(bytes: Uint8Array, total: number): Uint8Array {
  const name = [3, ...new TextEncoder().encode('pad')];
  for (let data = total - bytes.length - 1 - name.length; data >= 0; data--) {
    const payload = name.length + data;
    if (bytes.length + 1 + leb(payload).length + payload === total) {
      const out = new Uint8Array(total);
      out.set(bytes);
      out.set([0, ...leb(payload), ...name], bytes.length);
      return out;
    }
  }
  throw new Error(`cannot pad ${bytes.length} bytes to ${total}`);
}

/** How many times the loader's thread was asked to prepare while `run` ran. */
async function preparesDuring(run: () => Promise<unknown>): Promise<number> {
  const asked = vi.spyOn(loaderThread(), 'request');
  try {
    await run();
    return asked.mock.calls.filter(([job]) => job === 'prepare').length;
  } finally {
    asked.mockRestore();
  }
}

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wasmvisor-memo-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the memo of prepared modules', () => {
  // A policy of its own per case, so that no other test's loads answer from the memo here.
  const options = (memoryPages: number): LoadOptions => ({ cache: new ModuleCache(), policy: { memoryPages } });

  it('answers a module of exactly 64 KiB again without the loader thread, and asks for one byte more', async () => {
    const edge = padTo(guest(), MEMO_MAX_BYTES);
    const past = padTo(guest(), MEMO_MAX_BYTES + 1);
    expect(edge.length).toBe(MEMO_MAX_BYTES);
    const atEdge = options(11);
    expect(await preparesDuring(() => loadModule(edge, atEdge))).toBe(1);
    expect(await preparesDuring(() => loadModule(Uint8Array.from(edge), atEdge))).toBe(0);
    const pastEdge = options(12);
    expect(await preparesDuring(() => loadModule(past, pastEdge))).toBe(1);
    expect(await preparesDuring(() => loadModule(Uint8Array.from(past), pastEdge))).toBe(1);
  });

  it('answers a module read from a file again without the loader thread, up to the same bound', async () => {
    const edge = join(dir, 'edge.wasm');
    const past = join(dir, 'past.wasm');
    await writeFile(edge, padTo(guest(), MEMO_MAX_BYTES));
    await writeFile(past, padTo(guest(), MEMO_MAX_BYTES + 1));
    const atEdge = options(13);
    expect(await preparesDuring(() => loadModule(edge, atEdge))).toBe(1);
    const again = await preparesDuring(() => loadModule(edge, atEdge));
    expect(again).toBe(0);
    const pastEdge = options(14);
    expect(await preparesDuring(() => loadModule(past, pastEdge))).toBe(1);
    expect(await preparesDuring(() => loadModule(past, pastEdge))).toBe(1);
  });
});

describe('the memo answers only for the policy it was prepared under', () => {
  const hypercall: FuncSig = { params: ['i32', 'i32', 'i32', 'i32', 'i32'], results: ['i32'] };
  const imports = (module: string, name: string, sig: FuncSig) => new Map([[module, new Map([[name, sig]])]]);

  it('a policy whose import table differs in a module, a name, a parameter or a result judges again', async () => {
    const bytes = guest();
    const cache = new ModuleCache();
    const admitted = await loadModule(bytes, { cache, policy: { memoryPages: 15, imports: imports('hv', 'hypercall', hypercall) } });
    expect(admitted.plan.memoryMaximum).toBe(null);
    const others = [
      imports('env', 'hypercall', hypercall),
      imports('hv', 'hypercall2', hypercall),
      imports('hv', 'hypercall', { params: ['i32', 'i32', 'i32', 'i32', 'i64'], results: ['i32'] }),
      imports('hv', 'hypercall', { params: hypercall.params, results: ['i64'] }),
      imports('hv', 'hypercall', { params: hypercall.params, results: [] }),
    ];
    for (const table of others) {
      await expect(loadModule(Uint8Array.from(bytes), { cache, policy: { memoryPages: 15, imports: table } })).rejects.toMatchObject({ code: 'ERR_IMPORT_DENIED' });
    }
    // The same policy again is still answered from the memo.
    expect(await preparesDuring(() => loadModule(Uint8Array.from(bytes), { cache, policy: { memoryPages: 15, imports: imports('hv', 'hypercall', hypercall) } }))).toBe(0);
  });

  it('fuel, the suspend transform and module bounds are part of what an answer is for', async () => {
    const bytes = guest();
    const cache = new ModuleCache();
    const policy = { memoryPages: 16 };
    const plain = await loadModule(bytes, { cache, policy });
    expect(plain.fuelMetered).toBe(false);
    const metered = await loadModule(Uint8Array.from(bytes), { cache, policy, fuel: true });
    expect(metered.fuelMetered).toBe(true);
    await expect(loadModule(Uint8Array.from(bytes), { cache, policy: { ...policy, moduleLimits: { functions: 0 } } })).rejects.toMatchObject({ code: 'ERR_LIMIT_MODULE' });
  });
});

describe('loads without a cache, and the instrumentation counters', () => {
  it('a load without a cache compiles for itself, even when a load with one left an answer in the memo', async () => {
    const bytes = guest();
    const policy = { memoryPages: 17 };
    const cache = new ModuleCache();
    const a = await loadModule(bytes, { cache, policy });
    const b = await loadModule(Uint8Array.from(bytes), { policy });
    expect(b.measurement).toBe(a.measurement);
    expect(b.module).not.toBe(a.module);
    expect(cache.hits).toBe(0);
  });

  it('counts the first metered load of a module as an instrumentation miss, not a hit', async () => {
    const bytes = guest({ extra: '(func (export "f18"))' });
    const before = { ...instrumentationCache };
    await loadModule(bytes, { fuel: true, policy: { memoryPages: 18 } });
    expect(instrumentationCache.misses).toBe(before.misses + 1);
    expect(instrumentationCache.hits).toBe(before.hits);
    // Again, with a cache of its own: compiled again, but the loader thread's instrumented
    // bytes are reused, and counted as such.
    await loadModule(Uint8Array.from(bytes), { fuel: true, cache: new ModuleCache(), policy: { memoryPages: 18 } });
    expect(instrumentationCache.misses).toBe(before.misses + 1);
    expect(instrumentationCache.hits).toBe(before.hits + 1);
  });
});
