import { MessageChannel, type Worker } from 'node:worker_threads';
import { CONTROL_SLOT, DOORBELL_SLOTS, Doorbell } from '../channel/doorbell.ts';
import type { SharedControl, SharedEvent, WorkerBoot, WorkerInit, WorkerOutcome } from '../channel/protocol.ts';
import { WORKER_STAT_SLOTS, WorkerStat } from '../channel/stats.ts';
import { spawnWorker, workerScript } from '../paths.ts';
import { processSpinBudget } from '../channel/spin.ts';
import type { RunHost, RunHostEvents } from './placement.ts';

/**
 * Default heap of a shared worker, MiB: it holds thousands of partitions' host state (each a
 * few KiB of JS objects; their linear memories are not JS heap).
 */
export const DEFAULT_SHARED_WORKER_HEAP_MB = 2048;

/** Most partitions one shared worker hosts (its doorbell's slots; slot 0 is control). */
export const SHARED_WORKER_SLOTS = DOORBELL_SLOTS - 1;

/** How long a killed partition may take to leave its shared worker before the whole worker is ended. */
export function killGraceMs(sliceMs: number): number {
  return Math.max(2000, 50 * sliceMs);
}

export interface SharedWorkerOptions {
  sliceMs: number;
  spinMicros: number;
  /** The thread's JS heap limit (old generation), MiB. */
  heapMb: number;
}

/** What `hv.scheduler()` shows of one shared worker. */
export interface SharedWorkerStats {
  id: number;
  threadId: number;
  partitions: number;
  runQueue: number;
  slices: number;
  preemptions: number;
  idleWaits: number;
}

/**
 * The root's handle on one shared worker (host/worker/shared.ts): it hands partitions to the
 * worker over a control port, rings the worker's doorbell when a partition's ring moves, and
 * routes each partition's lifecycle messages back to its run by slot. If the thread dies (out of
 * heap, or terminated because a partition would not leave), every partition on it ends with
 * ERR_KILLED and the reason; the Partition's restart policy decides what happens next.
 */
export class SharedWorker {
  private readonly worker: Worker;
  private readonly doorbell = new Doorbell(Doorbell.allocate());
  private readonly control: MessageChannel['port1'];
  private readonly stats = new Float64Array(new SharedArrayBuffer(WORKER_STAT_SLOTS * 8));
  private readonly runs = new Map<number, SharedHost>();
  /** Slots whose runs keep the process alive. */
  private readonly keepers = new Set<number>();
  private readonly free: number[] = [];
  private nextSlot = CONTROL_SLOT + 1;
  private error: unknown = null;
  private deathReason: string | null = null;
  dead = false;

