import { EventEmitter } from 'node:events';
import { MAX_ARGS_BYTES, encodeArgs } from './abi/dispatcher.ts';
import { resolveDevices, type DevicesSpec } from './devices/config.ts';
import { InvalidArgumentError, InvalidStateError } from './errors.ts';
import { ModuleCache } from './loader/compile.ts';
import { inspectModule, loadModule, type Inspection, type ModuleSource } from './loader/pipeline.ts';
import { DEFAULT_MAX_MODULE_BYTES } from './loader/read.ts';
import { Partition, type PartitionExit, type PartitionState, type Violation } from './partition/partition.ts';

/** Limits of one partition. Every limit has a safe default. */
export interface PartitionLimits {
  /** Most 64 KiB pages of linear memory; a module's maximum is clamped to it. Default 256 (16 MiB). */
  memoryPages?: number;
  /** Most table elements. Default 10000. */
  tableElements?: number;
  /** Wall-clock budget from start() to the end of the run, in ms; Infinity disables it. Default 30000. */
  timeoutMs?: number;
  /**
   * Fuel budget: the work the guest may do, counted by instrumentation (cost model in
   * docs/ABI.md). Running out ends the run with ERR_LIMIT_CPU, at the same point every time.
   * An integer from 1 to 2^53 − 1. Default: none (the module is not instrumented).
   */
  fuel?: number;
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
} as const;

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

/**
 * The root partition: it owns the module cache and the partitions, and is the only thing an
 * embedding app talks to. Create partitions with `createPartition`; close everything with `close`.
 */
export class Hypervisor extends EventEmitter<HypervisorEvents> {
  private readonly cache: ModuleCache;
  private readonly maxModuleBytes: number;
  private readonly allowList: ReadonlySet<string> | undefined;
  private readonly defaults: Required<Omit<PartitionLimits, 'fuel'>> & { fuel: number | undefined };
  private readonly violationsPerSecond: number;
  private readonly live = new Map<string, Partition>();
  private closed = false;

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
      fuel: fuelLimit(d.fuel, 'defaultLimits.fuel'),
    };
    this.violationsPerSecond = limit(options.violationsPerSecond, 100, 'violationsPerSecond', 1, 1_000_000);
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
    const args = spec.args ?? [];
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new InvalidArgumentError('args must be an array of strings');
    if (encodeArgs(args).length > MAX_ARGS_BYTES) throw new InvalidArgumentError(`args take more than ${MAX_ARGS_BYTES} bytes`);
    const devices = resolveDevices(spec.devices);

    const loaded = await loadModule(spec.module as ModuleSource, {
      maxModuleBytes: this.maxModuleBytes,
      policy: { memoryPages, tableElements },
      ...(spec.sha256 !== undefined ? { expectedSha256: spec.sha256 } : {}),
      ...(this.allowList ? { allowList: this.allowList } : {}),
      cache: this.cache,
      fuel: fuel !== undefined,
    });
    // Checked again after the await: another createPartition may have taken the name meanwhile.
    if (this.live.has(name)) throw new InvalidArgumentError(`a partition named ${name} already exists`);

    const partition = new Partition({
      name,
      measurement: loaded.measurement,
      module: loaded.module,
      args,
      devices,
      memoryPages,
      timeoutMs,
      fuel: fuel ?? null,
      violationsPerSecond: this.violationsPerSecond,
      eventRingBytes: 1 << 16,
      onDestroy: (p) => {
        if (this.live.get(p.name) === p) this.live.delete(p.name);
      },
    });
    partition.on('violation', (v) => this.emit('violation', v));
    partition.on('state', (state, previous) => this.emit('state', partition, state, previous));
    partition.on('exit', (exit) => this.emit('exit', partition, exit));
    this.live.set(name, partition);
    return partition;
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
  inspect(source: Uint8Array | ArrayBuffer | string | URL, limits: PartitionLimits = {}): Promise<Inspection> {
    return inspectModule(source as ModuleSource, {
      maxModuleBytes: this.maxModuleBytes,
      policy: {
        memoryPages: limits.memoryPages ?? this.defaults.memoryPages,
        tableElements: limits.tableElements ?? this.defaults.tableElements,
      },
      ...(this.allowList ? { allowList: this.allowList } : {}),
    });
  }

  /** Destroys every partition. Idempotent; the hypervisor refuses new partitions afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.live.values()].map((p) => p.destroy()));
  }
}
