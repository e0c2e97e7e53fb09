/**
 * The daemon's model: one Hypervisor and the partitions declared in the config directory, each
 * kept running (or not) according to its restart policy, like virtual machines on a host.
 *
 * A declared partition (Managed) outlives its Partition objects: a Partition runs once, so
 * starting a partition that has ended, or restarting one after a failure, creates a new
 * Partition from the same declaration (same name, so the same disk). Operations on one
 * partition are serialized (`exclusive`), so a stop never races a restart or a destroy.
 *
 * Restart policies (`restartPolicy` of the declaration):
 *   never       runs only when an operator starts it
 *   on-failure  started again when a run fails (non-zero exit, trap, watchdog), and when the
 *               host comes back after dying under it (SIGKILL, power loss)
 *   always      started again whenever a run ends, and when the host comes back, unless an
 *               operator stopped it
 * Restarts back off exponentially (100 ms doubling to 30 s; reset after 10 s of running).
 */
import { EventEmitter } from 'node:events';
import { Hypervisor, type HypervisorOptions, type PartitionSpec } from '../hypervisor.ts';
import type { WipeResult } from '../storage/storage.ts';
import type { Partition, PartitionExit } from '../partition/partition.ts';
import { IntegrityError, InvalidArgumentError, InvalidStateError, NotFoundError, WasmvisorError, type ErrorCode } from '../errors.ts';
import { measure } from '../loader/measure.ts';
import type { AuditSink } from './audit.ts';
import type { ConfigDir } from './config.ts';
import { Policy, type PolicyDocument } from '../security/policy.ts';
import { MAX_MODULE_BYTES, type ApiPartitionSpec, type CreatePartitionBody, type DeclaredPartition } from './schemas.ts';
import { checkWasiBlocks } from '../schema/wasi.ts';
import { quoted } from '../escape.ts';

/** Console lines kept per partition for `logs` and a new stream's backlog. */
export const CONSOLE_BACKLOG = 1000;
/** How long a start (API or the host's own start-up) waits for a reactor to be ready before it answers with the run begun (see run). */
export const START_WAIT_MS = 2000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 30_000;
const BACKOFF_RESET_AFTER_MS = 10_000;

export interface ConsoleLine {
  seq: number;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface PartitionInfo {
  name: string;
  kind: 'command' | 'reactor';
  /** The current Partition's state, or `refused` when the declaration could not be loaded. */
  state: string;
  measurement: string;
  restartPolicy: DeclaredPartition['restartPolicy'];
  desired: DeclaredPartition['desired'];
  lastRun: DeclaredPartition['lastRun'];
  /** Runs started by the host's restart policy. */
  restarts: number;
  segment: string | null;
  lastExit: { state: string; code: number | null; reason: string } | null;
  error: { code: ErrorCode; message: string } | null;
  createdAt: string;
  createdBy: string;
}

interface ManagedEvents {
  line: [line: ConsoleLine];
  state: [state: string];
  /** Destroyed: streams end. */
  gone: [];
}

/** One declared partition and its current run. */
export class Managed extends EventEmitter<ManagedEvents> {
  decl: DeclaredPartition;
  partition: Partition | null = null;
  error: { code: ErrorCode; message: string } | null = null;
  /** How the last run that began ended (an instance stopped or wiped before it started is no run). */
  lastExit: PartitionExit | null = null;
  /** The instance whose run began last: only its end is a run's end. */
  started: Partition | null = null;
  restarts = 0;
  private backlog: ConsoleLine[] = [];
  private seq = 0;
  private chain: Promise<unknown> = Promise.resolve();
  restartTimer: NodeJS.Timeout | null = null;
  backoffMs = BACKOFF_FIRST_MS;
  startedAt = 0;
  /** Set while the host ends a run on purpose (operator stop, destroy, shutdown): no restart. */
  intentional = false;
  /** The hash of the policy `partition` was admitted under (null: none), when it was made. */
  admittedUnder: string | null = null;

