import os from 'node:os';
import { DedicatedHost } from './dedicated.ts';
import type { RunHost } from './placement.ts';
import { ProcessChild, ProcessHost, sharedSandbox, type ProcessStats } from './process.ts';
import type { ChildFds, SandboxOptions } from './sandbox.ts';
import { SharedHost, SharedWorker, type SharedWorkerStats } from './shared.ts';
import { WarmPool } from './warm-pool.ts';
import type { Placement } from '../limits/sizes.ts';
import { LimitMemoryError } from '../errors.ts';

export interface SchedulerOptions {
  /** Warm dedicated workers kept ready (HypervisorOptions.warmWorkers). */
  warmWorkers: number;
  /** Hand a used dedicated worker to the next partition (HypervisorOptions.reuseWorkers). */
  reuseWorkers: boolean;
  /** Most shared workers (HypervisorOptions.sharedWorkers). */
  sharedWorkers: number;
  /** A shared partition's time slice, ms (HypervisorOptions.sliceMs). */
  sliceMs: number;
  /** How long an idle shared worker polls before it sleeps, µs. */
  spinMicros: number;
  /** A shared worker's JS heap limit, MiB (HypervisorOptions.sharedWorkerHeapMb). */
  sharedWorkerHeapMb: number;
  /** How partition processes are started (HypervisorOptions.process). */
  sandbox: SandboxOptions;
  /** Most shared partition processes (HypervisorOptions.process.sharedProcesses). */
  sharedProcesses: number;
  /** Most partitions per shared partition process (HypervisorOptions.process.partitionsPerProcess). */
  partitionsPerProcess: number;
  /** The code partition processes run; default the shipped bundle (tests put a stand-in child here). */
  processCode?: URL;
}

/** What `hv.scheduler()` reports. */
export interface SchedulerStats {
  /** Placement of partitions whose spec does not choose. */
  defaultPlacement: Placement;
  sliceMs: number;
  /** Pre-started dedicated workers. */
  warmPool: { target: number; idle: number; ready: number; spawned: number; warmTakes: number; coldTakes: number; reused: number };
  /** Shared workers: partitions on each, run queue, slices run, preemptions. */
  workers: SharedWorkerStats[];
  /** Partition processes (isolation 'process'), dedicated and shared: each one's pid, partitions and its scheduler's counters. */
  processes: ProcessStats[];
  /** Shared partition processes: seats taken by live partitions of the most (`sharedProcesses` × `partitionsPerProcess`). */
  processSeats: { taken: number; capacity: number };
}

/** Default number of shared workers: one per core the process may use. */
export function defaultSharedWorkers(): number {
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}

/**
 * The hypervisor's scheduler: it owns the logical processors (worker threads) and decides where
 * each run of a partition executes. A dedicated run takes a warm worker of its own; a shared run
 * goes to the shared worker hosting the fewest partitions (up to `sharedWorkers` of them, started
 * on demand), whose own scheduler (host/worker/shared.ts) time-slices it with the others.
 */
export class Scheduler {
  private readonly pool: WarmPool;
  private readonly shared: SharedWorker[] = [];
  private readonly processes = new Set<ProcessChild>();
  private readonly sharedProcs: ProcessChild[] = [];
  /** Live partitions placed on shared partition processes (each holds a seat from creation to destruction). */
  private seats = 0;
  private nextWorkerId = 0;

  constructor(
    private readonly options: SchedulerOptions,
    private readonly defaultPlacement: Placement,
  ) {
    this.pool = new WarmPool({ size: options.warmWorkers, reuse: options.reuseWorkers });
  }

  get sliceMs(): number {
    return this.options.sliceMs;
  }

  /** Called when partitions start being created: fills the warm pool in the background. */
  warm(): void {
    this.pool.warm();
  }

  /** A place for one run of a partition. */
  host(placement: Placement): RunHost {
    if (placement === 'dedicated') return new DedicatedHost(this.pool);
    return new SharedHost(this.sharedWorker());
  }

  /**
   * A place for one run in a partition process: a process of its own (`shared` false), or a slot
   * on a shared partition process. `moduleBytes` are the module as run (the child compiles them:
   * a compiled module does not cross processes); `imagePath`: its block image's, or null.
   */
  processHost(moduleBytes: Uint8Array, imagePath: string | null, shared = false): RunHost {
    return new ProcessHost(shared ? (fds) => this.sharedProcess(fds) : (fds) => this.spawnProcess(fds, false), shared, moduleBytes, imagePath);
  }

