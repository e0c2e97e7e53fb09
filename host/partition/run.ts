import { setImmediate as nextTurn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { SharedRing } from '../channel/ring.ts';
import { workerScript } from '../paths.ts';
import { wasiMemory } from '../wasi/config.ts';
import { CallKind, EventKind, type ViolationRecord, type WorkerInit, type WorkerMessage, type WorkerOutcome } from './protocol.ts';

/** Heap limits for a partition's worker. Guest linear memory is not JS heap: it is bounded by the page limit. */
const WORKER_RESOURCE_LIMITS = {
  maxOldGenerationSizeMb: 48,
  maxYoungGenerationSizeMb: 8,
  stackSizeMb: 4,
};

/** The most memory a partition's worker itself may take (heap and stack), for admission control. */
export const WORKER_MEMORY_BYTES =
  (WORKER_RESOURCE_LIMITS.maxOldGenerationSizeMb + WORKER_RESOURCE_LIMITS.maxYoungGenerationSizeMb + WORKER_RESOURCE_LIMITS.stackSizeMb) * 1024 * 1024;

/** The process's Node flags, less those a worker refuses. */
const WORKER_EXEC_ARGV = process.execArgv.filter((arg, i, all) => !arg.startsWith('--input-type') && all[i - 1] !== '--input-type');

export interface RunEvents {
  /**
   * A console record (EventKind.STDOUT, STDERR or DROPPED). Returning false stops the draining
   * until `resumeOutput()`: the reader is behind, so the guest waits for it (backpressure).
   */
  output(kind: number, bytes: Uint8Array): boolean;
  violation(violation: ViolationRecord): void;
  /** A reactor finished initializing and takes calls. */
  ready(): void;
  /** A reactor call returned. */
  result(ret: number, output: Uint8Array): void;
  /** The worker is gone; everything it wrote has been delivered. Called once. */
  end(outcome: WorkerOutcome): void;
}

const decoder = new TextDecoder();

/** Most bytes of consecutive output records the root joins into one chunk. */
const OUTPUT_BATCH_BYTES = 256 * 1024;
/** Records this large are delivered as they are; smaller ones are joined. */
const OUTPUT_JOIN_BELOW = 8192;
const encoder = new TextEncoder();

/**
 * One worker's lifetime: the thread, its rings and its watchdog. A partition has one run at a
 * time; a reactor that is restarted gets a new run, with new rings, so nothing of the poisoned
 * instance (queued requests, half-read records) reaches the next one.
 */
export class WorkerRun {
  private readonly events: SharedRing;
  private readonly calls: SharedRing;
  private worker: Worker | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private outcome: WorkerOutcome | null = null;
  private killOutcome: WorkerOutcome | null = null;
  private workerError: unknown = null;
  private ended = false;
  /** The output's reader is behind: the pump waits for resumeOutput(). */
  private paused = false;
  private resumeWaiter: (() => void) | null = null;
  /** Where consecutive small output records are joined (scrubbed when the run ends). */
  private readonly batch = new Uint8Array(OUTPUT_BATCH_BYTES);

  constructor(
    private readonly init: Omit<WorkerInit, 'events' | 'calls'>,
    eventRingBytes: number,
    callRingBytes: number,
    private readonly on: RunEvents,
  ) {
    this.events = new SharedRing(SharedRing.allocate(eventRingBytes));
    this.calls = new SharedRing(SharedRing.allocate(callRingBytes));
  }

  get maxCallBytes(): number {
    return this.calls.maxRecord;
  }

  /** Spawns the worker. Resolves once it runs guest code (or has already ended). */
  start(): Promise<void> {
    let worker: Worker;
    try {
      worker = new Worker(workerScript, {
        workerData: { ...this.init, events: this.events.sab, calls: this.calls.sab } satisfies WorkerInit,
        resourceLimits: {
          ...WORKER_RESOURCE_LIMITS,
          // In-memory WASI trees: their entries' heap is bounded by the entry quota, and must fit.
          maxOldGenerationSizeMb: WORKER_RESOURCE_LIMITS.maxOldGenerationSizeMb + Math.ceil(wasiMemory(this.init.wasi).heapBytes / (1024 * 1024)),
        },
        stdout: false,
        stderr: false,
        // A worker the watchdog terminates runs no cleanup of its own: Node closes the host fds
        // it opened (WASI host folders). The default, stated because the sandbox relies on it.
        trackUnmanagedFds: true,
        name: `wasmvisor:${this.init.name}`,
        // A worker inherits the process's flags, and Node refuses --input-type in a worker:
        // an app started as `node --input-type=module -e …` would get no partition at all.
        execArgv: WORKER_EXEC_ARGV,
      });
    } catch (error) {
      // No worker, no run: the partition still ends through the one exit path.
      const message = error instanceof Error ? error.message : String(error);
      this.outcome = { kind: 'error', error: 'ERR_INTERNAL', message: `partition ${this.init.name} could not start its worker: ${message}` };
      this.finish(0);
      return Promise.resolve();
    }
    this.worker = worker;
    const running = new Promise<void>((resolve) => {
      worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'running') resolve();
        else if (message.type === 'ready') this.on.ready();
        else if (message.type === 'done') this.outcome = message.outcome;
      });
      worker.once('exit', () => resolve());
    });
    worker.on('error', (error) => (this.workerError = error));
    worker.on('messageerror', (error) => (this.workerError = error));
    worker.once('exit', (code) => this.finish(code));
    void this.pump();
    return running;
  }

  /**
   * Whether this run keeps the app's process alive. An idle reactor does not (the app may be
   * done with it and exit without closing it); a run with work in flight does.
   */
  keepAlive(on: boolean): void {
    if (on) this.worker?.ref();
    else this.worker?.unref();
  }

  /** Arms (or re-arms) the watchdog: after `ms`, the worker is terminated with `outcome`. */
  arm(ms: number, outcome: () => WorkerOutcome): void {
    this.disarm();
    if (Number.isFinite(ms)) this.watchdog = setTimeout(() => this.kill(outcome()), ms);
  }

  disarm(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  /** Terminates the worker; the run ends with `outcome` unless the guest had already finished. */
  kill(outcome: WorkerOutcome): void {
    if (this.ended || this.killOutcome !== null) return;
    this.killOutcome = outcome;
    void this.worker?.terminate();
  }

  /** Asks a reactor to stop taking calls; it finishes the current one and exits normally. */
  closeCalls(): void {
    this.calls.close();
  }

  /**
   * Queues a call for the reactor, with its fuel budget (0: the partition's own). False if the
   * ring has no room (the caller bounds calls in flight).
   */
  sendCall(exportName: string, input: Uint8Array, fuel = 0): boolean {
    const name = encoder.encode(exportName);
    const record = new Uint8Array(10 + name.length + input.length);
    new DataView(record.buffer).setFloat64(0, fuel, true);
    record[8] = name.length & 0xff;
    record[9] = name.length >>> 8;
    record.set(name, 10);
    record.set(input, 10 + name.length);
    return this.calls.tryWrite(CallKind.CALL, record);
  }

  /**
   * Polls the event ring for up to `micros` and delivers what arrived. A reactor call that takes
   * a few microseconds is then answered without the cost of an asynchronous wake-up; the bound
   * keeps the root's event loop from being held longer than that.
   */
  poll(micros: number): void {
    if (micros <= 0 || this.ended) return;
    const end = performance.now() + micros / 1000;
    while (this.events.peekLength() < 0) {
      if (performance.now() >= end) return;
    }
    if (!this.paused) this.drain(this.events.capacity);
  }

  /** The output's reader has room again: draining resumes (a no-op unless paused). */
  resumeOutput(): void {
    if (!this.paused) return;
    this.paused = false;
    const wake = this.resumeWaiter;
    this.resumeWaiter = null;
    wake?.();
  }

  /**
   * Moves records from the event ring to callbacks until the run has ended: in batches of at
   * most one ring's worth, yielding to the event loop in between (a guest that writes without
   * pause cannot hold the root's thread), and not at all while the output's reader is behind.
   */
  private async pump(): Promise<void> {
    while (!this.ended) {
      const seq = this.events.writeSeq;
      const more = this.drain(this.events.capacity);
      if (this.ended) break;
      if (this.paused) await new Promise<void>((resolve) => (this.resumeWaiter = resolve));
      else if (more) await nextTurn();
      else await this.events.whenWritten(seq);
    }
  }

  /**
   * Delivers records until the ring is empty (false), `budget` bytes were delivered (true: more
   * may wait), or the output's reader is behind (sets `paused`). Infinity: everything, ignoring
   * backpressure (the end of the run: the ring is scrubbed afterwards).
   */
  private drain(budget = Infinity): boolean {
    const force = budget === Infinity;
    let delivered = 0;
    for (;;) {
      const kind = this.events.peekKind();
      if (kind < 0) return false;
      try {
        if (kind === EventKind.STDOUT || kind === EventKind.STDERR) {
          const chunk = this.takeOutput(kind);
          delivered += chunk.length;
          if (!this.on.output(kind, chunk) && !force) this.paused = true;
        } else {
          const record = this.events.tryRead()!;
          delivered += record.bytes.length + 4;
          if (kind === EventKind.DROPPED) {
            if (!this.on.output(kind, record.bytes) && !force) this.paused = true;
          } else if (kind === EventKind.VIOLATION) {
            this.on.violation(JSON.parse(decoder.decode(record.bytes)) as ViolationRecord);
          } else if (kind === EventKind.RESULT) {
            const ret = new DataView(record.bytes.buffer, record.bytes.byteOffset).getInt32(0, true);
            this.on.result(ret, record.bytes.subarray(4));
          }
        }
      } catch (error) {
        // A throwing listener is the embedder's bug; it must not stop the pump or lose the exit.
        process.nextTick(() => {
          throw error;
        });
      }
      if (!force && (this.paused || delivered >= budget)) return true;
    }
  }

  /**
   * The next output record, joined with the small records of the same stream that follow it:
   * many small guest writes cost the root one delivery, not one each. The chunk is a fresh copy
   * the embedder may keep, in its own (unpooled, fully written) buffer: one copy per byte.
   */
  private takeOutput(kind: number): Uint8Array {
    const first = this.events.peekLength();
    if (first >= OUTPUT_JOIN_BELOW) {
      const chunk = Buffer.allocUnsafeSlow(first);
      this.events.readInto(chunk);
      return chunk;
    }
    const batch = this.batch;
    let n = 0;
    while (this.events.peekKind() === kind) {
      const length = this.events.peekLength();
      if (n + length > batch.length || length >= OUTPUT_JOIN_BELOW) break;
      n += this.events.readInto(batch.subarray(n));
    }
    const chunk = Buffer.allocUnsafeSlow(n);
    chunk.set(batch.subarray(0, n));
    return chunk;
  }

  private finish(workerExitCode: number): void {
    if (this.ended) return;
    this.disarm();
    this.worker = null;
    // Whatever the worker wrote before it ended is still in the ring: deliver it before the end.
    this.drain();
    this.ended = true;
    this.resumeOutput();
    this.events.wakeAll();
    this.calls.close();
    const outcome = this.outcome ?? this.killOutcome ?? this.crashOutcome(workerExitCode);
    // Root-held copies of guest data (console output, call inputs and outputs) go with the run.
    new Uint8Array(this.events.sab).fill(0);
    this.batch.fill(0);
    new Uint8Array(this.calls.sab).fill(0);
    this.on.end(outcome);
  }

  /** True when the run ended because the host killed it (watchdog, stop). */
  wasKilled(outcome: WorkerOutcome): boolean {
    return outcome === this.killOutcome;
  }

  private crashOutcome(code: number): WorkerOutcome {
    const err = this.workerError as { code?: string; message?: string } | null;
    if (err?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      return { kind: 'error', error: 'ERR_LIMIT_MEMORY', message: `partition ${this.init.name} exhausted its worker heap: ${err.message ?? ''}` };
    }
    const detail = err?.message ? `: ${err.message}` : '';
    return { kind: 'error', error: 'ERR_INTERNAL', message: `partition ${this.init.name}'s worker ended unexpectedly (exit code ${code})${detail}` };
  }
}
