import { describe, expect, it } from 'vitest';
import { FUEL_BUDGET, FUEL_EXHAUSTED, FUEL_GLOBAL, FUEL_MODULE, START_EXPORT, instrumentFuel } from '../../host/loader/instrument.ts';
import { ModuleCache } from '../../host/loader/compile.ts';
import { cacheKey, instrumentationCache, loadModule } from '../../host/loader/pipeline.ts';
import { readSections } from '../../host/loader/sections.ts';
import { wasmEngine } from '../../host/loader/wasm-api.ts';
import { WasmvisorError } from '../../host/errors.ts';
import { Hypervisor } from '../../host/index.ts';
import { guest, HYPERCALL_IMPORT, wat } from './wat.ts';

const compile = (bytes: Uint8Array): WebAssembly.Module => new wasmEngine.Module(bytes);

/** Signal the stub host throws when the guest reports exhaustion. */
class OutOfFuel {}

/**
 * Instantiates instrumented bytes with a host that owns the counter, runs `run(arg)`, and
 * returns what happened plus the fuel left. `log` collects the guest's `env.log` calls.
 */
function runMetered(bytes: Uint8Array, budget: bigint, arg = 0): { result: number | 'exhausted'; left: bigint; log: number[] } {
  const log: number[] = [];
  const instance = new WebAssembly.Instance(compile(bytes), {
    env: { log: (v: number) => void log.push(v) },
    [FUEL_MODULE]: {
      [FUEL_BUDGET]: new WebAssembly.Global({ value: 'i64', mutable: false }, budget),
      [FUEL_EXHAUSTED]: () => {
        throw new OutOfFuel();
      },
    },
  });
  const run = instance.exports.run as (n: number) => number;
  const fuel = instance.exports[FUEL_GLOBAL] as WebAssembly.Global;
  try {
    return { result: run(arg), left: fuel.value as bigint, log };
  } catch (error) {
    if (error instanceof OutOfFuel) return { result: 'exhausted', left: fuel.value as bigint, log };
    throw error;
  }
}

/** Sum 1..n, logging each i; a recursive helper to exercise function entries too. */
const COUNTER = wat(`(module
  (import "env" "log" (func $log (param i32)))
  (memory (export "memory") 1 1)
  (func $id (param i32) (result i32) (local.get 0))
  (func (export "run") (param $n i32) (result i32) (local $i i32) (local $sum i32)
    (block $done
      (loop $next
        (br_if $done (i32.gt_s (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n)))
        (call $log (local.get $i))
        (local.set $sum (i32.add (local.get $sum) (call $id (local.get $i))))
        (br $next)))
    (local.get $sum)))`);

