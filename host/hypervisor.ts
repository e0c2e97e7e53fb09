import { EventEmitter } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { Storage, type BlockAttachment, type WipeResult } from './storage/storage.ts';
import { MAX_ARGS_BYTES, encodeArgs } from './abi/dispatcher.ts';
import { resolveDevices, type DevicesSpec } from './devices/config.ts';
import { ImportDeniedError, InvalidArgumentError, InvalidStateError, LimitMemoryError } from './errors.ts';
import { WORKER_MEMORY_BYTES } from './scheduler/warm-pool.ts';
import { Scheduler, defaultSharedWorkers, type SchedulerStats } from './scheduler/scheduler.ts';
import { DEFAULT_SHARED_WORKER_HEAP_MB } from './scheduler/shared.ts';
import type { CpuCap } from './channel/protocol.ts';
import { resolveRateLimit, type RateLimitSpec, type ResolvedRateLimit } from './limits/rate-limiter.ts';
import { ModuleCache } from './loader/compile.ts';
import { inspectModule, loadModule, type Inspection, type ModuleSource } from './loader/pipeline.ts';
import { DEFAULT_MAX_MODULE_BYTES } from './loader/read.ts';
import { Partition, type PartitionConfig, type PartitionExit, type PartitionState, type RestartMode, type Violation } from './partition/partition.ts';
import { functionType } from './loader/sections.ts';
import { PartitionPool } from './pool.ts';
import { HV_HYPERCALL, HV_MODULE } from './abi/codes.ts';
import { HYPERCALL_SIG } from './loader/policy.ts';
import type { FuncSig } from './loader/sections.ts';
import { resolveWasi, type ResolvedWasi, type WasiSpec } from './wasi/config.ts';
import { WASI_MODULE, WASI_SIGNATURES } from './wasi/imports.ts';
import { NetEndpoint, VirtualSwitch, type NicAttachment } from './net/switch.ts';
import { PortForward, type ForwardPortOptions } from './net/forward.ts';
import { MAX_CALL_BYTES, channelBytes, channelSizes, type Placement } from './limits/sizes.ts';

/** The import allow-list: `hv` always; `wasi_snapshot_preview1` only for a partition that enables WASI. */
function allowedImports(wasi: boolean): Map<string, Map<string, FuncSig>> {
  const imports = new Map([[HV_MODULE, new Map([[HV_HYPERCALL, HYPERCALL_SIG]])]]);
  if (wasi) imports.set(WASI_MODULE, new Map(WASI_SIGNATURES));
  return imports;
}

/** Limits of one partition. Every limit has a safe default. */
export interface PartitionLimits {
  /** Most 64 KiB pages of linear memory; a module's maximum is clamped to it. Default 256 (16 MiB). */
  memoryPages?: number;
  /** Most table elements. Default 10000. */
  tableElements?: number;
  /**
   * Wall-clock budget in ms; Infinity disables it. Default 30000. A command's budget covers the
   * whole run; a reactor's covers its start-up (start function and `_initialize`).
   */
  timeoutMs?: number;
  /**
   * Fuel budget: the work the guest may do, counted by instrumentation (cost model in
   * docs/ABI.md). Running out ends the run with ERR_LIMIT_CPU, at the same point every time.
   * An integer from 1 to 2^53 − 1. Default: none (the module is not instrumented).
   */
  fuel?: number;
  /**
   * CPU cap: the partition may run at most `maxPercent` (1..100) of each period (`periodMs`,
   * 1..10000, default 100) of one core; once its share is used it is paused (its worker blocks)
   * until the next period, never killed. The module is then instrumented as for fuel (the
   * checkpoints are the cap's clock), with an unlimited budget unless `fuel` is also set; a fuel
   * budget stays deterministic. Default: none. See "CPU caps" in docs/ABI.md.
   */
  cpu?: CpuLimit;
  /**
   * Rate limit of the partition's hypercalls as a whole: `opsPerSecond` (+ `burstOps`) calls
   * and `bytesPerSecond` (+ `burstBytes`) of call input; over it a call returns
   * HV_STATUS_RATE_LIMITED (`mode: 'reject'`, default) or waits (`'block'`). EXIT and ABORT
   * always pass. Counted in `metrics.throttled.hypercalls`. Default: none.
   */
  hypercallRate?: RateLimitSpec;
  /** Reactors: largest call input, bytes. Default 1 MiB (at most 64 MiB). */
  maxInputBytes?: number;
  /** Reactors: largest call output, bytes. Default 1 MiB (at most 64 MiB). */
  maxOutputBytes?: number;
  /** Reactors: calls that may wait behind the running one; more fail with ERR_BUSY. Default 64. */
  maxQueuedCalls?: number;
  /** Reactors: default wall-clock budget of one call, ms. Default 5000. */
  callTimeoutMs?: number;
}

