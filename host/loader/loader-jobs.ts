/**
 * The loader thread's jobs (see offthread.ts): what loader-worker.ts does with each message the
 * root posts to it, as a function from the message to the answer, so that it can be called (and
 * tested) in any thread. The entry only wires it to its parent port.
 *
 * Invariants:
 * - Every message gets exactly one answer and the answer never throws: a job's typed refusal
 *   keeps its code and message; anything else (a fault of the loader, or a message the root
 *   would never send) is ERR_INTERNAL.
 * - Only the jobs named below run: a job name is looked up among them alone, never along the
 *   prototype chain (`toString`, `__proto__` are unknown jobs, not functions to call).
 * - A job never runs guest code: it reads, validates, measures, rewrites, instruments and compiles.
 */
import { WasmvisorError } from '../errors.ts';
import { quoted } from '../escape.ts';
import { compileHere } from './compile.ts';
import { instrumenterHealthy } from './instrument.ts';
import type { LoaderRequest, LoaderResponse } from './offthread.ts';
import { transferable } from './offthread.ts';
import { describeMetered, prepareModule, threadCounters, type InspectRequest, type PrepareRequest } from './pipeline.ts';

/** A job's value, and the buffers in it that may be transferred (owned by nobody here). */
interface JobResult {
  readonly value: unknown;
  readonly transfer: ArrayBuffer[];
}

/** The answer to post, and the buffers to transfer with it. */
export interface LoaderAnswer {
  readonly response: LoaderResponse;
  readonly transfer: ArrayBuffer[];
}

/**
 * The id an answer carries when the message had no usable one: the root numbers its requests
 * from 1 (offthread.ts), so no request waits for it.
 */
export const NO_REQUEST_ID = 0;

const jobs = new Map<string, (payload: never) => Promise<JobResult>>([
  [
    'prepare',
    async (payload: PrepareRequest) => {
      const value = await prepareModule(payload);
      // The bytes are the original (transferred here, referenced by no cache) or a fresh rewrite.
      return { value, transfer: transferable(value.bytes) };
    },
  ],
  ['inspect', async (payload: InspectRequest) => ({ value: await describeMetered(payload), transfer: [] })],
  ['counters', async () => ({ value: { ...threadCounters }, transfer: [] })],
  ['compile', async (payload: Uint8Array) => ({ value: await compileHere(payload), transfer: [] })],
]);

/** The names of the jobs the loader thread runs. */
export const LOADER_JOBS: readonly string[] = [...jobs.keys()];

/** A thrown value's text, for a message: never throws itself. */
function textOf(error: unknown): string {
  return error instanceof Error ? error.message : typeof error === 'string' ? error : quoted(error);
}

/**
 * Runs the job `message` names and answers it: the job's value, or its typed error as code and
 * message. When this thread's binaryen is no longer trusted (instrument.ts), the answer asks the
 * root to retire the thread.
 */
export async function answerLoaderRequest(message: unknown): Promise<LoaderAnswer> {
  let id = NO_REQUEST_ID;
  let response: LoaderResponse;
  let transfer: ArrayBuffer[] = [];
  try {
    const request = (typeof message === 'object' && message !== null ? message : {}) as Partial<LoaderRequest>;
    const given = request.id;
    if (!Number.isSafeInteger(given) || (given as number) < 1) throw new Error(`malformed loader request: its id is ${quoted(given)}, not a positive integer`);
    id = given as number;
    const job = typeof request.job === 'string' ? jobs.get(request.job) : undefined;
    if (job === undefined) throw new Error(`unknown loader job ${quoted(request.job)}`);
    const done = await job(request.payload as never);
    response = { id, ok: true, value: done.value };
    transfer = done.transfer;
  } catch (error) {
    // Typed refusals keep their code; anything else is a fault of the loader itself.
    response =
      error instanceof WasmvisorError
        ? { id, ok: false, code: error.code, message: error.message }
        : { id, ok: false, code: 'ERR_INTERNAL', message: `the loader failed: ${textOf(error)}` };
  }
  // A binaryen that an exception unwound through is not trusted again: ask to be replaced.
  return { response: instrumenterHealthy() ? response : { ...response, retire: true }, transfer };
}
