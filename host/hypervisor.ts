import os from 'node:os';
import path from 'node:path';
import { GuardedEmitter } from './events.ts';
import { Storage, type BlockAttachment, type DiskInfo, type StorageEvent, type WipeResult } from './storage/storage.ts';
import { MAX_ARGS_BYTES, encodeArgs } from './abi/dispatcher.ts';
import { resolveDevices } from './devices/config.ts';
import { ImportDeniedError, InvalidArgumentError, InvalidStateError, LimitMemoryError, WasmvisorError } from './errors.ts';
import { WORKER_MEMORY_BYTES } from './scheduler/warm-pool.ts';
import { Scheduler, defaultSharedWorkers, type SchedulerStats } from './scheduler/scheduler.ts';
import { DEFAULT_SHARED_WORKER_HEAP_MB } from './scheduler/shared.ts';
import { DEFAULT_SANDBOX, MAX_PROCESS_FOLDERS, processMemoryBytes, type SandboxOptions } from './scheduler/sandbox.ts';
import type { RunHost, RunPlacement } from './scheduler/placement.ts';
import { DEFAULT_PARTITIONS_PER_PROCESS, MAX_SHARED_PROCESSES } from './scheduler/bounds.ts';
import { processDescriptors } from './scheduler/process.ts';
import type { CpuCap } from './channel/protocol.ts';
import { channelBytes, channelSizes, type Placement } from './limits/sizes.ts';
import { resolveRateLimit, type ResolvedRateLimit } from './limits/rate-limiter.ts';
import { ModuleCache } from './loader/compile.ts';
import { inspectModule, loadModule, type Inspection, type ModuleSource } from './loader/pipeline.ts';
import { DEFAULT_MAX_MODULE_BYTES, readModuleSource } from './loader/read.ts';
import { resolveModuleLimits, type ModuleLimits } from './loader/bounds.ts';
import { Partition, type PartitionConfig, type PartitionExit, type PartitionState, type Violation } from './partition/partition.ts';
import { PartitionPool } from './pool.ts';
import { HV_HYPERCALL, HV_MODULE } from './abi/codes.ts';
import { HYPERCALL_SIG } from './loader/policy.ts';
import type { FuncSig } from './loader/sections.ts';
import { releaseWasi, resolveWasi, wasiMemory, type ResolvedWasi } from './wasi/config.ts';
import { WASI_MODULE, WASI_SIGNATURES } from './wasi/imports.ts';
import { NetEndpoint, VirtualSwitch, type FrameObservation, type NicAttachment } from './net/switch.ts';
import { FORWARD_OPTION_KEYS, PortForward, type ForwardPortOptions } from './net/forward.ts';
import { SecurityMonitor } from './security/monitor.ts';
import { partitionAsk, readSignatureSource, specForMeasurement } from './security/spec.ts';
import type { Admission, Policy, PolicyDocument } from './security/policy.ts';
import type { AuditSink } from './security/audit.ts';
import type { AttestationReport } from './security/attestation.ts';
import type { AttestationInit } from './devices/attestation.ts';
import type { BootEvent, Registers } from './security/measured-boot.ts';
import { check, expects, given, refuseUnknownKeys } from './schema/check.ts';
import { MAX_NAME_LENGTH, NAME, Name, SHA256_PATTERN } from './schema/kinds.ts';
import { AttestOptionsSchema, HypervisorOptionsSchema, PolicySourceSchema, SetPolicyOptionsSchema, WipeStorageOptionsSchema, type AttestOptions, type HypervisorOptions, type SetPolicyOptions, type WipeStorageOptions } from './schema/hypervisor.ts';
import type { CpuLimit, PartitionLimits, RestartPolicy, RestartMode } from './schema/limits.ts';
import { InspectOptionsSchema, PartitionLimitsSchema, PartitionSpecSchema, PoolOptionsSchema, type InspectOptions, type PartitionSpec, type PoolOptions } from './schema/index.ts';
import { quoted } from './escape.ts';

export type { HypervisorOptions, PartitionSpec, PartitionLimits, CpuLimit, RestartPolicy };

/**
 * The import allow-lists: `hv` always; `wasi_snapshot_preview1` only for a partition that
 * enables WASI. Built once (never changed: the loader only reads them), not per partition.
 */
const HV_IMPORTS: ReadonlyMap<string, ReadonlyMap<string, FuncSig>> = new Map([[HV_MODULE, new Map([[HV_HYPERCALL, HYPERCALL_SIG]])]]);
const HV_WASI_IMPORTS: ReadonlyMap<string, ReadonlyMap<string, FuncSig>> = new Map([...HV_IMPORTS, [WASI_MODULE, new Map(WASI_SIGNATURES)]]);
function allowedImports(wasi: boolean): ReadonlyMap<string, ReadonlyMap<string, FuncSig>> {
  return wasi ? HV_WASI_IMPORTS : HV_IMPORTS;
}

/** Fuel between two checks of a CPU cap: about 0.1-1 ms of guest work (see docs/ABI.md). */
export const CPU_SLICE_FUEL = 200_000;

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

/** One partition's line in `hv.scheduler()`. */
export interface PartitionSchedule {
  name: string;
  state: PartitionState;
  /** Where its current run executes, or null when it is not running. */
  placement: RunPlacement | null;
  /** Its worker: a thread id (dedicated) or a shared worker's id; null when not running. */
  worker: number | null;
  slices: number;
  preemptions: number;
  waits: number;
  waitMs: number;
}

