// What an embedder passes the loader, refused or taken as documented: module bounds
// (resolveModuleLimits) and the compiled-module cache's size, each refusal naming the option.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../host/errors.ts';
import { DEFAULT_MODULE_LIMITS, MODULE_LIMIT_KEYS, resolveModuleLimits, type ModuleLimits } from '../../host/loader/bounds.ts';
import { ModuleCache } from '../../host/loader/compile.ts';
import { thrownBy } from './wat.ts';

const refusal = (run: () => unknown): InvalidArgumentError => thrownBy(run, InvalidArgumentError);

describe('resolveModuleLimits', () => {
  it('takes a bound given as undefined as not given: its default applies', () => {
    const limits = resolveModuleLimits({ types: undefined, imports: 7 });
    expect(limits.types).toBe(DEFAULT_MODULE_LIMITS.types);
    expect(limits.imports).toBe(7);
  });

  it('names the unknown key and lists the known ones', () => {
    const message = refusal(() => resolveModuleLimits({ depth: 3 } as Partial<ModuleLimits>, 'policy.moduleLimits')).message;
    expect(message).toBe(`policy.moduleLimits.depth is not a module bound (known: ${MODULE_LIMIT_KEYS.join(', ')})`);
    expect(message).toContain('types, params, results');
  });

  it('names the bound, the allowed range and the value it got', () => {
    expect(refusal(() => resolveModuleLimits({ types: -1 })).message).toBe('moduleLimits.types must be an integer from 0 to 4294967295, got the number -1');
    expect(refusal(() => resolveModuleLimits({ tables: 2 ** 32 })).message).toBe('moduleLimits.tables must be an integer from 0 to 4294967295, got the number 4294967296');
  });

  it('refuses overrides that are not an object, naming them', () => {
    expect(refusal(() => resolveModuleLimits(null as unknown as Partial<ModuleLimits>, 'moduleLimits')).message).toBe('moduleLimits must be an object');
    expect(refusal(() => resolveModuleLimits(5 as unknown as Partial<ModuleLimits>, 'options.moduleLimits')).message).toBe('options.moduleLimits must be an object');
  });
});

describe('ModuleCache', () => {
  it('refuses a size that is not a positive integer, naming the value', () => {
    expect(refusal(() => new ModuleCache(0)).message).toBe('ModuleCache maxEntries must be a positive integer, got the number 0');
    expect(refusal(() => new ModuleCache(1.5)).message).toBe('ModuleCache maxEntries must be a positive integer, got the number 1.5');
    // A value String() cannot convert (no prototype) is named, not a TypeError of its own.
    expect(refusal(() => new ModuleCache(Object.create(null) as number)).message).toBe('ModuleCache maxEntries must be a positive integer, got an object');
    expect(new ModuleCache(1).maxEntries).toBe(1);
  });
});
