import type { Readable, Writable } from 'node:stream';
import { SharedRing } from '../channel/ring.ts';
import { GuardedEmitter } from '../events.ts';
import { CONSOLE_DEFAULTS } from '../devices/config.ts';
import { ConsoleInput, ConsoleOutput, inputStream, type ConsoleStream, type DropCounts } from '../devices/console.ts';
import type { ResolvedDevices } from '../devices/config.ts';
import { blockInit, type BlockAttachment, type Storage, type WipeResult } from '../storage/storage.ts';
import type { ResolvedWasi } from '../wasi/config.ts';
import { formatAddress, readNetMetrics, type NetMetrics } from '../devices/net.ts';
import type { NicAttachment } from '../net/switch.ts';
import {
  BusyError,
  errorFromCode,
  GuestCallError,
  InternalError,
  InvalidArgumentError,
  InvalidStateError,
  type ErrorCode,
  type WasmvisorError,
} from '../errors.ts';
import { allocateStats, readMetrics, type PartitionMetrics } from '../channel/stats.ts';
import type { ResolvedRateLimit } from '../limits/rate-limiter.ts';
import { STDIO_SLOTS, type CpuCap, type ViolationRecord, type WorkerOutcome } from '../channel/protocol.ts';
import { WorkerRun } from './run.ts';
import { holdProcess, releaseProcess } from './keep-alive.ts';
import type { ChannelSizes } from '../limits/sizes.ts';
import type { RunHost, RunPlacement } from '../scheduler/placement.ts';
import type { AttestationInit } from '../devices/attestation.ts';
import { check, given, refuseUnknownKeys } from '../schema/check.ts';
import { CallOptionsSchema, type CallOptions } from '../schema/partition.ts';
import type { RestartMode } from '../schema/limits.ts';
import { quoted } from '../escape.ts';

/**
 * Lifecycle: created → running → exited | trapped | killed → destroyed.
 * `exited` is a normal exit (any code); `trapped` the guest faulted; `killed` the host ended it
 * (watchdog, stop(), worker heap exhausted). A reactor that is restarted stays `running`.
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

/** Why and when a reactor is restarted, as the `restart` event reports it. */
export interface RestartInfo {
  /** The error code that poisoned the instance. */
  reason: ErrorCode;
  message: string;
  /** 1 for the first restart after a success. */
  attempt: number;
  delayMs: number;
}

export type { ConsoleStream };

/** Output the console dropped since the last report, as the `dropped` event reports it. */
export interface DroppedOutput extends DropCounts {
  stream: ConsoleStream;
}

export type { RestartMode } from '../schema/limits.ts';
export type { CallOptions } from '../schema/partition.ts';

/** Settings a Partition needs, resolved and validated by the Hypervisor. */
export interface PartitionConfig {
  name: string;
  measurement: string;
  module: WebAssembly.Module;
  args: string[];
  devices: ResolvedDevices;
  memoryPages: number;
  /** Command: budget for the whole run. Reactor: budget for start-up (start function and _initialize). */
  timeoutMs: number;
  /** Fuel budget for a fuel-metered module, else null. */
  fuel: number | null;
  /** CPU cap (the module is then metered, with or without a fuel budget), else null. */
  cpu?: CpuCap | null;
  /** Rate limit of hypercalls as a whole, or null for none. */
  hypercallRate?: ResolvedRateLimit | null;
  violationsPerSecond: number;
  kind: 'command' | 'reactor';
  /** Exports a host may call: functions of type () -> i32. */
  callable: ReadonlySet<string>;
  maxInputBytes: number;
  maxOutputBytes: number;
  maxQueuedCalls: number;
  callTimeoutMs: number;
  restart: { mode: RestartMode; maxRestarts: number; backoffMs: number; maxBackoffMs: number };
  spinMicros: number;
  /** Ring sizes of the partition's channels (host/limits/sizes.ts). */
  channels: ChannelSizes;
  /** Where each run executes: a new place per run (a restarted reactor never reuses its poisoned one). */
  host: () => RunHost;
  /** Shared placement: fuel between checkpoints at which the guest may be preempted. */
  sliceFuel?: number;
  /** The opened block image and the back-end that owns it; null when block is not granted. */
  block?: { storage: Storage; attachment: BlockAttachment; pathOverride: string | null } | null;
  /**
   * The back-end that holds the disk of the name, for `destroy({ wipe: true })` when block is not
   * granted: an earlier partition of the name may have left its image at the default place.
   */
  storage: Storage;
  /** WASI settings and seeds; null when the spec does not enable WASI. */
  wasi?: ResolvedWasi | null;
  /** The NIC on the hypervisor's switch; null when net is not granted. */
  net?: NicAttachment | null;
  /** The partition's attestation key and certificate; null when attestation is not granted. */
  attestation?: AttestationInit | null;
  onDestroy?: (partition: Partition) => void;
}

