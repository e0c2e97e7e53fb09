import type { Worker } from 'node:worker_threads';
import type { AssignMessage, WorkerInit } from '../channel/protocol.ts';
import type { RunHost, RunHostEvents } from './placement.ts';
import type { WarmPool } from './warm-pool.ts';
import { wasiMemory } from '../wasi/config.ts';

/**
 * A run on a dedicated worker: one thread that runs this partition only (a guest may block it,
 * it is the partition's own). The worker comes from the warm pool; it is never given to
 * another partition afterwards unless the embedder opted in (WarmPool.give).
 */
export class DedicatedHost implements RunHost {
  readonly placement = 'dedicated';
  private worker: Worker | null = null;
  private done = false;

  get workerId(): number | null {
    return this.worker?.threadId ?? null;
  }

  /** A dedicated worker waits on its own rings: nothing to ring. */
  wake(): void {}

  keepAlive(on: boolean): void {
    if (on) this.worker?.ref();
    else this.worker?.unref();
  }

  constructor(private readonly pool: WarmPool) {}

  launch(init: WorkerInit, events: RunHostEvents): void {
    // In-memory WASI trees: their entries' heap is bounded by the entry quota, and must fit.
    const worker = this.pool.take(Math.ceil(wasiMemory(init.wasi).heapBytes / (1024 * 1024)));
    this.worker = worker;
    // Posted first: the worker's thread wakes and reads it while the root does the rest (the
    // pool's bookkeeping, the listeners), ~0.1 ms off a warm start. Nothing the worker sends
    // or does can be seen before this turn of the root's event loop ends.
    try {
      worker.postMessage({ type: 'assign', init } satisfies AssignMessage);
    } catch (error) {
      // An assignment that cannot be posted leaves a worker nobody will use: it ends here.
      this.pool.claim(worker);
      this.worker = null;
      void worker.terminate().catch(() => 0);
      throw error;
    }
    this.pool.claim(worker);
    worker.on('message', (m: unknown) => events.message(m));
    worker.on('error', (e: unknown) => events.error(e));
    worker.on('messageerror', (e: unknown) => events.error(e));
    worker.once('exit', (code: number) => {
      this.worker = null;
      events.exit(code);
    });
  }

  kill(): void {
    if (this.done) return;
    // Referenced until it is gone (an idle reactor's worker is not): its 'exit' ends the run.
    this.worker?.ref();
    this.worker?.terminate().catch(() => {
      // The worker is gone either way; its 'exit' event ends the run.
    });
  }

  release(): void {
    const worker = this.worker;
    if (worker === null || this.done) return;
    this.done = true;
    this.worker = null;
    worker.removeAllListeners('message');
    worker.removeAllListeners('messageerror');
    // Without reuse the worker ends by itself (it closed its port); it must not hold the process.
    worker.unref();
    this.pool.give(worker);
  }
}
