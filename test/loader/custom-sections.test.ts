/**
 * Malformed custom sections through every pipeline option (issue #10.9). The engine ignores a
 * custom section's contents; binaryen, which instruments for fuel and CPU caps, parsed some of
 * them and threw, which surfaced as ERR_INTERNAL. A module that runs without fuel must run with
 * it (or be refused with a typed error before it runs); ERR_INTERNAL must be out of the guest's
 * reach.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Hypervisor, WasmvisorError } from '../../host/index.ts';
import { loaderThread } from '../../host/loader/offthread.ts';
import { loadModule } from '../../host/loader/pipeline.ts';
import { collect, guest } from '../helpers.ts';
import { concat, constBlockBomb, customSection, leb } from './bombs.mjs';

/** Custom sections binaryen (or any tool) might parse, each malformed in its own way. */
const MALFORMED: readonly (readonly [string, readonly number[]])[] = [
  ['target_features', [5, 0x2b, 3, 0x61]], // count 5, one entry, truncated name
  ['target_features', [0xff, 0xff, 0xff, 0xff, 0x0f]], // count 2^32-1
  ['target_features', [1, 0x2b, 3, 0x67, 0x63, 0x21]], // "+gc!": an unknown feature
  ['target_features', [1, 0x2b, 2, 0x67, 0x63]], // "+gc": a feature the policy refuses
  ['target_features', [1, 0x3f, 4, ...new TextEncoder().encode('simd')]], // an unknown prefix
  ['name', [1, 5, 0xff]], // function names, size past the end
  ['name', [0, 3, 1, 0xff, 0xff]], // module name, invalid UTF-8
  ['name', [1, 0x80, 0x80, 0x80, 0x80, 0x10]], // over-long LEB128 size
  ['name', [1, 6, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]], // a name for function 2^32-1
  ['name', [2, 4, 1, 0, 9, 9]], // local names for function 0, count 9 with nothing after
  ['producers', [1, 2]],
  ['dylink', [9, 9]],
  ['dylink.0', [0xff]],
  ['sourceMappingURL', [0xff]],
  ['external_debug_info', [0xff, 0x01]],
  ['.debug_info', [1, 2, 3, 4, 5, 6, 7, 8, 9]],
  ['.debug_line', [0xff, 0xff, 0xff, 0xff, 0xff]],
  ['.debug_abbrev', [0x01, 0x11, 0x01, 0x25, 0x0e]],
  ['linking', [2, 8, 0xff]],
  ['reloc.CODE', [0, 1, 2]],
  ['metadata.code.branch_hint', [1, 0, 1, 0, 1, 1]],
  ['', [0x00]],
];

/** `bytes` with the custom sections appended (custom sections may appear anywhere). */
function withSections(bytes: Uint8Array, sections: readonly (readonly [string, readonly number[]])[]): Uint8Array {
  return concat([bytes, ...sections.map(([name, payload]) => customSection(name, payload))]);
}

/** Custom sections inserted right after the preamble instead: before the type section. */
function withSectionsFirst(bytes: Uint8Array, sections: readonly (readonly [string, readonly number[]])[]): Uint8Array {
  return concat([bytes.subarray(0, 8), ...sections.map(([name, payload]) => customSection(name, payload)), bytes.subarray(8)]);
}

const hello = readFileSync(guest('hello'));