/** Options of `partition.destroy()`. */
export interface DestroyOptions {
  /**
   * Also scrub (overwrite with zeros) and remove the block image of the partition's name, and
   * remove its key: a new partition of the same name starts from an empty disk. A partition whose
   * spec grants no disk wipes the images an earlier partition of its name left, at the default
   * place or (found through the keystore) at its spec's path, as `hv.wipeStorage(name)` does.
   * Default false: the image persists.
   */
  wipe?: boolean;
}

export interface PartitionEvents {
  /** The guest's output, every chunk exactly as written (bytes, in order, nothing added). */
  output: [chunk: Uint8Array, stream: ConsoleStream];
  /** The same output cut into lines (UTF-8, without the newline; a longer run in pieces of maxLineBytes). */
  console: [line: string, stream: ConsoleStream];
  /**
   * Output the console dropped (refused by its rate limit in reject mode; lines over the lines
   * bucket; bytes cut from over-long lines), batched. The events add up exactly to
   * `metrics.console`'s counters however the partition ends: the last comes before `restart` / `exit`.
   */
  dropped: [info: DroppedOutput];
  state: [state: PartitionState, previous: PartitionState];
  violation: [violation: Violation];
  restart: [info: RestartInfo];
  exit: [exit: PartitionExit];
}

interface PendingCall {
  name: string;
  input: Uint8Array;
  timeoutMs: number;
  /** 0: the partition's own budget. */
  fuel: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  resolve: (output: Uint8Array) => void;
  reject: (error: unknown) => void;
}

