// The transform worker's client (host/loader/transform.ts), called in the test's thread as the
// loader's thread calls it: the worker (dist/transform.js) meters fuel exactly as instrumentFuel
// does here, adds the suspend transform's exports under the reserved names when asked, keeps the
// code of a typed refusal, and answers each of several requests in flight with its own module.
import { describe, expect, it } from 'vitest';
import { FeatureDeniedError } from '../../host/errors.ts';
import { FUEL_EXHAUSTED, FUEL_MODULE, instrumentFuel } from '../../host/loader/instrument.ts';
import { readSections } from '../../host/loader/sections.ts';
import { ASYNCIFY_EXPORTS, transformModule } from '../../host/loader/transform.ts';
import { wasmEngine } from '../../host/loader/wasm-api.ts';
import { guest } from './wat.ts';

const loop = (n: number): Uint8Array =>
  guest({ extra: `(func (export "work") (local i32) (loop $l (local.set 0 (i32.add (local.get 0) (i32.const ${n}))) (br_if $l (i32.lt_u (local.get 0) (i32.const 1000)))))` });

function exportNames(bytes: Uint8Array): string[] {
  return readSections(bytes).exports.map((e) => e.name);
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('the transform succeeded');
}

describe('transformModule (the transform worker)', () => {
  it('meters fuel exactly as instrumentFuel does in this thread', async () => {
    const bytes = loop(3);
    const metered = await transformModule(Uint8Array.from(bytes), false);
    expect([...metered]).toEqual([...(await instrumentFuel(bytes)).bytes]);
    expect(wasmEngine.validate(metered)).toBe(true);
    expect(readSections(metered).imports.some((i) => i.module === FUEL_MODULE && i.name === FUEL_EXHAUSTED)).toBe(true);
    // Metering alone adds no suspend transform.
    expect(exportNames(metered).filter((n) => n.includes('asyncify'))).toEqual([]);
  });

  it('adds the suspend transform when asked, its exports renamed to the reserved names', async () => {
    const out = await transformModule(loop(5), true);
    expect(wasmEngine.validate(out)).toBe(true);
    const names = exportNames(out);
    for (const name of Object.values(ASYNCIFY_EXPORTS)) expect(names).toContain(name);
    expect(names.filter((n) => n.startsWith('asyncify_'))).toEqual([]);
    expect(names).toContain('work');
  });

  it('answers each of several requests in flight with its own module', async () => {
    const inputs = [1, 2, 3, 4].map(loop);
    const expected = await Promise.all(inputs.map(async (b) => [...(await instrumentFuel(b)).bytes]));
    const outs = await Promise.all(inputs.map((b) => transformModule(Uint8Array.from(b), false)));
    expect(outs.map((o) => [...o])).toEqual(expected);
  });

  it('keeps the code of a typed refusal: a module already using a name the suspend transform exports', async () => {
    const bytes = guest({ extra: '(func (export "asyncify_get_state") (result i32) (i32.const 0))' });
    const error = await rejection(transformModule(bytes, true));
    expect(error).toBeInstanceOf(FeatureDeniedError);
    expect(error.message).toBe('shared placement needs the export name asyncify_get_state, which the module uses');
    // The worker answers the next request as before.
    expect(wasmEngine.validate(await transformModule(loop(7), true))).toBe(true);
  });

  it('gives the metering step’s own refusal, code and message, as instrumentFuel gives it here', async () => {
    const bytes = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x63]);
    const here = await rejection(instrumentFuel(bytes));
    const there = await rejection(transformModule(Uint8Array.from(bytes), false));
    expect(there).toBeInstanceOf(FeatureDeniedError);
    expect(there.constructor).toBe(here.constructor);
    // The same words there and here: binaryen's reason is its message, never its exception's address.
    expect(there.message).toBe(here.message);
    expect(there.message).toBe('fuel metering cannot read this module (binaryen: error in parsing wasm binary)');
  });
});
