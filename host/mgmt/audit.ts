/**
 * What the management plane needs from an audit log: `note` an entry (batched: for the many
 * authorization decisions), `record` one and wait until it is durable (for actions, before they
 * are reported done), `query` entries back, `close`. Entries are host/security/audit.ts's (dotted
 * actions, outcomes success | denied | failure, flat details).
 *
 * `serve` opens the host's durable log (host/security's AuditLog: hash-chained, HMAC'd, signed
 * checkpoints) in `<config>/data/audit` and gives the same log to its Hypervisor, so the API's
 * records and the runtime's (partition lifecycle, violations, refusals, policy changes,
 * attestation requests, disk wipes) form one chain that `wasmvisor audit verify` checks.
 * `durableSink` adapts that log to this interface. MemoryAuditLog (bounded, lost when the process
 * ends; `/audit` then answers `durable: false`) is for embedders who want no files.
 *
 * What the API writes:
 *   api.authorize     one per RBAC decision: actor = principal, target = scope, outcome success
 *                     (allowed) or denied, reason = the deciding rule, details { permission, requestId }
 *   api.authenticate  a request without a valid credential: actor anonymous@<address>, denied
 *   partition.create|start|stop|destroy|restore|restart, disk.wipe, token.create, token.revoke,
 *   host.start, host.stop: actions, by the principal (or `host` for what the daemon does by itself)
 * What the Hypervisor writes into the same log (actor `host`, or the principal it acts for):
 *   partition.create|start|exit|destroy|violation (as the runtime saw them), policy.load,
 *   policy.change (by the principal that replaced it), attestation.request (by the principal
 *   that asked), key.create, disk.wipe.
 */
import type { AuditEntry as SecurityAuditEntry, AuditOutcome } from '../security/audit.ts';
import { InvalidStateError } from '../errors.ts';

export type { AuditOutcome };

/**
 * One record: host/security's entry with actor, target and reason always given. `actor` is the
 * principal (`token:ci`, `cert:alice`), `host` for the daemon itself, or `anonymous@<address>`;
 * `target` a scope (`/partitions/web`) or another object; `reason` the deciding rule of a decision
 * (`allow:token:ci:Operator@/partitions/web`) or why an action failed.
 */
export interface AuditEntry extends SecurityAuditEntry {
  actor: string;
  target: string;
  reason: string;
}

export interface AuditRecord extends AuditEntry {
  seq: number;
  /** ISO-8601 time. */
  time: string;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  /**
   * Records about one partition: the API's (target `/partitions/<name>`) and the Hypervisor's
   * (target `<name>` for its partition actions, or `details.partition`): isAboutPartition.
   */
  partition?: string;
  /** A target, or a prefix ending in `/` or `*` (`/partitions/*`). */
  target?: string;
  outcome?: AuditOutcome;
  /** ISO times, inclusive. */
  since?: string;
  until?: string;
  /** Most records returned (the newest). */
  limit: number;
}

export interface AuditSink {
  /** Whether records survive the process (a file with integrity), or only live in memory. */
  readonly durable: boolean;
  /** Appends without waiting (written with its batch). */
  note(entry: AuditEntry): void;
  /** Appends and resolves once the record is durable. */
  record(entry: AuditEntry): Promise<unknown>;
  query(q: AuditQuery): Promise<AuditRecord[]>;
  /** Flushes and closes; a `record` after close is refused (ERR_INVALID_STATE), a `note` dropped. */
  close(): Promise<void>;
}

/** Actions the Hypervisor records about one partition under its bare name (`partition.exit`, `disk.wipe`, …). */
const PARTITION_ACTIONS = /^(?:partition\.[a-z]+|disk\.wipe|key\.create|attestation\.request)$/;

/**
 * Whether a record is about partition `name`: the API's (target `/partitions/<name>`), one with
 * `details.partition`, or one of the Hypervisor's partition actions under the bare name. A bare
 * target alone is not enough: the host's own records use bare words a partition may be named
 * too (`host` for the host's attestation report, an audit file's name for a checkpoint), and a
 * principal allowed `audit/read` at `/partitions/host` only must not read those.
 */
export function isAboutPartition(r: AuditRecord, name: string): boolean {
  if (r.target === `/partitions/${name}` || r.details?.['partition'] === name) return true;
  // hv.attest's record (target `host`) carries the verifier's nonce; a guest's reports, a count.
  return r.target === name && PARTITION_ACTIONS.test(r.action) && !(r.action === 'attestation.request' && r.details?.['nonce'] !== undefined);
}