  constructor(decl: DeclaredPartition) {
    super();
    this.decl = decl;
    // Many console streams may follow one partition.
    this.setMaxListeners(0);
  }

  get name(): string {
    return this.decl.spec.name;
  }

  get segment(): string | null {
    const net = this.decl.spec.devices?.net;
    return net ? net.segment : null;
  }

  /** Runs `fn` after every earlier operation on this partition has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }

  pushLine(stream: 'stdout' | 'stderr', line: string): void {
    const l = { seq: ++this.seq, stream, line };
    this.backlog.push(l);
    if (this.backlog.length > CONSOLE_BACKLOG) this.backlog.splice(0, this.backlog.length - CONSOLE_BACKLOG);
    this.emit('line', l);
  }

  tail(n: number): ConsoleLine[] {
    return n <= 0 ? [] : this.backlog.slice(-n);
  }

  info(): PartitionInfo {
    const e = this.lastExit;
    return {
      name: this.name,
      kind: this.decl.spec.kind ?? 'command',
      state: this.partition?.state ?? 'refused',
      measurement: this.decl.moduleSha256,
      restartPolicy: this.decl.restartPolicy,
      desired: this.decl.desired,
      lastRun: this.decl.lastRun,
      restarts: this.restarts,
      segment: this.segment,
      lastExit: e ? { state: e.state, code: e.code, reason: e.reason } : null,
      error: this.error,
      createdAt: this.decl.createdAt,
      createdBy: this.decl.createdBy,
    };
  }
}

export interface ManagedHostOptions {
  config: ConfigDir;
  audit: AuditSink;
  /** Options for the Hypervisor; `dataDir` is always the config directory's `data/`. */
  hypervisor?: Omit<HypervisorOptions, 'dataDir'>;
  /** Where the daemon reports what it does (stderr by default in `serve`). */
  log?: (line: string) => void;
}

function decodeModule(base64: string): Uint8Array {
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length === 0) throw new InvalidArgumentError('module: is empty');
  if (bytes.length > MAX_MODULE_BYTES) throw new InvalidArgumentError(`module: ${bytes.length} bytes is over the ${MAX_MODULE_BYTES}-byte limit`);
  return bytes;
}

/** The library spec for a declaration: the module pinned to the measurement the declaration names. */
function librarySpec(spec: ApiPartitionSpec, module: Uint8Array, sha256: string): PartitionSpec {
  return { ...spec, module, sha256 };
}

export class ManagedHost {
  readonly hv: Hypervisor;
  readonly config: ConfigDir;
  readonly audit: AuditSink;
  private readonly managed = new Map<string, Managed>();
  /** The policy file's document (what GET /policy shows), or null: no policy. */
  private policyDoc: PolicyDocument | null;
  private closing: Promise<void> | null = null;
  private moduleChain: Promise<unknown> = Promise.resolve();
  private readonly log: (line: string) => void;
  readonly startedAt = Date.now();

  private constructor(options: ManagedHostOptions, policy: PolicyDocument | null) {
    this.config = options.config;
    this.audit = options.audit;
    this.log = options.log ?? (() => {});
    this.policyDoc = policy;
    // The Hypervisor admits modules by the policy file (signed or pinned, spec within grants),
    // and records what the runtime sees (lifecycle, exits, violations aggregated per partition
    // per second, refusals, the policy's load and changes) into the same log (serve gives it).
    this.hv = new Hypervisor({ ...options.hypervisor, dataDir: this.config.dataDir, ...(policy !== null ? { policy: this.toPolicy(policy) } : {}) });
  }

  /** Opens the host: reads the policy and brings back every declared partition per its restart policy. */
  static async open(options: ManagedHostOptions): Promise<ManagedHost> {
    const host = new ManagedHost(options, await options.config.readPolicy());
    for (const name of await host.config.declaredNames()) await host.restore(name);
    return host;
  }

