/**
 * What a lab's run gets: narration (say, step, evidence), hypervisors and partitions that are
 * watched by the dashboard and audited, and the record of what the defence produced (codes,
 * violations, problems) that the runner judges against the lab's expectation. Everything a run
 * makes (hypervisors, partitions, servers, its work directory) is closed in `close()`, which the
 * runner calls in a `finally`.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hypervisor, type HypervisorOptions, type PartitionSpec } from '../hypervisor.ts';
import type { Partition, PartitionExit } from '../partition/partition.ts';
import { InternalError, WasmvisorError } from '../errors.ts';
import { guestsDir } from '../paths.ts';
import type { AuditEntry } from '../mgmt/audit.ts';
import type { LabEvent } from './lab.ts';
import type { AuditEntry as SecurityAuditEntry, AuditSink as SecurityAuditSink } from '../security/audit.ts';

/** How long a lab waits by default for a line it expects from a guest, ms. */
export const WAIT_FOR_LINE_MS = 60_000;
/** Longest guest console line a lab shows; the rest is cut (and says so). */
export const MAX_SHOWN_LINE = 400;
/** Console lines shown per partition; later ones are counted, not shown. */
export const MAX_SHOWN_LINES = 40;
/** Violations shown one by one per partition; later ones are counted (the audit record aggregates them anyway). */
export const MAX_SHOWN_VIOLATIONS = 8;

/**
 * `promise`, marked as handled: a lab often starts a wait before the step it waits on
 * (`waitForLine` before `start`) and awaits it after; when that step throws, or the run ends
 * first, the wait's rejection has no reader, and an unhandled rejection would end the whole
 * process (`wasmvisor lab` serving other runs). Whoever awaits it still gets the rejection.
 */
function settledQuietly<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/** What a wait still pending when its run ends rejects with. */
function stopped(): WasmvisorError {
  return new WasmvisorError('ERR_KILLED', 'the lab run ended while this step was waiting');
}

export interface SeenCode {
  code: string;
  message: string;
  source: string;
}

export interface SeenViolation {
  partition: string;
  call: string;
  status: string;
  reason: string;
}

/** What a partition was granted, as the dashboard shows it: the devices and limits of its spec. */
export type Grants = Pick<PartitionSpec, 'devices' | 'limits'>;

/** Where a context's hypervisors are shown (the dashboard's telemetry), if anywhere. */
export interface Watcher {
  /** Starts showing `hv`'s partitions under `scope`; `grantsOf` says what each was granted. Returns the way to stop. */
  watch(hv: Hypervisor, scope: string, grantsOf: (name: string) => Grants | undefined): () => void;
}

export interface ContextOptions {
  labId: string;
  mode: 'defence' | 'defence-off';
  /** A label unique among concurrent runs (the dashboard's scope for this run's partitions). */
  runLabel: string;
  emit(event: LabEvent): void;
  /** Where audit records go (tapped by the runner, so each is also an event). */
  audit(entry: AuditEntry): void;
  watcher?: Watcher | undefined;
}

export class LabContext {
  readonly mode: 'defence' | 'defence-off';
  readonly labId: string;
  /** A fresh directory for this run (data directories, config directories); removed at the end. */
  readonly workDir: string;
  readonly codes: SeenCode[] = [];
  readonly violations: SeenViolation[] = [];
  readonly problems: string[] = [];
  readonly breaches: string[] = [];
  private readonly options: ContextOptions;
  private readonly cleanups: (() => Promise<void> | void)[] = [];
  private readonly specs = new Map<Hypervisor, Map<string, PartitionSpec>>();
  private hypervisors = 0;
  private watched = 0;
  private closed = false;
  /** Timed waits in progress (waitForLine, sleep): ended by `close`. */
  private readonly waits = new Set<{ end(): void; kill(): void }>();

  constructor(options: ContextOptions) {
    this.options = options;
    this.mode = options.mode;
    this.labId = options.labId;
    this.workDir = mkdtempSync(path.join(os.tmpdir(), `wasmvisor-lab-${options.labId}-`));
  }

  /** Narration: a sentence for the reader. */
  say(text: string): void {
    this.options.emit({ kind: 'say', text });
  }

  /** The next thing the lab does. */
  step(text: string): void {
    this.options.emit({ kind: 'step', text });
  }

