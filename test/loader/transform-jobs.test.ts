/**
 * The transform worker's message handling (host/loader/transform-jobs.ts), called in this thread
 * with the messages the root posts (transform.ts) and with messages it never posts: the metered
 * (and, when asked, suspendable) bytes under the request's id, transferred; a refusal with its
 * code (ERR_FEATURE_DENIED for a name the suspend transform exports, a typed refusal's own code);
 * a message that is not a request answered as a fault (code null) under the id no request carries.
 * Refusals from binaryen's reader come last: they leave this thread's binaryen untrusted.
 */
import { describe, expect, it } from 'vitest';
import { FUEL_EXHAUSTED, FUEL_MODULE, instrumentFuel } from '../../host/loader/instrument.ts';
import { readSections } from '../../host/loader/sections.ts';
import { NO_TRANSFORM_ID, answerTransformRequest, type TransformAnswer } from '../../host/loader/transform-jobs.ts';
import { ASYNCIFY_EXPORTS, transformCounters, transformModule } from '../../host/loader/transform.ts';
import { wasmEngine } from '../../host/loader/wasm-api.ts';
import { guest } from './wat.ts';

const loop = (n: number): Uint8Array =>
  guest({ extra: `(func (export "work") (local i32) (loop $l (local.set 0 (i32.add (local.get 0) (i32.const ${n}))) (br_if $l (i32.lt_u (local.get 0) (i32.const 1000)))))` });

/** The bytes of a reply (fails the test if it is an error). */
function bytesOf(answer: TransformAnswer, id: number): Uint8Array {
  const reply = answer.reply;
  if (!('bytes' in reply)) throw new Error(`the transform failed: ${reply.error}`);
  expect(reply.id).toBe(id);
  expect(answer.transfer).toEqual([reply.bytes.buffer]);
  return reply.bytes;
}

/** The error of a reply (fails the test if it carries bytes). */
function errorOf(answer: TransformAnswer): { id: number; error: string; code: string | null } {
  const reply = answer.reply;
  if ('bytes' in reply) throw new Error('the transform succeeded');
  expect(answer.transfer).toEqual([]);
  expect(Object.keys(reply).sort()).toEqual(['code', 'error', 'id']);
  return reply;
}

describe('answerTransformRequest: the transform', () => {
  it('meters fuel exactly as instrumentFuel does, and adds no suspend transform unless asked', async () => {
    const bytes = loop(3);
    const metered = bytesOf(await answerTransformRequest({ id: 1, bytes: Uint8Array.from(bytes), suspendable: false }), 1);
    expect([...metered]).toEqual([...(await instrumentFuel(bytes)).bytes]);
    expect(readSections(metered).imports.some((i) => i.module === FUEL_MODULE && i.name === FUEL_EXHAUSTED)).toBe(true);
    expect(readSections(metered).exports.filter((e) => e.name.includes('asyncify'))).toEqual([]);
  });

  it('adds the suspend transform when asked, its exports under the reserved names only', async () => {
    const out = bytesOf(await answerTransformRequest({ id: 2, bytes: loop(5), suspendable: true }), 2);
    expect(wasmEngine.validate(out)).toBe(true);
    const names = readSections(out).exports.map((e) => e.name);
    for (const name of Object.values(ASYNCIFY_EXPORTS)) expect(names).toContain(name);
    expect(names.filter((n) => n.startsWith('asyncify_'))).toEqual([]);
    expect(names).toContain('work');
  });

  it('answers as the transform worker does: the same bytes through the real worker', async () => {
    const here = bytesOf(await answerTransformRequest({ id: 3, bytes: loop(9), suspendable: true }), 3);
    expect([...(await transformModule(loop(9), true))]).toEqual([...here]);
  });

  it('a module already using a name the suspend transform exports: ERR_FEATURE_DENIED, each name', async () => {
    for (const name of ['asyncify_start_unwind', 'asyncify_stop_unwind', 'asyncify_start_rewind', 'asyncify_stop_rewind', 'asyncify_get_state']) {
      const bytes = guest({ extra: `(func (export "${name}") (result i32) (i32.const 0))` });
      expect(errorOf(await answerTransformRequest({ id: 4, bytes, suspendable: true }))).toEqual({
        id: 4,
        error: `shared placement needs the export name ${name}, which the module uses`,
        code: 'ERR_FEATURE_DENIED',
      });
      // Without the suspend transform the name is the module's own business.
      bytesOf(await answerTransformRequest({ id: 5, bytes, suspendable: false }), 5);
    }
  });
});