describe('instrumentFuel', () => {
  it('adds the budget and exhaustion imports and the counter export, and nothing else', async () => {
    const { bytes, checkpoints } = await instrumentFuel(COUNTER);
    const module = compile(bytes);
    const byName = (a: { module: string; name: string }, b: { module: string; name: string }): number => `${a.module}.${a.name}`.localeCompare(`${b.module}.${b.name}`);
    expect(WebAssembly.Module.imports(module).sort(byName)).toEqual([
      { module: 'env', name: 'log', kind: 'function' },
      { module: FUEL_MODULE, name: FUEL_BUDGET, kind: 'global' },
      { module: FUEL_MODULE, name: FUEL_EXHAUSTED, kind: 'function' },
    ].sort(byName));
    expect(WebAssembly.Module.exports(module)).toEqual([...WebAssembly.Module.exports(compile(COUNTER)), { name: FUEL_GLOBAL, kind: 'global' }]);
    expect(checkpoints).toBe(3); // two function entries, one loop header
  });

  it('with enough fuel computes the same result as the original', async () => {
    const { bytes } = await instrumentFuel(COUNTER);
    const original = new WebAssembly.Instance(compile(COUNTER), { env: { log: () => {} } });
    const expected = (original.exports.run as (n: number) => number)(1000);
    const metered = runMetered(bytes, 1n << 40n, 1000);
    expect(metered.result).toBe(expected);
    expect(metered.log).toHaveLength(1000);
    expect(metered.left).toBeLessThan(1n << 40n);
  });

  it('stops at the same point for the same budget, and later for a larger one', async () => {
    const { bytes } = await instrumentFuel(COUNTER);
    const a = runMetered(bytes, 500n, 1_000_000);
    const b = runMetered(bytes, 500n, 1_000_000);
    expect(a.result).toBe('exhausted');
    expect(a.log).toEqual(b.log);
    expect(a.left).toBe(b.left);
    expect(a.left).toBeLessThan(0n);
    const c = runMetered(bytes, 5000n, 1_000_000);
    expect(c.result).toBe('exhausted');
    expect(c.log.length).toBeGreaterThan(a.log.length);
  });

  it('charges more for more work: consumed fuel is monotone in the iteration count', async () => {
    const { bytes } = await instrumentFuel(COUNTER);
    const budget = 1n << 40n;
    const used = [0, 1, 10, 100, 1000].map((n) => budget - runMetered(bytes, budget, n).left);
    for (let i = 1; i < used.length; i++) expect(used[i]).toBeGreaterThan(used[i - 1]!);
    // Linear in the iterations: each one charges the loop region and one call of $id.
    expect(used[4]! - used[3]!).toBe((used[3]! - used[2]!) * 10n);
  });

  it('a tiny budget stops the guest at its first function entry', async () => {
    const { bytes } = await instrumentFuel(COUNTER);
    const r = runMetered(bytes, 1n, 10);
    expect(r.result).toBe('exhausted');
    expect(r.log).toEqual([]);
  });

  it('meters an infinite loop with no calls in it', async () => {
    const spin = wat(`(module (memory (export "memory") 1 1)
      (func (export "run") (param i32) (result i32) (loop $l (br $l)) (i32.const 0)))`);
    const { bytes } = await instrumentFuel(spin);
    expect(runMetered(bytes, 10_000n).result).toBe('exhausted');
  });

  it('a guest that catches the exhaustion does not escape it', async () => {
    // Each call's entry check throws into the guest's catch_all; the loop header's check is
    // outside the try, the counter stays negative, so the next iteration throws out of run.
    const catcher = wat(`(module (memory (export "memory") 1 1)
      (func $work (nop))
      (func (export "run") (param i32) (result i32)
        (loop $l (try (do (call $work)) (catch_all)) (br $l))
        (i32.const 0)))`);
    const { bytes } = await instrumentFuel(catcher);
    expect(runMetered(bytes, 1000n).result).toBe('exhausted');
  });

  it('moves a start function out of instantiation and exports it, metered', async () => {
    const started = wat(`(module (import "env" "log" (func $log (param i32))) (memory (export "memory") 1 1)
      (func $init (call $log (i32.const 42))) (start $init)
      (func (export "run") (param i32) (result i32) (i32.const 0)))`);
    const { bytes } = await instrumentFuel(started);
    const log: number[] = [];
    const instance = new WebAssembly.Instance(compile(bytes), {
      env: { log: (v: number) => void log.push(v) },
      [FUEL_MODULE]: { [FUEL_BUDGET]: new WebAssembly.Global({ value: 'i64', mutable: false }, 100n), [FUEL_EXHAUSTED]: () => {} },
    });
    expect(log).toEqual([]); // nothing ran during instantiation
    (instance.exports[START_EXPORT] as () => void)();
    expect(log).toEqual([42]);
    expect((instance.exports[FUEL_GLOBAL] as WebAssembly.Global).value).toBeLessThan(100n);
    // Without a start function, no start export.
    expect(WebAssembly.Module.exports(compile((await instrumentFuel(COUNTER)).bytes)).map((e) => e.name)).not.toContain(START_EXPORT);
  });

  it('meters the post-MVP instructions a guest may use on Node 20', async () => {
    const modern = wat(`(module (memory (export "memory") 1 1)
      (table $t 4 funcref) (elem $e func $f $f) (data $d "abcd")
      (func $f (result i32 i32) (i32.const 1) (i32.const 2))
      (func (export "run") (param i32) (result i32) (local v128)
        (memory.init $d (i32.const 0) (i32.const 0) (i32.const 4)) (data.drop $d)
        (memory.copy (i32.const 8) (i32.const 0) (i32.const 4)) (memory.fill (i32.const 16) (i32.const 7) (i32.const 4))
        (drop (table.grow $t (ref.null func) (i32.const 1)))
        (drop (ref.is_null (table.get $t (i32.const 1))))
        (local.set 1 (i8x16.splat (i32.const 3)))
        (drop (i32.extend8_s (i32.const 255)))
        (drop (i32.trunc_sat_f32_s (f32.const 1e20)))
        (drop (call $f)) (drop)
        (i32.add (i8x16.extract_lane_u 0 (local.get 1)) (i32.load (i32.const 8)))))`);
    const original = new WebAssembly.Instance(compile(modern)).exports.run as (n: number) => number;
    const { bytes } = await instrumentFuel(modern);
    expect(runMetered(bytes, 1000n).result).toBe(original(0));
  });

  it('refuses, rather than runs unmetered, the bulk table instructions binaryen.js cannot walk', async () => {
    for (const [name, code] of [
      ['table.fill', '(table.fill $t (i32.const 0) (ref.null func) (i32.const 1))'],
      ['table.copy', '(table.copy $t $t (i32.const 2) (i32.const 0) (i32.const 1))'],
      ['table.init', '(table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))'],
      ['elem.drop', '(elem.drop $e)'],
    ]) {
      const bytes = wat(`(module (memory (export "memory") 1 1) (table $t 4 funcref) (elem $e func $run)
        (func $run (export "run") (param i32) (result i32) ${code} (i32.const 0)))`);
      const error: unknown = await instrumentFuel(bytes).then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(WasmvisorError);
      expect(`${(error as WasmvisorError).code}: ${(error as WasmvisorError).message}`).toMatch(new RegExp(`^ERR_FEATURE_DENIED: fuel metering cannot meter ${name} \\(in function \\S+\\)$`));
    }
  });

  it('does not collide with guest-chosen internal names', async () => {
    // The name section may use the instrumenter's names; binaryen's internal names must not clash.
    const named = wat(`(module (memory (export "memory") 1 1)
      (global $${FUEL_GLOBAL} (mut i64) (i64.const 7))
      (global $${FUEL_BUDGET} i64 (i64.const 1))
      (func $${FUEL_EXHAUSTED})
      (func (export "run") (param i32) (result i32) (call $${FUEL_EXHAUSTED}) (i32.wrap_i64 (global.get $${FUEL_GLOBAL}))))`);
    const { bytes } = await instrumentFuel(named);
    expect(runMetered(bytes, 1000n).result).toBe(7);
  });

  it('refuses bytes binaryen cannot read in the same words every time: its message, never its exception’s heap address', async () => {
    const unreadable = [
      Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x63]), // a section id and nothing after it
      Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 9, 1, 0x60]), // a type section cut short
    ];
    for (const bytes of unreadable) {
      const messages: string[] = [];
      // binaryen's exception object carries a field that is its address, new on every throw.
      for (let i = 0; i < 3; i++) messages.push(await instrumentFuel(bytes).then(() => 'metered', (e: unknown) => `${(e as { code?: string }).code}: ${(e as Error).message}`));
      expect(messages[0]).toMatch(/^ERR_FEATURE_DENIED: fuel metering cannot read this module \(binaryen: [^{}"]+\)$/);
      expect(messages).toEqual([messages[0], messages[0], messages[0]]);
    }
  });

  it('is deterministic: the same input gives the same bytes', async () => {
    const a = await instrumentFuel(COUNTER);
    const b = await instrumentFuel(COUNTER);
    expect(a.bytes).toEqual(b.bytes);
  });
});

