/**
 * The loader thread's message handling (host/loader/loader-jobs.ts), called in this thread with
 * the messages the root posts (offthread.ts) and with messages it never posts: each job's value
 * and what it transfers, each refusal with its code as the worker's answer carries it, a fault as
 * ERR_INTERNAL, a job name found only among the jobs (never on the prototype chain), a message
 * without a usable id answered under the id no request carries, and the retirement an answer asks
 * for once this thread's binaryen has been unwound through. The last test leaves this thread's
 * binaryen untrusted: it runs last.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LOADER_JOBS, NO_REQUEST_ID, answerLoaderRequest, type LoaderAnswer } from '../../host/loader/loader-jobs.ts';
import { instrumenterHealthy } from '../../host/loader/instrument.ts';
import { loaderThread, type LoaderResponse } from '../../host/loader/offthread.ts';
import { threadCounters, type InspectRequest, type PrepareRequest } from '../../host/loader/pipeline.ts';
import { defaultPolicy } from '../../host/loader/policy.ts';
import { constBlockBomb } from './bombs.mjs';
import { guest } from './wat.ts';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

function prepare(original: Uint8Array, overrides: Partial<PrepareRequest> = {}): PrepareRequest {
  return { original, policy: defaultPolicy(), integrity: {}, fuel: false, suspendable: false, ...overrides };
}

/** The refusal in an answer: its code and message (fails the test if the job succeeded). */
function refusal(answer: LoaderAnswer): { id: number; code: string; message: string } {
  const response = answer.response as LoaderResponse & { ok: boolean };
  if (response.ok) throw new Error(`the job succeeded: ${JSON.stringify(response)}`);
  expect(answer.transfer).toEqual([]);
  expect(response.retire).toBeUndefined();
  const { id, code, message } = response as { id: number; code: string; message: string };
  return { id, code, message };
}

describe('answerLoaderRequest: the jobs', () => {
  it('runs exactly the four jobs the root asks for', () => {
    expect([...LOADER_JOBS].sort()).toEqual(['compile', 'counters', 'inspect', 'prepare']);
  });

  it('prepare: the prepared module under the request’s id, its bytes transferred', async () => {
    const bytes = guest({ extra: '(func (export "tick") (result i32) i32.const 1)' });
    const answer = await answerLoaderRequest({ id: 7, job: 'prepare', payload: prepare(bytes) });
    expect(answer.response).toMatchObject({ id: 7, ok: true, value: { measurement: sha256(bytes), callable: ['tick'], fuelMetered: false } });
    expect(answer.response).not.toHaveProperty('retire');
    const value = (answer.response as { value: { bytes: Uint8Array } }).value;
    expect(answer.transfer).toEqual([value.bytes.buffer]);
  });

  it('prepare: bytes that are a view of part of a buffer are answered, not transferred', async () => {
    const bytes = guest();
    const padded = new Uint8Array(bytes.length + 8);
    padded.set(bytes, 4);
    const answer = await answerLoaderRequest({ id: 8, job: 'prepare', payload: prepare(padded.subarray(4, 4 + bytes.length)) });
    expect(answer.response).toMatchObject({ id: 8, ok: true, value: { measurement: sha256(bytes) } });
    expect(answer.transfer).toEqual([]);
  });

  it('inspect: the description, verdict included, nothing transferred', async () => {
    const bytes = guest({ imports: '(import "env" "system" (func))' });
    const payload: InspectRequest = { bytes, policy: defaultPolicy(), integrity: {} };
    const answer = await answerLoaderRequest({ id: 9, job: 'inspect', payload });
    expect(answer.response).toMatchObject({ id: 9, ok: true, value: { measurement: sha256(bytes), size: bytes.length, verdict: { admitted: false, code: 'ERR_IMPORT_DENIED' } } });
    expect(answer.transfer).toEqual([]);
  });

  it('counters: a copy of this thread’s counters, not the live object', async () => {
    const answer = await answerLoaderRequest({ id: 10, job: 'counters', payload: null });
    expect(answer.response).toEqual({ id: 10, ok: true, value: { ...threadCounters } });
    expect((answer.response as { value: unknown }).value).not.toBe(threadCounters);
    expect(answer.transfer).toEqual([]);
  });

  it('compile: a compiled module', async () => {
    const answer = await answerLoaderRequest({ id: 11, job: 'compile', payload: guest() });
    expect(answer.response).toMatchObject({ id: 11, ok: true });
    expect((answer.response as { value: unknown }).value).toBeInstanceOf(WebAssembly.Module);
    expect(answer.transfer).toEqual([]);
  });

  it('answers as the loader’s worker does: the same value through the real thread', async () => {
    const bytes = guest({ extra: '(func (export "w") (result i32) i32.const 3)' });
    const payload: InspectRequest = { bytes, policy: defaultPolicy(), integrity: {} };
    const here = await answerLoaderRequest({ id: 12, job: 'inspect', payload });
    const there = await loaderThread().request('inspect', payload);
    expect(there).toEqual((here.response as { value: unknown }).value);
  });
});