/** Something the embedder should know that is not an error (yet). */
export interface HypervisorWarning {
  /** `STORAGE_OVERCOMMIT`: attached block images may grow past the free space of their file system. */
  code: 'STORAGE_OVERCOMMIT';
  message: string;
  dir: string;
  growableBytes: number;
  freeBytes: number;
}

export interface HypervisorEvents {
  /** Every partition's violations, for one place to watch them. */
  violation: [violation: Violation];
  /** A partition changed state. */
  state: [partition: Partition, state: PartitionState, previous: PartitionState];
  exit: [partition: Partition, exit: PartitionExit];
  warning: [warning: HypervisorWarning];
  /** A block image's key was created, or an image wiped (what an audit log records; see docs/STORAGE.md). */
  storage: [event: Extract<StorageEvent, { kind: 'key-created' | 'wiped' }>];
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

function resolveRestart(value: RestartMode | RestartPolicy | undefined): PartitionConfig['restart'] {
  const p: RestartPolicy = typeof value === 'string' ? { mode: value } : (value ?? {});
  return { mode: p.mode ?? 'on-failure', maxRestarts: p.maxRestarts ?? 5, backoffMs: p.backoffMs ?? 10, maxBackoffMs: p.maxBackoffMs ?? 1000 };
}

/** Limits with every default filled in. Timeouts: Infinity for none (0 in a spec means none). */
interface ResolvedLimits {
  memoryPages: number;
  tableElements: number;
  timeoutMs: number;
  fuel: number | undefined;
  cpu: CpuCap | null;
  hypercallRate: ResolvedRateLimit | null;
  maxInputBytes: number;
  maxOutputBytes: number;
  maxQueuedCalls: number;
  callTimeoutMs: number;
}

/** A checked Timeout: 0 and Infinity both mean none (Infinity here; timers only see finite values). */
function timeout(ms: number): number {
  return ms === 0 ? Infinity : ms;
}

/**
 * A pool's options and spec, checked before any of its partitions is made: the spec as the caller
 * gave it (so a refusal names the pool's spec, not a derived name), and its name with room for the
 * longest suffix. Returns the pool's size.
 */
function checkPool(spec: PartitionSpec, options: PoolOptions): number {
  const { size } = check(PoolOptionsSchema, options, 'pool options');
  check(PartitionSpecSchema, spec, 'pool spec');
  const room = MAX_NAME_LENGTH - `-${size - 1}`.length;
  if (spec.name.length > room) {
    throw new InvalidArgumentError(
      `pool spec: name: ${quoted(spec.name)} has ${spec.name.length} characters; a pool of ${size} names its partitions up to ${quoted(`${spec.name}-${size - 1}`)}, and a partition name has at most ${MAX_NAME_LENGTH}: the pool's name may have at most ${room}`,
    );
  }
  return size;
}

/**
 * A partition name already in use: a conflict with the hypervisor's state, not a bad argument (the
 * same spec is accepted once that partition is destroyed), so ERR_INVALID_STATE, the code the
 * management API answers (409) for a name already declared.
 */
function nameTaken(name: string): InvalidStateError {
  return new InvalidStateError(`a partition named ${name} already exists`);
}

/** Fills `l` (already checked against PartitionLimitsSchema) from `base`. */
function resolveLimits(l: PartitionLimits, base: ResolvedLimits, what: string): ResolvedLimits {
  const cpu: CpuLimit | undefined = l.cpu;
  return {
    memoryPages: l.memoryPages ?? base.memoryPages,
    tableElements: l.tableElements ?? base.tableElements,
    timeoutMs: l.timeoutMs !== undefined ? timeout(l.timeoutMs) : base.timeoutMs,
    fuel: l.fuel ?? base.fuel,
    cpu: cpu !== undefined ? { maxPercent: cpu.maxPercent, periodMs: cpu.periodMs ?? 100, sliceFuel: CPU_SLICE_FUEL } : base.cpu,
    hypercallRate: l.hypercallRate !== undefined ? resolveRateLimit(l.hypercallRate, `${what}.hypercallRate`) : base.hypercallRate,
    maxInputBytes: l.maxInputBytes ?? base.maxInputBytes,
    maxOutputBytes: l.maxOutputBytes ?? base.maxOutputBytes,
    maxQueuedCalls: l.maxQueuedCalls ?? base.maxQueuedCalls,
    callTimeoutMs: l.callTimeoutMs !== undefined ? timeout(l.callTimeoutMs) : base.callTimeoutMs,
  };
}

const BUILT_IN_LIMITS: ResolvedLimits = { ...DEFAULT_LIMITS, fuel: undefined, cpu: null, hypercallRate: null };

/** `allowList` as a set of lowercase measurements; an iterable's items are checked here (the schema checks arrays). */
function resolveAllowList(list: Iterable<unknown> | undefined): ReadonlySet<string> | undefined {
  if (list === undefined) return undefined;
  const out = new Set<string>();
  const sha = new RegExp(SHA256_PATTERN);
  let i = 0;
  for (const h of list) {
    if (typeof h !== 'string' || !sha.test(h)) {
      throw new InvalidArgumentError(`Hypervisor options: allowList[${i}]: expected 64 hexadecimal digits (a SHA-256), got ${given(h)}`);
    }
    out.add(h.toLowerCase());
    i++;
  }
  return out;
}

/**
 * The root partition: it owns the module cache and the partitions, and is the only thing an
 * embedding app talks to. Create partitions with `createPartition`; close everything with `close`.
 */
export class Hypervisor extends GuardedEmitter<HypervisorEvents> {
  private readonly cache: ModuleCache;
  private readonly maxModuleBytes: number;
  private readonly moduleLimits: ModuleLimits;
  /** Policy, measured boot, attestation and audit (host/security/monitor.ts). */
  private readonly security: SecurityMonitor;
  /** What `audit` hands out: the monitor's own log behind a check that the hypervisor is open, or the embedder's sink. */
  private readonly auditView: AuditSink | null;
  private readonly defaults: ResolvedLimits;
  private readonly violationsPerSecond: number;
  private readonly callSpinMicros: number;
  private readonly live = new Map<string, Partition>();
  private readonly memoryBudget: number;
  private memoryReserved = 0;
  private readonly storage: Storage;
  private closed = false;
  /** Creations in flight: `close()` waits for them, so none outlives it. */
  private readonly creating = new Set<Promise<unknown>>();
  /** The virtual switch every granted NIC plugs into (host/net/switch.ts). */
  private readonly switch = new VirtualSwitch();
  private readonly forwards = new Set<PortForward>();
  private readonly hostEndpoints = new Set<NetEndpoint>();
  /** The logical processors: warm dedicated workers and shared workers (host/scheduler/). */
  private readonly sched: Scheduler;
  private readonly placement: Placement;
  private readonly isolation: 'thread' | 'process';
  private readonly sandbox: SandboxOptions;