/** `limits.cpu`: a share of one core. */
export interface CpuLimit {
  /** Percent of one core, an integer from 1 to 100. */
  maxPercent: number;
  /** Period over which the share is measured, ms (1 to 10000). Default 100. */
  periodMs?: number;
}

/** Warm dedicated workers kept ready by default (HypervisorOptions.warmWorkers). */
export const DEFAULT_WARM_WORKERS = 2;

/** A shared partition's time slice by default, ms (HypervisorOptions.sliceMs). */
export const DEFAULT_SLICE_MS = 10;

/**
 * Host memory one shared partition may take beyond its linear memory and channels (its
 * instance, dispatcher, devices and the root's handle), for admission: what bench/density.mjs
 * measures stays under it.
 */
export const SHARED_PARTITION_BYTES = 256 * 1024;

/** Validated here until the spec and options schema (host/schema/) covers it. */
function placementOption(value: unknown, what: string): Placement | undefined {
  if (value === undefined) return undefined;
  if (value !== 'dedicated' && value !== 'shared') throw new InvalidArgumentError(`${what} must be 'dedicated' or 'shared', got ${JSON.stringify(value)}`);
  return value;
}

/** Fuel between two checks of a CPU cap: about 0.1-1 ms of guest work (see docs/ABI.md). */
export const CPU_SLICE_FUEL = 200_000;

/** What a reactor does when a call (or its start-up) fails. */
export interface RestartPolicy {
  /** Default 'on-failure'. */
  mode?: RestartMode;
  /** Restarts in a row (without a successful call between them) before the partition ends. Default 5. */
  maxRestarts?: number;
  /** Delay before the first restart, doubled for each further one in a row. Default 10 ms. */
  backoffMs?: number;
  /** Largest delay. Default 1000 ms. */
  maxBackoffMs?: number;
}

/** What to run and what it may use. */
export interface PartitionSpec {
  /** Unique among the hypervisor's live partitions: letters, digits, `.`, `_`, `-`; at most 64. */
  name: string;
  /** Module bytes, or a path / file URL to read them from. */
  module: Uint8Array | ArrayBuffer | string | URL;
  /** Pins the module's measurement: a different SHA-256 (hex) refuses it with ERR_INTEGRITY. */
  sha256?: string;
  /** Arguments the guest reads with ARGS_GET. At most 64 KiB together. */
  args?: string[];
  limits?: PartitionLimits;
  /** Devices granted to the partition. Nothing is granted by default. */
  devices?: DevicesSpec;
  /**
   * `command` (default): the guest exports `_start`, which runs once. `reactor`: the guest stays
   * alive and the host calls its exports (functions `() -> i32`) with `partition.call`;
   * `_initialize`, if exported, runs once at start.
   */
  kind?: 'command' | 'reactor';
  /** Reactors: `'never'` or `'on-failure'` (default), or the full policy. */
  restart?: RestartMode | RestartPolicy;
  /**
   * Enables WASI preview1 (imports from `wasi_snapshot_preview1`, refused with ERR_IMPORT_DENIED
   * otherwise), implemented in the partition over its devices and a virtual file system.
   */
  wasi?: WasiSpec;
  /**
   * Where the partition runs: `'dedicated'`, a worker thread of its own (a warm one when the pool
   * has one), or `'shared'`, a worker thread that time-slices many partitions, each still its
   * own instance, memory, devices and counters (see README, "Placement"). Default: the
   * hypervisor's `placement`.
   */
  placement?: Placement;
}

