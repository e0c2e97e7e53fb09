import type { Worker } from 'node:worker_threads';
import { InternalError, LimitMemoryError, errorFromCode, isErrorCode, type WasmvisorError } from '../errors.ts';
import { loaderWorkerScript, spawnWorker } from '../paths.ts';

/**
 * The loader's own thread: every pipeline step whose cost grows with a module's bytes
 * (structural scan, engine validation, measurement, rewrite, fuel instrumentation, compile)
 * runs in one long-lived worker (loader-worker.ts), so that no guest-supplied module can hold
 * the root's event loop, whose timers are the other partitions' watchdogs. The root only reads
 * the file, hands the bytes over (transferred, not copied) and receives a small answer.
 *
 * Invariants:
 * - One worker per process, started on first use; it does not keep the process alive while
 *   idle (unref'd), and does while a request is pending.
 * - Every request settles: with the worker's answer, with the typed error it reported, or, if
 *   the worker dies (its heap exhausted by a module, a crash), with a typed error for every
 *   request in flight; the next request starts a fresh worker.
 * - Only plain data, byte buffers and compiled modules cross the boundary.
 * - A worker that asks to retire gets no new request and is terminated once it has answered
 *   the ones it holds; the next request starts a fresh worker.
 */

/** What the root sends: a job name the worker knows, and its payload. */
export interface LoaderRequest {
  readonly id: number;
  readonly job: string;
  readonly payload: unknown;
}

/**
 * What the worker answers: the job's value, or its typed error as code and message. `retire`
 * asks the root to replace the worker once it has answered what it holds (instrument.ts:
 * binaryen after an exception is not trusted with another module).
 */
export type LoaderResponse = (
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly code: string; readonly message: string }
) & { readonly retire?: boolean };

/**
 * Heap and stack of the loader's worker. Section readers and binaryen's JavaScript side live
 * in the heap; the engine's compiler and binaryen's own linear memory are outside it and
 * bounded by the module bounds (bounds.ts) instead. binaryen recurses on nesting (its reader,
 * validator and writer): 4 MiB of stack overflowed at a depth of 2,000 blocks carrying a
 * value; 32 MiB leaves room for the default bound (10,000) several times over.
 */
const LOADER_RESOURCE_LIMITS = { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 32, stackSizeMb: 32 };

interface Pending {
  resolve(value: unknown): void;
  reject(error: WasmvisorError): void;
}

/** One worker and the requests it holds. */
interface Thread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
  /** Asked to retire: no new requests; terminated once `pending` is empty. */
  retiring: boolean;
}

class LoaderThread {
  private current: Thread | null = null;
  private nextId = 1;
  /** Workers that died with requests in flight: for tests and diagnostics. */
  crashes = 0;
  /** Workers replaced at their own request: for tests and diagnostics. */
  retirements = 0;

  request<T>(job: string, payload: unknown, transfer: readonly ArrayBuffer[] = []): Promise<T> {
    const thread = this.current ?? this.spawn();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      thread.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      thread.worker.ref();
      try {
        thread.worker.postMessage({ id, job, payload } satisfies LoaderRequest, transfer as ArrayBuffer[]);
      } catch (error) {
        this.settle(thread, id);
        reject(new InternalError(`could not hand the ${job} job to the loader thread: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
      }
    });
  }

  private spawn(): Thread {
    // The parent's flags, less those a worker refuses (paths.ts spawnWorker: the same rule as
    // the partitions' workers, falling back to none when Node refuses a V8 flag in a worker).
    const worker = spawnWorker(loaderWorkerScript, {
      resourceLimits: LOADER_RESOURCE_LIMITS,
      name: 'wasmvisor:loader',
      stdout: false,
      stderr: false,
    });
    const thread: Thread = { worker, pending: new Map(), retiring: false };
    let fault: unknown = null;
    worker.on('message', (message: LoaderResponse) => {
      if (message.retire === true && !thread.retiring) {
        thread.retiring = true;
        this.retirements++;
        if (this.current === thread) this.current = null;
      }
      const pending = this.settle(thread, message.id);
      if (pending === undefined) return;
      if (message.ok) pending.resolve(message.value);
      else pending.reject(isErrorCode(message.code) ? errorFromCode(message.code, message.message) : new InternalError(message.message));
    });
    worker.on('error', (error) => (fault = error));
    worker.on('messageerror', (error) => (fault = error));
    worker.once('exit', (code) => {
      if (this.current === thread) this.current = null;
      if (thread.pending.size === 0) return;
      this.crashes++;
      const err = fault as { code?: string; message?: string } | null;
      const failure: WasmvisorError =
        err?.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new LimitMemoryError(`loading the module exhausted the loader thread's heap (${LOADER_RESOURCE_LIMITS.maxOldGenerationSizeMb} MiB)`)
          : new InternalError(`the loader thread ended unexpectedly (exit code ${code})${err?.message ? `: ${err.message}` : ''}`);
      const lost = [...thread.pending.values()];
      thread.pending.clear();
      for (const p of lost) p.reject(failure);
    });
    worker.unref();
    this.current = thread;
    return thread;
  }

  private settle(thread: Thread, id: number): Pending | undefined {
    const pending = thread.pending.get(id);
    thread.pending.delete(id);
    if (thread.pending.size === 0) {
      thread.worker.unref();
      if (thread.retiring) void thread.worker.terminate();
    }
    return pending;
  }
}

let thread: LoaderThread | null = null;

/** The process's loader thread (created on first use). */
export function loaderThread(): LoaderThread {
  thread ??= new LoaderThread();
  return thread;
}

/** The buffer of `bytes` if it can be transferred whole (a view of all of it), else none. */
export function transferable(bytes: Uint8Array): ArrayBuffer[] {
  const buffer = bytes.buffer;
  return buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength ? [buffer] : [];
}