describe('the pipeline with fuel', () => {
  async function refusal(bytes: Uint8Array): Promise<string> {
    try {
      await loadModule(bytes, { fuel: true });
    } catch (error) {
      if (error instanceof WasmvisorError) return `${error.code}: ${error.message}`;
      throw error;
    }
    return 'admitted';
  }

  it('refuses a guest that exports or imports a reserved __wasmvisor_ name, with or without fuel', async () => {
    const exporting = guest({ extra: `(global (export "${FUEL_GLOBAL}") (mut i64) (i64.const 0))` });
    expect(await refusal(exporting)).toMatch(/^ERR_MODULE_INVALID: export __wasmvisor_fuel uses the prefix __wasmvisor_/);
    await expect(loadModule(exporting)).rejects.toMatchObject({ code: 'ERR_MODULE_INVALID' });
    const fn = guest({ extra: '(func (export "__wasmvisor_x"))' });
    expect(await refusal(fn)).toMatch(/^ERR_MODULE_INVALID/);
    // Declaring the instrumenter's own import is refused too: the guest never declares it.
    const importing = guest({ imports: `${HYPERCALL_IMPORT} (import "hv" "${FUEL_EXHAUSTED}" (func))` });
    expect(await refusal(importing)).toMatch(/^ERR_MODULE_INVALID: import hv.__wasmvisor_fuel_exhausted/);
  });

  it('instruments only when asked, and keys the cache by whether and how it instrumented', async () => {
    const bytes = guest({ start: '(func (export "_start") (loop $l (br_if $l (i32.const 0))))' });
    const cache = new ModuleCache();
    const plain = await loadModule(bytes, { cache });
    const metered = await loadModule(bytes, { cache, fuel: true });
    expect(plain.fuelMetered).toBe(false);
    expect(plain.bytes).toEqual(bytes);
    expect(metered.fuelMetered).toBe(true);
    expect(WebAssembly.Module.imports(metered.module).map((i) => i.name)).toContain(FUEL_BUDGET);
    expect(WebAssembly.Module.imports(plain.module).map((i) => i.name)).toEqual(['hypercall']);
    expect(cacheKey(metered.measurement, metered.plan, true)).toBe(`${cacheKey(metered.measurement, metered.plan)}/fuel1`);
    expect(cache.misses).toBe(2);

    // The clamp rewrite survives instrumentation: the metered bytes keep the planned maximum.
    const clampedGuest = guest({ memory: '(memory (export "memory") 1)' });
    const clamped = await loadModule(clampedGuest, { fuel: true, policy: { memoryPages: 8 } });
    expect(clamped.plan.memoryMaximum).toBe(8);
    expect(readSections(clamped.bytes).memories[0]).toMatchObject({ initial: 1, maximum: 8 });

    const before = { ...instrumentationCache };
    const again = await loadModule(bytes, { cache, fuel: true });
    expect(again.module).toBe(metered.module);
    expect(cache.hits).toBe(1);
    expect(instrumentationCache.hits).toBe(before.hits + 1);
    expect(instrumentationCache.misses).toBe(before.misses);
  });
});