  /** The policy file in force and its hash (as measured and attested), or nulls without one. */
  get policy(): { policy: PolicyDocument | null; sha256: string | null } {
    return { policy: this.policyDoc, sha256: this.policyHash() };
  }

  /**
   * Replaces the admission policy (null: none). Checked whole (keys parsed) before anything is
   * written; then the file, then the Hypervisor, which measures the change (register `runtime`)
   * and records it, by `actor`, durably before this resolves. Partitions created or started from
   * now on are judged by it; running ones keep running.
   */
  async setPolicy(doc: PolicyDocument | null, actor: string): Promise<void> {
    this.open();
    const policy = doc === null ? null : this.toPolicy(doc);
    await this.config.writePolicy(doc);
    this.policyDoc = doc;
    await this.hv.setPolicy(policy, { actor });
  }

  /** The hash of the policy in force (as measured and attested), or null without one. */
  private policyHash(): string | null {
    return this.hv.policy?.hash ?? null;
  }

  /** Key files and preopen folders a policy names are relative to the config directory, where its file lives. */
  private toPolicy(doc: PolicyDocument): Policy {
    return Policy.fromDocument(doc, { baseDir: this.config.root, source: this.config.policyFile });
  }

  list(): PartitionInfo[] {
    return [...this.managed.values()].map((m) => m.info()).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A declared partition, or ERR_NOT_FOUND. */
  get(name: string): Managed {
    const m = this.managed.get(name);
    if (m === undefined) throw new NotFoundError(`no partition named ${quoted(name)}`);
    return m;
  }

  /** The NIC segment of a declared partition (for its scope chain), or null. */
  segmentOf(name: string): string | null {
    return this.managed.get(name)?.segment ?? null;
  }

  private async restore(name: string): Promise<void> {
    let decl: DeclaredPartition;
    try {
      decl = await this.config.readDeclared(name);
    } catch (error) {
      this.log(`wasmvisor serve: partition ${name} not restored: ${describe(error)}`);
      this.audit.note({ actor: 'host', action: 'partition.restore', target: `/partitions/${name}`, outcome: 'failure', reason: describe(error) });
      return;
    }
    const m = new Managed(decl);
    this.managed.set(name, m);
    const wasRunning = decl.lastRun === 'running';
    const start =
      decl.desired === 'running' &&
      (decl.restartPolicy === 'always' || (decl.restartPolicy === 'on-failure' && (wasRunning || decl.lastRun === 'failed')));
    try {
      await this.instantiate(m);
      if (start) await this.run(m);
      else if (wasRunning) await this.setLastRun(m, 'failed');
      this.audit.note({ actor: 'host', action: 'partition.restore', target: `/partitions/${name}`, outcome: 'success', reason: start ? `started (restartPolicy ${decl.restartPolicy})` : 'created, not started' });
    } catch (error) {
      m.error = errorInfo(error);
      this.log(`wasmvisor serve: partition ${name} not restored: ${describe(error)}`);
      this.audit.note({ actor: 'host', action: 'partition.restore', target: `/partitions/${name}`, outcome: 'failure', reason: describe(error) });
    }
  }

  /** Declares, loads and (with `start`) starts a partition. Nothing is stored unless the module and spec are admitted and load. */
  async create(body: CreatePartitionBody, actor: string): Promise<PartitionInfo> {
    this.open();
    const name = body.spec.name;
    if (this.managed.has(name)) throw new InvalidStateError(`a partition named ${name} is already declared`);
    // The one bound of a spec its schema cannot state (a total), judged with the body, before anything is stored.
    if (body.spec.wasi !== undefined) checkWasiBlocks(body.spec.wasi, 'body: spec.wasi');
    const bytes = decodeModule(body.module);
    const measurement = measure(bytes);
    if (body.spec.sha256 !== undefined && body.spec.sha256.toLowerCase() !== measurement) {
      throw new IntegrityError(`spec.sha256 pins ${body.spec.sha256.toLowerCase()} but the module measures ${measurement}`);
    }
    const decl: DeclaredPartition = {
      version: 1,
      spec: body.spec,
      moduleSha256: measurement,
      restartPolicy: body.restartPolicy ?? 'never',
      desired: body.start ? 'running' : 'stopped',
      lastRun: 'none',
      createdAt: new Date().toISOString(),
      createdBy: actor,
    };
    const m = new Managed(decl);
    // Reserve the name before the first await, so two creations cannot both pass the check, and
    // queue the creation at once: an operation on the name (start, stop, delete) waits for it.
    this.managed.set(name, m);
    try {
      await m.exclusive(async () => {
        await this.modules(() => this.config.storeModule(bytes));
        await this.instantiate(m, bytes);
        await this.config.writeDeclared(decl);
      });
    } catch (error) {
      // Unless a delete took the name meanwhile (and a new create may hold it now).
      if (this.managed.get(name) === m) this.managed.delete(name);
      await m.partition?.destroy();
      // The stored module goes too, unless another declaration uses it.
      await this.pruneModules();
      throw error;
    }
    await this.audit.record({ actor, action: 'partition.create', target: `/partitions/${name}`, outcome: 'success', reason: `module ${measurement}, restartPolicy ${decl.restartPolicy}` });
    if (body.start) await this.start(name, actor);
    return m.info();
  }

  /** Starts a partition: the current one if it is `created`, else a fresh run of the declaration. */
  start(name: string, actor: string): Promise<PartitionInfo> {
    this.open();
    return this.exclusive(name, async (m) => {
      if (m.partition?.state === 'running') throw new InvalidStateError(`partition ${name} is already running`);
      // Loaded first: a start refused here (a policy changed since, a module no longer admitted)
      // changes nothing the declaration says, and a restart the policy scheduled stays scheduled.
      // A `created` instance admitted under another policy than the one in force is loaded again:
      // a policy replaced since holds for every run that begins after it, not only for new loads
      // (nothing of it is lost: console input is taken only while it runs).
      if (m.partition === null || m.partition.state !== 'created' || m.admittedUnder !== this.policyHash()) await this.instantiate(m);
      this.cancelRestart(m);
      m.decl = { ...m.decl, desired: 'running' };
      await this.run(m);
      // What the start did, as the answer shows it (one snapshot for both): a run going on, or
      // one that ended already (a command done within the wait, a reactor that trapped starting).
      const info = m.info();
      const e = info.lastExit;
      const reason = info.state === 'running' ? 'run begun' : `run begun and ended already: ${info.state}${e ? ` (${e.reason}${e.code !== null ? `, code ${e.code}` : ''})` : ''}`;
      await this.audit.record({ actor, action: 'partition.start', target: `/partitions/${name}`, outcome: 'success', reason });
      return info;
    });
  }

  /** Stops a partition and keeps it stopped (no restart policy applies until it is started again). */
  stop(name: string, actor: string): Promise<PartitionInfo> {
    this.open();
    return this.exclusive(name, async (m) => {
      this.cancelRestart(m);
      m.decl = { ...m.decl, desired: 'stopped' };
      // The record says what the stop did: a stop of a partition that was not running stops nothing.
      const was = m.partition?.state ?? 'refused';
      if (m.partition?.state === 'running' || m.partition?.state === 'created') {
        m.intentional = true;
        try {
          await m.partition.stop();
        } finally {
          m.intentional = false;
        }
        m.decl = { ...m.decl, lastRun: 'stopped' };
      }
      await this.config.writeDeclared(m.decl);
      const reason = was === 'running' ? 'run stopped' : was === 'created' ? 'stopped before it started' : `not running (${was}): kept stopped`;
      await this.audit.record({ actor, action: 'partition.stop', target: `/partitions/${name}`, outcome: 'success', reason });
      return m.info();
    });
  }

  /**
   * Stops, destroys and undeclares a partition; with `wipe` its disk is scrubbed and removed too,
   * and what the wipe found and removed is the answer (null without `wipe`, or when the name has
   * no disk: its spec grants none and no image of the name is left, so there is nothing to scrub
   * and the partition is destroyed as without `wipe`; `wipeDisk` is 400 then, as it is only about
   * the disk). A wipe refused or failed (ERR_INTEGRITY: a file at the
   * name's place that is not its image; ERR_INVALID_STATE; ERR_STORAGE) leaves the disk untouched
   * and the partition declared, stopped (see afterRefusedWipe), and is the answer.
   */
  destroy(name: string, options: { wipe: boolean }, actor: string): Promise<WipeResult | null> {
    this.open();
    return this.exclusive(name, async (m) => {
      // ?wipe=true of a name with no disk scrubs nothing: the destroy goes on, and says so.
      const wipe = options.wipe && (await this.diskOf(m)) !== null;
      this.cancelRestart(m);
      const wasRunning = m.partition?.state === 'running';
      m.intentional = true;
      let wiped: WipeResult | null = null;
      try {
        // The partition wipes its name's disk, also one an earlier declaration left when this one grants none.
        if (m.partition) wiped = await m.partition.destroy(wipe ? { wipe: true } : {});
        else if (wipe) wiped = await this.hv.wipeStorage(name);
      } catch (error) {
        if (!wipe) throw error;
        await this.afterRefusedWipe(m, 'partition.destroy', wasRunning, error, actor);
        throw error;
      } finally {
        m.intentional = false;
      }
      await this.config.removeDeclared(name);
      this.managed.delete(name);
      m.emit('gone');
      await this.pruneModules();
      await this.audit.record({ actor, action: 'partition.destroy', target: `/partitions/${name}`, outcome: 'success', reason: wiped !== null ? wipeReason(wiped) : options.wipe ? NO_DISK_TO_WIPE : 'disk kept', details: { wiped: wiped !== null && isWiped(wiped) } });
      return wiped;
    });
  }

  /**
   * Scrubs and removes a stopped partition's disk; it gets a new, empty one on its next start. A
   * declaration without a disk may still find its name's image (or the key of one) that an earlier
   * declaration of the name left: that is wiped, as DELETE ?wipe=true would; with none, 400. A
   * refused or failed wipe leaves the disk untouched and the partition as after a stop.
   */
  wipeDisk(name: string, actor: string): Promise<PartitionInfo> {
    this.open();
    return this.exclusive(name, async (m) => {
      const leftover = await this.assertHasDisk(m);
      if (m.partition?.state === 'running') throw new InvalidStateError(`partition ${name} is running: stop it before wiping its disk`);
      this.cancelRestart(m);
      m.intentional = true;
      let wiped: WipeResult;
      try {
        wiped = m.partition ? await m.partition.destroy({ wipe: true }) : await this.hv.wipeStorage(name);
      } catch (error) {
        await this.afterRefusedWipe(m, 'disk.wipe', false, error, actor);
        throw error;
      } finally {
        m.intentional = false;
      }
      m.partition = null;
      // The wipe is done whether or not the declaration loads again now (a policy changed since):
      // the answer is the partition, `refused` with why, rather than an error for a wipe that happened.
      await this.instantiate(m).catch((e: unknown) => this.log(`wasmvisor serve: partition ${name} not loaded again after its disk wipe: ${describe(e)}`));
      const reason = wipeReason(wiped);
      await this.audit.record({
        actor,
        action: 'disk.wipe',
        target: `/partitions/${name}`,
        outcome: 'success',
        reason: leftover ? `${reason} (the image an earlier declaration of the name left)` : reason,
        details: { wiped: isWiped(wiped) },
      });
      return m.info();
    });
  }

  /**
   * A wipe needs a disk of the name: one the declaration grants, or else an image (or the key of
   * one) an earlier declaration of the name left, as the wipe would find it (hv.wipeStorage: at
   * any path filed under the name, or an image of no known owner at the name's default place;
   * another partition's image that sits at that place is not the name's). ERR_INVALID_ARGUMENT
   * when there is none, before anything changes. Resolves true when the disk is such a leftover.
   */
  private async assertHasDisk(m: Managed): Promise<boolean> {
    const disk = await this.diskOf(m);
    if (disk === null) throw new InvalidArgumentError(`partition ${m.name} has no disk: its spec grants none, and no image of its name is left to wipe`);
    return disk === 'leftover';
  }

  /** The disk a wipe of `m` would scrub (see assertHasDisk): the one its spec grants, a leftover of the name, or none. */
  private async diskOf(m: Managed): Promise<'spec' | 'leftover' | null> {
    if (m.decl.spec.devices?.block) return 'spec';
    return (await this.hv.listStorage()).some((d) => d.name === m.name) ? 'leftover' : null;
  }

  /**
   * After a refused or failed wipe the disk is untouched (README, "Persistent block storage") but
   * the partition that was asked to wipe it is destroyed: the declaration gets a fresh instance,
   * stopped, as after `stop` (desired `stopped`; a run the request ended is `lastRun: stopped`),
   * so GET shows it `created` (or `refused` with why, when it cannot load now), no restart policy
   * brings it back, the host does not start it at its next start-up, and the operator may retry
   * the wipe or the delete. The refusal is on the record by the caller (the Hypervisor's
   * `disk.wipe` record has the image's path), before the error is the answer.
   */
  private async afterRefusedWipe(m: Managed, action: 'partition.destroy' | 'disk.wipe', wasRunning: boolean, error: unknown, actor: string): Promise<void> {
    m.decl = { ...m.decl, desired: 'stopped', ...(wasRunning ? { lastRun: 'stopped' as const } : {}) };
    await this.config.writeDeclared(m.decl).catch((e: unknown) => this.log(`wasmvisor serve: ${describe(e)}`));
    await this.instantiate(m).catch((e: unknown) => this.log(`wasmvisor serve: partition ${m.name} not loaded again after a refused wipe: ${describe(e)}`));
    const e = errorInfo(error);
    const denied = e.code === 'ERR_INTEGRITY' || e.code === 'ERR_INVALID_STATE';
    await this.audit.record({
      actor,
      action,
      target: `/partitions/${m.name}`,
      outcome: denied ? 'denied' : 'failure',
      code: e.code,
      reason: `the disk wipe was ${denied ? 'refused' : 'not done'}, the disk left as it was (${e.message}); the partition is still declared, stopped${action === 'partition.destroy' ? ', not destroyed' : ''}`,
    });
  }

  /** Calls a running reactor's export. */
  async call(name: string, exportName: string, input: Uint8Array, timeoutMs: number | undefined, signal: AbortSignal): Promise<Uint8Array> {
    const p = this.get(name).partition;
    if (p === null || p.state !== 'running') throw new InvalidStateError(`partition ${name} is not running`);
    return p.call(exportName, input, { ...(timeoutMs !== undefined ? { timeoutMs } : {}), signal });
  }

  /**
   * Queues console input lines, in order, until the guest's input buffer is full; `end` then
   * ends the input only when every line was taken: ending it after a refused line would lose
   * that line and every later one for good (the caller sends them again, with `end`).
   */
  writeConsole(name: string, lines: string[], end: boolean): { accepted: number; ended: boolean } {
    const p = this.get(name).partition;
    if (p === null || p.state !== 'running') throw new InvalidStateError(`partition ${name} is not running`);
    let accepted = 0;
    for (const line of lines) {
      if (!p.writeLine(line)) break;
      accepted++;
    }
    const ended = end && accepted === lines.length;
    if (ended) p.endInput();
    return { accepted, ended };
  }

  /** Stops every partition (disks flushed and closed), records why, and closes the Hypervisor. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(
        [...this.managed.values()].map((m) =>
          m.exclusive(async () => {
            this.cancelRestart(m);
            m.intentional = true;
            if (m.partition?.state === 'running') {
              m.decl = { ...m.decl, lastRun: 'host-shutdown' };
              await this.config.writeDeclared(m.decl).catch((e) => this.log(`wasmvisor serve: ${describe(e)}`));
            }
            await m.partition?.destroy();
            m.emit('gone');
          }),
        ),
      );
      await this.hv.close();
    })();
    return this.closing;
  }

  private open(): void {
    if (this.closing) throw new InvalidStateError('the host is shutting down');
  }

  /**
   * Runs `fn` on partition `name` once its earlier operations have finished, if it is still the
   * partition declared under that name then: one destroyed meanwhile is ERR_NOT_FOUND, so a stop
   * queued behind a destroy does not write the declaration back, nor a start run a guest no call can reach.
   */
  private exclusive<T>(name: string, fn: (m: Managed) => Promise<T>): Promise<T> {
    const m = this.get(name);
    return m.exclusive(async () => {
      this.current(m);
      return fn(m);
    });
  }

  /**
   * Module files are stored and pruned one operation at a time, and a prune decides what to keep
   * when its turn comes: a create of another partition (or of the same module) that reserved its
   * name meanwhile keeps its module, rather than losing the file it just stored.
   */
  private modules<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.moduleChain.then(fn, fn);
    this.moduleChain = run.catch(() => {});
    return run;
  }