describe('answerLoaderRequest: refusals keep their code', () => {
  it('a denied import: ERR_IMPORT_DENIED', async () => {
    const bytes = guest({ imports: '(import "env" "system" (func))' });
    const r = refusal(await answerLoaderRequest({ id: 20, job: 'prepare', payload: prepare(bytes) }));
    expect(r).toMatchObject({ id: 20, code: 'ERR_IMPORT_DENIED' });
    expect(r.message).toMatch(/env/);
  });

  it('a pinned measurement that differs: ERR_INTEGRITY', async () => {
    const r = refusal(await answerLoaderRequest({ id: 21, job: 'prepare', payload: prepare(guest(), { integrity: { expectedSha256: 'ab'.repeat(32) } }) }));
    expect(r).toMatchObject({ id: 21, code: 'ERR_INTEGRITY' });
  });

  it('not a module: ERR_MODULE_INVALID, from prepare and from compile', async () => {
    const junk = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(refusal(await answerLoaderRequest({ id: 22, job: 'prepare', payload: prepare(junk) }))).toMatchObject({ id: 22, code: 'ERR_MODULE_INVALID' });
    const compiled = refusal(await answerLoaderRequest({ id: 23, job: 'compile', payload: Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x63]) }));
    expect(compiled).toMatchObject({ id: 23, code: 'ERR_MODULE_INVALID' });
    expect(compiled.message).toMatch(/^module failed to compile: /);
  });

  it('the metered-code bound: ERR_LIMIT_MODULE', async () => {
    const payload = prepare(guest(), { fuel: true, policy: defaultPolicy({ moduleLimits: { meteredCodeBytes: 1 } }) });
    expect(refusal(await answerLoaderRequest({ id: 24, job: 'prepare', payload }))).toMatchObject({ id: 24, code: 'ERR_LIMIT_MODULE' });
  });
});