  /** A fact the run established (`found`: `0 copies of the secret in 64 pages`). */
  evidence(label: string, text: string): void {
    this.options.emit({ kind: 'evidence', label, text });
  }

  /** Something that should not have happened: the run fails. */
  problem(text: string): void {
    this.problems.push(text);
    this.options.emit({ kind: 'problem', text });
  }

  /** Without the defence, the attack worked: what it got. */
  breach(text: string): void {
    this.breaches.push(text);
    this.options.emit({ kind: 'evidence', label: 'attack succeeded', text });
  }

  /** An error code or status the defence answered with. */
  code(code: string, message: string, source: string): void {
    this.codes.push({ code, message, source });
    this.options.emit({ kind: 'code', code, message, source });
  }

  /** Writes an audit record (for actions the lab itself takes, such as a management request). */
  audit(entry: AuditEntry): void {
    this.options.audit(entry);
  }

  /** Runs `fn` when the run ends (last registered, first run). */
  defer(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  /** The path of a built guest; ERR_INTERNAL naming the file when the package lacks it. */
  guest(name: string): string {
    const file = fileURLToPath(new URL(`${name}.wasm`, guestsDir));
    if (!existsSync(file)) throw new InternalError(`the lab guest ${file} is missing (run \`npm run build\`)`);
    return file;
  }

  /**
   * A hypervisor for this run: its data directory is under the run's work directory, its
   * partitions are shown on the dashboard and audited; it is closed when the run ends.
   */
  hypervisor(options: HypervisorOptions = {}): Hypervisor {
    const n = ++this.hypervisors;
    const hv = new Hypervisor({
      ...options,
      dataDir: options.dataDir ?? path.join(this.workDir, `data-${n}`),
      // The hypervisor records its own lifecycle (creations and refusals with their codes,
      // starts, exits, violations aggregated per second, wipes) into the lab's record, unless
      // the lab hands it another log.
      audit: options.audit ?? this.auditSink(),
      actor: options.actor ?? `lab:${this.labId}`,
    });
    const specs = new Map<string, PartitionSpec>();
    this.specs.set(hv, specs);
    const unwatch = this.watch(hv, (name) => specs.get(name));
    this.defer(async () => {
      await hv.close();
      unwatch();
    });
    return hv;
  }

  /**
   * The lab's audit record as host/security's AuditSink (what every lab hypervisor records into,
   * and what a lab shows): each record written to it becomes the lab's, with the lab as the actor
   * unless it names another.
   */
  auditSink(): SecurityAuditSink {
    const write = (e: SecurityAuditEntry) =>
      this.options.audit({ ...e, actor: e.actor ?? `lab:${this.labId}`, target: e.target ?? '', reason: e.reason ?? '' });
    return {
      note: write,
      record: async (e) => write(e),
    };
  }

  /** Shows a hypervisor the run did not make itself (a management host's) on the dashboard until the run ends. */
  show(hv: Hypervisor, grantsOf: (name: string) => Grants | undefined): void {
    this.defer(this.watch(hv, grantsOf));
  }

  private watch(hv: Hypervisor, grantsOf: (name: string) => Grants | undefined): () => void {
    const n = ++this.watched;
    return this.options.watcher?.watch(hv, n === 1 ? this.options.runLabel : `${this.options.runLabel}/${n}`, grantsOf) ?? (() => {});
  }

  /**
   * Creates a partition (showing at most `showLines` of its console lines): audited either way (a refusal is recorded with its code and rethrown),
   * its console lines become the lab's transcript, its violations are recorded.
   */
  async create(hv: Hypervisor, spec: PartitionSpec, options: { showLines?: number } = {}): Promise<Partition> {
    const showLines = Math.min(options.showLines ?? MAX_SHOWN_LINES, MAX_SHOWN_LINES);
    const p = await hv.createPartition(spec);
    this.specs.get(hv)?.set(spec.name, spec);
    let lines = 0;
    p.on('console', (line, stream) => {
      lines++;
      if (lines <= showLines) {
        const shown = line.length > MAX_SHOWN_LINE ? `${line.slice(0, MAX_SHOWN_LINE)}… (${line.length - MAX_SHOWN_LINE} more characters)` : line;
        this.options.emit({ kind: 'console', partition: p.name, stream, line: shown });
      } else if (lines === showLines + 1) {
        this.options.emit({ kind: 'say', text: `(${p.name} prints more; further lines are counted in its metrics, not shown here)` });
      }
    });
    let shown = 0;
    p.on('violation', (v) => {
      const seen = { partition: v.partition, call: v.call, status: v.status, reason: v.reason };
      this.violations.push(seen);
      if (++shown <= MAX_SHOWN_VIOLATIONS) this.options.emit({ kind: 'violation', ...seen });
    });
    return p;
  }

  /**
   * Expects the hypervisor to refuse `spec`: records the refusal's code and returns the error.
   * A partition that was admitted after all is a problem (and is destroyed).
   */
  async refused(hv: Hypervisor, spec: PartitionSpec): Promise<WasmvisorError | null> {
    try {
      const p = await this.create(hv, spec);
      this.problem(`partition ${spec.name} was admitted; the lab expected a refusal`);
      await p.destroy();
      return null;
    } catch (error) {
      if (!(error instanceof WasmvisorError)) throw error;
      this.code(error.code, error.message, `createPartition(${spec.name})`);
      return error;
    }
  }

  /** Starts a partition and waits for its end; a run that did not end by exiting records its code. */
  async run(p: Partition): Promise<PartitionExit> {
    await p.start();
    return this.ended(p);
  }

  /** Waits for a started partition's end, recording its code as `run` does. */
  async ended(p: Partition): Promise<PartitionExit> {
    const exit = await p.exited;
    if (exit.reason !== 'exit') this.code(exit.reason, exit.error?.message ?? exit.reason, `partition ${p.name}`);
    return exit;
  }

  /**
   * Destroys a partition; with `wipe` its disk is then scrubbed and its key removed (audited as
   * disk.wipe with what the wipe did).
   */
  async destroy(hv: Hypervisor, p: Partition, options: { wipe?: boolean } = {}): Promise<void> {
    await p.destroy();
    if (options.wipe) await hv.wipeStorage(p.name);
  }

  /**
   * Resolves when `p` prints a line matching `match`, or rejects after `timeoutMs`. The default
   * is generous: it bounds a wait that includes starting workers, which takes seconds on a
   * loaded machine (a run as a whole is bounded by LAB_TIMEOUT_MS). The run's end (`close`)
   * ends the wait too, with ERR_KILLED: a run that was stopped or timed out goes on in the
   * background until its next await, and must not hold the process by a timer meanwhile.
   */
  waitForLine(p: Partition, match: (line: string) => boolean, timeoutMs = WAIT_FOR_LINE_MS): Promise<string> {
    return settledQuietly(new Promise((resolve, reject) => {
      const onLine = (line: string) => {
        if (!match(line)) return;
        wait?.end();
        resolve(line);
      };
      const wait = this.pending(timeoutMs, () => reject(new InternalError(`partition ${p.name} did not print the expected line within ${timeoutMs} ms`)), reject, () => p.off('console', onLine));
      if (wait !== null) p.on('console', onLine);
    }));
  }

  /** Resolves after `ms`; rejects with ERR_KILLED when the run ends first (see waitForLine). */
  sleep(ms: number): Promise<void> {
    return settledQuietly(
      new Promise((resolve, reject) => {
        this.pending(ms, resolve, reject, () => {});
      }),
    );
  }

  /**
   * A timed wait the run's end cuts short: `elapsed` when `ms` have passed, else `killed` with
   * ERR_KILLED at `close` (or at once, returning null, when the run has already ended).
   * `detach` runs once either way, and when the waiter ends the wait itself (`end`).
   */
  private pending(ms: number, elapsed: () => void, killed: (error: WasmvisorError) => void, detach: () => void): { end(): void } | null {
    if (this.closed) {
      killed(stopped());
      return null;
    }
    const wait = {
      end: () => {
        if (!this.waits.delete(wait)) return;
        clearTimeout(timer);
        detach();
      },
      kill: () => {
        wait.end();
        killed(stopped());
      },
    };
    const timer = setTimeout(() => {
      wait.end();
      elapsed();
    }, ms);
    this.waits.add(wait);
    return wait;
  }

  /** Closes everything the run made, newest first; then removes the work directory. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const wait of [...this.waits]) wait.kill();
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (error) {
        this.problem(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    rmSync(this.workDir, { recursive: true, force: true });
  }
}
