/**
 * The loader's thread (see offthread.ts): runs the module pipeline's byte-heavy steps for the
 * root. Each request names a job; the answer carries its value or its typed error. A job never
 * runs guest code: it reads, validates, measures, rewrites, instruments and compiles.
 */
import { parentPort } from 'node:worker_threads';
import { WasmvisorError } from '../errors.ts';
import { compileHere } from './compile.ts';
import { instrumenterHealthy } from './instrument.ts';
import type { LoaderRequest, LoaderResponse } from './offthread.ts';
import { transferable } from './offthread.ts';
import { describeModule, prepareModule, threadCounters, type InspectRequest, type PrepareRequest } from './pipeline.ts';
import { quoted } from '../escape.ts';

/** Each job: its value, and the buffers in it that may be transferred (owned by nobody here). */
const jobs: Record<string, (payload: never) => Promise<{ value: unknown; transfer: ArrayBuffer[] }>> = {
  async prepare(payload: PrepareRequest) {
    const value = await prepareModule(payload);
    // The bytes are the original (transferred here, referenced by no cache) or a fresh rewrite.
    return { value, transfer: transferable(value.bytes) };
  },
  async inspect(payload: InspectRequest) {
    return { value: describeModule(payload), transfer: [] };
  },
  async counters() {
    return { value: { ...threadCounters }, transfer: [] };
  },
  async compile(payload: Uint8Array) {
    return { value: await compileHere(payload), transfer: [] };
  },
};

const port = parentPort;
if (port !== null) {
  port.on('message', (request: LoaderRequest) => {
    void (async () => {
      let response: LoaderResponse;
      let transfer: ArrayBuffer[] = [];
      try {
        const job = jobs[request.job];
        if (job === undefined) throw new Error(`unknown loader job ${quoted(request.job)}`);
        const done = await job(request.payload as never);
        response = { id: request.id, ok: true, value: done.value };
        transfer = done.transfer;
      } catch (error) {
        // Typed refusals keep their code; anything else is a fault of the loader itself.
        response =
          error instanceof WasmvisorError
            ? { id: request.id, ok: false, code: error.code, message: error.message }
            : { id: request.id, ok: false, code: 'ERR_INTERNAL', message: `the loader failed: ${error instanceof Error ? error.message : String(error)}` };
      }
      // A binaryen that an exception unwound through is not trusted again: ask to be replaced.
      port.postMessage(instrumenterHealthy() ? response : { ...response, retire: true }, transfer);
    })();
  });
}
