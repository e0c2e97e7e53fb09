/**
 * What the management plane needs from an audit log, as a small interface: `record` an entry,
 * `query` entries back, `close`. The tamper-evident log itself (hash chain, signed checkpoints,
 * fsync bounds) belongs to host/security/ (issue 12); `serve` plugs it in through this interface.
 * Until it is on this branch, `serve` has no durable log: decisions and actions go to a bounded
 * in-memory log (MemoryAuditLog, real and queryable, lost when the process ends) and the API's
 * `/audit` says so (`durable: false`).
 */

/** Outcomes: authorization decisions are `allowed`/`denied`; actions `succeeded`/`failed`. */
export type AuditOutcome = 'allowed' | 'denied' | 'succeeded' | 'failed';

/** One record, in the shape issue 12's log takes: actor, action, target, outcome, reason. */
export interface AuditEntry {
  /** The principal (`token:ci`, `cert:alice`), `host` for the daemon itself, or `anonymous`. */
  actor: string;
  /** A permission (`partitions/start`) for a decision; an action (`partition.start`) otherwise. */
  action: string;
  /** A scope (`/partitions/web`) or another object the action is about. */
  target: string;
  outcome: AuditOutcome;
  /** The deciding rule of a decision (`allow:token:ci:Operator@/partitions/web`), or why an action failed. */
  reason: string;
  /** The request it belongs to (for API records). */
  requestId?: string;
}

export interface AuditRecord extends AuditEntry {
  seq: number;
  /** ISO-8601 time. */
  time: string;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
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
  record(entry: AuditEntry): void;
  query(q: AuditQuery): Promise<AuditRecord[]>;
  /** Flushes and closes; records after close are refused. */
  close(): Promise<void>;
}

export function matchesQuery(r: AuditRecord, q: AuditQuery): boolean {
  if (q.actor !== undefined && r.actor !== q.actor) return false;
  if (q.action !== undefined && r.action !== q.action) return false;
  if (q.outcome !== undefined && r.outcome !== q.outcome) return false;
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

  record(entry: AuditEntry): void {
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