export interface HypervisorOptions {
  /** Largest module accepted, bytes. Default 16 MiB. */
  maxModuleBytes?: number;
  /** Compiled modules kept, by measurement and limits. Default 64. */
  moduleCacheSize?: number;
  /** If given, only modules with these measurements (SHA-256 hex) may run; an empty list admits nothing. */
  allowList?: Iterable<string>;
  /** Defaults for partitions that do not set a limit. */
  defaultLimits?: PartitionLimits;
  /** Violation events per second per partition before further ones are only counted. Default 100. */
  violationsPerSecond?: number;
  /**
   * Memory the hypervisor may promise to its partitions, bytes. Each partition reserves its
   * worst case when it is created (linear memory at its page limit, its worker's heap and stack,
   * its channels) and releases it when destroyed; a partition that would not fit is refused with
   * ERR_LIMIT_MEMORY before anything is allocated. Default: half of the machine's memory.
   */
  memoryBudgetBytes?: number;
  /**
   * How long the root polls for a reactor call's result before it waits asynchronously, in µs
   * (the reactor's worker polls as long for the next call). Polling trades a little CPU for
   * call latency; 0 disables it. Default 50.
   */
  callSpinMicros?: number;
  /**
   * Directory for persistent block storage: images and (without `storageKey`) the keystore.
   * Default `.wasmvisor` under the current working directory when the Hypervisor is made. Only
   * touched (created, mode 0700) when a partition is granted a block device or storage is wiped.
   */
  dataDir?: string;
  /**
   * A 32-byte master key for block storage: each image's key derives from it, the image's random
   * id and the partition's name (HKDF-SHA256). Without it, each partition gets a random key kept
   * in the keystore file. Either way every sector is encrypted and authenticated (AES-256-GCM).
   */
  storageKey?: Uint8Array;
  /** Where the keystore file lives when there is no `storageKey`. Default `<dataDir>/keystore.json`. */
  keystorePath?: string;
  /**
   * Dedicated workers started ahead of need, so `start()` hands a partition a running thread
   * instead of spawning one (tens of ms). Refilled in the background; filled when the first
   * partition is created. 0 to spawn each worker on demand. Default 2 (at most 64).
   */
  warmWorkers?: number;
  /** Placement of partitions whose spec does not choose one. Default 'dedicated'. */
  placement?: Placement;
  /** Most shared worker threads (started on demand). Default: the number of cores (at most 256). */
  sharedWorkers?: number;
  /**
   * Longest a shared partition holds its worker while others wait, ms (1 .. 1000); it is then
   * preempted at its next fuel checkpoint. Default 10.
   */
  sliceMs?: number;
  /**
   * JS heap limit of each shared worker, MiB (16 .. 16384). A shared worker that runs out of heap
   * ends every partition on it with ERR_KILLED (reactors restart per their policy). Default 2048.
   */
  sharedWorkerHeapMb?: number;
  /**
   * Let a dedicated worker that has run a partition serve the next one. Default false: a thread
   * that ran a guest is never handed to another partition (docs/THREAT-MODEL.md, "Worker reuse").
   */
  reuseWorkers?: boolean;
}

/** One partition's line in `hv.scheduler()`. */
export interface PartitionSchedule {
  name: string;
  state: PartitionState;
  /** Where its current run executes, or null when it is not running. */
  placement: Placement | null;
  /** Its worker: a thread id (dedicated) or a shared worker's id; null when not running. */
  worker: number | null;
  slices: number;
  preemptions: number;
  waits: number;
  waitMs: number;
}

export interface HypervisorEvents {
  /** Every partition's violations, for one place to watch them. */
  violation: [violation: Violation];
  /** A partition changed state. */
  state: [partition: Partition, state: PartitionState, previous: PartitionState];
  exit: [partition: Partition, exit: PartitionExit];
}

export const DEFAULT_LIMITS = {
  memoryPages: 256,
  tableElements: 10_000,
  timeoutMs: 30_000,
  maxInputBytes: 1 << 20,
  maxOutputBytes: 1 << 20,
  maxQueuedCalls: 64,
  callTimeoutMs: 5000,
} as const;

const REACTOR_EXPORTS = [{ name: 'memory', kind: 'memory' }] as const;

function isCallable(sig: { params: readonly string[]; results: readonly string[] } | null | undefined): boolean {
  return sig != null && sig.params.length === 0 && sig.results.length === 1 && sig.results[0] === 'i32';
}

