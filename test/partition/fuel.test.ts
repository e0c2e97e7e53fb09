import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type PartitionExit, type PartitionLimits } from '../../host/index.ts';
import { instrumentationCache } from '../../host/loader/pipeline.ts';
import { collect, guest, runToExit, hypervisor } from '../helpers.ts';
import { wat } from '../loader/wat.ts';

let hv: Hypervisor;
afterEach(async () => {
  await hv?.close();
});

let serial = 0;
/** Runs a guest with the console granted; returns its exit and stdout lines. */
async function run(name: string, args: string[], limits: PartitionLimits = {}): Promise<{ exit: PartitionExit; stdout: string[] }> {
  hv ??= hypervisor();
  const p = await hv.createPartition({ name: `${name}-${serial++}`, module: guest(name), args, limits, devices: { console: true } });
  const out = collect(p);
  const exit = await runToExit(p);
  await p.destroy();
  return { exit, stdout: out.stdout };
}

describe('fuel', () => {
  it('stops a guest at the same point for the same budget', async () => {
    hv = hypervisor();
    const a = await run('count', ['100000'], { fuel: 200_000 });
    const b = await run('count', ['100000'], { fuel: 200_000 });
    expect(a.exit).toMatchObject({ state: 'killed', code: null, reason: 'ERR_LIMIT_CPU' });
    expect(a.exit.error?.message).toMatch(/ran out of fuel: its budget of 200000 is spent/);
    expect(a.stdout.length).toBeGreaterThan(10);
    expect(a.stdout.length).toBeLessThan(100000);
    expect(b.stdout).toEqual(a.stdout);
    expect(a.exit.metrics.fuel).toEqual({ budget: 200_000, consumed: 200_000 });
    // A larger budget gets further, with the same lines first.
    const c = await run('count', ['100000'], { fuel: 400_000 });
    expect(c.stdout.length).toBeGreaterThan(a.stdout.length);
    expect(c.stdout.slice(0, a.stdout.length)).toEqual(a.stdout);
  }, 60_000); // the suite's first metered load also loads binaryen (seconds on a busy runner)

  it('with enough fuel a guest completes with the same output as uninstrumented', async () => {
    hv = hypervisor();
    for (const [name, args] of [
      ['count', ['50']],
      ['work', ['5000', '2']],
    ] as const) {
      const plain = await run(name, [...args]);
      const metered = await run(name, [...args], { fuel: Number.MAX_SAFE_INTEGER });
      expect(metered.exit).toMatchObject({ state: 'exited', code: 0 });
      expect(metered.stdout).toEqual(plain.stdout);
      expect(plain.exit.metrics.fuel).toBeNull();
      const used = metered.exit.metrics.fuel!.consumed;
      expect(used).toBeGreaterThan(0);
      expect(used).toBeLessThan(Number.MAX_SAFE_INTEGER);
    }
  });

  it('a tiny budget stops the guest in its first function, before any output', async () => {
    hv = hypervisor();
    const { exit, stdout } = await run('count', ['10'], { fuel: 1 });
    expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_LIMIT_CPU' });
    expect(stdout).toEqual([]);
    expect(exit.metrics.hypercalls).toBe(0);
    expect(exit.metrics.fuel).toEqual({ budget: 1, consumed: 1 });
  });

  it('reports fuel consumed, growing with the work done', async () => {
    hv = hypervisor();
    const used: number[] = [];
    for (const n of ['0', '1', '10', '100']) {
      const { exit } = await run('count', [n], { fuel: 1e12 });
      expect(exit.reason).toBe('exit');
      used.push(exit.metrics.fuel!.consumed);
    }
    for (let i = 1; i < used.length; i++) expect(used[i]).toBeGreaterThan(used[i - 1]!);
  });

  it('ends a guest that spins forever long before the wall-clock watchdog', async () => {
    hv = hypervisor();
    const { exit, stdout } = await run('attack-spin', [], { fuel: 1_000_000, timeoutMs: 60_000 });
    expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_LIMIT_CPU' });
    expect(exit.error?.message).toMatch(/fuel/);
    expect(stdout).toEqual(['spinning']);
    expect(exit.runTimeMs).toBeLessThan(10_000);
  });

  it('meters the wasm start function too, and still reports the fuel it spent', async () => {
    hv = hypervisor();
    const { exit } = await run('attack-start-spin', [], { fuel: 50_000, timeoutMs: 60_000 });
    expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_LIMIT_CPU' });
    expect(exit.error?.message).toMatch(/fuel/);
    // Instantiation never finished, so there are no exports: the worker owns the counter.
    expect(exit.metrics.fuel).toEqual({ budget: 50_000, consumed: 50_000 });
  });

  it('a metered start function sees what an unmetered one sees: no memory for hypercalls', async () => {
    // The start function writes 4 bytes to the console; _start exits with what that returned.
    const bytes = wat(`(module
      (import "hv" "hypercall" (func $hv (param i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1 1)
      (global $r (mut i32) (i32.const 99))
      (func $init (global.set $r (call $hv (i32.const 0x100) (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 0))))
      (start $init)
      (func (export "_start")
        (i32.store (i32.const 0) (global.get $r))
        (drop (call $hv (i32.const 2) (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 0)))))`);
    hv = hypervisor();
    const codes: (number | null)[] = [];
    for (const limits of [{}, { fuel: 1_000_000 }]) {
      const p = await hv.createPartition({ name: `start-${serial++}`, module: bytes, limits, devices: { console: true } });
      const exit = await runToExit(p);
      codes.push(exit.code);
      if ('fuel' in limits) expect(exit.metrics.fuel!.consumed).toBeGreaterThan(0);
    }
    expect(codes).toEqual([-2, -2]); // -HV_STATUS_INVALID_ADDRESS both ways
  });

  it('refuses a budget that is not an integer from 1 to 2^53 - 1', async () => {
    hv = hypervisor();
    for (const fuel of [0, -1, 1.5, Number.NaN, Infinity, 2 ** 53, '5' as unknown as number]) {
      await expect(hv.createPartition({ name: 'bad', module: guest('count'), limits: { fuel } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    }
    expect(() => hypervisor({ defaultLimits: { fuel: 0 } })).toThrow(/defaultLimits.fuel/);
  });

  it('instruments a module once: a second metered partition reuses the instrumented module', async () => {
    hv = hypervisor();
    await hv.createPartition({ name: 'one', module: guest('hello'), limits: { fuel: 10 } });
    const before = { ...instrumentationCache };
    await hv.createPartition({ name: 'two', module: guest('hello'), limits: { fuel: 99 } });
    expect(instrumentationCache.misses).toBe(before.misses);
    expect(instrumentationCache.hits).toBe(before.hits + 1);
  });

  it('wasmvisor run --fuel: ERR_LIMIT_CPU first on the error line, exit status 124', async () => {
    guest('count');
    const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
    const result = await promisify(execFile)(process.execPath, [cli, 'run', guest('count'), '--fuel', '100000', '--', '100000']).then(
      () => ({ code: 0, stdout: '', stderr: '' }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(result.code).toBe(124);
    expect(result.stderr).toMatch(/^ERR_LIMIT_CPU: partition guest ran out of fuel: its budget of 100000 is spent\n$/);
    expect(result.stdout.split('\n')[0]).toBe('1');
    const bad = await promisify(execFile)(process.execPath, [cli, 'run', guest('count'), '--fuel', '0']).catch((error: { code: number; stderr: string }) => error);
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringMatching(/^ERR_INVALID_ARGUMENT: --fuel/) });
  }, 60_000); // a fresh process: it loads binaryen again
});