describe('hv.inspect with a fuel limit or a CPU cap', () => {
  // README: hv.inspect says whether createPartition would admit the module. A fuel limit or a CPU
  // cap meters it, and the meter refuses code it cannot see (docs/ABI.md#fuel-metering).
  const fill = guest({ extra: '(table $t 4 funcref) (func (export "fill") (table.fill $t (i32.const 0) (ref.null func) (i32.const 2)))' });

  it('refuses what createPartition would refuse, with the same code and message', async () => {
    const hv = new Hypervisor({ warmWorkers: 0 });
    try {
      for (const limits of [{ fuel: 1_000_000 }, { cpu: { maxPercent: 50 } }]) {
        const created: unknown = await hv.createPartition({ name: 'fill', module: fill, limits }).then(() => null, (e: unknown) => e);
        expect(created).toMatchObject({ code: 'ERR_FEATURE_DENIED' });
        const inspected = await hv.inspect(fill, limits);
        expect(inspected.verdict).toEqual({ admitted: false, code: 'ERR_FEATURE_DENIED', message: (created as Error).message });
      }
      // Shared placement and a process of its own meter every module too (docs/ABI.md, "Fuel metering").
      for (const where of [{ placement: 'shared' as const }, { isolation: 'process' as const }]) {
        const created: unknown = await hv.createPartition({ name: 'fill', module: fill, ...where }).then(() => null, (e: unknown) => e);
        expect([where, created]).toMatchObject([where, { code: 'ERR_FEATURE_DENIED', message: expect.stringMatching(/^fuel metering cannot meter table\.fill/) }]);
      }
      // Unmetered, the same module is admitted by both.
      expect((await hv.inspect(fill)).verdict.admitted).toBe(true);
      const plain = await hv.createPartition({ name: 'plain', module: fill });
      await plain.destroy();
    } finally {
      await hv.close();
    }
  });
});