function abortError(signal: AbortSignal): Error {
  if (signal.reason instanceof Error) return signal.reason;
  const error = new Error('the call was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as Error & { code: string }).code = 'ABORT_ERR';
  return error;
}

const encoder = new TextEncoder();
/**
 * Queues the root's poll for an answer (Partition.pollSoon) as a reaction to a settled promise, a
 * microtask like queueMicrotask's, in the same queue and order: Node's queueMicrotask makes an
 * AsyncResource and a bound function for each (~260 bytes and two async-hook passes), once per
 * call sent. pollSoon does not throw (the run's drain handles its own failures).
 */
const RESOLVED: Promise<void> = Promise.resolve();
/** A call's resolving functions, as `takeResolvers` received them from the promise just made (Partition.call). */
let takenResolve: ((output: Uint8Array) => void) | null = null;
let takenReject: ((error: unknown) => void) | null = null;
/** The executor of every call's promise: one function, not a closure made per call. */
function takeResolvers(resolve: (output: Uint8Array) => void, reject: (error: unknown) => void): void {
  takenResolve = resolve;
  takenReject = reject;
}
/** A call's defaults: no input (never written: the call copies its input), no options. */
const NO_INPUT = new Uint8Array(0);
const NO_OPTIONS: CallOptions = Object.freeze({});

/** Appended to a call's over-budget message when the partition never took the call from its ring (see callOverBudget). */
const NOT_TAKEN = '; the partition had not taken the call (still unread in its call ring: the guest never started it)';

/**
 * The root's handle on one child partition. It owns the lifecycle, the console input and, for a
 * reactor, the call queue and the restart policy; each worker's lifetime is a WorkerRun.
 */
export class Partition extends GuardedEmitter<PartitionEvents> {
  readonly name: string;
  /** SHA-256 (hex) of the module's original bytes. */
  readonly measurement: string;
  /** Resolves once, when the partition's run ends, however it ends. Never rejects. */
  readonly exited: Promise<PartitionExit>;

  private _state: PartitionState = 'created';
  private readonly config: PartitionConfig;
  private readonly stats = allocateStats();
  private readonly inputRing: SharedRing;
  private readonly consoleInput: ConsoleInput;
  private readonly consoleOutput: ConsoleOutput;
  private stdinStream: Writable | null = null;
  private run: WorkerRun | null = null;
  private startedAt = 0;
  private endedAt = 0;
  private resolveExit!: (exit: PartitionExit) => void;
  private exitResult: PartitionExit | null = null;
  private destroyed: Promise<void> | null = null;
  /** Set by stop(): the next end of a run ends the partition, whatever the restart policy. */
  private stopping: WorkerOutcome | null = null;
  // Reactor state.
  private ready = false;
  private readonly queue: PendingCall[] = [];
  private inFlight: PendingCall | null = null;
  private inFlightAborted = false;
  /**
   * A call written into the run's call ring behind `inFlight` (WorkerRun.sendAhead): the worker
   * starts it once it has answered `inFlight`, and the root counts it started when it reads that
   * answer. Until then it is still a queued call: its input is kept (a run that ends first hands
   * it back to the queue, see onEnd) and its budget is not armed. Only calls without an
   * AbortSignal go ahead: an abort takes a queued call back without touching the instance.
   */
  private ahead: PendingCall | null = null;
  /** Calls are queued or in flight: this partition holds the process alive (keep-alive.ts). */
  private holding = false;
  /** Failures in a row since the last successful call (drives the backoff and the maximum). */
  private failures = 0;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private dispatching = false;
  /** A poll for the answer is queued (see dispatch). */
  private pollQueued = false;
  private onFirstReady: (() => void) | null = null;
  private wiped: Promise<WipeResult> | null = null;
  private detached: Promise<void> | null = null;

  constructor(config: PartitionConfig) {
    super();
    this.config = config;
    this.name = config.name;
    this.measurement = config.measurement;
    this.inputRing = new SharedRing(SharedRing.allocate(config.channels.input));
    this.consoleInput = new ConsoleInput(this.inputRing, config.devices.console?.inputBufferBytes ?? 0);
    // A partition suspended in a shared worker hears of input (and, for its NIC, of frames and
    // freed room) through its worker's doorbell; a dedicated run ignores the wake.
    this.inputRing.onMove = () => this.run?.wake();
    config.net?.setWake(() => this.run?.wake());
    // A NIC whose traffic the root cannot handle is unplugged; the run on it ends (ERR_INTERNAL).
    config.net?.onFault((error) => this.run?.fail(error));
    if (config.devices.console === null) this.inputRing.close();
    this.consoleOutput = new ConsoleOutput(new SharedArrayBuffer(STDIO_SLOTS * 4), config.devices.console?.maxLineBytes ?? CONSOLE_DEFAULTS.maxLineBytes, {
      output: (chunk, stream) => this.emit('output', chunk, stream),
      wantsLines: () => this.listenerCount('console') > 0,
      line: (line, stream) => this.emit('console', line, stream),
      dropped: (stream, counts) => this.emit('dropped', { stream, ...counts }),
      resume: () => this.run?.resumeOutput(),
    });
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  protected override describeEmitter(): string {
    return `partition ${this.name}`;
  }

  get state(): PartitionState {
    return this._state;
  }

  /** `command` (runs _start once) or `reactor` (serves calls to its exports). */
  get kind(): 'command' | 'reactor' {
    return this.config.kind;
  }

  /** Calls waiting or running (a reactor's load, used by pools to pick the least busy). */
  get pendingCalls(): number {
    return this.queue.length + (this.inFlight ? 1 : 0) + (this.ahead ? 1 : 0);
  }

  /**
   * For a pool's choice: the partition's worker is awake (it runs a call or polls for the next
   * one), so a call sent to it now is taken without a wake-up. False for a worker asleep on its
   * call ring, and for shared and process placement (they sleep on a doorbell).
   */
  get workerAwake(): boolean {
    return this.run?.workerAwake ?? false;
  }

  /**
   * For a pool's choice: one call is running and a next one would go straight behind it into
   * the call ring (no call queued or ahead; a call without an AbortSignal), and a recent call
   * was answered within the spin window (WorkerRun.answeredWithin): queueing behind it costs
   * less than waking a sleeping worker.
   */
  takesCallAhead(): boolean {
    const run = this.run;
    return this.inFlight !== null && this.ahead === null && this.queue.length === 0 && run !== null && run.accepting && run.answeredWithin(this.config.spinMicros);
  }

  /** The NIC's address on the virtual switch (u32), or null when net is not granted. */
  get netAddress(): number | null {
    return this.config.net?.address ?? null;
  }

  /** The NIC's address, segment, MTU and host grant, or null when net is not granted. */
  get netGrant(): { address: number; segment: string; mtu: number; host: boolean } | null {
    const n = this.config.devices.net;
    const a = this.config.net;
    return n && a ? { address: a.address, segment: n.segment, mtu: n.mtu, host: n.host } : null;
  }

  /** The NIC's address as a dotted quad (e.g. `10.0.0.2`), or null when net is not granted. */
  get netAddressString(): string | null {
    const a = this.config.net?.address;
    return a === undefined ? null : formatAddress(a);
  }

  /** Where the current run executes ('dedicated' or 'shared'), or null when it is not running. */
  get placement(): RunPlacement | null {
    return this.run?.placement ?? null;
  }

  /** The worker running it (a thread id for a dedicated worker, a shared worker's number), or null. */
  get workerId(): number | null {
    return this.run?.workerId ?? null;
  }

  /** Page limit the guest's memory was clamped to. */
  get memoryPages(): number {
    return this.config.memoryPages;
  }

  /**
   * Starts the guest in a new worker. A command: resolves once the worker runs guest code (its
   * result comes through `exited`). A reactor: resolves once it is initialized and takes calls,
   * or has ended (see `exited`). ERR_INVALID_STATE unless `created`.
   */
  async start(): Promise<void> {
    if (this._state !== 'created') throw new InvalidStateError(`partition ${this.name} cannot start: it is ${this._state}`);
    this.startedAt = performance.now();
    this.setState('running');
    try {
      if (this.config.kind === 'reactor') {
        const settled = new Promise<void>((resolve) => (this.onFirstReady = resolve));
        void this.exited.then(() => this.onFirstReady?.());
        await this.spawn();
        await settled;
      } else {
        await this.spawn();
      }
    } catch (error) {
      this.spawnFailed(error);
    }
  }

  /**
   * Calls a reactor's export with `input` and resolves with its output. Calls run one at a time
   * in order; at most `limits.maxQueuedCalls` wait (more: ERR_BUSY at once). A call that traps,
   * times out (ERR_LIMIT_CPU) or is aborted poisons the instance, which is replaced according to
   * the restart policy; nothing of it reaches the next call. A non-zero return is ERR_GUEST_CALL.
   */
  call(exportName: string, input: Uint8Array | string = NO_INPUT, options: CallOptions = NO_OPTIONS): Promise<Uint8Array> {
    if (this.config.kind !== 'reactor') return Promise.reject(new InvalidStateError(`partition ${this.name} is a command, not a reactor: it has no exports to call`));
    if (this._state !== 'running') return Promise.reject(new InvalidStateError(`partition ${this.name} cannot take calls: it is ${this._state}`));
    if (!this.config.callable.has(exportName)) {
      return Promise.reject(new InvalidArgumentError(`partition ${this.name} has no callable export ${quoted(exportName)} (an export must be a function () -> i32)`));
    }
    const bytes = typeof input === 'string' ? encoder.encode(input) : input;
    if (!(bytes instanceof Uint8Array)) return Promise.reject(new InvalidArgumentError(`call input of ${exportName}: expected a Uint8Array or a string, got ${given(input)}`));
    if (bytes.length > this.config.maxInputBytes) {
      return Promise.reject(new InvalidArgumentError(`call input of ${bytes.length} bytes exceeds limits.maxInputBytes (${this.config.maxInputBytes})`));
    }
    // The defaults need no check (and no message naming the call is built for them).
    if (options !== NO_OPTIONS) {
      try {
        check(CallOptionsSchema, options, `call options of ${exportName}`);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    // 0 and Infinity: no budget; otherwise at most MAX_TIMER_MS (the schema's bound), which a timer honours.
    const timeoutMs = options.timeoutMs === undefined ? this.config.callTimeoutMs : options.timeoutMs === 0 ? Infinity : options.timeoutMs;
    const { signal } = options;
    if (options.fuel !== undefined && this.config.fuel === null) {
      return Promise.reject(new InvalidArgumentError(`call options of ${exportName}: fuel: needs a fuel-metered partition (create ${this.name} with limits.fuel)`));
    }
    if (signal?.aborted) return Promise.reject(abortError(signal));
    // A call sent ahead still waits (it has not started): it counts as queued. A call the idle
    // reactor starts at once waits behind nothing, so it never counts: with maxQueuedCalls 0 a
    // reactor takes one call at a time (every call was ERR_BUSY).
    const queued = this.queue.length + (this.ahead ? 1 : 0);
    if (queued >= this.config.maxQueuedCalls && !(queued === 0 && this.inFlight === null && this.takesCallNow())) {
      return Promise.reject(new BusyError(`partition ${this.name} has ${queued} calls queued, the limit (limits.maxQueuedCalls)`));
    }
    // The call's promise, made with the shared executor (no closure per call): whatever the
    // set-up below throws rejects it, as a throw in an executor would.
    const promise = new Promise<Uint8Array>(takeResolvers);
    const resolve = takenResolve!;
    const reject = takenReject!;
    takenResolve = takenReject = null;
    try {
      // The input is copied here, into memory only this call owns: the caller may reuse or
      // change its buffer as soon as call() returns, and the zeroing after the send wipes our
      // copy, never the caller's. Explicit allocate-and-set: `slice()` of a Node Buffer is a view.
      const copy = new Uint8Array(bytes.length);
      copy.set(bytes);
      const pending: PendingCall = { name: exportName, input: copy, timeoutMs, fuel: options.fuel ?? 0, signal, onAbort: undefined, resolve, reject };
      if (signal) {
        pending.onAbort = () => this.abortCall(pending);
        signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      this.queue.push(pending);
      this.restartTimer?.ref();
      this.dispatch();
      this.holdWhileBusy();
    } catch (error) {
      reject(error);
    }
    return promise;
  }

  /**
   * Ends the partition now (the worker is terminated; queued calls fail with ERR_KILLED).
   * Resolves with the exit; a no-op after the end. A partition that never started moves
   * straight to `killed`.
   */
  async stop(): Promise<PartitionExit> {
    if (this.exitResult !== null) return this.exitResult;
    const outcome: WorkerOutcome = {
      kind: 'error',
      error: 'ERR_KILLED',
      message: this._state === 'created' ? `partition ${this.name} was stopped before it started` : `partition ${this.name} was stopped by the host`,
    };
    this.stopping = outcome;
    if (this.run === null) this.finish(outcome, true);
    else this.run.kill(outcome);
    return this.exited;
  }

  /**
   * Stops the partition if needed, scrubs the buffers the root held for it, closes its block image
   * and releases it. With `{ wipe: true }` the name's block image (the one its spec grants, or else
   * one an earlier partition of the name left at the default place) is also scrubbed and removed,
   * and its key deleted, before the name is released. Idempotent; a later call with `wipe` still wipes.
   * Resolves with what the wipe found and removed (as `hv.wipeStorage` does: `removedImage` and
   * `removedKey` false when nothing of the name was there), or null without `wipe`.
   */
  destroy(options: DestroyOptions & { wipe: true }): Promise<WipeResult>;
  destroy(options?: DestroyOptions): Promise<WipeResult | null>;
  destroy(options: DestroyOptions = {}): Promise<WipeResult | null> {
    // A wipe asked for with a value that is not `true` (1, 'yes') would silently keep the disk.
    if (typeof options !== 'object' || options === null || (options.wipe !== undefined && typeof options.wipe !== 'boolean')) {
      const shown = typeof options !== 'object' || options === null ? `(root): expected an object, got ${given(options)}` : `wipe: expected true or false, got ${given(options.wipe)}`;
      return Promise.reject(new InvalidArgumentError(`destroy options of partition ${this.name}: ${shown}`));
    }
    try {
      refuseUnknownKeys(options, ['wipe'], `destroy options of partition ${this.name}`);
    } catch (error) {
      return Promise.reject(error);
    }
    const wipe = options.wipe === true;
    if (wipe && this.destroyed === null) {
      // Wipe before the name is released, so no new partition of this name can open the image meanwhile.
      const torn = this.teardown(true);
      this.wiped = torn;
      // The partition is destroyed whether or not its wipe succeeds: a later destroy() without a
      // wipe resolves (it answered the failed wipe's rejection for ever, so the management API
      // could not undeclare a partition whose disk wipe had been refused).
      this.destroyed = torn.then(
        () => undefined,
        () => undefined,
      );
    }
    this.destroyed ??= this.teardown(false).then(() => undefined);
    if (!wipe) return this.destroyed.then(() => null);
    const wiping = (this.wiped ??= this.destroyed.then(() => this.wipeImage()));
    // A refused wipe may be asked for again once its cause is gone (README, "Persistent block storage").
    wiping.catch(() => {
      if (this.wiped === wiping) this.wiped = null;
    });
    return wiping;
  }

  /** Tears the partition down; with `wipe`, the name's image is wiped before the name is released (what it removed). */
  private teardown(wipe: true): Promise<WipeResult>;
  private teardown(wipe: false): Promise<null>;
  private async teardown(wipe: boolean): Promise<WipeResult | null> {
    await this.stop();
    // Console input is written here only (complete): the ring is zeroed as far as it was used, and
    // nothing is written to it again.
    this.consoleInput.retire();
    this.inputRing.scrub(true);
    await this.detach();
    // Unplug the NIC: no frame reaches a destroyed partition, and its address is never reused.
    this.config.net?.detach();
    // The partition's attestation key dies with it.
    this.config.attestation?.seed.fill(0);
    try {
      return wipe ? await this.wipeImage() : null;
    } finally {
      // Even when the wipe fails the partition is gone; hv.wipeStorage(name) can retry the wipe.
      this.setState('destroyed');
      this.config.onDestroy?.(this);
    }
  }

  private wipeImage(): Promise<WipeResult> {
    const block = this.config.block;
    // Its own disk, where its spec put it; without one, every image an earlier partition of the
    // name left (the default place, and paths the keystore files under the name).
    return block ? block.storage.wipe(this.name, block.pathOverride ?? undefined) : this.config.storage.wipeName(this.name);
  }

  /** Closes the block image once the worker can no longer use it. Idempotent. */
  private detach(): Promise<void> {
    const block = this.config.block;
    if (!block) return Promise.resolve();
    this.detached ??= block.storage.detach(block.attachment);
    return this.detached;
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

  /**
   * The guest's stdout as a byte stream, created on first use (it carries the output from then
   * on). Like a child process's stdout: once it exists, a guest that writes faster than it is
   * read waits for it (backpressure); destroying it tells the guest its reader has gone (WASI
   * EPIPE, END_OF_STREAM). It ends when the partition ends.
   */
  get stdout(): Readable {
    return this.consoleOutput.stream('stdout');
  }

  /** The guest's stderr as a byte stream; see `stdout`. */
  get stderr(): Readable {
    return this.consoleOutput.stream('stderr');
  }

  /**
   * The guest's console input as a byte stream: bytes reach the guest exactly (WASI fd 0,
   * CONSOLE_STREAM_READ; CONSOLE_READ cuts lines from them), with backpressure; `end()` ends the
   * input. Writing after the partition stopped reading fails with an EPIPE error.
   */
  get stdin(): Writable {
    this.stdinStream ??= inputStream(this.consoleInput);
    return this.stdinStream;
  }

  /** A snapshot of the partition's counters (cumulative over a reactor's restarts). */
  metrics(): PartitionMetrics & { state: PartitionState; runTimeMs: number; restarts: number; queuedCalls: number } {
    const end = this.endedAt || (this.startedAt ? performance.now() : 0);
    return {
      ...readMetrics(this.stats),
      net: this.netMetrics(),
      state: this._state,
      runTimeMs: this.startedAt ? end - this.startedAt : 0,
      restarts: this.restarts,
      queuedCalls: this.queue.length,
    };
  }

  private netMetrics(): NetMetrics | null {
    const net = this.config.net;
    const seg = this.config.devices.net?.segment;
    return net && seg !== undefined ? readNetMetrics(net.stats, net.address, seg) : null;
  }

  private async spawn(): Promise<void> {
    this.ready = false;
    const c = this.config;
    // Standalone copies of the image id and data key (never the partition or master key).
    const block = c.block ? blockInit(c.block.attachment) : null;
    const run = new WorkerRun(
      {
        name: this.name,
        module: c.module,
        args: c.args,
        devices: c.devices,
        stats: this.stats,
        input: this.inputRing.sab,
        stdio: this.consoleOutput.stdio,
        violationsPerSecond: c.violationsPerSecond,
        kind: c.kind,
        maxInputBytes: c.maxInputBytes,
        maxOutputBytes: c.maxOutputBytes,
        spinMicros: c.spinMicros,
        fuel: c.fuel,
        cpu: c.cpu ?? null,
        ...(c.sliceFuel !== undefined ? { sliceFuel: c.sliceFuel } : {}),
        hypercallRate: c.hypercallRate ?? null,
        // The image stays open across a reactor's restarts; it is closed when the partition ends.
        block,
        // A restarted instance gets a fresh file system, seeded again from the same copies.
        wasi: c.wasi ?? null,
        // The NIC belongs to the partition: a restarted reactor keeps its address and queue.
        net: c.net?.init ?? null,
        attestation: c.attestation ?? null,
      },
      c.channels,
      c.host(),
      {
        output: (kind, bytes) => this.consoleOutput.deliver(kind, bytes),
        violation: (v) => this.emit('violation', { partition: this.name, call: v.call, status: v.status, reason: v.reason }),
        ready: () => this.onReady(run),
        result: (ret, record) => this.onResult(run, ret, record),
        end: (outcome) => this.onEnd(run, outcome),
      },
    );
    this.run = run;
    // Commands: the budget covers the whole run. Reactors: start-up here, then each call.
    const what = c.kind === 'reactor' ? 'start-up budget' : 'wall-clock budget';
    run.arm(c.timeoutMs, () => ({ kind: 'error', error: 'ERR_LIMIT_CPU', message: `partition ${this.name} exceeded its ${what} of ${c.timeoutMs} ms` }));
    const started = run.start();
    // Making the Worker cloned its data: the worker has its own copy of the key now.
    block?.dataKey.fill(0);
    await started;
  }

  private onReady(run: WorkerRun): void {
    if (run !== this.run) return;
    run.disarm();
    this.ready = true;
    this.onFirstReady?.();
    this.onFirstReady = null;
    // The run's executor no longer keeps the process alive by itself: calls do (holdWhileBusy).
    run.keepAlive(false);
    this.dispatch();
    this.holdWhileBusy();
  }

  /**
   * An idle reactor (ready, nothing queued or running) does not keep the app's process alive:
   * an app that is done with it may simply end, as with an idle socket. Work queued or in
   * flight does, through one handle for the whole process (keep-alive.ts), not through the
   * run's worker (referencing it per call cost four native calls).
   */
  private holdWhileBusy(): void {
    const busy = this.inFlight !== null || this.ahead !== null || this.queue.length > 0;
    if (busy === this.holding) return;
    this.holding = busy;
    if (busy) holdProcess();
    else releaseProcess();
  }

  /**
   * Sends queued calls (a loop, not recursion, however many finish at once); after a send, the
   * root polls a moment for the answer (WorkerRun.poll, bounded) in a microtask: the callers
   * already waiting to run first (another caller's next call, which then goes ahead of the
   * answer, see `ahead`), so two callers keep the worker busy instead of taking turns.
   */
  private dispatch(): void {
    if (this.dispatching) return;
    this.dispatching = true;
    let sent = false;
    try {
      while (this.sendNext()) sent = true;
    } finally {
      this.dispatching = false;
    }
    if (sent && !this.pollQueued && this.inFlight !== null) {
      this.pollQueued = true;
      void RESOLVED.then(this.pollSoon);
    }
  }

  /**
   * The poll `dispatch` queued: one per send burst; an answer that comes in it is delivered there
   * (onResult). A poll delivers one answer and then polls again in a microtask: the settled
   * call's caller runs first, and its next call goes ahead of the answer still to come.
   */
  private readonly pollSoon = (): void => {
    this.pollQueued = false;
    const run = this.run;
    if (run !== null && this.inFlight !== null && run.poll(this.config.spinMicros) && !this.pollQueued) {
      this.pollQueued = true;
      void RESOLVED.then(this.pollSoon);
    }
  };

  /**
   * Whether the instance can be sent a call now: sendNext's first test (written out there too,
   * on every call's path, where a rarely-called reactor pays each function call).
   */
  private takesCallNow(): boolean {
    const run = this.run;
    return this.ready && run !== null && this.stopping === null && run.accepting;
  }

  /** Sends the next queued call if the reactor is idle, or ahead of it when it runs one; true if one was sent or settled. */
  private sendNext(): boolean {
    const run = this.run;
    if (!this.ready || run === null || this.stopping !== null || !run.accepting) return false;
    if (this.inFlight !== null) return this.sendAhead(run);
    const next = this.queue.shift();
    if (next === undefined) return false;
    this.inFlight = next;
    this.inFlightAborted = false;
    try {
      // A large input is chunked through the call ring as the worker reads it; the root's copy
      // is scrubbed once it is all in the ring (sendCall), or when the run ends first (onEnd).
      run.sendCall(next.name, next.input, next.fuel);
    } catch (error) {
      // Unreachable by design (one call in flight, any size chunked); never leave the slot set.
      this.inFlight = null;
      this.settle(next);
      next.input.fill(0);
      next.reject(new InternalError(`call to ${next.name} in partition ${this.name} could not be sent: ${error instanceof Error ? error.message : String(error)}`));
      return true;
    }
    run.arm(next.timeoutMs, this.callOverBudget);
    return true;
  }

  /** Writes the next queued call behind the running one (see `ahead`); true if it went. */
  private sendAhead(run: WorkerRun): boolean {
    const next = this.queue[0];
    if (this.ahead !== null || next === undefined || next.signal !== undefined) return false;
    if (!run.sendAhead(next.name, next.input, next.fuel)) return false;
    this.queue.shift();
    this.ahead = next;
    return true;
  }

  /**
   * The outcome of a call that ran past its budget: built only when the watchdog fires, one
   * closure for every call. When the call is still unread in the call ring the message says so:
   * the guest never ran it, and the time went to the worker not taking it (a lost wake-up, a
   * stalled worker or process), not to the call (issue #16 looked like a slow call for hours).
   */
  private readonly callOverBudget = (): WorkerOutcome => {
    const call = this.inFlight;
    const what = call === null ? 'a call' : `call to ${call.name}`;
    const untaken = call !== null && this.run?.callUntaken === true ? NOT_TAKEN : '';
    return { kind: 'error', error: 'ERR_LIMIT_CPU', message: `${what} in partition ${this.name} exceeded its budget of ${call?.timeoutMs ?? 0} ms${untaken}` };
  };

  /** A call's result: `record` is the run's reused buffer, its status (zeroed) then the output (RunEvents.result). */
  private onResult(run: WorkerRun, ret: number, record: Uint8Array): void {
    const call = this.inFlight;
    // Zeroed here whatever happens to the call.
    if (run !== this.run || call === null) {
      record.fill(0);
      return;
    }
    run.disarm();
    this.inFlight = null;
    this.settle(call);
    this.failures = 0;
    // The caller's copy of the output (record[4..]): one allocation, no view of the record made first.
    if (ret === 0) call.resolve(record.slice(4));
    else call.reject(new GuestCallError(`export ${call.name} of partition ${this.name} returned status ${ret}`, ret, record.slice(4)));
    record.fill(0);
    // The call sent ahead runs now (the worker read it after writing this result): its budget
    // starts, and the root's copy of its input is no longer needed.
    const next = this.ahead;
    if (next !== null) {
      this.ahead = null;
      this.inFlight = next;
      this.inFlightAborted = false;
      next.input.fill(0);
      run.arm(next.timeoutMs, this.callOverBudget);
    }
    this.dispatch();
    this.holdWhileBusy();
  }

  private abortCall(call: PendingCall): void {
    const at = this.queue.indexOf(call);
    if (at >= 0) {
      this.queue.splice(at, 1);
      call.reject(abortError(call.signal!));
      this.holdWhileBusy();
      return;
    }
    if (this.inFlight === call && this.run !== null) {
      // The guest is running this call: the only way to take it back is to end the instance.
      this.inFlightAborted = true;
      this.run.kill({ kind: 'error', error: 'ERR_KILLED', message: `call to ${call.name} was aborted` });
    }
  }

  private settle(call: PendingCall): void {
    if (call.signal && call.onAbort) call.signal.removeEventListener('abort', call.onAbort);
  }

  private onEnd(run: WorkerRun, outcome: WorkerOutcome): void {
    if (run !== this.run) return;
    this.run = null;
    // Everything the run wrote has been delivered (run.finish drained its ring): the drops it
    // counted and did not report (a terminated worker's last ones) are reported now, before
    // the restart or the exit.
    this.consoleOutput.settleDrops(new Float64Array(this.stats));
    // The worker may have died inside another NIC's port: free what it held.
    this.config.net?.releaseLocks();
    this.ready = false;
    const call = this.inFlight;
    this.inFlight = null;
    // Made only when a call or a restart needs it: an Error captures a stack, which a command's
    // every exit paid for (issue #15's exit path).
    const failure = (): WasmvisorError =>
      outcome.kind === 'exit'
        ? errorFromCode('ERR_GUEST_TRAP', `partition ${this.name} exited (code ${outcome.code}) while it should serve calls`)
        : errorFromCode(outcome.error, outcome.message);
    if (call !== null) {
      this.settle(call);
      call.input.fill(0);
      call.reject(this.inFlightAborted && call.signal ? abortError(call.signal) : failure());
    }
    // A call sent ahead never started: the worker reads it only after it has written the answer
    // to `call`, and every answer written before the end was delivered (run.finish drains the
    // ring first) or the ring could not be read. In the first case it goes back to the head of
    // the queue, as if never sent; in the second it may have run, and fails as `call` did.
    const ahead = this.ahead;
    this.ahead = null;
    if (ahead !== null) {
      if (run.ringIntact) this.queue.unshift(ahead);
      else {
        ahead.input.fill(0);
        ahead.reject(failure());
      }
    }
    const m = this.config.restart;
    if (this.config.kind === 'reactor' && this.stopping === null && m.mode === 'on-failure' && this.failures < m.maxRestarts) {
      this.failures++;
      this.restarts++;
      const delayMs = Math.min(m.maxBackoffMs, m.backoffMs * 2 ** (this.failures - 1));
      const { code, message } = failure();
      this.emit('restart', { reason: code, message, attempt: this.failures, delayMs });
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.spawn().catch((error: unknown) => this.spawnFailed(error));
      }, delayMs);
      // A restart alone does not keep the app alive; a queued call does (the new worker is ref'd until ready).
      // Nor does it while start() is still waiting for the first ready: that is work in flight.
      if (this.queue.length === 0 && this.onFirstReady === null) this.restartTimer.unref();
      this.holdWhileBusy();
      return;
    }
    this.finish(this.stopping ?? outcome, run.wasKilled(outcome) || this.stopping !== null);
    this.holdWhileBusy();
  }

  /** A run that could not even be set up ends the partition (never an uncaught rejection). */
  private spawnFailed(error: unknown): void {
    this.run = null;
    const message = error instanceof Error ? error.message : String(error);
    this.finish({ kind: 'error', error: 'ERR_INTERNAL', message: `partition ${this.name} could not start a run: ${message}` }, false);
  }

  private finish(outcome: WorkerOutcome, killed: boolean): void {
    if (this.exitResult !== null) return;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.endedAt = performance.now();
    this.inputRing.close();
    // Nothing will read the NIC again: frames to it are dropped now, never waited for.
    this.config.net?.down();
    const runTimeMs = this.startedAt ? this.endedAt - this.startedAt : 0;
    const metrics = { ...readMetrics(this.stats), net: this.netMetrics() };
    let exit: PartitionExit;
    if (outcome.kind === 'exit') {
      exit = { state: 'exited', code: outcome.code, reason: 'exit', runTimeMs, metrics };
    } else {
      const isKill = killed || outcome.error === 'ERR_KILLED' || outcome.error === 'ERR_LIMIT_CPU';
      exit = {
        state: isKill ? 'killed' : 'trapped',
        code: null,
        reason: outcome.error,
        error: errorFromCode(outcome.error, outcome.message),
        runTimeMs,
        metrics,
      };
    }
    // Calls still waiting can never run now.
    for (const call of this.queue.splice(0)) {
      this.settle(call);
      call.reject(exit.error ?? new InvalidStateError(`partition ${this.name} ended before the call ran`));
    }
    this.holdWhileBusy();
    this.exitResult = exit;
    // Resolved before the events: a listener that throws cannot keep `exited` pending.
    this.resolveExit(exit);
    // Everything the guest wrote has been delivered: a last unterminated line, then the streams' end.
    this.consoleOutput.end();
    // The worker is gone: nothing can use the image any more.
    this.detach().catch(() => {
      // Closing the image failed; the storage layer reports it, and the partition has ended.
    });
    this.setState(exit.state);
    this.emit('exit', exit);
  }

  private setState(state: PartitionState): void {
    const previous = this._state;
    if (previous === state) return;
    this._state = state;
    this.emit('state', state, previous);
  }
}