describe('malformed custom sections (issue #10.9)', () => {
  for (const [name, payload] of MALFORMED) {
    it(`"${name}" ${JSON.stringify(payload)}: loads with and without fuel, wherever it sits`, async () => {
      for (const place of [withSections, withSectionsFirst]) {
        const bytes = place(hello, [[name, payload]]);
        for (const fuel of [false, true]) {
          const loaded = await loadModule(bytes, { fuel });
          expect(loaded.fuelMetered).toBe(fuel);
          expect(loaded.measurement).not.toBe('');
        }
      }
    });
  }

  it('a custom section whose name is not UTF-8, or whose name length runs past its end, is refused as ERR_MODULE_INVALID', async () => {
    const badName = concat([hello, [0, 3, 2, 0xff, 0xfe]]);
    const longName = concat([hello, [0, 2, ...leb(9), 0x61]]);
    for (const bytes of [badName, longName]) {
      for (const fuel of [false, true]) {
        const error = await loadModule(bytes, { fuel }).then(() => null, (e: unknown) => e);
        expect(error).toBeInstanceOf(WasmvisorError);
        expect((error as WasmvisorError).code).toBe('ERR_MODULE_INVALID');
      }
    }
  });

  describe('every pipeline option, with all of them in one module', () => {
    const hv = new Hypervisor();
    afterAll(() => hv.close());
    let n = 0;
    const spec = (module: Uint8Array | URL, more: object = {}) => ({ name: `cs-${n++}`, module, devices: { console: true }, ...more });

    for (const [option, more] of [
      ['plain', {}],
      ['fuel', { limits: { fuel: 1e9 } }],
      ['cpu', { limits: { cpu: { maxPercent: 50 } } }],
      ['fuel and cpu', { limits: { fuel: 1e9, cpu: { maxPercent: 90 } } }],
    ] as const) {
      it(`${option}: the command runs and prints what it prints without them`, async () => {
        const p = await hv.createPartition(spec(withSections(hello, MALFORMED), more));
        const out = collect(p);
        await p.start();
        expect(await p.exited).toMatchObject({ state: 'exited', code: 0 });
        expect(out.stdout[0]).toBe('Hello from a Wasmvisor partition!');
      });
    }

    it('wasi (a C program) with fuel: runs', async () => {
      const c = new Uint8Array(readFileSync(new URL('../../guests/c/hello.wasm', import.meta.url)));
      const p = await hv.createPartition(spec(withSectionsFirst(c, MALFORMED), { wasi: { args: ['hello'] }, limits: { fuel: 1e10 } }));
      const out = collect(p);
      await p.start();
      expect(await p.exited).toMatchObject({ state: 'exited', code: 0 });
      expect(out.stdout.length).toBeGreaterThan(0);
    });

    it('reactor with fuel: answers calls', async () => {
      const transform = new Uint8Array(readFileSync(guest('transform')));
      const p = await hv.createPartition(spec(withSections(transform, MALFORMED), { kind: 'reactor', limits: { fuel: 1e9 } }));
      await p.start();
      expect(new TextDecoder().decode(await p.call('upper', 'custom'))).toBe('CUSTOM');
    });

    it('inspect: admitted, with the custom sections counted nowhere but in the measurement', async () => {
      const inspection = await hv.inspect(withSections(hello, MALFORMED));
      expect(inspection.verdict.admitted).toBe(true);
    });
  });
});

describe('fuel instrumentation refuses what binaryen cannot take, with a typed error (the class of #10.9)', () => {
  it('a module nested past the instrumenter’s stack (bound raised by the embedder): ERR_LIMIT_MODULE, not ERR_INTERNAL', async () => {
    const depth = 60_000;
    const bytes = constBlockBomb(depth);
    const moduleLimits = { nestingDepth: depth };
    await expect(loadModule(bytes, { policy: { moduleLimits } })).resolves.toBeDefined();
    const error = await loadModule(bytes, { fuel: true, policy: { moduleLimits } }).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(WasmvisorError);
    expect((error as WasmvisorError).code).toBe('ERR_LIMIT_MODULE');
    expect((error as WasmvisorError).message).toMatch(/moduleLimits.nestingDepth/);
    // binaryen is not trusted after an exception went through it: the loader's thread retired,
    // and the next metered load gets a fresh one that works.
    expect(loaderThread().retirements).toBeGreaterThanOrEqual(1);
    await expect(loadModule(hello, { fuel: true })).resolves.toMatchObject({ fuelMetered: true });
  }, 60_000);
});