  private pruneModules(): Promise<void> {
    return this.modules(() => this.config.pruneModules(new Set([...this.managed.values()].map((x) => x.decl.moduleSha256))));
  }

  /** ERR_NOT_FOUND unless `m` is still the partition declared under its name. */
  private current(m: Managed): void {
    if (this.managed.get(m.name) !== m) throw new NotFoundError(`no partition named ${quoted(m.name)}: it was destroyed meanwhile`);
  }

  /** A new Partition for the declaration (replacing an ended one; its disk carries over). */
  private async instantiate(m: Managed, bytes?: Uint8Array): Promise<void> {
    if (m.partition) {
      m.intentional = true;
      try {
        await m.partition.destroy();
      } finally {
        m.intentional = false;
      }
      m.partition = null;
    }
    const module = bytes ?? (await this.config.readModule(m.decl.moduleSha256));
    try {
      const under = this.policyHash();
      const p = await this.hv.createPartition(librarySpec(m.decl.spec, module, m.decl.moduleSha256));
      m.partition = p;
      m.admittedUnder = under;
      m.error = null;
      p.on('console', (line, stream) => m.pushLine(stream, line));
      p.on('state', (state) => m.emit('state', state));
      p.on('exit', (exit) => this.onExit(m, p, exit));
    } catch (error) {
      m.error = errorInfo(error);
      throw error;
    }
  }