  constructor(options: HypervisorOptions = {}) {
    super();
    const o = check(HypervisorOptionsSchema, options, 'Hypervisor options');
    this.maxModuleBytes = o.maxModuleBytes ?? DEFAULT_MAX_MODULE_BYTES;
    this.moduleLimits = resolveModuleLimits(o.moduleLimits);
    this.cache = new ModuleCache(o.moduleCacheSize ?? 64);
    this.defaults = resolveLimits(o.defaultLimits ?? {}, BUILT_IN_LIMITS, 'defaultLimits');
    this.violationsPerSecond = o.violationsPerSecond ?? 100;
    this.callSpinMicros = o.callSpinMicros ?? 50;
    this.memoryBudget = o.memoryBudgetBytes ?? Math.floor(os.totalmem() / 2);
    this.placement = o.placement ?? 'dedicated';
    this.isolation = o.isolation ?? 'thread';
    const { sharedProcesses, partitionsPerProcess, ...sandbox } = o.process ?? {};
    this.sandbox = { ...DEFAULT_SANDBOX, ...sandbox, user: sandbox.user ?? null };
    this.sched = new Scheduler(
      {
        warmWorkers: o.warmWorkers ?? DEFAULT_WARM_WORKERS,
        reuseWorkers: o.reuseWorkers === true,
        sharedWorkers: o.sharedWorkers ?? Math.min(256, defaultSharedWorkers()),
        sliceMs: o.sliceMs ?? DEFAULT_SLICE_MS,
        spinMicros: this.callSpinMicros,
        sharedWorkerHeapMb: o.sharedWorkerHeapMb ?? DEFAULT_SHARED_WORKER_HEAP_MB,
        sandbox: this.sandbox,
        sharedProcesses: sharedProcesses ?? Math.min(MAX_SHARED_PROCESSES, defaultSharedWorkers()),
        partitionsPerProcess: partitionsPerProcess ?? DEFAULT_PARTITIONS_PER_PROCESS,
      },
      this.placement,
    );
    const dataDir = path.resolve(o.dataDir ?? '.wasmvisor');
    const allowList = resolveAllowList(o.allowList);
    this.security = new SecurityMonitor({
      dataDir,
      ...(o.policy !== undefined ? { policy: o.policy } : {}),
      ...(allowList !== undefined ? { allowList } : {}),
      ...(o.audit !== undefined ? { audit: o.audit } : {}),
      ...(o.actor !== undefined ? { actor: o.actor } : {}),
    });
    this.auditView = this.auditFacade();
    this.storage = new Storage({
      dataDir,
      ...(o.storageKey !== undefined ? { masterKey: o.storageKey } : {}),
      ...(o.keystorePath !== undefined ? { keystorePath: o.keystorePath } : {}),
      // Key creations and wipes go to the audit log (through the monitor, so they carry the
      // hypervisor's actor whatever the sink; noted: within the log's batch bound) and to listeners.
      onEvent: (e) => {
        if (e.kind === 'overcommit') {
          this.emit('warning', { code: 'STORAGE_OVERCOMMIT', message: e.message, dir: e.dir, growableBytes: e.growableBytes, freeBytes: e.freeBytes });
          return;
        }
        // A wipe refused or failed, by whichever route (wipeStorage, destroy, the management API):
        // on the record with its code, as every refusal is.
        if (e.kind === 'wipe-failed') {
          const denied = e.code === 'ERR_INVALID_STATE' || e.code === 'ERR_INTEGRITY';
          this.security.note({ action: 'disk.wipe', target: e.name, outcome: denied ? 'denied' : 'failure', code: e.code, reason: e.message, details: { path: e.path } });
          return;
        }
        if (e.kind === 'key-created') {
          this.security.note({ action: 'key.create', target: e.name, outcome: 'success', reason: 'disk key created for a new image', details: { path: e.path, imageId: e.imageId } });
        } else {
          this.security.note({ action: 'disk.wipe', target: e.name, outcome: 'success', reason: e.removedImage ? 'image scrubbed and removed' : 'no image', details: { path: e.path, removedImage: e.removedImage, removedKey: e.removedKey } });
        }
        this.emit('storage', e);
      },
    });
  }

