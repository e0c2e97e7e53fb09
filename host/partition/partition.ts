import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { SharedRing } from '../channel/ring.ts';
import { workerScript } from '../paths.ts';
import { ConsoleInput } from '../devices/console.ts';
import type { ResolvedDevices } from '../devices/config.ts';
import {
  errorFromCode,
  InternalError,
  InvalidStateError,
  type ErrorCode,
  type WasmvisorError,
} from '../errors.ts';
import { allocateStats, readMetrics, type PartitionMetrics } from './stats.ts';
import {
  EventKind,
  type ViolationRecord,
  type WorkerInit,
  type WorkerMessage,
  type WorkerOutcome,
} from './protocol.ts';

/**
 * Lifecycle: created → running → exited | trapped | killed → destroyed.
 * `exited` is a normal exit (any code); `trapped` the guest faulted; `killed` the host ended it
 * (watchdog, stop(), worker heap exhausted).
 */
export type PartitionState = 'created' | 'running' | 'exited' | 'trapped' | 'killed' | 'destroyed';

/** How a partition's run ended: what `partition.exited` resolves to. */
export interface PartitionExit {
  state: 'exited' | 'trapped' | 'killed';
  /** The guest's exit code for a normal exit; null when it did not exit by itself. */
  code: number | null;
  /** `'exit'` for a normal exit, otherwise the error code (e.g. `ERR_LIMIT_CPU`). */
  reason: 'exit' | ErrorCode;
  /** The typed error, when the run did not end with a normal exit. */
  error?: WasmvisorError;
  /** Wall time from start() to the end of the run. */
  runTimeMs: number;
  metrics: PartitionMetrics;
}

/** A denied or malformed hypercall, as the `violation` event reports it. */
export interface Violation extends ViolationRecord {
  partition: string;
}

export type ConsoleStream = 'stdout' | 'stderr';

/** Settings a Partition needs, resolved and validated by the Hypervisor. */
export interface PartitionConfig {
  name: string;
  measurement: string;
  module: WebAssembly.Module;
  args: string[];
  devices: ResolvedDevices;
  memoryPages: number;
  timeoutMs: number;
  /** Fuel budget for a fuel-metered module, else null. */
  fuel: number | null;
  violationsPerSecond: number;
  /** Capacity of the worker → root event ring, bytes. */
  eventRingBytes: number;
  onDestroy?: (partition: Partition) => void;
}

export interface PartitionEvents {
  console: [line: string, stream: ConsoleStream];
  state: [state: PartitionState, previous: PartitionState];
  violation: [violation: Violation];
  exit: [exit: PartitionExit];
}

/** Heap limits for a partition's worker. Guest linear memory is not JS heap: it is bounded by the page limit. */
const WORKER_RESOURCE_LIMITS = {
  maxOldGenerationSizeMb: 48,
  maxYoungGenerationSizeMb: 8,
  stackSizeMb: 4,
};

const decoder = new TextDecoder();

/**
 * The root's handle on one child partition. It owns the worker, the watchdog, the rings and
 * the lifecycle; the guest itself lives only in the worker.
 */
export class Partition extends EventEmitter<PartitionEvents> {
  readonly name: string;
  /** SHA-256 (hex) of the module's original bytes. */
  readonly measurement: string;
  /** Resolves once, when the run ends, however it ends. Never rejects. */
  readonly exited: Promise<PartitionExit>;

  private _state: PartitionState = 'created';
  private readonly config: PartitionConfig;
  private readonly stats = allocateStats();
  private readonly events: SharedRing;
  private readonly inputRing: SharedRing;
  private readonly consoleInput: ConsoleInput;
  private worker: Worker | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private endedAt = 0;
  private outcome: WorkerOutcome | null = null;
  private killOutcome: WorkerOutcome | null = null;
  private workerError: unknown = null;
  private resolveExit!: (exit: PartitionExit) => void;
  private exitResult: PartitionExit | null = null;
  private pumping = false;
  private destroyed: Promise<void> | null = null;

