/** Types of bench/lib/worker.mjs (plain JS, shared by the benches and test/bench/worker-wait.test.ts). */
import type { Worker } from 'node:worker_threads';

/**
 * The next `event` of `worker` ('message' by default, or 'online'), its value. Rejects at once,
 * naming the worker, when it emits 'error' or 'exit' first, or when one of `peers` (with their
 * names) emits 'error' or exits with a code other than 0; every listener it adds is removed when
 * it settles.
 */
export declare function workerEvent(worker: Worker, name: string, options?: { event?: string; peers?: Array<[Worker, string]> }): Promise<unknown>;