  /**
   * The log this hypervisor opened is closed with it: through `audit` it refuses from the moment
   * `close()` is called (a record or note then would be lost or refused later). A sink the embedder
   * gave stays the embedder's, handed out as it is: closing the hypervisor does not close it.
   */
  private auditFacade(): AuditSink | null {
    const sink = this.security.audit;
    if (sink === null || !this.security.ownsAuditLog) return sink;
    return {
      record: (entry) => {
        try {
          this.assertOpen('audit.record');
        } catch (error) {
          return Promise.reject(error);
        }
        return sink.record(entry);
      },
      note: (entry) => {
        this.assertOpen('audit.note');
        sink.note(entry);
      },
    };
  }

  /** The directory block images and the keystore live in. */
  get dataDir(): string {
    return this.storage.dataDir;
  }

  /**
   * Scrubs and removes the block images (and their keys) of a partition that is not live, e.g. one
   * destroyed earlier or left by a previous process: with `path` (as in the spec's
   * `devices.block.path`) the image there; without, every image of the name (the default place's,
   * and those the keystore files under the name at other paths). Only the name's own images are
   * scrubbed: a file that is not a Wasmvisor image, or is another partition's, is ERR_INTEGRITY
   * and left untouched; one a live partition has attached is ERR_INVALID_STATE. Refused with
   * ERR_INVALID_STATE while a live partition has that name; use `partition.destroy({ wipe: true })`
   * for a live one. Idempotent.
   */
  async wipeStorage(name: string, options: WipeStorageOptions = {}): Promise<WipeResult> {
    this.assertOpen('wipeStorage');
    if (typeof name !== 'string' || !NAME.test(name)) throw new InvalidArgumentError(`partition name ${quoted(name)} is not valid: use 1-${MAX_NAME_LENGTH} letters, digits, '.', '_' or '-'`);
    if (this.live.has(name)) throw new InvalidStateError(`partition ${name} is live; destroy it with { wipe: true } instead`);
    // A misspelt `path` would wipe the disk at the default place instead of the one meant.
    const o = check(WipeStorageOptionsSchema, options, 'wipeStorage options');
    // A refusal or failure is audited by the storage's 'wipe-failed' event (every route's).
    return o.path !== undefined ? this.storage.wipe(name, o.path) : this.storage.wipeName(name);
  }

  /**
   * The persistent disks in the data directory (and those the keystore knows elsewhere): name,
   * path, size, allocation, times, whether a key exists and whether a partition has it attached.
   * Reads image headers and file metadata only; no key is used.
   */
  async listStorage(): Promise<DiskInfo[]> {
    this.assertOpen('listStorage');
    return this.storage.list();
  }

  /** The memory budget, what live partitions have reserved, and what is left (bytes). */
  memoryUsage(): { budgetBytes: number; reservedBytes: number; availableBytes: number } {
    return { budgetBytes: this.memoryBudget, reservedBytes: this.memoryReserved, availableBytes: this.memoryBudget - this.memoryReserved };
  }

  /**
   * Loads, checks, measures and compiles the module, and returns a partition in state `created`.
   * Every refusal (ERR_MODULE_INVALID, ERR_IMPORT_DENIED, ERR_FEATURE_DENIED, ERR_LIMIT_MEMORY,
   * ERR_LIMIT_TABLE, ERR_INTEGRITY, ERR_POLICY_DENIED, ERR_INVALID_ARGUMENT) happens here, before
   * any guest code runs; with an audit log, each refusal is recorded with its code and a creation
   * is durable in the log before the partition is returned.
   */
  createPartition(spec: PartitionSpec): Promise<Partition> {
    const creation = this.createAudited(spec);
    this.creating.add(creation);
    const forget = (): void => void this.creating.delete(creation);
    creation.then(forget, forget);
    return creation;
  }

  private async createAudited(spec: PartitionSpec): Promise<Partition> {
    try {
      return await this.create(spec);
    } catch (error) {
      // Every refusal is audited with its code; the refusal itself is what the caller sees.
      await this.security.refused((spec as Partial<PartitionSpec> | null)?.name, error).catch(() => undefined);
      throw error;
    }
  }