  constructor(config: PartitionConfig) {
    super();
    this.config = config;
    this.name = config.name;
    this.measurement = config.measurement;
    this.events = new SharedRing(SharedRing.allocate(config.eventRingBytes));
    this.inputRing = new SharedRing(SharedRing.allocate(config.devices.console?.inputBufferBytes ?? 64));
    this.consoleInput = new ConsoleInput(this.inputRing);
    if (config.devices.console === null) this.inputRing.close();
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  get state(): PartitionState {
    return this._state;
  }

  /** Page limit the guest's memory was clamped to. */
  get memoryPages(): number {
    return this.config.memoryPages;
  }

  /**
   * Starts the guest in a new worker. Resolves once the worker runs (the guest's own result
   * comes through `exited`). Throws ERR_INVALID_STATE unless the partition is `created`.
   */
  async start(): Promise<void> {
    if (this._state !== 'created') throw new InvalidStateError(`partition ${this.name} cannot start: it is ${this._state}`);
    const init: WorkerInit = {
      name: this.name,
      module: this.config.module,
      args: this.config.args,
      devices: this.config.devices,
      stats: this.stats,
      events: this.events.sab,
      input: this.inputRing.sab,
      violationsPerSecond: this.config.violationsPerSecond,
      fuel: this.config.fuel,
    };
    this.startedAt = performance.now();
    this.setState('running');
    const worker = new Worker(workerScript, {
      workerData: init,
      resourceLimits: WORKER_RESOURCE_LIMITS,
      stdout: false,
      stderr: false,
      name: `wasmvisor:${this.name}`,
    });
    this.worker = worker;
    // The budget covers worker start-up and the wasm start function, not only _start.
    if (Number.isFinite(this.config.timeoutMs)) {
      this.watchdog = setTimeout(
        () => this.kill({ kind: 'error', error: 'ERR_LIMIT_CPU', message: `partition ${this.name} exceeded its wall-clock budget of ${this.config.timeoutMs} ms` }),
        this.config.timeoutMs,
      );
    }
    const running = new Promise<void>((resolve) => {
      worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'running') resolve();
        else if (message.type === 'done') this.outcome = message.outcome;
      });
      worker.once('exit', () => resolve());
    });
    worker.on('error', (error) => {
      this.workerError = error;
    });
    worker.on('messageerror', (error) => {
      this.workerError = error;
    });
    worker.once('exit', (code) => this.finish(code));
    void this.pump();
    await running;
  }

  /**
   * Ends the run now (the worker is terminated). Resolves with the exit; a no-op after the run
   * ended. A partition that never started moves straight to `killed`.
   */
  async stop(): Promise<PartitionExit> {
    if (this._state === 'created') {
      this.outcome = { kind: 'error', error: 'ERR_KILLED', message: `partition ${this.name} was stopped before it started` };
      this.finish(0);
    } else if (this._state === 'running') {
      this.kill({ kind: 'error', error: 'ERR_KILLED', message: `partition ${this.name} was stopped by the host` });
    }
    return this.exited;
  }

  /** Stops the partition if needed, scrubs the buffers the root held for it and releases it. Idempotent. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      await this.stop();
      new Uint8Array(this.events.sab).fill(0);
      new Uint8Array(this.inputRing.sab).fill(0);
      this.setState('destroyed');
      this.config.onDestroy?.(this);
    })();
    return this.destroyed;
  }

  /**
   * Queues a line of console input for the guest (without the newline).
   * Returns false when the input buffer is full or input has ended; see `writeLineWhenReady`.
   */
  writeLine(line: string | Uint8Array): boolean {
    return this.consoleInput.writeLine(line);
  }

  /** Queues a line, waiting while the guest's input buffer is full. False if input ended first. */
  writeLineWhenReady(line: string | Uint8Array): Promise<boolean> {
    return this.consoleInput.writeLineWhenReady(line);
  }

  /** Ends console input: the guest reads end-of-stream once it has read what was queued. */
  endInput(): void {
    this.consoleInput.end();
  }

  /** A snapshot of the partition's counters. */
  metrics(): PartitionMetrics & { state: PartitionState; runTimeMs: number } {
    const end = this.endedAt || (this.startedAt ? performance.now() : 0);
    return { ...readMetrics(this.stats), state: this._state, runTimeMs: this.startedAt ? end - this.startedAt : 0 };
  }

  private kill(outcome: WorkerOutcome): void {
    if (this._state !== 'running' || this.killOutcome !== null) return;
    this.killOutcome = outcome;
    void this.worker?.terminate();
  }

  private setState(state: PartitionState): void {
    const previous = this._state;
    if (previous === state) return;
    this._state = state;
    this.emit('state', state, previous);
  }

  /** Moves records from the event ring to events, until the run has ended and the ring is drained. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.exitResult === null) {
        const seq = this.events.writeSeq;
        this.drain();
        if (this.exitResult !== null) break;
        await this.events.whenWritten(seq);
      }
    } finally {
      this.pumping = false;
    }
  }

  private drain(): void {
    for (let record = this.events.tryRead(); record !== null; record = this.events.tryRead()) {
      try {
        if (record.kind === EventKind.STDOUT || record.kind === EventKind.STDERR) {
          this.emit('console', decoder.decode(record.bytes), record.kind === EventKind.STDOUT ? 'stdout' : 'stderr');
        } else if (record.kind === EventKind.VIOLATION) {
          const v = JSON.parse(decoder.decode(record.bytes)) as ViolationRecord;
          this.emit('violation', { partition: this.name, call: v.call, status: v.status, reason: v.reason });
        }
      } catch (error) {
        // A throwing listener is the embedder's bug; it must not stop the pump or lose the exit.
        process.nextTick(() => {
          throw error;
        });
      }
    }
  }

  private finish(workerExitCode: number): void {
    if (this.exitResult !== null) return;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.endedAt = performance.now();
    this.inputRing.close();
    // Whatever the worker wrote before it ended is still in the ring: deliver it before the exit.
    this.drain();
    const outcome = this.outcome ?? this.killOutcome ?? this.crashOutcome(workerExitCode);
    let exit: PartitionExit;
    const runTimeMs = this.startedAt ? this.endedAt - this.startedAt : 0;
    const metrics = readMetrics(this.stats);
    if (outcome.kind === 'exit') {
      exit = { state: 'exited', code: outcome.code, reason: 'exit', runTimeMs, metrics };
    } else {
      const killed = outcome === this.killOutcome || outcome.error === 'ERR_KILLED' || outcome.error === 'ERR_LIMIT_CPU';
      exit = {
        state: killed ? 'killed' : 'trapped',
        code: null,
        reason: outcome.error,
        error: errorFromCode(outcome.error, outcome.message),
        runTimeMs,
        metrics,
      };
    }
    this.exitResult = exit;
    this.events.wakeAll();
    this.worker = null;
    this.setState(exit.state);
    this.emit('exit', exit);
    this.resolveExit(exit);
  }

  private crashOutcome(code: number): WorkerOutcome {
    const err = this.workerError as { code?: string; message?: string } | null;
    if (err?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      return { kind: 'error', error: 'ERR_LIMIT_MEMORY', message: `partition ${this.name} exhausted its worker heap: ${err.message ?? ''}` };
    }
    const detail = err?.message ? `: ${err.message}` : '';
    return { kind: 'error', error: 'ERR_INTERNAL', message: new InternalError(`partition ${this.name}'s worker ended unexpectedly (exit code ${code})${detail}`).message };
  }
}
