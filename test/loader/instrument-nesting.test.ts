// Fuel metering must find every loop, wherever it sits: a loop the walk does not reach gets no
// checkpoint, and a guest could spin in it without paying fuel. The walk descends by a table of
// child fields per binaryen expression kind (host/loader/instrument.ts, childFields). Each case
// below puts a loop in every child field of one kind (a loop with a result is an expression of
// any type) and checks that each got its checkpoint; one case also runs an endless loop placed
// where only the table leads the walk, and checks that it stops at the budget.
import { describe, expect, it } from 'vitest';
import { FUEL_BUDGET, FUEL_EXHAUSTED, FUEL_GLOBAL, FUEL_MODULE, START_EXPORT, instrumentFuel } from '../../host/loader/instrument.ts';
import { wasmEngine } from '../../host/loader/wasm-api.ts';
import { readSections } from '../../host/loader/sections.ts';
import { wat } from './wat.ts';

/** A loop of type `t` (an expression of that type); `v` is its value. */
const loop = (t: string, v: string): string => `(loop (result ${t}) ${v})`;
const i32 = loop('i32', '(i32.const 0)');
const i64 = loop('i64', '(i64.const 0)');
const v128 = loop('v128', '(v128.const i64x2 0 0)');
const funcref = loop('funcref', '(ref.null func)');

/** Each kind: a body of type () -> () using it, and how many loops the body holds. */
const cases: Record<string, [string, number]> = {
  block: ['(block (loop))', 1],
  if: [`(if ${i32} (then (loop)) (else (loop)))`, 3],
  loop: ['(loop (loop))', 2],
  'br_if (condition, value)': [`(drop (block (result i32) (br_if 0 ${i32} ${i32})))`, 2],
  'br_table (condition, value)': [`(drop (block (result i32) (br_table 0 ${i32} ${i32})))`, 2],
  call: [`(drop (call $id ${i32}))`, 1],
  call_indirect: [`(drop (call_indirect (type $unary) ${i32} ${i32}))`, 2],
  'local.set': [`(local.set $x ${i32})`, 1],
  'global.set': [`(global.set $g ${i32})`, 1],
  load: [`(drop (i32.load ${i32}))`, 1],
  store: [`(i32.store ${i32} ${i32})`, 2],
  'atomic rmw': [`(drop (i32.atomic.rmw.add ${i32} ${i32}))`, 2],
  'atomic cmpxchg': [`(drop (i32.atomic.rmw.cmpxchg ${i32} ${i32} ${i32}))`, 3],
  'atomic wait': [`(drop (memory.atomic.wait32 ${i32} ${i32} ${i64}))`, 3],
  'atomic notify': [`(drop (memory.atomic.notify ${i32} ${i32}))`, 2],
  // No children, but a kind the table must know (a kind it does not know is refused).
  'atomic.fence': ['(atomic.fence)', 0],
  'data.drop': ['(data.drop $d)', 0],
  'memory.size': ['(drop (memory.size))', 0],
  unreachable: ['(if (i32.const 0) (then (unreachable)))', 0],
  'ref.func': ['(drop (ref.func $id))', 0],
  'table.size': ['(drop (table.size $t))', 0],
  rethrow: ['(try (do) (catch_all (rethrow 0)))', 0],
  'simd extract': [`(drop (i32x4.extract_lane 0 ${v128}))`, 1],
  'simd replace': [`(drop (i32x4.replace_lane 0 ${v128} ${i32}))`, 2],
  'simd shuffle': [`(drop (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 ${v128} ${v128}))`, 2],
  'simd ternary': [`(drop (v128.bitselect ${v128} ${v128} ${v128}))`, 3],
  'simd shift': [`(drop (i32x4.shl ${v128} ${i32}))`, 2],
  'simd load': [`(drop (v128.load32_splat ${i32}))`, 1],
  'simd load lane': [`(drop (v128.load8_lane 0 ${i32} ${v128}))`, 2],
  'memory.init': [`(memory.init $d ${i32} ${i32} ${i32})`, 3],
  'memory.copy': [`(memory.copy ${i32} ${i32} ${i32})`, 3],
  'memory.fill': [`(memory.fill ${i32} ${i32} ${i32})`, 3],
  unary: [`(drop (i32.eqz ${i32}))`, 1],
  binary: [`(drop (i32.add ${i32} ${i32}))`, 2],
  select: [`(drop (select ${i32} ${i32} ${i32}))`, 3],
  drop: [`(drop ${i32})`, 1],
  return: [`(return ${i32})`, 1],
  'memory.grow': [`(drop (memory.grow ${i32}))`, 1],
  'ref.is_null': [`(drop (ref.is_null ${funcref}))`, 1],
  'table.get': [`(drop (table.get $t ${i32}))`, 1],
  'table.set': [`(table.set $t ${i32} ${funcref})`, 2],
  'table.grow': [`(drop (table.grow $t ${funcref} ${i32}))`, 2],
  'try (body, catch)': ['(try (do (loop)) (catch $e (drop) (loop)))', 2],
  throw: [`(throw $e ${i32})`, 1],
};

function moduleWith(body: string, result: boolean): Uint8Array {
  return wat(`(module
    (type $unary (func (param i32) (result i32)))
    (memory 1 1)
    (table $t 1 funcref)
    (tag $e (param i32))
    (global $g (mut i32) (i32.const 0))
    (data $d "x")
    (func $id (type $unary) (local.get 0))
    (elem (i32.const 0) $id)
    (func (export "run") ${result ? '(result i32)' : ''} (local $x i32) ${body} ${result ? '(i32.const 0)' : ''}))`);
}