  private async create(spec: PartitionSpec): Promise<Partition> {
    this.assertOpen('createPartition');
    const named = typeof spec === 'object' && spec !== null && typeof (spec as { name?: unknown }).name === 'string';
    check(PartitionSpecSchema, spec, named ? `partition spec ${JSON.stringify(spec.name)}` : 'partition spec');
    const { name } = spec;
    if (this.live.has(name)) throw nameTaken(name);
    const { memoryPages, tableElements, timeoutMs, fuel, cpu, hypercallRate, maxInputBytes, maxOutputBytes, maxQueuedCalls, callTimeoutMs } = resolveLimits(
      spec.limits ?? {},
      this.defaults,
      'limits',
    );
    const args = spec.args ?? [];
    if (encodeArgs(args).length > MAX_ARGS_BYTES) throw new InvalidArgumentError(`partition spec ${quoted(name)}: args: take more than ${MAX_ARGS_BYTES} bytes together`);
    const devices = resolveDevices(spec.devices);
    const kind = spec.kind ?? 'command';
    const restart = resolveRestart(spec.restart);
    const isolation = spec.isolation ?? this.isolation;
    // isolation 'process' with placement 'shared': a slot on a shared partition process (see below for descriptors).
    const inProcess = isolation === 'process';
    let placement = spec.placement ?? this.placement;
    let processShared = inProcess && placement === 'shared';

    // With a policy, the module is authenticated before anything else parses it, and the spec is
    // held to the admitting rule's grants before any folder is copied or file opened.
    let source = spec.module as ModuleSource;
    let admission: Admission | null = null;
    if (this.security.policy !== null) {
      const bytes = await readModuleSource(source, this.maxModuleBytes);
      const detached = spec.signature === undefined ? null : await readSignatureSource(spec.signature);
      admission = this.security.admit(bytes, { detachedSignature: detached, ...(spec.sha256 !== undefined ? { sha256: spec.sha256 } : {}) });
      this.security.checkGrants(admission, partitionAsk(name, { devices, memoryPages, memoryPagesDefault: spec.limits?.memoryPages === undefined, fuel: fuel ?? null, wasi: spec.wasi }));
      source = bytes;
    } else if (spec.signature !== undefined) {
      throw new InvalidArgumentError('spec.signature needs a policy with publisher keys to verify it against (HypervisorOptions.policy)');
    }

    // Admission: reserve the worst case now, synchronously, so concurrent creations cannot
    // together promise more than the budget; give it back if anything below refuses.
    // WASI: seed folders are copied here (before the synchronous reservation below).
    const wasi: ResolvedWasi | null = spec.wasi === undefined ? null : await resolveWasi(spec.wasi, [name, ...args]);
    const hostFolders = wasi?.preopens.filter((p) => p.kind === 'host').length ?? 0;
    if (inProcess && hostFolders > MAX_PROCESS_FOLDERS) {
      releaseWasi(wasi);
      throw new InvalidArgumentError(`wasi.preopens: isolation 'process' takes at most ${MAX_PROCESS_FOLDERS} host folders ('ro' or 'rw'); this spec has ${hostFolders}`);
    }
    // Descriptors are given to a partition process at its spawn only: a partition that needs one
    // gets a process of its own when sharing is the hypervisor's default, and is refused when its
    // spec asks to share (README, "Process isolation"; docs/THREAT-MODEL.md).
    const descriptors = inProcess ? processDescriptors(devices, wasi) : [];
    if (processShared && descriptors.length > 0) {
      if (spec.placement === 'shared') {
        releaseWasi(wasi);
        throw new InvalidArgumentError(
          `partition spec ${JSON.stringify(name)}: placement 'shared' with isolation 'process' cannot give the partition ${descriptors.join(', ')}: a descriptor is handed to a partition process when it starts, and a shared one is already running; use placement 'dedicated' (a process of its own)`,
        );
      }
      processShared = false;
    }
    if (inProcess) placement = 'dedicated';
    let seat: (() => void) | null = null;
    try {
      seat = processShared ? this.sched.processSeat(name) : null;
    } catch (error) {
      releaseWasi(wasi);
      throw error;
    }
    const channels = channelSizes({
      kind,
      maxInputBytes,
      maxOutputBytes,
      maxLineBytes: devices.console?.maxLineBytes ?? null,
      inputBufferBytes: devices.console?.inputBufferBytes ?? null,
      placement: inProcess ? 'process' : placement,
    });
    const reservation =
      memoryPages * 65536 +
      // In-memory WASI trees live in the worker: file buffers and the heap their entries take
      // (bounded by the quotas, see wasiMemory); host folders live on the host's disk.
      wasiMemory(wasi).bufferBytes +
      wasiMemory(wasi).heapBytes +
      (processShared ? SHARED_PARTITION_BYTES : inProcess ? processMemoryBytes(this.sandbox) : placement === 'shared' ? SHARED_PARTITION_BYTES : WORKER_MEMORY_BYTES) +
      channelBytes(channels) +
      // A call's input and output, held whole while the call runs (its chunks pass through the rings).
      (kind === 'reactor' ? maxInputBytes + maxOutputBytes : 0) +
      (devices.net ? VirtualSwitch.nicBytes(devices.net) : 0);
    if (this.memoryReserved + reservation > this.memoryBudget) {
      releaseWasi(wasi);
      seat?.();
      const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
      throw new LimitMemoryError(
        `partition ${name} needs up to ${mib(reservation)} (${memoryPages} pages of linear memory, its worker and channels), ` +
          `but only ${mib(this.memoryBudget - this.memoryReserved)} of the hypervisor's ${mib(this.memoryBudget)} budget is left`,
      );
    }
    this.memoryReserved += reservation;
    let loaded;
    let block: { storage: Storage; attachment: BlockAttachment; pathOverride: string | null } | null = null;
    let measured: { specHash: string; attestation: AttestationInit | null } | null = null;
    try {
      loaded = await loadModule(source, {
        maxModuleBytes: this.maxModuleBytes,
        policy: {
          memoryPages,
          tableElements,
          imports: allowedImports(wasi !== null),
          moduleLimits: this.moduleLimits,
          ...(kind === 'reactor' ? { requiredExports: REACTOR_EXPORTS } : {}),
        },
        ...(spec.sha256 !== undefined ? { expectedSha256: spec.sha256 } : {}),
        cache: this.cache,
        // The CPU cap's checkpoints are the fuel checkpoints: a capped module is metered too.
        fuel: fuel !== undefined || cpu !== null,
        // A shared partition is preempted at fuel checkpoints and suspended in blocking calls; so
        // is one in a partition process (its thread must return to its event loop to hear the root).
        suspendable: placement === 'shared' || inProcess,
      });
      if ((placement === 'shared' || inProcess) && loaded.memoryInitial < 1) {
        const what = inProcess ? "isolation 'process'" : "placement 'shared'";
        throw new InvalidArgumentError(`${what} needs a module whose memory starts with at least one page (this one starts with 0); use placement 'dedicated'`);
      }
      // Checked again after the await: another createPartition may have taken the name meanwhile.
      if (this.live.has(name)) throw nameTaken(name);
      // The name is reserved while the image opens, so two creations cannot race for one disk.
      if (devices.block) {
        const attachment = await this.storage.attach(name, devices.block.sizeMiB, devices.block.path ?? undefined);
        block = { storage: this.storage, attachment, pathOverride: devices.block.path };
        if (this.live.has(name) || this.closed) {
          await this.storage.detach(attachment);
          block = null;
          this.assertOpen('createPartition');
          throw nameTaken(name);
        }
      }
      // Measured boot: the module, its signers, the resolved spec and each device; and the
      // attestation device's key and certificate (issued by the host key, which stays here).
      measured = this.security.measure({
        name,
        measurement: loaded.measurement,
        admission,
        devices,
        resolvedSpec: specForMeasurement({
          name, kind, args, devices, wasi, restart,
          limits: { memoryPages, tableElements, timeoutMs, fuel: fuel ?? null, cpu, hypercallRate, maxInputBytes, maxOutputBytes, maxQueuedCalls, callTimeoutMs },
        }),
      });
    } catch (error) {
      this.memoryReserved -= reservation;
      releaseWasi(wasi);
      seat?.();
      if (block !== null) await this.storage.detach(block.attachment);
      // Same refusal, with the way out: a WASI program needs `wasi` in its spec.
      if (wasi === null && error instanceof ImportDeniedError && error.message.startsWith(`${WASI_MODULE}.`)) {
        throw new ImportDeniedError(`${error.message}; WASI imports are admitted only when the partition spec enables \`wasi\``);
      }
      throw error;
    }

    // The NIC is plugged in now, before start: frames sent to it queue until the guest reads them.
    let self: Partition | null = null;
    const net: NicAttachment | null = devices.net
      ? this.switch.attachNic(name, devices.net, (v) => self?.emit('violation', { partition: name, ...v }), this.violationsPerSecond, placement !== 'shared' && !inProcess)
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
      callable: new Set(loaded.callable),
      maxInputBytes,
      maxOutputBytes,
      maxQueuedCalls,
      callTimeoutMs,
      restart,
      spinMicros: this.callSpinMicros,
      channels,
      host: inProcess ? processHost(this.sched, loaded.bytes, block?.attachment.path ?? null, processShared) : () => this.sched.host(placement),
      // Shared (and a process's scheduler): fuel checkpoints every slice of fuel are the scheduler's chance to preempt.
      ...(placement === 'shared' || inProcess ? { sliceFuel: Math.min(CPU_SLICE_FUEL, cpu?.sliceFuel ?? CPU_SLICE_FUEL) } : {}),
      block,
      storage: this.storage,
      wasi,
      net,
      attestation: measured!.attestation,
      onDestroy: (p) => {
        if (this.live.get(p.name) === p) this.live.delete(p.name);
        this.memoryReserved -= reservation;
        seat?.();
        this.security.destroyed(p.name);
        // The host folders' fds (and any a worker left) belong to the partition: closed with it.
        releaseWasi(wasi);
      },
    });
    self = partition;
    if (placement === 'dedicated' && !inProcess) this.sched.warm();
    partition.on('violation', (v) => this.emit('violation', v));
    partition.on('state', (state, previous) => this.emit('state', partition, state, previous));
    partition.on('exit', (exit) => this.emit('exit', partition, exit));
    this.live.set(name, partition);
    try {
      // Durable in the audit log before the partition is handed out.
      await this.security.created(partition);
    } catch (error) {
      await partition.destroy();
      throw error;
    }
    // close() ran while this creation was loading: it waits for us, and nothing outlives it.
    if (this.closed) {
      await partition.destroy();
      throw new InvalidStateError(`this hypervisor was closed while partition ${name} was being created`);
    }
    return partition;
  }

  /**
   * Creates and starts `size` reactor partitions of one module, named `<name>-0` .. `<name>-N-1`,
   * behind one `call` that spreads calls over them. If any fails to load, none is kept. The
   * pool's name must leave room for the longest suffix within MAX_NAME_LENGTH. With an audit log,
   * a pool refused up front is recorded as createPartition records its refusals (a partition
   * refused later is recorded by createPartition itself).
   */
  async createPool(spec: PartitionSpec, options: PoolOptions): Promise<PartitionPool> {
    this.assertOpen('createPool');
    let size: number;
    try {
      size = checkPool(spec, options);
    } catch (error) {
      await this.security.refused((spec as Partial<PartitionSpec> | null)?.name, error).catch(() => undefined);
      throw error;
    }
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

  /**
   * Reads and measures a module and tells whether createPartition would admit it with these
   * limits, WASI enabled or not, as a command (default) or a reactor, under the security policy
   * in force (signature or pin; `signature`: a detached one).
   */
  async inspect(source: Uint8Array | ArrayBuffer | string | URL, limits: PartitionLimits = {}, options: InspectOptions = {}): Promise<Inspection> {
    // A verdict of "createPartition would admit it" would be false once closed: it admits nothing.
    this.assertOpen('inspect');
    check(PartitionLimitsSchema, limits, 'inspect limits');
    check(InspectOptionsSchema, options, 'inspect options');
    // As createPartition refuses spec.signature without a policy: a signature nothing checks
    // must not pass for a verdict that weighed it.
    if (options.signature !== undefined && this.security.policy === null) {
      throw new InvalidArgumentError('inspect options: signature needs a policy with publisher keys to verify it against (HypervisorOptions.policy)');
    }
    const bytes = await readModuleSource(source as ModuleSource, this.maxModuleBytes);
    const { memoryPages, fuel, cpu } = resolveLimits(limits, this.defaults, 'limits');
    const inspection = await inspectModule(bytes, {
      maxModuleBytes: this.maxModuleBytes,
      policy: {
        memoryPages,
        tableElements: limits.tableElements ?? this.defaults.tableElements,
        imports: allowedImports(options.wasi === true),
        moduleLimits: this.moduleLimits,
        ...(options.kind === 'reactor' ? { requiredExports: REACTOR_EXPORTS } : {}),
      },
      ...(options.sha256 !== undefined ? { expectedSha256: options.sha256 } : {}),
      // As createPartition loads it: a fuel limit or a CPU cap meters the module, and code the
      // meter cannot see (table.fill, ...) is refused.
      fuel: fuel !== undefined || cpu !== null,
    });
    if (inspection.verdict.admitted && this.security.policy !== null) {
      try {
        const detached = options.signature === undefined ? null : await readSignatureSource(options.signature);
        const admission = this.security.admit(bytes, { detachedSignature: detached });
        // As createPartition: the spec these limits, WASI and devices make is held to the
        // admitting rule's grants (ERR_POLICY_DENIED), a default it did not set included.
        const ask = { devices: resolveDevices(options.devices), memoryPages, memoryPagesDefault: limits.memoryPages === undefined, fuel: fuel ?? null, wasi: options.wasi === true ? {} : undefined };
        this.security.checkGrants(admission, partitionAsk('(inspected)', ask));
      } catch (error) {
        if (!(error instanceof WasmvisorError)) throw error;
        inspection.verdict = { admitted: false, code: error.code, message: error.message };
      }
    }
    return inspection;
  }

  /** The security policy in force, or null. */
  get policy(): Policy | null {
    return this.security.policy;
  }

  /**
   * Replaces the policy (a Policy, a document, a file path, or null for none). New partitions are
   * judged by it; live ones keep running. Measured (register `runtime`) and audited, as done by
   * `options.actor` (default: the hypervisor's actor), before it resolves.
   */
  async setPolicy(policy: Policy | PolicyDocument | string | null, options: SetPolicyOptions = {}): Promise<void> {
    // Refused before anything changes: the change could no longer be audited (it was made, then
    // its record refused with ERR_STORAGE).
    this.assertOpen('setPolicy');
    check(PolicySourceSchema, policy, 'setPolicy: policy');
    const o = check(SetPolicyOptionsSchema, options, 'setPolicy options');
    return this.security.setPolicy(policy, o.actor);
  }

  /**
   * The audit log's sink, for other parts of the application (a management API records its
   * allow/deny decisions here, with its principal as the actor), or null when auditing is off.
   */
  get audit(): AuditSink | null {
    return this.auditView;
  }

  /**
   * A signed attestation report: the measured-boot registers and event log, the live partitions
   * with their measurements, spec hashes and signers, `nonce` (hex or bytes, at most 64) and the
   * time, signed with the host key (`<dataDir>/keys/host.key`, created on first use). Verify it
   * with `verifyReport` and the host's public key (`attestationPublicKey()`). The request is
   * audited (durable before it resolves) as made by `actor` (default: the hypervisor's actor).
   */
  async attest(options: AttestOptions = {}): Promise<AttestationReport> {
    this.assertOpen('attest');
    const o = check(AttestOptionsSchema, options, 'attest options');
    return this.security.attest(o);
  }

  /** The host's attestation public key (33 bytes: 0x01 ‖ key), created on first use. */
  attestationPublicKey(): Uint8Array {
    // It may create the host key, an act that could no longer be audited.
    this.assertOpen('attestationPublicKey');
    return this.security.publicKey();
  }

  /** The measured-boot registers and event log, for export and replay (`replayEventLog`). */
  eventLog(): { registers: Registers; events: BootEvent[]; dropped: number } {
    return this.security.eventLog();
  }

  /**
   * Attaches the embedder to the virtual switch as an endpoint on `segment`, with its own
   * address. It exchanges frames only with NICs granted `devices.net.host: true` on that
   * segment: `send(dst, payload)`, and `frame` events. Close it with `close()`.
   */
  attachNet(segment: string): NetEndpoint {
    this.assertOpen('attachNet');
    // Worded as a spec's devices.net.segment is (the switch's own check stays as its guard).
    if (typeof segment !== 'string' || !NAME.test(segment)) throw new InvalidArgumentError(`attachNet: segment: expected ${expects(Name(''))}, got ${given(segment)}`);
    const ep = new NetEndpoint(this.switch, segment);
    // Kept to be closed with the hypervisor; ones the embedder closed go now, or attaching and
    // closing in a loop would keep every endpoint (and its listeners) for the hypervisor's life.
    for (const old of this.hostEndpoints) if (old.closed) this.hostEndpoints.delete(old);
    this.hostEndpoints.add(ep);
    return ep;
  }

  /**
   * Forwards a TCP port on the loopback interface to a service in a partition granted
   * `devices.net.host: true`: each connection becomes a stream of frames (framing in
   * docs/ABI.md, "Forwarded ports"). Resolves once listening; `close()` ends it and its connections.
   */
  async forwardPort(options: ForwardPortOptions): Promise<PortForward> {
    this.assertOpen('forwardPort');
    if (typeof options !== 'object' || options === null || typeof options.partition !== 'string') {
      throw new InvalidArgumentError(`forwardPort options: partition: expected the name of a live partition, got ${given(options === null || typeof options !== 'object' ? options : options.partition)}`);
    }
    // An unknown key is refused as the schema refuses one in a spec (README, "Specs: one
    // schema"): a misspelt `idleTimeout` would otherwise leave the default in force unnoticed.
    refuseUnknownKeys(options, FORWARD_OPTION_KEYS, 'forwardPort options');
    const partition = this.live.get(options.partition);
    if (partition === undefined) throw new InvalidArgumentError(`forwardPort options: partition: no live partition named ${quoted(options.partition)}`);
    const forward = await PortForward.open(this.switch, partition, options);
    this.forwards.add(forward);
    // The partition's exit closes the forwarder; a forwarder closed first takes its listener back,
    // so a long-lived partition does not hold every forwarder ever opened on it (and the app does
    // not get a MaxListenersExceededWarning after ten): what the hypervisor keeps is bounded by
    // what the app holds open (docs/THREAT-MODEL.md, "runtime ↔ embedder").
    const onExit = (): void => void forward.closeWhenDrained();
    partition.once('exit', onExit);
    void forward.closed.then(() => {
      this.forwards.delete(forward);
      partition.off('exit', onExit);
    });
    return forward;
  }

  /**
   * Watches the virtual switch: `listener` gets the metadata of every frame the root routes from
   * now on (segment, source and destination addresses, size, and whether it was delivered or why
   * it was dropped), never its payload. Frames a NIC delivers straight into a peer (ABI 1.3's
   * direct delivery) are not seen one by one: they are counted in the partitions' `net` metrics
   * (`switchedDirect`, `rxFrames`). For dashboards (`wasmvisor lab`); returns the function that stops it.
   */
  observeNetwork(listener: (frame: FrameObservation) => void): () => void {
    this.assertOpen('observeNetwork');
    return this.switch.observe(listener);
  }

  protected override describeEmitter(): string {
    return 'the hypervisor';
  }

  /**
   * Once `close()` is called (even before it resolves), every method that would act (make, start,
   * judge, change, sign, read or write files, record, listen, attach) refuses with ERR_INVALID_STATE
   * naming itself; only the views of the final state answer (partitions(), partition(),
   * memoryUsage(), scheduler(), eventLog(), policy, dataDir, audit). README, "Embedding".
   */
  private assertOpen(method: string): void {
    if (this.closed) throw new InvalidStateError(`${method}: this hypervisor is closed`);
  }

  /** Destroys every partition. Idempotent; every method that acts refuses afterwards (assertOpen). */
  async close(): Promise<void> {
    this.closed = true;
    // A creation in flight finishes (refused: the hypervisor is closed) before anything it uses closes.
    await Promise.allSettled([...this.creating]);
    await Promise.all([...this.forwards].map((f) => f.close()));
    for (const ep of this.hostEndpoints) ep.close();
    await Promise.all([...this.live.values()].map((p) => p.destroy()));
    await this.sched.close();
    this.switch.close();
    this.storage.close();
    await this.security.close();
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

/**
 * A partition process's host factory, made outside `create` so only a process partition holds
 * its module's bytes: a closure in `create` would keep them (and everything else it captures)
 * alive for every partition's lifetime, a copy of the module per partition (issue #15).
 */
function processHost(sched: Scheduler, bytes: Uint8Array, blockPath: string | null, shared: boolean): () => RunHost {
  return () => sched.processHost(bytes, blockPath, shared);
}
