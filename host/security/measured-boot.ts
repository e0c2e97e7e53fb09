/**
 * Measured boot, after the TCG event log: every security-relevant event the hypervisor goes
 * through is appended to a log and extends a register,
 *
 *   digest = SHA-256(canonical JSON of { register, type, data })
 *   pcr    = SHA-256(pcr ‖ digest)        (pcr starts as 32 zero bytes)
 *
 * so the registers commit to the exact sequence of events. Two registers, as TPM PCRs separate
 * firmware from applications: `runtime` (Wasmvisor's version, the SHA-256 of its own code files,
 * the policy in force and its changes) and `partitions` (each partition's module measurement,
 * signers and resolved spec hash, and each device attached to it).
 *
 * `replayEventLog` recomputes the registers from an exported log; a log that was edited,
 * reordered or truncated does not reproduce them (each event's digest is recomputed from its
 * content, and the hash chain is order-sensitive).
 *
 * Bound: the log keeps at most MAX_EVENTS events; past that, events still extend the registers
 * but are not kept (`dropped` counts them) and a report of that host no longer replays — a
 * verifier sees why.
 */
import { createHash, hash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import { IntegrityError } from '../errors.ts';
import { packageRoot, workerScript } from '../paths.ts';
import { check } from '../schema/check.ts';
import { canonicalJson } from './canonical.ts';
import { toHex } from './wire.ts';

export const REGISTERS = ['runtime', 'partitions'] as const;
export type RegisterName = (typeof REGISTERS)[number];
/** Most events kept in memory. */
export const MAX_EVENTS = 65536;

const Scalar = Type.Union([Type.String({ maxLength: 4096 }), Type.Number(), Type.Boolean(), Type.Null()]);
export const BootEventSchema = Type.Object(
  {
    seq: Type.Integer({ minimum: 0 }),
    register: Type.Union(REGISTERS.map((r) => Type.Literal(r))),
    type: Type.String({ minLength: 1, maxLength: 64 }),
    data: Type.Record(Type.String({ maxLength: 64 }), Scalar, { maxProperties: 32 }),
    digest: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  },
  { additionalProperties: false },
);
/** One event: what happened (`type`, `data`: flat), the register it extended and its digest. */
export type BootEvent = Static<typeof BootEventSchema>;
export type EventData = BootEvent['data'];
const EventLogSchema = Type.Array(BootEventSchema, { maxItems: MAX_EVENTS });
export type Registers = Record<RegisterName, string>;

const ZERO = new Uint8Array(32);

/** An event's digest: SHA-256 of the canonical JSON of its register, type and data. */
export function eventDigest(register: string, type: string, data: EventData): Uint8Array {
  return sha256(canonicalJson({ register, type, data }));
}

/** pcr' = SHA-256(pcr ‖ digest). */
export function extendRegister(pcr: Uint8Array, digest: Uint8Array): Uint8Array {
  const joined = new Uint8Array(pcr.length + digest.length);
  joined.set(pcr);
  joined.set(digest, pcr.length);
  return sha256(joined);
}

/**
 * SHA-256 with the one-shot `crypto.hash` (a string is hashed as UTF-8, as Hash#update does): a
 * Hash object per event cost several times the hash itself, on every partition's creation (issue #15).
 */
function sha256(data: string | Uint8Array): Uint8Array {
  // A copy, as before: a Buffer may be a view of a shared pool.
  return new Uint8Array(hash('sha256', data, 'buffer'));
}

/** Events whose hashes are left to compute before the log makes them wait (see EventLog). */
export const MAX_PENDING_EVENTS = 256;

/**
 * The hypervisor's event log and registers.
 *
 * An event's content (its canonical JSON, which also checks it) and its place in the sequence are
 * fixed when it is appended; its two SHA-256s (digest, register extension) are computed a moment
 * later, off the caller's path: on the next turn of the event loop, or at once when anyone reads
 * the registers, the log or the drop count, or when MAX_PENDING_EVENTS wait. The hashes are the
 * same in the same order, so every reader sees exactly the registers an eager log would show
 * (issue #15: the hashing was a tenth of a warm createPartition).
 */
export class EventLog {
  private readonly pcr: Record<RegisterName, Uint8Array> = { runtime: ZERO, partitions: ZERO };
  private readonly log: BootEvent[] = [];
  private seq = 0;
  private droppedCount = 0;
  /** Appended events not yet hashed, in order, each with its canonical JSON. */
  private pending: { event: Omit<BootEvent, 'digest'>; json: string }[] = [];
  private flushing: NodeJS.Immediate | null = null;

  /** Events that extended a register but were not kept (the log was full). */
  get dropped(): number {
    this.flush();
    return this.droppedCount;
  }

  /** Appends an event; its register is extended with it before anyone can read the registers. */
  extend(register: RegisterName, type: string, data: EventData): void {
    const json = canonicalJson({ register, type, data });
    this.pending.push({ event: { seq: this.seq++, register, type, data: { ...data } }, json });
    if (this.pending.length >= MAX_PENDING_EVENTS) this.flush();
    else if (this.flushing === null) {
      this.flushing = setImmediate(() => this.flush());
      // Never what keeps a process alive: a reader flushes for itself.
      this.flushing.unref();
    }
  }

  registers(): Registers {
    this.flush();
    return { runtime: toHex(this.pcr.runtime), partitions: toHex(this.pcr.partitions) };
  }

  /** A copy of the log, for export and reports. */
  events(): BootEvent[] {
    this.flush();
    return this.log.map((e) => ({ ...e, data: { ...e.data } }));
  }

  /** Hashes the pending events into their registers, in order. */
  private flush(): void {
    if (this.flushing !== null) clearImmediate(this.flushing);
    this.flushing = null;
    const pending = this.pending;
    if (pending.length === 0) return;
    this.pending = [];
    for (const { event, json } of pending) {
      const digest = sha256(json);
      this.pcr[event.register] = extendRegister(this.pcr[event.register], digest);
      if (this.log.length < MAX_EVENTS) this.log.push({ ...event, digest: toHex(digest) });
      else this.droppedCount++;
    }
  }
}

/**
 * Recomputes the registers from a log (untrusted input: checked against the schema first).
 * Throws IntegrityError naming the first event whose stored digest does not match its content or
 * whose sequence number is out of place.
 */
export function replayEventLog(events: unknown): Registers {
  const list = check(EventLogSchema, events, 'event log');
  const pcr: Record<RegisterName, Uint8Array> = { runtime: ZERO, partitions: ZERO };
  list.forEach((e, i) => {
    if (e.seq !== i) throw new IntegrityError(`event log: event ${i} has sequence number ${e.seq} (events missing, reordered or inserted)`);
    const digest = eventDigest(e.register, e.type, e.data);
    if (toHex(digest) !== e.digest) throw new IntegrityError(`event log: event ${i} (${e.type}) does not match its digest (edited)`);
    pcr[e.register] = extendRegister(pcr[e.register], digest);
  });
  return { runtime: toHex(pcr.runtime), partitions: toHex(pcr.partitions) };
}

/** A code file and its SHA-256. */
export interface CodeMeasurement {
  readonly path: string;
  readonly sha256: string;
}

let codeFiles: CodeMeasurement[] | null = null;

/**
 * SHA-256 of the runtime's own code files (read once, then cached): from the package, every
 * bundle in dist/ (the entry points index, cli, mgmt and worker, and the chunks they share, which
 * is where this code runs from); when running from source (the test suite), every host/
 * TypeScript file and the worker script. Paths are relative to the package root.
 */
export function runtimeCodeMeasurements(): readonly CodeMeasurement[] {
  if (codeFiles !== null) return codeFiles;
  const root = fileURLToPath(packageRoot);
  const self = fileURLToPath(import.meta.url);
  const files: string[] = [];
  if (self.endsWith('.js')) {
    const dist = path.dirname(self);
    for (const entry of readdirSync(dist)) if (entry.endsWith('.js')) files.push(path.join(dist, entry));
  } else {
    const hostDir = path.resolve(path.dirname(self), '..');
    for (const entry of readdirSync(hostDir, { recursive: true, encoding: 'utf8' })) {
      if (entry.endsWith('.ts')) files.push(path.join(hostDir, entry));
    }
  }
  const worker = fileURLToPath(workerScript);
  if (existsSync(worker) && !files.includes(worker)) files.push(worker);
  codeFiles = files
    .map((f) => ({ path: path.relative(root, f).split(path.sep).join('/'), sha256: createHash('sha256').update(readFileSync(f)).digest('hex') }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return codeFiles;
}
