import type { Worker } from 'node:worker_threads';
import { InternalError, errorFromCode, type ErrorCode } from '../errors.ts';
import { spawnWorker, transformScript } from '../paths.ts';

/**
 * The binaryen transforms, run off the root's thread: fuel metering (instrument.ts), and for
 * shared placement the suspend transform after it.
 *
 * The suspend transform is binaryen's Asyncify pass, so a guest in a shared
 * worker can be unwound out of a blocking hypercall (or at a fuel checkpoint, when its time
 * slice is spent) and rewound later, while other partitions run on the thread. Node 20 has no
 * JS Promise Integration, so the guest's stack has to be saved by the guest's own code.
 *
 * Only the imports that may suspend are instrumented as such (`asyncify-imports`): the hypercall,
 * the fuel hook and WASI. It runs after fuel instrumentation (every function and loop reaches the
 * fuel hook, so most of the module is instrumented: see docs/ABI.md, "Shared placement", for the
 * measured cost), and only for modules that run shared; dedicated partitions never pay for it.
 *
 * The pass takes binaryen about a second to load and up to seconds per module, so it runs in a
 * worker of its own (host/loader/transform-worker.ts), never on the root's event loop; its output
 * is cached with the compiled module.
 */

/** Bump whenever the transform changes: it is part of every cache key. */
export const ASYNCIFY_VERSION = 1;

/** Exports the pass adds, renamed to the reserved prefix (a guest may not use it). */
export const ASYNCIFY_EXPORTS = {
  startUnwind: '__wasmvisor_asyncify_start_unwind',
  stopUnwind: '__wasmvisor_asyncify_stop_unwind',
  startRewind: '__wasmvisor_asyncify_start_rewind',
  stopRewind: '__wasmvisor_asyncify_stop_rewind',
  getState: '__wasmvisor_asyncify_get_state',
} as const;

/** The imports a guest may be suspended in. */
export const ASYNCIFY_IMPORTS = ['hv.hypercall', 'hv.__wasmvisor_fuel_exhausted', 'wasi_snapshot_preview1.*'];

/** A request to the transform worker, and its answer. */
export interface TransformRequest {
  id: number;
  bytes: Uint8Array;
  /** Also apply the suspend transform (after fuel metering). */
  suspendable: boolean;
}
export type TransformReply = ({ id: number; bytes: Uint8Array } | { id: number; error: string; code: ErrorCode | null }) & {
  /** The worker's binaryen is no longer trusted: it gets no new request, and ends once it has answered. */
  readonly retire?: boolean;
};

/** One transform worker and the requests it has not answered yet. */
interface Transformer {
  readonly worker: Worker;
  readonly pending: Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>;
  retiring: boolean;
}

let current: Transformer | null = null;
let nextId = 1;

/** Transform workers spawned, and retired at their own request: for tests and diagnostics. */
export const transformCounters = { spawned: 0, retirements: 0 };

function transformer(): Transformer {
  if (current !== null) return current;
  const w = spawnWorker(transformScript, { stdout: false, stderr: false, name: 'wasmvisor:transform' });
  transformCounters.spawned++;
  const t: Transformer = { worker: w, pending: new Map(), retiring: false };
  w.unref();
  w.on('message', (reply: TransformReply) => {
    // A worker whose binaryen an exception unwound through takes no new request (a fresh one
    // will), and ends once it has answered the ones it has.
    if (reply.retire === true && !t.retiring) {
      t.retiring = true;
      transformCounters.retirements++;
      if (current === t) current = null;
    }
    const p = t.pending.get(reply.id);
    t.pending.delete(reply.id);
    if (t.pending.size === 0) {
      w.unref();
      if (t.retiring) void w.terminate();
    }
    if (p === undefined) return;
    if ('bytes' in reply) p.resolve(reply.bytes);
    // A typed refusal (e.g. ERR_FEATURE_DENIED for code the meter cannot see) keeps its code.
    else p.reject(reply.code !== null ? errorFromCode(reply.code, reply.error) : new InternalError(`transforming the module failed: ${reply.error}`));
  });
  const fail = (error: unknown): void => {
    if (current === t) current = null;
    const message = error instanceof Error ? error.message : `the transform worker exited (${String(error)})`;
    for (const p of t.pending.values()) p.reject(new InternalError(`transforming the module failed: ${message}`));
    t.pending.clear();
  };
  w.on('error', fail);
  w.on('exit', fail);
  current = t;
  return t;
}

/**
 * Meters fuel in `bytes` (and, when `suspendable`, applies the suspend transform), in the
 * transform worker. Rejects with the typed error the transform gave (ERR_FEATURE_DENIED for code
 * it cannot take) or ERR_INTERNAL.
 */
export function transformModule(bytes: Uint8Array, suspendable: boolean): Promise<Uint8Array> {
  const id = nextId++;
  const t = transformer();
  return new Promise<Uint8Array>((resolve, reject) => {
    t.pending.set(id, { resolve, reject });
    t.worker.ref();
    t.worker.postMessage({ id, bytes, suspendable } satisfies TransformRequest);
  });
}
