import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, ModuleInvalidError } from '../../host/errors.ts';
import { ModuleCache, compileModule } from '../../host/loader/compile.ts';
import { guest, wat } from './wat.ts';

const invalid = wat('(module (func (result i32)))');

describe('compileModule', () => {
  it('compiles valid bytes and turns a compile error into ModuleInvalidError', async () => {
    await expect(compileModule(guest())).resolves.toBeDefined();
    await expect(compileModule(invalid)).rejects.toThrow(ModuleInvalidError);
    await expect(compileModule(invalid)).rejects.toThrow(/^module failed to compile: /);
  });
});

describe('ModuleCache', () => {
  it('counts a miss, then a hit, and returns the same module', async () => {
    const cache = new ModuleCache();
    expect(cache.maxEntries).toBe(64);
    const first = await cache.compile('a', guest());
    const second = await cache.compile('a', guest());
    expect(second).toBe(first);
    expect({ hits: cache.hits, misses: cache.misses, size: cache.size }).toEqual({ hits: 1, misses: 1, size: 1 });
  });

  it('get() looks up without counting', async () => {
    const cache = new ModuleCache();
    expect(cache.get('a')).toBeUndefined();
    const module = await cache.compile('a', guest());
    expect(cache.get('a')).toBe(module);
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 0, misses: 1 });
  });

  it('never looks at the bytes of a key it holds', async () => {
    const cache = new ModuleCache();
    const module = await cache.compile('a', guest());
    await expect(cache.compile('a', invalid)).resolves.toBe(module);
  });

  it('evicts the least recently used entry beyond maxEntries', async () => {
    const cache = new ModuleCache(2);
    const a = await cache.compile('a', guest());
    await cache.compile('b', guest());
    expect(cache.get('a')).toBe(a); // a is now more recent than b
    await cache.compile('c', guest());
    expect(cache.size).toBe(2);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(a);
    expect(cache.get('c')).toBeDefined();
    // A hit through compile() refreshes too: c, then a, so d evicts c.
    await cache.compile('c', guest());
    await cache.compile('a', guest());
    await cache.compile('d', guest());
    expect(['a', 'c', 'd'].map((k) => cache.get(k) !== undefined)).toEqual([true, false, true]);
  });

  it('shares one compilation between concurrent calls for one key', async () => {
    const cache = new ModuleCache();
    const p1 = cache.compile('k', guest());
    const p2 = cache.compile('k', guest());
    expect(p2).toBe(p1);
    expect(cache.size).toBe(0); // in flight, not yet held
    const [m1, m2] = await Promise.all([p1, p2]);
    expect(m2).toBe(m1);
    expect({ hits: cache.hits, misses: cache.misses, size: cache.size }).toEqual({ hits: 1, misses: 1, size: 1 });
  });

  it('does not cache a failure: the next call compiles again', async () => {
    const cache = new ModuleCache();
    const p1 = cache.compile('bad', invalid);
    const p2 = cache.compile('bad', invalid);
    await expect(p1).rejects.toThrow(ModuleInvalidError);
    await expect(p2).rejects.toThrow(ModuleInvalidError);
    expect(cache.size).toBe(0);
    await expect(cache.compile('bad', guest())).resolves.toBeDefined();
    expect({ hits: cache.hits, misses: cache.misses, size: cache.size }).toEqual({ hits: 1, misses: 2, size: 1 });
  });

  it('refuses a bad maxEntries', () => {
    expect(() => new ModuleCache(1)).not.toThrow();
    expect(() => new ModuleCache(0)).toThrow(InvalidArgumentError);
    expect(() => new ModuleCache(2.5)).toThrow(InvalidArgumentError);
  });
});