describe('answerLoaderRequest: messages the root never sends', () => {
  it('a job that does not exist, including every name on an object’s prototype chain: ERR_INTERNAL, nothing run', async () => {
    for (const job of ['nope', 'toString', 'valueOf', 'constructor', '__proto__', 'hasOwnProperty', '__defineGetter__', 'Prepare', 'prepare ', '']) {
      const r = refusal(await answerLoaderRequest({ id: 30, job, payload: null }));
      expect(r, job).toEqual({ id: 30, code: 'ERR_INTERNAL', message: `the loader failed: unknown loader job ${JSON.stringify(job)}` });
    }
  });

  it('a job name that is not a string: ERR_INTERNAL, named by its type', async () => {
    for (const [job, named] of [
      [undefined, 'nothing'],
      [null, 'null'],
      [42, 'the number 42'],
      [['prepare'], 'an array'],
      [{ toString: () => 'prepare' }, 'an object'],
    ] as const) {
      const r = refusal(await answerLoaderRequest({ id: 31, job, payload: null }));
      expect(r.code).toBe('ERR_INTERNAL');
      expect(r.message).toMatch(/^the loader failed: unknown loader job /);
      expect(r.message, String(named)).toContain(named);
    }
  });

  it('a message without a positive integer id: answered under the id no request carries, the job not run', async () => {
    const before = { ...threadCounters };
    const bytes = guest();
    for (const message of [
      undefined,
      null,
      42,
      'prepare',
      [],
      {},
      { job: 'counters' },
      { id: '1', job: 'counters' },
      { id: 0, job: 'counters' },
      { id: -1, job: 'counters' },
      { id: 1.5, job: 'counters' },
      { id: Number.NaN, job: 'counters' },
      { id: Number.POSITIVE_INFINITY, job: 'counters' },
      { id: 2 ** 53, job: 'counters' },
      { id: 1n, job: 'counters' },
      { id: null, job: 'prepare', payload: prepare(bytes) },
    ]) {
      const r = refusal(await answerLoaderRequest(message));
      expect(r.id).toBe(NO_REQUEST_ID);
      expect(r.code).toBe('ERR_INTERNAL');
      expect(r.message).toMatch(/^the loader failed: malformed loader request: its id is .+, not a positive integer$/);
    }
    expect(NO_REQUEST_ID).toBe(0);
    // The prepare job with a null id was not run: nothing read.
    expect(threadCounters).toEqual(before);
  });

  it('a message whose fields throw when read: answered, not thrown', async () => {
    const hostile = Object.defineProperty({}, 'id', {
      get() {
        throw new Error('gotcha');
      },
    });
    expect(refusal(await answerLoaderRequest(hostile))).toEqual({ id: NO_REQUEST_ID, code: 'ERR_INTERNAL', message: 'the loader failed: gotcha' });
  });

  it('a known job with a payload of the wrong shape: ERR_INTERNAL for every job but counters', async () => {
    for (const job of ['prepare', 'inspect', 'compile']) {
      for (const payload of [undefined, null, 7, 'bytes', {}, { original: 'x', bytes: 'x' }]) {
        const r = refusal(await answerLoaderRequest({ id: 32, job, payload }));
        expect(r.id).toBe(32);
        expect(r.code, `${job} ${String(payload)}`).toBe('ERR_INTERNAL');
      }
    }
    // counters takes no payload: whatever it is given, it answers.
    expect((await answerLoaderRequest({ id: 33, job: 'counters', payload: { evil: true } })).response).toMatchObject({ id: 33, ok: true });
  });

  it('a thrown value that is not an Error is named, never stringified into a throw of its own', async () => {
    const throwing = (thrown: unknown) =>
      Object.defineProperty({}, 'original', {
        get() {
          throw thrown;
        },
      });
    const text = refusal(await answerLoaderRequest({ id: 34, job: 'prepare', payload: throwing('a string') }));
    expect(text).toEqual({ id: 34, code: 'ERR_INTERNAL', message: 'the loader failed: a string' });
    // String() of an object without a prototype throws a TypeError of its own.
    const bare = refusal(await answerLoaderRequest({ id: 35, job: 'prepare', payload: throwing(Object.create(null)) }));
    expect(bare).toMatchObject({ id: 35, code: 'ERR_INTERNAL' });
    expect(bare.message).toMatch(/^the loader failed: an object/);
  });
});

describe('answerLoaderRequest: retirement', () => {
  it('once an exception has unwound through this thread’s binaryen, every answer asks the root to retire the thread', async () => {
    expect(instrumenterHealthy()).toBe(true);
    const depth = 60_000;
    const policy = defaultPolicy({ moduleLimits: { nestingDepth: depth } });
    const answer = await answerLoaderRequest({ id: 40, job: 'prepare', payload: prepare(constBlockBomb(depth), { fuel: true, policy }) });
    expect(answer.response).toMatchObject({ id: 40, ok: false, code: 'ERR_LIMIT_MODULE', retire: true });
    expect(instrumenterHealthy()).toBe(false);
    // The next answer, whatever its job, asks again (the root retires a thread once).
    expect((await answerLoaderRequest({ id: 41, job: 'counters', payload: null })).response).toMatchObject({ id: 41, ok: true, retire: true });
    expect((await answerLoaderRequest({ id: 42, job: 'nope', payload: null })).response).toMatchObject({ id: 42, ok: false, code: 'ERR_INTERNAL', retire: true });
  }, 60_000);
});