function resolveRestart(value: RestartMode | RestartPolicy | undefined): PartitionConfig['restart'] {
  const p: RestartPolicy = typeof value === 'string' ? { mode: value } : (value ?? {});
  if (typeof p !== 'object' || p === null) throw new InvalidArgumentError('restart must be a mode or a policy object');
  const mode = p.mode ?? 'on-failure';
  if (mode !== 'never' && mode !== 'on-failure') throw new InvalidArgumentError(`restart mode must be 'never' or 'on-failure', got ${JSON.stringify(mode)}`);
  return {
    mode,
    maxRestarts: limit(p.maxRestarts, 5, 'restart.maxRestarts', 0, 1_000_000),
    backoffMs: limit(p.backoffMs, 10, 'restart.backoffMs', 0, 3_600_000),
    maxBackoffMs: limit(p.maxBackoffMs, 1000, 'restart.maxBackoffMs', 0, 3_600_000),
  };
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function limit(value: number | undefined, fallback: number, what: string, min: number, max: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || Number.isNaN(v) || v < min || v > max || (Number.isFinite(v) && !Number.isInteger(v))) {
    throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return v;
}

/** A fuel budget: absent, or an integer from 1 to 2^53 − 1 (exact in the stats' float64 slots). */
function fuelLimit(value: number | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${what} must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}, got ${String(value)}`);
  }
  return value;
}

/** A CPU cap: absent (null), or a share 1..100 of a period 1..10000 ms. */
function cpuLimit(value: CpuLimit | undefined, what: string): CpuCap | null {
  if (value === undefined) return null;
  if (typeof value !== 'object' || value === null) throw new InvalidArgumentError(`${what} must be an object { maxPercent, periodMs? }`);
  for (const key of Object.keys(value)) {
    if (key !== 'maxPercent' && key !== 'periodMs') throw new InvalidArgumentError(`${what}.${key} is not a CPU cap setting (maxPercent, periodMs)`);
  }
  const maxPercent = limit(value.maxPercent, NaN, `${what}.maxPercent`, 1, 100);
  const periodMs = limit(value.periodMs, 100, `${what}.periodMs`, 1, 10_000);
  return { maxPercent, periodMs, sliceFuel: CPU_SLICE_FUEL };
}

/**
 * The root partition: it owns the module cache and the partitions, and is the only thing an
 * embedding app talks to. Create partitions with `createPartition`; close everything with `close`.
 */
export class Hypervisor extends EventEmitter<HypervisorEvents> {
  private readonly cache: ModuleCache;
  private readonly maxModuleBytes: number;
  private readonly allowList: ReadonlySet<string> | undefined;
  private readonly defaults: Required<Omit<PartitionLimits, 'fuel' | 'cpu' | 'hypercallRate'>> & {
    fuel: number | undefined;
    cpu: CpuCap | null;
    hypercallRate: ResolvedRateLimit | null;
  };
  private readonly violationsPerSecond: number;
  private readonly callSpinMicros: number;
  private readonly live = new Map<string, Partition>();
  private readonly memoryBudget: number;
  private memoryReserved = 0;
  private readonly storage: Storage;
  private closed = false;
  /** The virtual switch every granted NIC plugs into (host/net/switch.ts). */
  private readonly switch = new VirtualSwitch();
  private readonly forwards = new Set<PortForward>();
  /** The logical processors: warm dedicated workers and shared workers (host/scheduler/). */
  private readonly sched: Scheduler;
  private readonly placement: Placement;
  private readonly hostEndpoints = new Set<NetEndpoint>();

  constructor(options: HypervisorOptions = {}) {
    super();
    this.maxModuleBytes = limit(options.maxModuleBytes, DEFAULT_MAX_MODULE_BYTES, 'maxModuleBytes', 8, 1 << 30);
    this.cache = new ModuleCache(limit(options.moduleCacheSize, 64, 'moduleCacheSize', 1, 4096));
    this.allowList = options.allowList ? new Set([...options.allowList].map((h) => String(h).toLowerCase())) : undefined;
    const d = options.defaultLimits ?? {};
    this.defaults = {
      memoryPages: limit(d.memoryPages, DEFAULT_LIMITS.memoryPages, 'defaultLimits.memoryPages', 1, 65536),
      tableElements: limit(d.tableElements, DEFAULT_LIMITS.tableElements, 'defaultLimits.tableElements', 0, 10_000_000),
      timeoutMs: limit(d.timeoutMs, DEFAULT_LIMITS.timeoutMs, 'defaultLimits.timeoutMs', 1, Infinity),
      maxInputBytes: limit(d.maxInputBytes, DEFAULT_LIMITS.maxInputBytes, 'defaultLimits.maxInputBytes', 0, MAX_CALL_BYTES),
      maxOutputBytes: limit(d.maxOutputBytes, DEFAULT_LIMITS.maxOutputBytes, 'defaultLimits.maxOutputBytes', 0, MAX_CALL_BYTES),
      maxQueuedCalls: limit(d.maxQueuedCalls, DEFAULT_LIMITS.maxQueuedCalls, 'defaultLimits.maxQueuedCalls', 0, 1_000_000),
      callTimeoutMs: limit(d.callTimeoutMs, DEFAULT_LIMITS.callTimeoutMs, 'defaultLimits.callTimeoutMs', 1, Infinity),
      fuel: fuelLimit(d.fuel, 'defaultLimits.fuel'),
      cpu: cpuLimit(d.cpu, 'defaultLimits.cpu'),
      hypercallRate: resolveRateLimit(d.hypercallRate, 'defaultLimits.hypercallRate'),
    };
    this.violationsPerSecond = limit(options.violationsPerSecond, 100, 'violationsPerSecond', 1, 1_000_000);
    this.callSpinMicros = limit(options.callSpinMicros, 50, 'callSpinMicros', 0, 10_000);
    this.memoryBudget = limit(options.memoryBudgetBytes, Math.floor(os.totalmem() / 2), 'memoryBudgetBytes', 0, Number.MAX_SAFE_INTEGER);
    // Validated here until the options schema (host/schema/) covers them.
    if (options.reuseWorkers !== undefined && typeof options.reuseWorkers !== 'boolean') throw new InvalidArgumentError('reuseWorkers must be a boolean');
    this.placement = placementOption(options.placement, 'placement') ?? 'dedicated';
    this.sched = new Scheduler(
      {
        warmWorkers: limit(options.warmWorkers, DEFAULT_WARM_WORKERS, 'warmWorkers', 0, 64),
        reuseWorkers: options.reuseWorkers === true,
        sharedWorkers: limit(options.sharedWorkers, Math.min(256, defaultSharedWorkers()), 'sharedWorkers', 1, 256),
        sliceMs: limit(options.sliceMs, DEFAULT_SLICE_MS, 'sliceMs', 1, 1000),
        spinMicros: this.callSpinMicros,
        sharedWorkerHeapMb: limit(options.sharedWorkerHeapMb, DEFAULT_SHARED_WORKER_HEAP_MB, 'sharedWorkerHeapMb', 16, 16384),
      },
      this.placement,
    );
    if (options.dataDir !== undefined && (typeof options.dataDir !== 'string' || options.dataDir.length === 0)) {
      throw new InvalidArgumentError('dataDir must be a non-empty path');
    }
    this.storage = new Storage({
      dataDir: path.resolve(options.dataDir ?? '.wasmvisor'),
      ...(options.storageKey !== undefined ? { masterKey: options.storageKey } : {}),
      ...(options.keystorePath !== undefined ? { keystorePath: options.keystorePath } : {}),
    });
  }

  /** The directory block images and the keystore live in. */
  get dataDir(): string {
    return this.storage.dataDir;
  }

  /**
   * Scrubs and removes the block image (and its key) of a partition that is not live, e.g. one
   * destroyed earlier or left by a previous process. `path` as in the spec's `devices.block.path`.
   * Refused with ERR_INVALID_STATE while a live partition has that name; use
   * `partition.destroy({ wipe: true })` for a live one. Idempotent.
   */
  async wipeStorage(name: string, options: { path?: string } = {}): Promise<WipeResult> {
    if (typeof name !== 'string' || !NAME.test(name)) throw new InvalidArgumentError(`partition name ${JSON.stringify(name)} is not valid`);
    if (this.live.has(name)) throw new InvalidStateError(`partition ${name} is live; destroy it with { wipe: true } instead`);
    return this.storage.wipe(name, options.path);
  }

  /** The memory budget, what live partitions have reserved, and what is left (bytes). */
  memoryUsage(): { budgetBytes: number; reservedBytes: number; availableBytes: number } {
    return { budgetBytes: this.memoryBudget, reservedBytes: this.memoryReserved, availableBytes: this.memoryBudget - this.memoryReserved };
  }

  /**
   * Loads, checks, measures and compiles the module, and returns a partition in state `created`.
   * Every refusal (ERR_MODULE_INVALID, ERR_IMPORT_DENIED, ERR_FEATURE_DENIED, ERR_LIMIT_MEMORY,
   * ERR_LIMIT_TABLE, ERR_INTEGRITY, ERR_INVALID_ARGUMENT) happens here, before any guest code runs.
   */
  async createPartition(spec: PartitionSpec): Promise<Partition> {
    if (this.closed) throw new InvalidStateError('this hypervisor is closed');
    if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError('createPartition needs a spec object');
    const { name } = spec;
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new InvalidArgumentError(`partition name ${JSON.stringify(name)} is not valid: use 1-64 letters, digits, '.', '_' or '-'`);
    }
    if (this.live.has(name)) throw new InvalidArgumentError(`a partition named ${name} already exists`);
    const l = spec.limits ?? {};
    const memoryPages = limit(l.memoryPages, this.defaults.memoryPages, 'limits.memoryPages', 1, 65536);
    const tableElements = limit(l.tableElements, this.defaults.tableElements, 'limits.tableElements', 0, 10_000_000);
    const timeoutMs = limit(l.timeoutMs, this.defaults.timeoutMs, 'limits.timeoutMs', 1, Infinity);
    const fuel = fuelLimit(l.fuel, 'limits.fuel') ?? this.defaults.fuel;
    const cpu = l.cpu !== undefined ? cpuLimit(l.cpu, 'limits.cpu') : this.defaults.cpu;
    const hypercallRate = l.hypercallRate !== undefined ? resolveRateLimit(l.hypercallRate, 'limits.hypercallRate') : this.defaults.hypercallRate;
    const args = spec.args ?? [];
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new InvalidArgumentError('args must be an array of strings');
    if (encodeArgs(args).length > MAX_ARGS_BYTES) throw new InvalidArgumentError(`args take more than ${MAX_ARGS_BYTES} bytes`);
    const devices = resolveDevices(spec.devices);
    const kind = spec.kind ?? 'command';
    if (kind !== 'command' && kind !== 'reactor') throw new InvalidArgumentError(`kind must be 'command' or 'reactor', got ${JSON.stringify(kind)}`);
    const restart = resolveRestart(spec.restart);
    const maxInputBytes = limit(l.maxInputBytes, this.defaults.maxInputBytes, 'limits.maxInputBytes', 0, MAX_CALL_BYTES);
    const maxOutputBytes = limit(l.maxOutputBytes, this.defaults.maxOutputBytes, 'limits.maxOutputBytes', 0, MAX_CALL_BYTES);
    const maxQueuedCalls = limit(l.maxQueuedCalls, this.defaults.maxQueuedCalls, 'limits.maxQueuedCalls', 0, 1_000_000);
    const callTimeoutMs = limit(l.callTimeoutMs, this.defaults.callTimeoutMs, 'limits.callTimeoutMs', 1, Infinity);
    const placement = placementOption(spec.placement, 'placement') ?? this.placement;

    // Admission: reserve the worst case now, synchronously, so concurrent creations cannot
    // together promise more than the budget; give it back if anything below refuses.
    // WASI: seed folders are copied here (before the synchronous reservation below).
    const wasi: ResolvedWasi | null = spec.wasi === undefined ? null : await resolveWasi(spec.wasi, [name, ...args]);
    const channels = channelSizes({
      kind,
      maxInputBytes,
      maxOutputBytes,
      maxLineBytes: devices.console?.maxLineBytes ?? null,
      inputBufferBytes: devices.console?.inputBufferBytes ?? null,
      placement,
    });
    const reservation =
      memoryPages * 65536 +
      // The virtual file system lives in the worker: file buffers are bounded by 1.5 x its byte
      // quota + 64 bytes per inode (see capacityFor in wasi/vfs.ts).
      (wasi ? Math.ceil(wasi.quotas.maxBytes * 1.5) + 64 * wasi.quotas.maxInodes : 0) +
      (placement === 'shared' ? SHARED_PARTITION_BYTES : WORKER_MEMORY_BYTES) +
      channelBytes(channels) +
      // A call's input and output, held whole while the call runs (its chunks pass through the rings).
      (kind === 'reactor' ? maxInputBytes + maxOutputBytes : 0) +
      (devices.net ? VirtualSwitch.nicBytes(devices.net) : 0);
    if (this.memoryReserved + reservation > this.memoryBudget) {
      const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
      throw new LimitMemoryError(
        `partition ${name} needs up to ${mib(reservation)} (${memoryPages} pages of linear memory, its worker and channels), ` +
          `but only ${mib(this.memoryBudget - this.memoryReserved)} of the hypervisor's ${mib(this.memoryBudget)} budget is left`,
      );
    }
    this.memoryReserved += reservation;
    let loaded;
    let block: { storage: Storage; attachment: BlockAttachment; pathOverride: string | null } | null = null;
    try {
      loaded = await loadModule(spec.module as ModuleSource, {
        maxModuleBytes: this.maxModuleBytes,
        policy: { memoryPages, tableElements, imports: allowedImports(wasi !== null), ...(kind === 'reactor' ? { requiredExports: REACTOR_EXPORTS } : {}) },
        ...(spec.sha256 !== undefined ? { expectedSha256: spec.sha256 } : {}),
        ...(this.allowList ? { allowList: this.allowList } : {}),
        cache: this.cache,
        // The CPU cap's checkpoints are the fuel checkpoints: a capped module is metered too.
        fuel: fuel !== undefined || cpu !== null,
        // A shared partition is preempted at fuel checkpoints and suspended in blocking calls.
        suspendable: placement === 'shared',
      });
      if (placement === 'shared' && (loaded.info.memories[0]?.initial ?? 0) < 1) {
        throw new InvalidArgumentError(`placement 'shared' needs a module whose memory starts with at least one page (this one starts with 0); use placement 'dedicated'`);
      }
      // Checked again after the await: another createPartition may have taken the name meanwhile.
      if (this.live.has(name)) throw new InvalidArgumentError(`a partition named ${name} already exists`);
      // The name is reserved while the image opens, so two creations cannot race for one disk.
      if (devices.block) {
        const attachment = await this.storage.attach(name, devices.block.sizeMiB, devices.block.path ?? undefined);
        block = { storage: this.storage, attachment, pathOverride: devices.block.path };
        if (this.live.has(name) || this.closed) {
          await this.storage.detach(attachment);
          block = null;
          if (this.closed) throw new InvalidStateError('this hypervisor is closed');
          throw new InvalidArgumentError(`a partition named ${name} already exists`);
        }
      }
    } catch (error) {
      this.memoryReserved -= reservation;
      // Same refusal, with the way out: a WASI program needs `wasi` in its spec.
      if (wasi === null && error instanceof ImportDeniedError && error.message.startsWith(`${WASI_MODULE}.`)) {
        throw new ImportDeniedError(`${error.message}; WASI imports are admitted only when the partition spec enables \`wasi\``);
      }
      throw error;
    }

    // The NIC is plugged in now, before start: frames sent to it queue until the guest reads them.
    let self: Partition | null = null;
    const net: NicAttachment | null = devices.net
      ? this.switch.attachNic(name, devices.net, (v) => self?.emit('violation', { partition: name, ...v }), this.violationsPerSecond)
      : null;
    const partition = new Partition({
      name,
      measurement: loaded.measurement,
      module: loaded.module,
      args,
      devices,
      memoryPages,
      timeoutMs,
      fuel: fuel ?? null,
      cpu,
      hypercallRate,
      violationsPerSecond: this.violationsPerSecond,
      kind,
      callable: new Set(
        loaded.info.exports
          .filter((e) => e.kind === 'function' && !e.name.startsWith('_') && isCallable(functionType(loaded.info, e.index)))
          .map((e) => e.name),
      ),
      maxInputBytes,
      maxOutputBytes,
      maxQueuedCalls,
      callTimeoutMs,
      restart,
      spinMicros: this.callSpinMicros,
      channels,
      host: () => this.sched.host(placement),
      // Shared: fuel checkpoints every slice of fuel are the scheduler's chance to preempt.
      ...(placement === 'shared' ? { sliceFuel: Math.min(CPU_SLICE_FUEL, cpu?.sliceFuel ?? CPU_SLICE_FUEL) } : {}),
      block,
      wasi,
      net,
      onDestroy: (p) => {
        if (this.live.get(p.name) === p) this.live.delete(p.name);
        this.memoryReserved -= reservation;
      },
    });
    self = partition;
    if (placement === 'dedicated') this.sched.warm();
    partition.on('violation', (v) => this.emit('violation', v));
    partition.on('state', (state, previous) => this.emit('state', partition, state, previous));
    partition.on('exit', (exit) => this.emit('exit', partition, exit));
    this.live.set(name, partition);
    return partition;
  }

  /**
   * Creates and starts `size` reactor partitions of one module, named `<name>-0` .. `<name>-N-1`,
   * behind one `call` that spreads calls over them. If any fails to load, none is kept.
   */
  async createPool(spec: PartitionSpec, options: { size: number }): Promise<PartitionPool> {
    const size = limit(options?.size, 1, 'pool size', 1, 1024);
    const partitions: Partition[] = [];
    try {
      for (let i = 0; i < size; i++) {
        partitions.push(await this.createPartition({ ...spec, name: `${spec.name}-${i}`, kind: 'reactor' }));
      }
      await Promise.all(partitions.map((p) => p.start()));
    } catch (error) {
      await Promise.all(partitions.map((p) => p.destroy()));
      throw error;
    }
    return new PartitionPool(partitions);
  }

  /** The live (not destroyed) partitions. */
  partitions(): Partition[] {
    return [...this.live.values()];
  }

  /** A live partition by name. */
  partition(name: string): Partition | undefined {
    return this.live.get(name);
  }

  /** Reads and measures a module and tells whether the default policy (with these limits) admits it. */
  inspect(source: Uint8Array | ArrayBuffer | string | URL, limits: PartitionLimits = {}, options: { wasi?: boolean } = {}): Promise<Inspection> {
    return inspectModule(source as ModuleSource, {
      maxModuleBytes: this.maxModuleBytes,
      policy: {
        memoryPages: limits.memoryPages ?? this.defaults.memoryPages,
        tableElements: limits.tableElements ?? this.defaults.tableElements,
        imports: allowedImports(options.wasi === true),
      },
      ...(this.allowList ? { allowList: this.allowList } : {}),
    });
  }

  /**
   * Attaches the embedder to the virtual switch as an endpoint on `segment`, with its own
   * address. It exchanges frames only with NICs granted `devices.net.host: true` on that
   * segment: `send(dst, payload)`, and `frame` events. Close it with `close()`.
   */
  attachNet(segment: string): NetEndpoint {
    if (this.closed) throw new InvalidStateError('this hypervisor is closed');
    const ep = new NetEndpoint(this.switch, segment);
    this.hostEndpoints.add(ep);
    return ep;
  }

  /**
   * Forwards a TCP port on the loopback interface to a service in a partition granted
   * `devices.net.host: true`: each connection becomes a stream of frames (framing in
   * docs/ABI.md, "Forwarded ports"). Resolves once listening; `close()` ends it and its connections.
   */
  async forwardPort(options: ForwardPortOptions): Promise<PortForward> {
    if (this.closed) throw new InvalidStateError('this hypervisor is closed');
    const partition = this.live.get(options?.partition);
    if (partition === undefined) throw new InvalidArgumentError(`no live partition named ${JSON.stringify(options?.partition)}`);
    const forward = await PortForward.open(this.switch, partition, options);
    this.forwards.add(forward);
    partition.once('exit', () => void forward.close());
    void forward.closed.then(() => this.forwards.delete(forward));
    return forward;
  }

  /** Destroys every partition. Idempotent; the hypervisor refuses new partitions afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.forwards].map((f) => f.close()));
    for (const ep of this.hostEndpoints) ep.close();
    await Promise.all([...this.live.values()].map((p) => p.destroy()));
    await this.sched.close();
    this.switch.close();
  }

  /**
   * Where partitions run: the warm pool of dedicated workers, the shared workers (partitions on
   * each, run queue, slices, preemptions) and, per live partition, its placement, its worker and
   * its share of it (slices run, preemptions, waits, time waiting for a slice).
   */
  scheduler(): SchedulerStats & { partitions: PartitionSchedule[] } {
    const partitions = [...this.live.values()].map((p) => ({ name: p.name, state: p.state, placement: p.placement, worker: p.workerId, ...p.metrics().sched }));
    return { ...this.sched.stats(), partitions };
  }
}
