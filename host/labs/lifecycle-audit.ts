/**
 * The audit records a hypervisor's lifecycle leaves, written for the labs' hypervisors through
 * the management plane's AuditSink, in host/security's vocabulary (partition.create | start |
 * exit | violation | destroy, disk.wipe; outcomes success | denied | failure; the error code of a
 * refusal). Violations are aggregated per partition per second, as that log does, so a guest
 * cannot flood the record.
 *
 * This exists because this build's Hypervisor has no audit log of its own yet (issue 12 brings
 * `HypervisorOptions.audit`, which records exactly these events from inside the hypervisor);
 * when it lands, labs hand their sink to the Hypervisor and this file goes.
 */
import type { Hypervisor } from '../hypervisor.ts';
import type { Partition, PartitionExit, Violation } from '../partition/partition.ts';
import { WasmvisorError } from '../errors.ts';
import type { WipeResult } from '../storage/storage.ts';
import type { AuditEntry } from '../mgmt/audit.ts';

/** Codes of a creation the hypervisor refused (the rest are failures), as host/security decides. */
const DENIALS = new Set(['ERR_INTEGRITY', 'ERR_IMPORT_DENIED', 'ERR_FEATURE_DENIED', 'ERR_MODULE_INVALID', 'ERR_LIMIT_MEMORY', 'ERR_LIMIT_TABLE', 'ERR_INVALID_ARGUMENT']);

interface Aggregate {
  count: number;
  first: string;
  byCall: Map<string, number>;
}

export class LifecycleAudit {
  private readonly pending = new Map<string, Aggregate>();
  private readonly timer: NodeJS.Timeout;
  private readonly onState = (p: Partition, state: string) => {
    if (state === 'running') this.note({ action: 'partition.start', target: p.name, outcome: 'success', reason: 'started' });
    if (state === 'destroyed') {
      this.flush(p.name);
      this.note({ action: 'partition.destroy', target: p.name, outcome: 'success', reason: 'destroyed' });
    }
  };
  private readonly onViolation = (v: Violation) => {
    let a = this.pending.get(v.partition);
    if (a === undefined) this.pending.set(v.partition, (a = { count: 0, first: `${v.call} ${v.status}: ${v.reason}`, byCall: new Map() }));
    a.count++;
    const key = `${v.call} ${v.status}`;
    a.byCall.set(key, (a.byCall.get(key) ?? 0) + 1);
  };
  private readonly onExit = (p: Partition, exit: PartitionExit) => {
    this.flush(p.name);
    this.note({
      action: 'partition.exit',
      target: p.name,
      outcome: exit.state === 'exited' ? 'success' : 'failure',
      reason: exit.reason === 'exit' ? `exited with code ${exit.code}` : `${exit.state}: ${exit.error?.message ?? exit.reason}`,
      ...(exit.reason !== 'exit' ? { code: exit.reason } : {}),
      details: { state: exit.state, code: exit.code, runTimeMs: Math.round(exit.runTimeMs) },
    });
  };

  constructor(
    private readonly hv: Hypervisor,
    private readonly write: (entry: AuditEntry) => void,
    private readonly actor: string,
  ) {
    hv.on('state', this.onState);
    hv.on('violation', this.onViolation);
    hv.on('exit', this.onExit);
    this.timer = setInterval(() => this.flushAll(), 1000);
    this.timer.unref();
  }

  created(p: Partition): void {
    this.note({ action: 'partition.create', target: p.name, outcome: 'success', reason: 'admitted', details: { measurement: p.measurement } });
  }

  refused(name: string, error: unknown): void {
    const code = error instanceof WasmvisorError ? error.code : 'ERR_INTERNAL';
    this.note({
      action: 'partition.create',
      target: name,
      outcome: DENIALS.has(code) ? 'denied' : 'failure',
      reason: error instanceof Error ? error.message : String(error),
      code,
    });
  }

  wiped(name: string, result: WipeResult): void {
    this.note({
      action: 'disk.wipe',
      target: name,
      outcome: 'success',
      reason: result.removedImage ? 'image scrubbed and removed' : 'no image',
      details: { removedImage: result.removedImage, removedKey: result.removedKey },
    });
  }

  /** Flushes what is pending and stops listening. */
  close(): void {
    clearInterval(this.timer);
    this.flushAll();
    this.hv.off('state', this.onState);
    this.hv.off('violation', this.onViolation);
    this.hv.off('exit', this.onExit);
  }

  private note(entry: Omit<AuditEntry, 'actor'>): void {
    this.write({ actor: this.actor, ...entry });
  }

  private flushAll(): void {
    for (const name of [...this.pending.keys()]) this.flush(name);
  }

  private flush(name: string): void {
    const a = this.pending.get(name);
    if (a === undefined) return;
    this.pending.delete(name);
    const top = [...a.byCall.entries()].sort((x, y) => y[1] - x[1]).slice(0, 4);
    this.note({
      action: 'partition.violation',
      target: name,
      outcome: 'denied',
      reason: `${a.count} violation${a.count === 1 ? '' : 's'}, first: ${a.first}`,
      details: { count: a.count, ...Object.fromEntries(top) },
    });
  }
}