  constructor(
    readonly id: number,
    readonly options: SharedWorkerOptions,
  ) {
    const channel = new MessageChannel();
    this.control = channel.port1;
    this.worker = spawnWorker(workerScript, {
      workerData: {
        role: 'shared',
        doorbell: this.doorbell.sab,
        control: channel.port2,
        stats: this.stats.buffer as SharedArrayBuffer,
        sliceMs: options.sliceMs,
        spinMicros: options.spinMicros,
        spin: processSpinBudget().sab,
      } satisfies WorkerBoot,
      transferList: [channel.port2],
      resourceLimits: { maxOldGenerationSizeMb: options.heapMb, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
      stdout: false,
      stderr: false,
      name: `wasmvisor:shared-${id}`,
    });
    this.worker.unref();
    this.worker.on('message', (event: SharedEvent) => {
      // A run's handler never throws (it guards itself); an unknown slot is a finished run.
      this.runs.get(event?.slot)?.events?.message(event.message);
    });
    this.worker.on('error', (error) => (this.error = error));
    this.worker.once('exit', (code) => this.died(code));
  }

  /** Partitions on this worker. */
  get partitions(): number {
    return this.runs.size;
  }

  get full(): boolean {
    return this.dead || this.runs.size >= SHARED_WORKER_SLOTS;
  }

  get threadId(): number {
    return this.worker.threadId;
  }

  snapshot(): SharedWorkerStats {
    const s = this.stats;
    return {
      id: this.id,
      threadId: this.worker.threadId,
      partitions: this.runs.size,
      runQueue: s[WorkerStat.RUN_QUEUE]!,
      slices: s[WorkerStat.SLICES]!,
      preemptions: s[WorkerStat.PREEMPTIONS]!,
      idleWaits: s[WorkerStat.IDLE_WAITS]!,
    };
  }

  /** Adds a run; returns its slot. It keeps the process alive until it says otherwise. */
  add(host: SharedHost, init: WorkerInit): number {
    const slot = this.free.pop() ?? this.nextSlot++;
    this.runs.set(slot, host);
    this.alive(slot, true);
    this.send({ type: 'add', slot, init });
    return slot;
  }

  /**
   * Whether the run in `slot` keeps the process alive: the thread is referenced while any of its
   * runs wants it (a running command, a reactor with work in flight), as a dedicated worker is.
   */
  alive(slot: number, on: boolean): void {
    const had = this.keepers.size;
    if (on) this.keepers.add(slot);
    else this.keepers.delete(slot);
    if (had === 0 && this.keepers.size > 0) this.worker.ref();
    else if (had > 0 && this.keepers.size === 0) this.worker.unref();
  }

  kill(slot: number, outcome: WorkerOutcome): void {
    // The partition's end is work in flight: the thread stays referenced until it reports it.
    this.alive(slot, true);
    this.send({ type: 'kill', slot, outcome });
  }

  wake(slot: number): void {
    this.doorbell.ring(slot);
  }

  /** The run in `slot` reported `done`: its slot is free. */
  release(slot: number): void {
    if (!this.runs.delete(slot)) return;
    this.alive(slot, false);
    this.free.push(slot);
  }

  /** Ends the thread (every partition on it ends with ERR_KILLED and `reason`). */
  terminate(reason: string): void {
    if (this.dead) return;
    this.deathReason ??= reason;
    this.worker.ref();
    this.worker.terminate().catch(() => 0);
  }

  /** Ends the thread once it hosts nothing (Hypervisor.close). */
  async close(): Promise<void> {
    this.deathReason ??= 'the hypervisor closed';
    this.worker.ref();
    await this.worker.terminate().catch(() => 0);
  }

  private send(message: SharedControl): void {
    this.control.postMessage(message);
    this.doorbell.ring(CONTROL_SLOT);
  }

  private died(code: number): void {
    this.dead = true;
    const err = this.error as { code?: string; message?: string } | null;
    const reason =
      this.deathReason ??
      (err?.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? `it ran out of heap (${err.message ?? 'ERR_WORKER_OUT_OF_MEMORY'})`
        : `it ended unexpectedly (exit code ${code}${err?.message ? `: ${err.message}` : ''})`);
    const runs = [...this.runs.values()];
    this.runs.clear();
    for (const host of runs) host.lost(code, reason);
    this.control.close();
  }
}

/** One run's place on a shared worker. */
export class SharedHost implements RunHost {
  readonly placement = 'shared';
  events: RunHostEvents | null = null;
  private slot = 0;
  private killTimer: NodeJS.Timeout | null = null;
  private name = '';

  constructor(private readonly worker: SharedWorker) {}

  get workerId(): number | null {
    return this.events === null ? null : this.worker.id;
  }

  launch(init: WorkerInit, events: RunHostEvents): void {
    if (this.worker.dead) throw new Error(`shared worker ${this.worker.id} has ended`);
    this.events = events;
    this.name = init.name;
    this.slot = this.worker.add(this, init);
  }

  kill(outcome: WorkerOutcome): void {
    if (this.events === null || this.killTimer !== null) return;
    this.worker.kill(this.slot, outcome);
    // The worker ends a partition between slices, so this is a backstop for a worker that
    // stopped running its scheduler (a bug, or a host call that never returns).
    const grace = killGraceMs(this.worker.options.sliceMs);
    this.killTimer = setTimeout(() => this.worker.terminate(`partition ${this.name} did not leave it within ${grace} ms of being stopped`), grace);
    this.killTimer.unref();
  }

  release(): void {
    this.clear();
    this.worker.release(this.slot);
    this.events = null;
  }

  wake(): void {
    if (this.events !== null) this.worker.wake(this.slot);
  }

  keepAlive(on: boolean): void {
    if (this.events !== null) this.worker.alive(this.slot, on);
  }

  /** The worker died under this run. */
  lost(code: number, reason: string): void {
    const events = this.events;
    this.clear();
    this.events = null;
    events?.exit(code, { kind: 'error', error: 'ERR_KILLED', message: `partition ${this.name}'s shared worker ${this.worker.id} died: ${reason}` });
  }

  private clear(): void {
    if (this.killTimer !== null) clearTimeout(this.killTimer);
    this.killTimer = null;
  }
}
