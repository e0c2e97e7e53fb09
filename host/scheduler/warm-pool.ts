import type { Worker } from 'node:worker_threads';
import type { WarmMessage, WorkerBoot } from '../channel/protocol.ts';
import { spawnWorker, workerScript } from '../paths.ts';
import { processSpinBudget } from '../channel/spin.ts';

/** Heap limits for a dedicated worker. Guest linear memory is not JS heap: it is bounded by the page limit. */
export const WORKER_RESOURCE_LIMITS = {
  maxOldGenerationSizeMb: 48,
  maxYoungGenerationSizeMb: 8,
  stackSizeMb: 4,
};

/** The most memory a dedicated worker itself may take (heap and stack), for admission control. */
export const WORKER_MEMORY_BYTES =
  (WORKER_RESOURCE_LIMITS.maxOldGenerationSizeMb + WORKER_RESOURCE_LIMITS.maxYoungGenerationSizeMb + WORKER_RESOURCE_LIMITS.stackSizeMb) * 1024 * 1024;

/** How long after a take the pool starts refilling. */
const REFILL_DELAY_MS = 10;

/** The first message a parked worker receives (see WarmMessage: it takes the first message's cost off the start). */
const WARM: WarmMessage = Object.freeze({ type: 'warm' });

export interface WarmPoolOptions {
  /** Started, never-used workers kept ready. 0: every start spawns its worker. */
  size: number;
  /**
   * The embedder's opt-in to hand a worker that has run a partition to the next one (off by
   * default; see docs/THREAT-MODEL.md, "Worker reuse"). The worker scrubs what its partition
   * left, but a thread that ran hostile code is not a fresh one.
   */
  reuse: boolean;
}

/**
 * Pre-started dedicated workers: a thread takes tens of milliseconds to start, a warm one
 * takes a message. `take()` hands out a started, never-used worker (or spawns one when the
 * pool is empty) and refills the pool in the background, one spawn at a time per missing worker.
 * Idle workers are unref'd: a pool never keeps the embedder's process alive.
 */
export class WarmPool {
  private readonly idle: Worker[] = [];
  /** Workers spawned with extra heap for one partition: never parked for another. */
  private readonly oneOff = new WeakSet<Worker>();
  /** Each warming worker's flag (set by the worker when its warm-up is over); absent: warm (a reused worker). */
  private readonly warmed = new WeakMap<Worker, Int32Array>();
  private closed = false;
  private refill: NodeJS.Timeout | null = null;
  /** Workers spawned, and takes answered from the pool, for `hv.scheduler()`. */
  readonly counters = { spawned: 0, warmTakes: 0, coldTakes: 0, reused: 0 };

  constructor(private readonly options: WarmPoolOptions) {}

  /** Idle warm workers right now. */
  get size(): number {
    return this.idle.length;
  }

  get target(): number {
    return this.options.size;
  }

  /** Idle workers whose warm-up is over: a start on one of them runs compiled, tiered-up code. */
  get ready(): number {
    let n = 0;
    for (const worker of this.idle) {
      const flag = this.warmed.get(worker);
      if (flag === undefined || Atomics.load(flag, 0) === 1) n++;
    }
    return n;
  }

  /** Starts filling the pool (the first partition does this, so an idle Hypervisor spawns nothing). */
  warm(): void {
    this.scheduleRefill();
  }

  /**
   * A worker that has never run a partition (or, with reuse, one handed back), out of the pool.
   * `extraHeapMb`: old-generation heap the partition needs beyond the default (its in-memory
   * WASI tree's entries); such a worker is spawned for it, with that much more. The caller posts
   * its assignment, then calls `claim`: the worker wakes while the root does the bookkeeping.
   */
  take(extraHeapMb = 0): Worker {
    let worker = extraHeapMb > 0 ? undefined : this.idle.shift();
    if (worker !== undefined) this.counters.warmTakes++;
    else {
      worker = this.spawn(false, extraHeapMb);
      if (extraHeapMb > 0) this.oneOff.add(worker);
      this.counters.coldTakes++;
    }
    return worker;
  }

  /** A taken worker becomes its partition's: the pool's listeners off, referenced while in use, the pool refilled. */
  claim(worker: Worker): void {
    worker.removeAllListeners('exit');
    worker.removeAllListeners('error');
    worker.ref();
    this.scheduleRefill();
  }

  /**
   * A worker whose partition ended (it reported `done`). Kept for the next partition only with
   * the embedder's opt-in; otherwise it ends by itself (its port is closed on its side).
   */
  give(worker: Worker): void {
    if (!this.options.reuse || this.closed || this.oneOff.has(worker)) return;
    this.counters.reused++;
    this.warmed.delete(worker);
    // First in line: reuse is what the embedder asked for. The pool keeps its size.
    this.park(worker, true);
    for (const extra of this.idle.splice(Math.max(1, this.options.size))) extra.terminate().catch(() => 0);
  }

  /** Ends every idle worker; later takes still work (they spawn), nothing is refilled. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.refill !== null) clearTimeout(this.refill);
    const idle = this.idle.splice(0);
    // Referenced while they end: an unref'd worker's exit would not keep the loop alive to be seen.
    await Promise.all(idle.map((w) => (w.ref(), w.terminate().catch(() => 0))));
  }

  private scheduleRefill(): void {
    if (this.closed || this.refill !== null || this.idle.length >= this.options.size) return;
    // Off the caller's path: a spawn costs the root ~0.5 ms and the new thread's start-up
    // competes for a core with the partition that was just started, so it waits a moment. A
    // worker is parked at once: a message posted before its thread is online is queued, not lost.
    this.refill = setTimeout(() => {
      this.refill = null;
      while (!this.closed && this.idle.length < this.options.size) {
        const worker = this.spawn(true);
        worker.postMessage(WARM);
        this.park(worker);
      }
    }, REFILL_DELAY_MS);
    this.refill.unref();
  }

  private park(worker: Worker, first = false): void {
    worker.unref();
    const drop = (): void => {
      const at = this.idle.indexOf(worker);
      if (at >= 0) this.idle.splice(at, 1);
    };
    worker.removeAllListeners('exit');
    worker.removeAllListeners('error');
    worker.once('exit', drop);
    worker.on('error', drop);
    if (first) this.idle.unshift(worker);
    else this.idle.push(worker);
  }

  private spawn(warmUp: boolean, extraHeapMb = 0): Worker {
    this.counters.spawned++;
    const warmed = warmUp ? new SharedArrayBuffer(4) : undefined;
    const worker = spawnWorker(workerScript, {
      // A worker with extra heap is its partition's alone: it ends after its run (never reused).
      workerData: { role: 'dedicated', reuse: this.options.reuse && extraHeapMb === 0, warmUp, spin: processSpinBudget().sab, ...(warmed ? { warmed } : {}) } satisfies WorkerBoot,
      resourceLimits: { ...WORKER_RESOURCE_LIMITS, maxOldGenerationSizeMb: WORKER_RESOURCE_LIMITS.maxOldGenerationSizeMb + extraHeapMb },
      stdout: false,
      stderr: false,
      // A worker the watchdog terminates runs no cleanup of its own: Node closes the host fds
      // it opened (WASI host folders). The default, stated because the sandbox relies on it.
      trackUnmanagedFds: true,
      name: 'wasmvisor:worker',
    });
    if (warmed !== undefined) this.warmed.set(worker, new Int32Array(warmed));
    return worker;
  }
}
