import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, LimitModuleError } from '../../host/errors.ts';
import { DEFAULT_MODULE_LIMITS, MODULE_LIMIT_KEYS, resolveModuleLimits, type ModuleLimits } from '../../host/loader/bounds.ts';
import { loadModule } from '../../host/loader/pipeline.ts';
import { readSections } from '../../host/loader/sections.ts';
import { customSection, guestWithBodies, localsBomb, nestingBomb, straightBody } from './bombs.mjs';
import { guest, wat } from './wat.ts';

const run = promisify(execFile);

/** Reads `bytes` with one bound set to `value` (the rest at their defaults). */
function readWith(bytes: Uint8Array, key: keyof ModuleLimits, value: number) {
  return readSections(bytes, resolveModuleLimits({ [key]: value }));
}

/**
 * Each bound, with a module whose measure for that bound is `n`: read at a limit of n (the
 * edge) it is accepted, at n - 1 (one past) it is refused naming the bound.
 */
const cases: [keyof ModuleLimits, number, Uint8Array][] = [
  ['types', 3, wat('(module (type (func)) (type (func (param i32))) (type (func (result i32))))')],
  ['params', 4, wat('(module (type (func (param i32 i64 f32 f64))))')],
  ['results', 3, wat('(module (type (func (result i32 i32 i32))))')],
  ['imports', 2, wat('(module (import "hv" "a" (func)) (import "hv" "b" (func)))')],
  ['exports', 3, guest({ extra: '(func (export "f")) ' })],
  ['functions', 3, wat('(module (import "hv" "a" (func)) (func) (func))')],
  ['functionBodyBytes', 4, guestWithBodies([Uint8Array.from([0x00, 0x01, 0x01, 0x0b])])],
  ['localsPerFunction', 300, guestWithBodies([Uint8Array.from([2, 100, 0x7f, 0xc8, 0x01, 0x7e, 0x0b])])],
  ['totalLocals', 14, localsBomb(2, 7)],
  ['nestingDepth', 25, nestingBomb(25)],
  ['brTableTargets', 5, wat('(module (func (block (block (br_table 0 1 0 1 0 1 (i32.const 0))))))')],
  ['totalBrTableTargets', 6, wat('(module (func (block (br_table 0 0 0 (i32.const 0)) (br_table 0 0 0 0 0 (i32.const 0)))))')],
  ['globals', 2, wat('(module (import "hv" "g" (global i32)) (global i32 (i32.const 0)))')],
  ['tables', 2, wat('(module (table 1 funcref) (table 1 funcref))')],
  ['memories', 2, wat('(module (memory 1) (memory 1))')],
  ['tags', 2, wat('(module (tag) (tag (param i32)))')],
  ['dataSegments', 2, wat('(module (memory 1) (data (i32.const 0) "a") (data (i32.const 1) "b"))')],
  ['elementSegments', 2, wat('(module (table 2 funcref) (func $f) (elem (i32.const 0) $f) (elem (i32.const 1) $f))')],
  ['customSections', 2, guestWithBodies([Uint8Array.from([0, 0x0b])], [customSection('a', []), customSection('b', [1, 2])])],
];