describe('answerTransformRequest: messages the root never sends', () => {
  it('not a request: a fault (code null) under the id no request carries, binaryen not asked', async () => {
    const bytes = loop(1);
    const cases: [unknown, RegExp][] = [
      [undefined, /^malformed transform request: nothing$/],
      [null, /^malformed transform request: null$/],
      [7, /^malformed transform request: the number 7$/],
      ['bytes', /^malformed transform request: "bytes"$/],
      [{}, /its id is nothing, not a positive integer/],
      [{ id: 0, bytes, suspendable: false }, /its id is the number 0, not a positive integer/],
      [{ id: -3, bytes, suspendable: false }, /its id is the number -3, not a positive integer/],
      [{ id: 1.5, bytes, suspendable: false }, /its id is the number 1.5, not a positive integer/],
      [{ id: '1', bytes, suspendable: false }, /its id is "1", not a positive integer/],
      [{ id: 2 ** 53, bytes, suspendable: false }, /not a positive integer/],
      [{ id: 6, suspendable: false }, /its bytes are nothing, not a byte array/],
      [{ id: 6, bytes: [...bytes], suspendable: false }, /its bytes are an array.*, not a byte array/],
      [{ id: 6, bytes: bytes.buffer, suspendable: false }, /not a byte array/],
      [{ id: 6, bytes: new Uint16Array(4), suspendable: false }, /not a byte array/],
      [{ id: 6, bytes }, /suspendable is nothing, not a boolean/],
      [{ id: 6, bytes, suspendable: 'yes' }, /suspendable is "yes", not a boolean/],
      [{ id: 6, bytes, suspendable: 1 }, /suspendable is the number 1, not a boolean/],
    ];
    for (const [message, pattern] of cases) {
      const reply = errorOf(await answerTransformRequest(message));
      expect(reply.id).toBe(NO_TRANSFORM_ID);
      expect(reply.code).toBeNull();
      expect(reply.error).toMatch(/^malformed transform request: /);
      expect(reply.error, JSON.stringify(message ?? null)).toMatch(pattern);
    }
    expect(NO_TRANSFORM_ID).toBe(0);
  });

  it('a message whose fields throw when read: answered, not thrown', async () => {
    const hostile = Object.defineProperty({}, 'id', {
      get() {
        throw new Error('gotcha');
      },
    });
    expect(errorOf(await answerTransformRequest(hostile))).toEqual({ id: NO_TRANSFORM_ID, error: 'gotcha', code: null });
  });
});

describe('answerTransformRequest: refusals from the metering step (last: they leave binaryen untrusted)', () => {
  it('bytes binaryen cannot read: the metering step’s own refusal and code, as instrumentFuel gives it here', async () => {
    const bytes = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x63]);
    const here = await instrumentFuel(bytes).then(
      () => null,
      (e: unknown) => e as Error & { code: string },
    );
    const answer = await answerTransformRequest({ id: 8, bytes, suspendable: true });
    const { retire, ...reply } = answer.reply;
    expect(errorOf({ reply, transfer: answer.transfer })).toBe(reply);
    expect(reply.id).toBe(8);
    expect('code' in reply && reply.code).toBe('ERR_FEATURE_DENIED');
    expect('code' in reply && reply.code).toBe(here?.code);
    expect('error' in reply && reply.error).toMatch(/^fuel metering cannot read this module/);
    // The reader's exception unwound through this thread's binaryen: the reply, and every one
    // after it, asks the root to retire the thread (as the loader's thread does).
    expect(retire).toBe(true);
    expect((await answerTransformRequest({ id: 9, bytes: loop(1), suspendable: false })).reply.retire).toBe(true);
  });
});

describe('transformModule: a transform worker whose binaryen failed is retired', () => {
  it('the next module goes to a fresh worker', async () => {
    await transformModule(loop(3), false);
    const before = { ...transformCounters };
    await expect(transformModule(Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x63]), false)).rejects.toMatchObject({ code: 'ERR_FEATURE_DENIED' });
    expect(transformCounters.retirements).toBe(before.retirements + 1);
    const metered = await transformModule(loop(4), false);
    expect(readSections(metered).imports.some((i) => i.module === FUEL_MODULE && i.name === FUEL_EXHAUSTED)).toBe(true);
    expect(transformCounters.spawned).toBe(before.spawned + 1);
    expect(transformCounters.retirements).toBe(before.retirements + 1);
  });
});