  /**
   * A seat on the shared partition processes for a partition from its creation to its destruction
   * (returns the release). Refused with ERR_LIMIT_MEMORY when every seat is taken: the bound is
   * each process's address space (MAX_PARTITIONS_PER_PROCESS), times the processes. Every run of a
   * seated partition finds a slot (live partitions never outnumber the slots).
   */
  processSeat(name: string): () => void {
    const capacity = this.options.sharedProcesses * this.options.partitionsPerProcess;
    if (this.seats >= capacity) {
      throw new LimitMemoryError(
        `partition ${name}: every shared partition process hosts its most partitions (${this.options.sharedProcesses} processes × ${this.options.partitionsPerProcess} partitions: process.sharedProcesses, process.partitionsPerProcess)`,
      );
    }
    this.seats++;
    let held = true;
    return () => {
      if (held) this.seats--;
      held = false;
    };
  }

  private spawnProcess(fds: ChildFds, shared: boolean): ProcessChild {
    const o = this.options;
    const p = new ProcessChild(
      {
        sandbox: shared ? sharedSandbox(o.sandbox, o.partitionsPerProcess, o.sharedWorkerHeapMb) : o.sandbox,
        sliceMs: o.sliceMs,
        shared,
        capacity: shared ? o.partitionsPerProcess : 1,
        onGone: (gone) => {
          this.processes.delete(gone);
          const i = this.sharedProcs.indexOf(gone);
          if (i >= 0) this.sharedProcs.splice(i, 1);
        },
        ...(o.processCode ? { code: o.processCode } : {}),
      },
      fds,
    );
    this.processes.add(p);
    if (shared) this.sharedProcs.push(p);
    return p;
  }

  /** The shared partition process hosting the fewest partitions; a new one while under the limit and every one has partitions. */
  private sharedProcess(fds: ChildFds): ProcessChild {
    // createPartition gives a partition that needs descriptors a process of its own (they are given at spawn only).
    if (fds.block !== null || fds.outputs.stdout !== null || fds.outputs.stderr !== null || fds.folders.length > 0) {
      throw new Error('a partition with descriptors (block image, console outputFd, host folders) cannot join a shared partition process');
    }
    let best: ProcessChild | null = null;
    for (const p of this.sharedProcs) if (!p.full && (best === null || p.partitions < best.partitions)) best = p;
    const live = this.sharedProcs.filter((p) => !p.dead).length;
    if (live < this.options.sharedProcesses && (best === null || best.partitions > 0)) return this.spawnProcess(fds, true);
    if (best === null) throw new Error(`every shared partition process hosts its most partitions (${this.options.sharedProcesses} × ${this.options.partitionsPerProcess})`);
    return best;
  }

  private sharedWorker(): SharedWorker {
    for (let i = this.shared.length - 1; i >= 0; i--) if (this.shared[i]!.dead) this.shared.splice(i, 1);
    let best: SharedWorker | null = null;
    for (const w of this.shared) if (!w.full && (best === null || w.partitions < best.partitions)) best = w;
    // A new thread while under the limit and every existing one has partitions.
    if (this.shared.length < this.options.sharedWorkers && (best === null || best.partitions > 0)) {
      const w = new SharedWorker(this.nextWorkerId++, { sliceMs: this.options.sliceMs, spinMicros: this.options.spinMicros, heapMb: this.options.sharedWorkerHeapMb });
      this.shared.push(w);
      return w;
    }
    if (best === null) throw new Error(`every shared worker hosts its most partitions (${this.options.sharedWorkers} workers)`);
    return best;
  }

  stats(): SchedulerStats {
    const c = this.pool.counters;
    return {
      defaultPlacement: this.defaultPlacement,
      sliceMs: this.options.sliceMs,
      warmPool: { target: this.pool.target, idle: this.pool.size, ready: this.pool.ready, ...c },
      workers: this.shared.filter((w) => !w.dead).map((w) => w.snapshot()),
      processes: [...this.processes].flatMap((p) => p.snapshot() ?? []),
      processSeats: { taken: this.seats, capacity: this.options.sharedProcesses * this.options.partitionsPerProcess },
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.close(), ...this.shared.map((w) => w.close()), ...[...this.processes].map((p) => p.close())]);
  }
}