  /**
   * Starts the current Partition and waits for its guest at most START_WAIT_MS: a reactor's start
   * settles once it is ready (or has ended), which is what the answer then shows; one that never
   * gets there (no start-up budget, or 24 days of it) must hold neither this partition's later
   * operations (stop, destroy, the host's shutdown, all serialized behind this one) nor the host's
   * own start-up. Past the wait the run is `running` and still starting; calls made meanwhile wait
   * in its queue, and how it ends comes through onExit, as any run's end does.
   */
  private async run(m: Managed): Promise<void> {
    const p = m.partition!;
    m.started = p;
    m.startedAt = performance.now();
    m.decl = { ...m.decl, lastRun: 'running' };
    await this.config.writeDeclared(m.decl);
    const started = p.start().catch((error: unknown) => this.log(`wasmvisor serve: partition ${m.name} did not start: ${describe(error)}`));
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, START_WAIT_MS);
      timer.unref();
    });
    await Promise.race([started, waited]).finally(() => clearTimeout(timer));
  }

  private async setLastRun(m: Managed, lastRun: DeclaredPartition['lastRun']): Promise<void> {
    m.decl = { ...m.decl, lastRun };
    await this.config.writeDeclared(m.decl);
  }

  private onExit(m: Managed, p: Partition, exit: PartitionExit): void {
    if (m.partition !== p) return;
    // A wipe or a stop ends the fresh instance that waits for the next start as `killed`
    // ("stopped before it started"): that is not how the last run ended.
    if (m.started === p) m.lastExit = exit;
    if (m.intentional || this.closing) return;
    // The exit itself is on the record already: the Hypervisor notes every partition's exit.
    const failed = !(exit.state === 'exited' && exit.code === 0);
    const policy = m.decl.restartPolicy;
    const restart = m.decl.desired === 'running' && (policy === 'always' || (policy === 'on-failure' && failed));
    void m.exclusive(async () => {
      if (m.partition !== p) return;
      await this.setLastRun(m, failed ? 'failed' : 'succeeded').catch((e) => this.log(`wasmvisor serve: ${describe(e)}`));
      if (restart && !this.closing) this.scheduleRestart(m);
    });
  }

  private scheduleRestart(m: Managed): void {
    if (performance.now() - m.startedAt > BACKOFF_RESET_AFTER_MS) m.backoffMs = BACKOFF_FIRST_MS;
    const delay = m.backoffMs;
    m.backoffMs = Math.min(BACKOFF_MAX_MS, m.backoffMs * 2);
    m.restartTimer = setTimeout(() => {
      m.restartTimer = null;
      void m.exclusive(async () => {
        if (this.closing || this.managed.get(m.name) !== m || m.decl.desired !== 'running' || m.partition?.state === 'running') return;
        try {
          await this.instantiate(m);
          await this.run(m);
          m.restarts++;
          this.audit.note({ actor: 'host', action: 'partition.restart', target: `/partitions/${m.name}`, outcome: 'success', reason: `restartPolicy ${m.decl.restartPolicy}, after ${delay} ms` });
        } catch (error) {
          this.audit.note({ actor: 'host', action: 'partition.restart', target: `/partitions/${m.name}`, outcome: 'failure', reason: describe(error) });
          this.scheduleRestart(m);
        }
      });
    }, delay);
  }

  private cancelRestart(m: Managed): void {
    if (m.restartTimer) clearTimeout(m.restartTimer);
    m.restartTimer = null;
    m.backoffMs = BACKOFF_FIRST_MS;
  }
}

function errorInfo(error: unknown): { code: ErrorCode; message: string } {
  return error instanceof WasmvisorError ? { code: error.code, message: error.message } : { code: 'ERR_INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/** Whether a wipe scrubbed an image or removed a key: anything of the name's disk. */
export function isWiped(r: WipeResult): boolean {
  return r.removedImage || r.removedKey;
}

/** The audit reason of DELETE ?wipe=true for a name with no disk (see ManagementHost.destroy). */
const NO_DISK_TO_WIPE = 'no disk to wipe: its spec grants none, and no image of its name was left';

/** What a wipe did, for the audit record (no host paths: the Hypervisor's `disk.wipe` record has them). */
function wipeReason(r: WipeResult): string {
  const n = r.images.length;
  if (n > 0) return `disk wiped: ${n} image${n === 1 ? '' : 's'} scrubbed and removed${r.removedKey ? ', key removed' : ''}`;
  if (r.removedKey) return 'disk wiped: no image was left; its key removed';
  return 'nothing to wipe: no image or key of the name was left';
}

function describe(error: unknown): string {
  const e = errorInfo(error);
  return `${e.code}: ${e.message}`;
}