describe('fuel metering reaches a loop in every child of every expression kind', () => {
  for (const [kind, [body, loops]] of Object.entries(cases)) {
    it(kind, async () => {
      const bytes = moduleWith(body, kind === 'return');
      expect(wasmEngine.validate(bytes), 'the fixture is a valid module').toBe(true);
      const { bytes: metered, checkpoints } = await instrumentFuel(bytes);
      // Two function entries ($id and run), and one header per loop.
      expect(checkpoints).toBe(2 + loops);
      expect(wasmEngine.validate(metered)).toBe(true);
    });
  }

  it('tuples: the values of a multi-value function, and one value taken from a multi-value loop', async () => {
    // binaryen reads two values left for the function's results as tuple.make, and one value
    // taken from a multi-value loop as tuple.extract of it.
    const bytes = wat(`(module
      (func $pair (result i32 i32) ${i32} ${i32})
      (func (export "run") (result i32) (loop (result i32 i32) (i32.const 0) (i32.const 1)) (drop)))`);
    expect(wasmEngine.validate(bytes)).toBe(true);
    const { bytes: metered, checkpoints } = await instrumentFuel(bytes);
    expect(checkpoints).toBe(2 + 3);
    expect(wasmEngine.validate(metered)).toBe(true);
  });

  it('stops an endless loop in the condition of an if at the budget', async () => {
    const spin = `(if (loop $l (result i32) (br $l)) (then))`;
    const { bytes } = await instrumentFuel(moduleWith(spin, false));
    class OutOfFuel {}
    const instance = new WebAssembly.Instance(new wasmEngine.Module(bytes), {
      [FUEL_MODULE]: {
        [FUEL_BUDGET]: new WebAssembly.Global({ value: 'i64', mutable: false }, 10_000n),
        [FUEL_EXHAUSTED]: () => {
          throw new OutOfFuel();
        },
      },
    });
    expect(() => (instance.exports.run as () => void)()).toThrow(OutOfFuel);
  });
});

/** The fuel one call of `run` takes, as the instrumented guest counts it. */
async function costOf(body: string): Promise<bigint> {
  const { bytes } = await instrumentFuel(wat(`(module (func (export "run") ${body}))`));
  const budget = 1_000_000n;
  const instance = new WebAssembly.Instance(new wasmEngine.Module(bytes), {
    [FUEL_MODULE]: { [FUEL_BUDGET]: new WebAssembly.Global({ value: 'i64', mutable: false }, budget), [FUEL_EXHAUSTED]: () => {} },
  });
  (instance.exports.run as () => void)();
  return budget - ((instance.exports[FUEL_GLOBAL] as WebAssembly.Global).value as bigint);
}

describe('the cost model (docs/ABI.md, Fuel metering)', () => {
  it('charges each expression 1, and blocks and nops nothing', async () => {
    const work = '(drop (i32.add (i32.const 1) (i32.const 2)))'; // drop, add, two constants
    expect(await costOf(work)).toBe(4n);
    expect(await costOf(`(nop) (block (block ${work}) (nop)) (nop)`)).toBe(4n);
  });

  it('charges a region at least 1: an empty function, or one of blocks and nops only', async () => {
    expect(await costOf('')).toBe(1n);
    expect(await costOf('(nop) (block (nop))')).toBe(1n);
  });

  it('charges a loop body at its own checkpoint, each time round, not in the enclosing region', async () => {
    // The function's region: local.set and its constant (2). The loop's region: br_if, the
    // tee, the sub, its local.get and constant (5), charged on each of the 3 rounds.
    const body = '(local $n i32) (local.set $n (i32.const 3)) (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))';
    expect(await costOf(body)).toBe(2n + 3n * 5n);
  });
});

describe('sections the metered module leaves out', () => {
  it('drops custom sections of any size, keeping the rest of the module', async () => {
    // Sizes of one, two and three LEB128 bytes: the section walk must step over each exactly.
    const custom = (name: string, n: number): string => `(@custom "${name}" "${'x'.repeat(n)}")`;
    const bytes = wat(`(module (memory (export "memory") 1) ${custom('a', 10)} ${custom('b', 300)} ${custom('c', 20_000)} (func (export "run")))`);
    expect(readSections(bytes).sections.filter((s) => s.id === 0)).toHaveLength(3);
    const { bytes: metered } = await instrumentFuel(bytes);
    expect(wasmEngine.validate(metered)).toBe(true);
    expect(readSections(metered).sections.filter((s) => s.id === 0)).toEqual([]);
    expect(readSections(metered).exports.map((e) => e.name)).toEqual(expect.arrayContaining(['memory', 'run', FUEL_GLOBAL]));
  });

  it('moves a start function out of the start section, exported for the worker to call', async () => {
    const bytes = wat('(module (global $g (export "g") (mut i32) (i32.const 0)) (func $init (global.set $g (i32.const 7))) (start $init) (func (export "run")))');
    const { bytes: metered } = await instrumentFuel(bytes);
    const info = readSections(metered);
    expect(info.start).toBe(null);
    expect(info.sections.some((s) => s.id === 8)).toBe(false);
    const instance = new WebAssembly.Instance(new wasmEngine.Module(metered), {
      [FUEL_MODULE]: { [FUEL_BUDGET]: new WebAssembly.Global({ value: 'i64', mutable: false }, 1000n), [FUEL_EXHAUSTED]: () => {} },
    });
    const g = instance.exports.g as WebAssembly.Global;
    expect(g.value).toBe(0); // not run at instantiation
    (instance.exports[START_EXPORT] as () => void)();
    expect(g.value).toBe(7);
  });
});