export function matchesQuery(r: AuditRecord, q: AuditQuery): boolean {
  if (q.actor !== undefined && r.actor !== q.actor) return false;
  if (q.action !== undefined && r.action !== q.action) return false;
  if (q.outcome !== undefined && r.outcome !== q.outcome) return false;
  if (q.partition !== undefined && !isAboutPartition(r, q.partition)) return false;
  if (q.target !== undefined) {
    const prefix = q.target.endsWith('*') ? q.target.slice(0, -1) : null;
    if (prefix !== null ? !r.target.startsWith(prefix) : r.target !== q.target) return false;
  }
  if (q.since !== undefined && r.time < q.since) return false;
  if (q.until !== undefined && r.time > q.until) return false;
  return true;
}

/** The most records MemoryAuditLog keeps; older ones are dropped (and counted). */
export const MEMORY_AUDIT_CAPACITY = 100_000;

/** A bounded, in-process audit log: a ring of the newest records. Not durable. */
export class MemoryAuditLog implements AuditSink {
  readonly durable = false;
  private readonly ring: AuditRecord[] = [];
  private head = 0;
  private seq = 0;
  private closed = false;
  /** Records pushed out of the ring by newer ones. */
  dropped = 0;

  constructor(private readonly capacity = MEMORY_AUDIT_CAPACITY) {}

  /** Refused with ERR_INVALID_STATE once closed, as host/security's AuditLog refuses: the caller must not report done an action nobody recorded. */
  async record(entry: AuditEntry): Promise<void> {
    if (this.closed) throw new InvalidStateError('the audit log is closed');
    this.note(entry);
  }

  /** Dropped once closed (a note never waits, and host/security's AuditLog drops it alike). */
  note(entry: AuditEntry): void {
    if (this.closed) return;
    const r: AuditRecord = { seq: ++this.seq, time: new Date().toISOString(), ...entry };
    if (this.ring.length < this.capacity) this.ring.push(r);
    else {
      this.ring[this.head] = r;
      this.head = (this.head + 1) % this.capacity;
      this.dropped++;
    }
  }

  /** Oldest first. */
  all(): AuditRecord[] {
    return [...this.ring.slice(this.head), ...this.ring.slice(0, this.head)];
  }

  async query(q: AuditQuery): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    const all = this.all();
    // Newest first while collecting, so `limit` keeps the newest; returned oldest first.
    for (let i = all.length - 1; i >= 0 && out.length < q.limit; i--) if (matchesQuery(all[i]!, q)) out.push(all[i]!);
    return out.reverse();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** What a durable audit log offers (the shape of host/security/audit.ts's AuditLog and readAuditRecords). */
export interface DurableLog {
  note(entry: AuditEntry): void;
  record(entry: AuditEntry): Promise<unknown>;
  /** Writes and fsyncs what waits in a batch, so a query sees every record made so far. */
  flush?(): Promise<void>;
  close(): Promise<void> | void;
}

/**
 * Reads the newest `limit` records `match` accepts, oldest first; `since` (ISO) lets it stop at
 * older files. host/security's `newestAuditRecords(dir, …)` is one.
 */
export type NewestRecords = (match: (r: AuditRecord) => boolean, limit: number, since?: string) => Promise<AuditRecord[]>;

/**
 * The adapter for a durable log: writes go straight through; queries flush the batch and read
 * the records back. `read` is either every record (e.g. `() => readAuditRecords(dir).records`,
 * filtered here) or, better, a NewestRecords reader that stops once it has the query's newest
 * matches: for host/security's AuditLog, `durableSink(log, newestAuditRecords.bind(null, dir))`,
 * which serve uses (the whole log grows without bound; a query should not read all of it).
 */
export function durableSink(log: DurableLog, read: (() => AuditRecord[] | Promise<AuditRecord[]>) | NewestRecords): AuditSink {
  return {
    durable: true,
    note: (entry) => log.note(entry),
    record: (entry) => log.record(entry),
    async query(q) {
      await log.flush?.();
      const match = (r: AuditRecord) => matchesQuery(r, q);
      if (read.length > 0) return (read as NewestRecords)(match, q.limit, q.since);
      const matching = (await (read as () => AuditRecord[] | Promise<AuditRecord[]>)()).filter(match);
      return matching.slice(Math.max(0, matching.length - q.limit));
    },
    close: async () => {
      await log.close();
    },
  };
}