describe('module bounds', () => {
  it('cover every bound in the table above (meteredCodeBytes applies to metered modules: tested below)', () => {
    expect([...cases.map(([key]) => key), 'meteredCodeBytes'].sort()).toEqual([...MODULE_LIMIT_KEYS].sort());
  });

  it('meteredCodeBytes: admits a metered module at the edge, refuses it one byte past, and never applies without metering', async () => {
    const bytes = guestWithBodies([straightBody(100)]);
    const code = readSections(bytes).sections.find((s) => s.id === 10)!;
    const size = code.end - code.payloadStart;
    await expect(loadModule(bytes, { fuel: true, policy: { moduleLimits: { meteredCodeBytes: size } } })).resolves.toBeDefined();
    await expect(loadModule(bytes, { fuel: true, policy: { moduleLimits: { meteredCodeBytes: size - 1 } } })).rejects.toThrow(/moduleLimits.meteredCodeBytes/);
    await expect(loadModule(bytes, { policy: { moduleLimits: { meteredCodeBytes: 0 } } })).resolves.toBeDefined();
  });

  for (const [key, n, bytes] of cases) {
    it(`${key}: admits ${n} at a limit of ${n}, refuses it at ${n - 1} naming moduleLimits.${key}`, () => {
      expect(() => readWith(bytes, key, n)).not.toThrow();
      expect(() => readWith(bytes, key, n - 1)).toThrow(LimitModuleError);
      expect(() => readWith(bytes, key, n - 1)).toThrow(`over the limit of ${n - 1} (moduleLimits.${key})`);
    });
  }

  it('has defaults no fixture comes near, and every default at or below the engine’s own limit', () => {
    const engine: Partial<Record<keyof ModuleLimits, number>> = {
      types: 1_000_000, params: 1000, results: 1000, imports: 100_000, exports: 100_000, functions: 1_000_000,
      functionBodyBytes: 7_654_321, localsPerFunction: 50_000, brTableTargets: 65_520, globals: 1_000_000, tables: 100_000, tags: 1_000_000, dataSegments: 100_000,
    };
    for (const [key, max] of Object.entries(engine)) expect(DEFAULT_MODULE_LIMITS[key as keyof ModuleLimits], key).toBeLessThanOrEqual(max);
  });

  it('refuses bad bound settings', () => {
    expect(() => resolveModuleLimits({ nestingDepth: -1 })).toThrow(InvalidArgumentError);
    expect(() => resolveModuleLimits({ nestingDepth: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => resolveModuleLimits({ nestingDepth: 2 ** 32 })).toThrow(InvalidArgumentError);
    expect(() => resolveModuleLimits({ depth: 3 } as Partial<ModuleLimits>)).toThrow(/moduleLimits.depth is not a module bound/);
    expect(resolveModuleLimits({ nestingDepth: undefined })).toEqual(DEFAULT_MODULE_LIMITS);
  });

  it('takes bounds it resolved itself as they are (frozen, complete); any other object is checked, frozen or not', () => {
    const resolved = resolveModuleLimits({ globals: 7 });
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(resolveModuleLimits(resolved)).toBe(resolved);
    // A look-alike: same shape, frozen, but not made here, so it is checked (and refused).
    const forged = Object.freeze({ ...resolved, nestingDepth: -1 });
    expect(() => resolveModuleLimits(forged)).toThrow(InvalidArgumentError);
    const copy = Object.freeze({ ...resolved });
    expect(resolveModuleLimits(copy)).not.toBe(copy);
    expect(resolveModuleLimits(copy)).toEqual(resolved);
  });

  it('counts nesting without recursion: 2 million nested blocks cost the reader one counter', () => {
    const bomb = nestingBomb(2_000_000);
    expect(() => readSections(bomb, resolveModuleLimits({ functionBodyBytes: 7_000_000, nestingDepth: 0xffff_ffff }))).not.toThrow();
    expect(() => readSections(bomb)).toThrow(/moduleLimits.functionBodyBytes/);
    expect(() => readSections(nestingBomb(600_000))).toThrow('function 0 nests blocks 10001 deep');
  });

  it('steps over every instruction of the fixtures exactly as the engine does (the scan ends on each final end)', () => {
    const body = wat(`(module (memory 1) (table 1 funcref) (elem declare func 0)
      (func (param i32) (result i32) (local i64 v128)
        (drop (block (result i32) (loop (br_if 1 (i32.const 1) (local.get 0)) (br 0)) (i32.const 0)))
        (drop (select (result i32) (i32.const 1) (i32.const 2) (local.get 0)))
        (drop (i64.const -9223372036854775808)) (drop (f32.const 1.5)) (drop (f64.const -2.5))
        (local.set 2 (v128.const i64x2 1 2)) (local.set 2 (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get 2) (local.get 2)))
        (drop (i32x4.extract_lane 3 (local.get 2))) (local.set 2 (v128.load32_lane offset=4 1 (i32.const 0) (local.get 2)))
        (memory.fill (i32.const 0) (i32.const 0) (i32.const 0)) (memory.copy (i32.const 0) (i32.const 0) (i32.const 0))
        (drop (i32.atomic.rmw.add offset=8 (i32.const 0) (i32.const 1))) (atomic.fence)
        (drop (ref.is_null (ref.null func))) (drop (ref.func 0)) (drop (table.size 0))
        (try (do (nop)) (catch_all))
        (i32.trunc_sat_f32_s (f32.const 0))))`);
    expect(WebAssembly.validate(body as Uint8Array<ArrayBuffer>)).toBe(true);
    expect(readSections(body).shape.code).toMatchObject({ bodies: 1, maxDepth: 2 });
  });

  it('refuses the issue’s bombs through the pipeline, before the engine sees them', async () => {
    await expect(loadModule(nestingBomb(2_000_000))).rejects.toThrow(LimitModuleError);
    await expect(loadModule(localsBomb(150_000, 50_000))).rejects.toThrow(/moduleLimits.totalLocals/);
    await expect(loadModule(guestWithBodies([straightBody(1000)]), { policy: { moduleLimits: { functionBodyBytes: 100 } } })).rejects.toThrow(/moduleLimits.functionBodyBytes/);
  });

  it('keeps the peak memory of a process loading and starting the nesting bomb under 512 MiB', async () => {
    // A fresh process: its peak RSS covers the root, the loader's thread and the engine.
    // On the loader without bounds, the bomb compiled and its first call drove lazy
    // compilation to 1.8 GB and 30 s (issue #10.3).
    const dist = new URL('../../dist/index.js', import.meta.url).href;
    const bombs = new URL('./bombs.mjs', import.meta.url).href;
    const script = `
      const { Hypervisor } = await import(${JSON.stringify(dist)});
      const { nestingBomb } = await import(${JSON.stringify(bombs)});
      const hv = new Hypervisor();
      let result;
      for (const depth of [2_000_000, 600_000]) {
        try {
          const p = await hv.createPartition({ name: 'bomb' + depth, module: nestingBomb(depth), limits: { timeoutMs: 15000 } });
          await p.start();
          result = (await p.exited).reason;
        } catch (error) { result = error.code; }
        if (result !== 'ERR_LIMIT_MODULE') break;
      }
      await hv.close();
      console.log(JSON.stringify({ result, maxRssMiB: process.resourceUsage().maxRSS / 1024 }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('../../', import.meta.url)), timeout: 60_000 });
    const { result, maxRssMiB } = JSON.parse(stdout.trim()) as { result: string; maxRssMiB: number };
    expect(result).toBe('ERR_LIMIT_MODULE');
    expect(maxRssMiB).toBeLessThan(512);
  }, 90_000);
});
