/**
 * The audit log: an append-only, tamper-evident record of security-relevant actions (partition
 * lifecycle, every refusal with its code, violations aggregated per partition per second, policy
 * loads and changes, key creation, attestation requests, disk wipes, and whatever other rooms
 * record through the AuditSink interface, e.g. the management API's allow/deny decisions).
 *
 * Format: JSON Lines in `<dir>/audit-000001.jsonl`, `audit-000002.jsonl`, … (files 0600, directory
 * 0700), rotated by size; the chain continues across files. Each line is one record with these keys,
 * in this order:
 *
 *   seq      1, 2, 3, … over the whole log
 *   time     ISO 8601, ms
 *   actor    who: `embedder`, `cli:<user>`, `principal:<name>` (the management API), `wasmvisor`
 *   action   what: `partition.create`, `policy.load`, `key.create`, …
 *   target   what it acted on (a partition name, a key file, a policy)
 *   outcome  `success` | `denied` | `failure`
 *   reason   one line for people
 *   code     the error code of a refusal (optional)
 *   details  flat object of strings, numbers, booleans (optional)
 *   prev     SHA-256 (hex) of the previous line (64 zeros for the first record)
 *   sig      checkpoints only: Ed25519 by the host key over "wasmvisor-audit-checkpoint/1\0" ‖ the
 *            line up to (not including) `,"sig"`, closed with `}`
 *   mac      HMAC-SHA-256 (key: `audit.key`, kept apart from the log) over the line up to (not
 *            including) `,"mac"`, closed with `}`
 *
 * Tamper evidence: an edited record fails its MAC (and breaks the next record's `prev`); a deleted,
 * inserted or reordered record breaks `seq` and `prev`; checkpoints (action `audit.checkpoint`,
 * written at least every CHECKPOINT_MS while records are written, every CHECKPOINT_RECORDS records,
 * at rotation and at close, and CHECKPOINT_MS after the last one when the log then goes idle) are signed, so anyone with `host.pub` can check the chain up to the
 * last checkpoint without the MAC key; and the latest checkpoint's seq and hash are also written to
 * `audit.head` beside the MAC key (CloudTrail's digest files, in spirit), so truncating the log's
 * tail behind that checkpoint is detected. What a truncation *after* the last checkpoint removes is
 * not detectable: at most CHECKPOINT_MS of records.
 *
 * Durability: `record()` resolves once its record is written and fdatasync'ed (records made in the
 * same turn of the event loop share one fsync: group commit). `note()` (for events the runtime
 * observes, such as an exit, and for a management API's authorization decisions) is batched:
 *   - lines are written (synchronously, on the caller's thread, in order: nothing is reordered)
 *     as soon as WRITE_RECORDS records wait or BATCH_MS after the first of them, and fsynced
 *     right after, *off* the event loop (one fdatasync in flight at a time, in libuv's pool);
 *   - at most BATCH_RECORDS − 1 records are ever appended and not yet fsynced: the note() that
 *     would make it BATCH_RECORDS writes and fsyncs on the spot, blocking (the backpressure of a
 *     slow disk, and the bound).
 * So a crash — even a power loss — loses at most BATCH_RECORDS − 1 noted records, none older than
 * BATCH_MS plus the fsync then in flight (unless the event loop was blocked that long); a killed
 * process loses only records not yet written (the page cache keeps the rest). The event loop
 * waits for a disk only at that bound, at rotation and at close.
 * After a crash the chain still verifies: a torn last line (no newline) is cut off when the log is
 * reopened (and an `audit.recovered` record says so); the verifier reports it as crash residue.
 */
import { createHash, createHmac } from 'node:crypto';
import { closeSync, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readdirSync, renameSync, writeSync, constants, fsyncSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { IntegrityError, InvalidArgumentError, InvalidStateError, StorageError } from '../errors.ts';
import { isMissingFile, makeDirsSync, readRegularFileSync } from '../files.ts';
import { checkPathArgument, explain, given, refuseUnknownKeys } from '../schema/check.ts';
import { signBytes, verifyBytes, type PublicKey, type SecretKey } from './keys.ts';
import { bytesEqual, concat, fromHex, toHex, utf8 } from './wire.ts';
import { quoted } from '../escape.ts';

/** Outcome of an audited action. */
export type AuditOutcome = 'success' | 'denied' | 'failure';
export type AuditDetails = Record<string, string | number | boolean | null>;

/** What a caller records. `actor` defaults to the log's default actor. */
/** Every key of AuditEntry: record() refuses any other. */
const AUDIT_ENTRY_KEYS = ['actor', 'action', 'target', 'outcome', 'reason', 'code', 'details'] as const satisfies readonly (keyof AuditEntry)[];

export interface AuditEntry {
  actor?: string;
  /** Dotted lower-case name: `partition.create`, `api.request`, … */
  action: string;
  target?: string;
  outcome: AuditOutcome;
  reason?: string;
  /** Error code of a refusal or failure (`ERR_` and capitals, digits or `_`, at most 64 characters). */
  code?: string;
  details?: AuditDetails;
}

/**
 * The interface other rooms record through (management API, storage, the hypervisor). AuditLog
 * implements it; an embedder may give its own (`new Hypervisor({ audit: sink })`).
 */
export interface AuditSink {
  /** Appends a record and resolves once it is durable (fsynced); AuditLog resolves with the record. Rejects (ERR_STORAGE) if the log cannot be written. */
  record(entry: AuditEntry): Promise<unknown>;
  /** Appends a record without waiting: it is fsynced with its batch (see the durability bound). */
  note(entry: AuditEntry): void;
}

/**
 * A time given to an audit query (`GET /audit?since=`, `wasmvisor audit --since`) as ms since
 * the epoch, or NaN. A date whose day its month does not have is NaN: Date.parse reads
 * 2025-02-30 as March 2nd and 2025-04-31 as May 1st, a window the caller never asked for.
 */
export function parseQueryTime(text: string): number {
  const date = /^([+-]?\d{4,6})-(\d{2})-(\d{2})/.exec(text);
  if (date !== null) {
    const [year, month, day] = [Number(date[1]), Number(date[2]), Number(date[3])];
    const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
    if (day > ([31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0)) return NaN;
  }
  return Date.parse(text);
}

export const AUDIT_FILE_PATTERN = /^audit-(\d{6})\.jsonl$/;
/** Records appended and not yet fsynced never reach this many: the note() that would, syncs on the spot. */
export const BATCH_RECORDS = 256;
/** Records that wait before they are written and an fsync is started (off the event loop). */
export const WRITE_RECORDS = BATCH_RECORDS / 2;
/** Longest a noted record waits for its batch, ms. */
export const BATCH_MS = 100;
/** A checkpoint is written at least this often while records are written, ms. */
export const CHECKPOINT_MS = 1000;
/** … and after this many records (a checkpoint costs a signature and three fsyncs). */
export const CHECKPOINT_RECORDS = 8192;
/** Default size at which a file is closed and the next begun. */
export const DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024;
/** Bounds of `maxFileBytes` (the hypervisor's options schema states the same). */
export const MIN_AUDIT_FILE_BYTES = 4096;
export const MAX_AUDIT_FILE_BYTES = 2 ** 30;
/** Longest line accepted by the verifier (a record is far smaller: fields are capped). */
export const MAX_LINE_BYTES = 64 * 1024;
/**
 * Largest audit file read back (resumed, verified, shown): a file rotates once it reaches its
 * `maxFileBytes` (at most MAX_AUDIT_FILE_BYTES), after the batch that reached it (at most
 * BATCH_RECORDS lines) and a checkpoint. Anything larger is not a file this log wrote.
 */
export const MAX_AUDIT_READ_BYTES = MAX_AUDIT_FILE_BYTES + (BATCH_RECORDS + 1) * MAX_LINE_BYTES;
const MAX_TEXT = 1024;
const GENESIS = '0'.repeat(64);
const DOMAIN_CHECKPOINT = utf8('wasmvisor-audit-checkpoint/1\0');
const ACTION = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/;
/** An audit record's `code`: an error code, as the runtime's own (`ERR_POLICY_DENIED`, …). */
const AUDIT_CODE = /^ERR_[A-Z0-9_]{1,60}$/;

const Details = Type.Record(Type.String({ maxLength: 64 }), Type.Union([Type.String({ maxLength: MAX_TEXT + 1 }), Type.Number(), Type.Boolean(), Type.Null()]), { maxProperties: 32 });
export const AuditRecordSchema = Type.Object(
  {
    seq: Type.Integer({ minimum: 1 }),
    time: Type.String({ maxLength: 40 }),
    actor: Type.String({ maxLength: 257 }),
    action: Type.String({ minLength: 1, maxLength: 64 }),
    target: Type.String({ maxLength: 257 }),
    outcome: Type.Union([Type.Literal('success'), Type.Literal('denied'), Type.Literal('failure')]),
    reason: Type.String({ maxLength: MAX_TEXT + 1 }),
    code: Type.Optional(Type.String({ maxLength: 64 })),
    details: Type.Optional(Details),
    prev: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    sig: Type.Optional(Type.String({ pattern: '^[0-9a-f]{128}$' })),
    mac: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  },
  { additionalProperties: false },
);
/** A record as written. */
export type AuditRecord = Static<typeof AuditRecordSchema>;

/** Options of `AuditLog.open`. */
export interface AuditLogOptions {
  /** The log's directory (created 0700). */
  dir: string;
  /** The HMAC key (32 bytes), kept apart from the log. */
  macKey: Uint8Array;
  /** Signs checkpoints (the host key). */
  signingKey: SecretKey;
  /** Where the latest checkpoint is mirrored (beside the MAC key, not in `dir`); null: nowhere. */
  headFile: string | null;
  /** Actor of records that name none. Default `embedder`. */
  actor?: string;
  /** `batch` (default): note() is batched; `record`: every note() is fsynced at once, like record(). */
  durability?: 'batch' | 'record';
  /** Size at which a file is closed and the next begun, bytes. Default 8 MiB. */
  maxFileBytes?: number;
  /** Wall clock, ms (tests). */
  now?: () => number;
}

/** The latest checkpoint, as mirrored to `audit.head`. */
interface Head {
  format: 'wasmvisor-audit-head/1';
  seq: number;
  hash: string;
  file: string;
}

/** The writer. One per directory per process (like the keystore, no cross-process lock). */
export class AuditLog implements AuditSink {
  private fd = -1;
  private fileIndex = 0;
  private fileBytes = 0;
  private fileRecords = 0;
  private seq = 0;
  private prev = GENESIS;
  /** Lines appended and not yet written. */
  private pending: string[] = [];
  private pendingBytes = 0;
  /** The last record written to the file, and the last one known durable (fdatasync'ed). */
  private writtenSeq = 0;
  private syncedSeq = 0;
  /** An fdatasync runs in libuv's pool (at most one at a time). */
  private syncing = false;
  /** Files rotated away while an fdatasync on them was in flight: closed when it returns. */
  private retired: number[] = [];
  /** Awaited records (record(), flush()), resolved once the log is durable up to `seq`. */
  private waiters: { seq: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Appends the checkpoint due CHECKPOINT_MS after the last one when no write comes to do it (an idle log). */
  private checkpointTimer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private lastCheckpointAt = 0;
  private recordsSinceCheckpoint = 0;
  /** The last checkpoint appended and not yet written; the last one written, which audit.head mirrors once it is durable. */
  private checkpointPending: Head | null = null;
  private headDue: Head | null = null;
  private failure: StorageError | null = null;
  private closed = false;
  private readonly now: () => number;
  private readonly maxFileBytes: number;
  readonly defaultActor: string;
  /** Records appended but not yet fsynced (at most BATCH_RECORDS − 1 after any note()). */
  get unsynced(): number {
    return this.seq - this.syncedSeq;
  }

  private constructor(private readonly options: AuditLogOptions) {
    this.now = options.now ?? Date.now;
    this.defaultActor = options.actor ?? 'embedder';
    this.maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    if (!Number.isInteger(this.maxFileBytes) || this.maxFileBytes < MIN_AUDIT_FILE_BYTES || this.maxFileBytes > MAX_AUDIT_FILE_BYTES) {
      throw new InvalidArgumentError(`audit maxFileBytes must be an integer from ${MIN_AUDIT_FILE_BYTES} to ${MAX_AUDIT_FILE_BYTES}, got ${quoted(options.maxFileBytes)}`);
    }
    if (options.macKey.length !== 32) throw new InvalidArgumentError('the audit MAC key must have 32 bytes');
  }

  /**
   * Opens (or creates) the log in `options.dir` and continues its chain. A torn last line left by a
   * crash is cut off and recorded. ERR_STORAGE when the directory or the tail cannot be used.
   */
  static open(options: AuditLogOptions): AuditLog {
    const log = new AuditLog(options);
    log.resume();
    return log;
  }

  private resume(): void {
    const dir = this.options.dir;
    let recovered: AuditDetails | null = null;
    try {
      makeDirsSync(dir, 0o700);
      const files = listAuditFiles(dir);
      const last = files.at(-1);
      if (last === undefined) {
        this.openFile(1);
      } else {
        this.fileIndex = last.index;
        const file = path.join(dir, last.name);
        const text = readAuditFile(file);
        let end = text.length;
        if (end > 0 && text[end - 1] !== 0x0a) {
          const cut = text.lastIndexOf(0x0a) + 1;
          recovered = { file: last.name, droppedBytes: end - cut };
          end = cut;
        }
        const lines = text.subarray(0, end).toString('utf8').split('\n').slice(0, -1);
        let tail = lines.at(-1);
        if (tail === undefined && files.length > 1) {
          // The newest file is empty (a crash just after rotation): chain from the previous one.
          const before = readAuditFile(path.join(dir, files.at(-2)!.name)).toString('utf8').split('\n').filter((l) => l.length > 0);
          tail = before.at(-1);
        }
        if (tail !== undefined) {
          let rec: { seq?: unknown };
          try {
            rec = JSON.parse(tail) as { seq?: unknown };
          } catch {
            throw new StorageError(`the audit log's last record in ${last.name} is not JSON; run \`wasmvisor audit verify ${dir}\``);
          }
          if (typeof rec.seq !== 'number' || !Number.isSafeInteger(rec.seq)) throw new StorageError(`the audit log's last record in ${last.name} has no sequence number`);
          this.seq = rec.seq;
          this.prev = sha256Hex(tail);
        }
        this.fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
        if (recovered !== null) {
          ftruncateSync(this.fd, end);
          fdatasyncSync(this.fd);
        }
        this.fileBytes = end;
        this.fileRecords = lines.length;
      }
    } catch (error) {
      if (error instanceof StorageError) throw error;
      throw new StorageError(`cannot open the audit log in ${dir}: ${(error as Error).message}`, { cause: error });
    }
    this.lastCheckpointAt = this.now();
    // What the files hold was written by an earlier process: on disk, as far as this one knows.
    this.writtenSeq = this.seq;
    this.syncedSeq = this.seq;
    if (recovered !== null) {
      this.append({ actor: 'wasmvisor', action: 'audit.recovered', target: String(recovered['file']), outcome: 'success', reason: 'an incomplete last record (a crash while writing) was cut off', details: recovered });
    }
    this.append({ actor: 'wasmvisor', action: 'audit.open', target: dir, outcome: 'success', reason: 'audit log opened', details: { pid: process.pid } });
    this.syncNow();
  }

  record(entry: AuditEntry): Promise<AuditRecord> {
    if (this.failure) return Promise.reject(this.failure);
    // Closed is a state, not a failure of the storage (ERR_STORAGE is for a log that cannot be written).
    if (this.closed) return Promise.reject(new InvalidStateError('the audit log is closed'));
    let rec: AuditRecord;
    try {
      // An embedder's entry: a misspelt `detials` or `cod` would be left out of the record unsaid.
      if (typeof entry === 'object' && entry !== null) refuseUnknownKeys(entry, AUDIT_ENTRY_KEYS, 'audit entry');
      rec = this.append(entry);
    } catch (error) {
      return Promise.reject(error);
    }
    const done = this.durable(rec.seq);
    // Group commit: every record made in this turn of the event loop shares one write and fsync.
    this.immediate ??= setImmediate(() => {
      this.immediate = null;
      this.syncSoon();
    });
    return done.then(() => rec);
  }

  note(entry: AuditEntry): void {
    if (this.failure || this.closed) return;
    this.append(entry);
    if (this.options.durability === 'record' || this.unsynced >= BATCH_RECORDS) this.syncNow();
    else if (this.pending.length >= WRITE_RECORDS) this.syncSoon();
    else this.timer ??= setTimeout(() => this.syncSoon(), BATCH_MS);
  }

  /** Writes and fsyncs whatever waits. Resolves when durable; rejects if the log failed. */
  async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    const done = this.durable(this.seq);
    this.syncSoon();
    await done;
  }

  /** Writes a final checkpoint, fsyncs and closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.failure) {
      this.append({ actor: 'wasmvisor', action: 'audit.close', target: this.options.dir, outcome: 'success', reason: 'audit log closed' });
      this.checkpoint();
      this.syncNow();
    }
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    if (this.checkpointTimer) clearTimeout(this.checkpointTimer);
    this.timer = null;
    this.immediate = null;
    this.checkpointTimer = null;
    this.retire(this.fd);
    this.fd = -1;
    if (this.failure) throw this.failure;
  }

  /** Resolves once the log is durable up to `seq` (at once if it is). */
  private durable(seq: number): Promise<void> {
    if (seq <= this.syncedSeq) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  /** Builds the record's line (chain, MAC, signature) and queues it. */
  private append(entry: AuditEntry, sign = false): AuditRecord {
    if (typeof entry !== 'object' || entry === null) throw new InvalidArgumentError('an audit entry must be an object');
    if (typeof entry.action !== 'string' || !ACTION.test(entry.action) || entry.action.length > 64) {
      throw new InvalidArgumentError(`audit action ${quoted(entry.action)} must be a dotted lower-case name`);
    }
    if (entry.outcome !== 'success' && entry.outcome !== 'denied' && entry.outcome !== 'failure') {
      throw new InvalidArgumentError(`audit outcome must be success, denied or failure, got ${quoted(entry.outcome)}`);
    }
    // Text fields are text: a number or an object was written as "5" or "[object Object]", a
    // record that says something other than what the caller holds.
    for (const key of ['actor', 'target', 'reason', 'code'] as const) {
      if (entry[key] !== undefined && typeof entry[key] !== 'string') throw new InvalidArgumentError(`audit ${key} must be a string, got ${quoted(entry[key])}`);
    }
    // A code is an error code (ERR_*, at most 64 characters), whole: a filter or a reader matches it
    // exactly, so neither a free text nor a cut one belongs there (the reason holds the words).
    if (entry.code !== undefined && !AUDIT_CODE.test(entry.code)) {
      throw new InvalidArgumentError(`audit code must be an error code (ERR_ and capitals, digits or _, at most 64 characters), got ${quoted(entry.code)}`);
    }
    const rec: Record<string, unknown> = {
      seq: this.seq + 1,
      time: new Date(this.now()).toISOString(),
      actor: text(entry.actor ?? this.defaultActor, 256),
      action: entry.action,
      target: text(entry.target ?? '', 256),
      outcome: entry.outcome,
      reason: text(entry.reason ?? '', MAX_TEXT),
    };
    if (entry.code !== undefined) rec['code'] = entry.code;
    if (entry.details !== undefined) rec['details'] = details(entry.details);
    rec['prev'] = this.prev;
    let line = JSON.stringify(rec);
    if (sign) {
      const sig = toHex(signBytes(this.options.signingKey, concat([DOMAIN_CHECKPOINT, utf8(line)])));
      line = `${line.slice(0, -1)},"sig":"${sig}"}`;
      rec['sig'] = sig;
    }
    const mac = createHmac('sha256', this.options.macKey).update(line).digest('hex');
    line = `${line.slice(0, -1)},"mac":"${mac}"}`;
    rec['mac'] = mac;
    this.seq++;
    this.prev = sha256Hex(line);
    this.pending.push(line);
    this.pendingBytes += Buffer.byteLength(line) + 1;
    this.recordsSinceCheckpoint++;
    this.fileRecords++;
    return rec as unknown as AuditRecord;
  }

  /** Appends a signed checkpoint covering every record so far. */
  private checkpoint(): void {
    this.append(
      {
        actor: 'wasmvisor',
        action: 'audit.checkpoint',
        target: auditFileName(this.fileIndex),
        outcome: 'success',
        reason: 'signed checkpoint',
        details: { records: this.seq, fileRecords: this.fileRecords },
      },
      true,
    );
    // seq and prev are the checkpoint's own: what audit.head will name once it is written and durable.
    this.checkpointPending = { format: 'wasmvisor-audit-head/1', seq: this.seq, hash: this.prev, file: auditFileName(this.fileIndex) };
    this.recordsSinceCheckpoint = 0;
    this.lastCheckpointAt = this.now();
  }

  /** Writes what waits and fsyncs it before returning (blocking): the bound, rotation, close. */
  private syncNow(): void {
    this.write();
    if (!this.failure && this.writtenSeq > this.syncedSeq) {
      try {
        fdatasyncSync(this.fd);
        this.synced(this.writtenSeq);
      } catch (error) {
        this.fail(error);
      }
    }
    this.settle();
  }

  /** Writes what waits, and starts an fdatasync off the event loop (unless one is in flight: it is started again when that one returns). */
  private syncSoon(): void {
    this.write();
    if (this.failure || this.syncing || this.writtenSeq <= this.syncedSeq) return this.settle();
    this.syncing = true;
    const target = this.writtenSeq;
    fdatasync(this.fd, (error) => {
      this.syncing = false;
      for (const fd of this.retired.splice(0)) closeQuietly(fd);
      if (this.closed) return;
      if (error) this.fail(error);
      else this.synced(target);
      this.settle();
      // Lines written while that fsync ran need one of their own.
      if (!this.failure && this.writtenSeq > this.syncedSeq) this.syncSoon();
    });
  }

  /** Writes the pending lines with one write; checkpoints and rotates as due. Never waits for the disk except at rotation. */
  private write(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.failure || this.pending.length === 0) return;
    const due = this.recordsSinceCheckpoint >= CHECKPOINT_RECORDS || (this.recordsSinceCheckpoint > 0 && this.now() - this.lastCheckpointAt >= CHECKPOINT_MS);
    const rotate = this.fileBytes + this.pendingBytes >= this.maxFileBytes;
    if (due || rotate) this.checkpoint();
    try {
      const buffer = Buffer.from(this.pending.join('\n') + '\n');
      let written = 0;
      while (written < buffer.length) written += writeSync(this.fd, buffer, written, buffer.length - written);
      this.fileBytes += buffer.length;
      this.pending = [];
      this.pendingBytes = 0;
      this.writtenSeq = this.seq;
      this.armCheckpoint();
      if (this.checkpointPending !== null) {
        this.headDue = this.checkpointPending;
        this.checkpointPending = null;
      }
      if (rotate) {
        // The file is complete: durable before the next one begins, and closed (later, if an fsync on it is in flight).
        fdatasyncSync(this.fd);
        this.synced(this.writtenSeq);
        this.retire(this.fd);
        this.openFile(this.fileIndex + 1);
      }
    } catch (error) {
      this.fail(error);
    }
  }

  /**
   * Records written since the last checkpoint get one at most CHECKPOINT_MS after it even if the
   * log then goes idle: otherwise the tail of a burst would stay uncheckpointed (truncatable
   * unnoticed) until the next write or close. The timer does not keep the process alive.
   */
  private armCheckpoint(): void {
    if (this.checkpointTimer !== null || this.recordsSinceCheckpoint === 0 || this.closed) return;
    const wait = Math.max(0, CHECKPOINT_MS - (this.now() - this.lastCheckpointAt));
    this.checkpointTimer = setTimeout(() => {
      this.checkpointTimer = null;
      if (this.closed || this.failure || this.recordsSinceCheckpoint === 0) return;
      if (this.pending.length === 0) this.checkpoint();
      this.syncSoon();
    }, wait);
    this.checkpointTimer.unref();
  }

  /** The log is durable up to `seq`: audit.head may now name the checkpoint written before it. */
  private synced(seq: number): void {
    if (seq > this.syncedSeq) this.syncedSeq = seq;
    if (this.headDue !== null && this.headDue.seq <= this.syncedSeq && this.options.headFile !== null) {
      try {
        writeHead(this.options.headFile, this.headDue);
      } catch (error) {
        this.fail(error);
      }
    }
    if (this.headDue !== null && this.headDue.seq <= this.syncedSeq) this.headDue = null;
  }

  private fail(error: unknown): void {
    this.failure ??= new StorageError(`the audit log in ${this.options.dir} cannot be written: ${(error as Error).message}`, { cause: error });
  }

  /** Closes a file, or leaves that to the fdatasync in flight on it. */
  private retire(fd: number): void {
    if (fd < 0) return;
    if (this.syncing) this.retired.push(fd);
    else closeQuietly(fd);
  }

  /** Resolves the waiters the log is now durable for; rejects them all if it failed. */
  private settle(): void {
    if (this.waiters.length === 0) return;
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.failure) w.reject(this.failure);
      else if (w.seq <= this.syncedSeq) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  private openFile(index: number): void {
    this.fileIndex = index;
    const file = path.join(this.options.dir, auditFileName(index));
    this.fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
    this.fileBytes = fstatSync(this.fd).size;
    this.fileRecords = 0;
    syncDirSync(this.options.dir);
  }
}

export function auditFileName(index: number): string {
  return `audit-${String(index).padStart(6, '0')}.jsonl`;
}

/** The log's files, oldest first. */
/** An audit file's bytes: a regular file of at most MAX_AUDIT_READ_BYTES, never waited on (ERR_STORAGE naming it). */
function readAuditFile(file: string): Buffer {
  return readRegularFileSync(file, { maxBytes: MAX_AUDIT_READ_BYTES, what: 'audit file', error: (message, cause) => new StorageError(message, { cause }) });
}

export function listAuditFiles(dir: string): { name: string; index: number }[] {
  return readdirSync(dir)
    .map((name) => ({ name, m: AUDIT_FILE_PATTERN.exec(name) }))
    .filter((f): f is { name: string; m: RegExpExecArray } => f.m !== null)
    .map((f) => ({ name: f.name, index: Number(f.m[1]) }))
    .sort((a, b) => a.index - b.index);
}

function text(value: unknown, max: number): string {
  const s = typeof value === 'string' ? value : String(value);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function details(d: AuditDetails): AuditDetails {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw new InvalidArgumentError('audit details must be a flat object');
  const out: AuditDetails = {};
  let n = 0;
  for (const [k, v] of Object.entries(d)) {
    if (n++ >= 32) break;
    const key = text(k, 64);
    if (v === null || typeof v === 'boolean') out[key] = v;
    else if (typeof v === 'number') out[key] = Number.isFinite(v) ? v : String(v);
    else out[key] = text(v, MAX_TEXT);
  }
  return out;
}

function sha256Hex(line: string): string {
  return createHash('sha256').update(line).digest('hex');
}

function writeHead(file: string, head: Head): void {
  makeDirsSync(path.dirname(file), 0o700);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    writeSync(fd, JSON.stringify(head) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  syncDirSync(path.dirname(file));
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed.
  }
}

function syncDirSync(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some platforms cannot fsync a directory.
  }
}

// ---------------------------------------------------------------------------------------------
// Verification and reading: pure functions of the files' bytes (plus the keys).

/** The first bad record, precisely. */
export interface AuditProblem {
  readonly file: string;
  /** 1-based line number in the file. */
  readonly line: number;
  /** The record's seq if it could be read, else the one expected there. */
  readonly seq: number;
  readonly problem: string;
}

/** What `verifyAuditLog` found. */
export interface AuditVerification {
  readonly ok: boolean;
  readonly files: number;
  readonly records: number;
  readonly lastSeq: number;
  /** Checkpoints whose signature was checked. */
  readonly checkpoints: number;
  readonly lastCheckpointSeq: number | null;
  /** Records after the last checkpoint (a truncation of these would not show). */
  readonly uncheckpointed: number;
  /** MACs were checked (the MAC key was given). */
  readonly macsChecked: boolean;
  /** Checkpoint signatures were checked (the public key was given). */
  readonly signaturesChecked: boolean;
  /** The anchor (audit.head) was found and matched. */
  readonly anchorChecked: boolean;
  readonly notes: readonly string[];
  readonly first: AuditProblem | null;
}

/** Keys for verification; each is optional and says what can be checked. */
export interface AuditVerifyOptions {
  macKey?: Uint8Array | null;
  publicKey?: PublicKey | null;
  /** Contents of audit.head (the anchor), if available. */
  head?: string | null;
}

const MAC_SUFFIX = /,"mac":"([0-9a-f]{64})"\}$/;
const SIG_SUFFIX = /,"sig":"([0-9a-f]{128})"\}$/;

/**
 * Verifies the log in `dir`: every line is a record, `seq` counts up by one from 1 across the
 * files, each `prev` is the hash of the line before, each MAC (with the key) and checkpoint
 * signature (with the public key) verifies, and the anchor's checkpoint is in the log. Stops at
 * the first bad record and names it. Never throws for a bad log (that is the result); throws
 * ERR_STORAGE only when the directory cannot be read.
 */
export function verifyAuditLog(dir: string, options: AuditVerifyOptions = {}): AuditVerification {
  checkPathArgument(dir, 'verifyAuditLog: dir');
  let files: { name: string; index: number }[];
  try {
    files = listAuditFiles(dir);
  } catch (error) {
    throw new StorageError(`cannot read the audit log directory ${dir}: ${(error as Error).message}`, { cause: error });
  }
  return verifyAuditFiles(
    files.map((f) => ({ name: f.name, index: f.index, read: () => readAuditFile(path.join(dir, f.name)) })),
    options,
  );
}

/** The same over files given as bytes (what the fuzz harness calls). */
export function verifyAuditFiles(files: readonly { name: string; index?: number; read: () => Uint8Array }[], options: AuditVerifyOptions = {}): AuditVerification {
  if (!Array.isArray(files)) throw new InvalidArgumentError(`verifyAuditFiles: files: expected an array of { name, read }, got ${given(files)}`);
  const notes: string[] = [];
  const macKey = options.macKey ?? null;
  const publicKey = options.publicKey ?? null;
  let head: Head | null = null;
  if (options.head != null) {
    try {
      const h = JSON.parse(options.head) as Head;
      if (h.format !== 'wasmvisor-audit-head/1' || !Number.isSafeInteger(h.seq) || typeof h.hash !== 'string') throw new Error('not an audit head');
      head = h;
    } catch {
      notes.push('the anchor (audit.head) is unreadable and was not used');
    }
  }
  let expectedSeq = 1;
  let prev = GENESIS;
  let records = 0;
  let checkpoints = 0;
  let lastCheckpointSeq: number | null = null;
  let uncheckpointed = 0;
  let anchorFound = false;
  const result = (first: AuditProblem | null): AuditVerification => ({
    ok: first === null,
    files: files.length,
    records,
    lastSeq: expectedSeq - 1,
    checkpoints,
    lastCheckpointSeq,
    uncheckpointed,
    macsChecked: macKey !== null,
    signaturesChecked: publicKey !== null,
    anchorChecked: anchorFound,
    notes,
    first,
  });
  if (files.length === 0) {
    if (head !== null) return result({ file: head.file, line: 0, seq: head.seq, problem: `the log is empty, but the anchor records checkpoint seq ${head.seq}: the log was deleted` });
    notes.push('the log has no files');
    return result(null);
  }
  files.forEach((f, i) => {
    if (f.index !== undefined && i > 0 && files[i - 1]!.index !== undefined && f.index !== files[i - 1]!.index! + 1) {
      notes.push(`file ${f.name} follows ${files[i - 1]!.name}: a file in between is missing (the chain check below shows it)`);
    }
  });
  for (let fi = 0; fi < files.length; fi++) {
    const f = files[fi]!;
    let bytes: Uint8Array;
    try {
      bytes = f.read();
    } catch (error) {
      // A file that cannot be read (not a regular file, over the bound, permission denied) is a bad log, named.
      return result({ file: f.name, line: 0, seq: expectedSeq, problem: error instanceof Error ? error.message : String(error) });
    }
    const isLastFile = fi === files.length - 1;
    let start = 0;
    let lineNo = 0;
    while (start < bytes.length) {
      let end = bytes.indexOf(0x0a, start);
      const torn = end < 0;
      if (torn) end = bytes.length;
      lineNo++;
      const at = (problem: string, seq = expectedSeq): AuditProblem => ({ file: f.name, line: lineNo, seq, problem });
      if (end - start > MAX_LINE_BYTES) return result(at(`line longer than ${MAX_LINE_BYTES} bytes: not a record`));
      const line = Buffer.from(bytes.subarray(start, end)).toString('utf8');
      start = end + 1;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        if (torn && isLastFile) {
          notes.push(`${f.name} ends with an incomplete record (${line.length} bytes, a crash while writing; it was never acknowledged)`);
          break;
        }
        return result(at('not JSON'));
      }
      const problems = explain(AuditRecordSchema, parsed);
      if (problems.length > 0) return result(at(`not an audit record: ${problems.join('; ')}`));
      const rec = parsed as AuditRecord;
      if (rec.seq !== expectedSeq) {
        const what = rec.seq > expectedSeq ? `record${rec.seq - expectedSeq > 1 ? 's' : ''} ${expectedSeq}${rec.seq - expectedSeq > 1 ? `–${rec.seq - 1}` : ''} missing (deleted)` : 'out of order or inserted';
        return result(at(`has seq ${rec.seq} where ${expectedSeq} was expected: ${what}`, rec.seq));
      }
      if (rec.prev !== prev) return result(at('does not chain to the record before it (that record was edited, or this one was moved or inserted)', rec.seq));
      const macMatch = MAC_SUFFIX.exec(line);
      if (macMatch === null) return result(at('has no MAC at the end of its line', rec.seq));
      const body = `${line.slice(0, macMatch.index)}}`;
      if (macKey !== null) {
        const mac = createHmac('sha256', macKey).update(body).digest();
        if (!bytesEqual(mac, fromHex(macMatch[1]!)!)) return result(at('its MAC does not verify: the record was edited (or written with another key)', rec.seq));
      }
      if (rec.action === 'audit.checkpoint') {
        if (rec.sig === undefined) return result(at('a checkpoint without a signature', rec.seq));
        if (publicKey !== null) {
          const sigMatch = SIG_SUFFIX.exec(body);
          if (sigMatch === null) return result(at('a checkpoint whose signature is not where it belongs', rec.seq));
          const signed = `${body.slice(0, sigMatch.index)}}`;
          if (!verifyBytes(publicKey, concat([DOMAIN_CHECKPOINT, utf8(signed)]), fromHex(sigMatch[1]!)!)) {
            return result(at("the checkpoint's signature does not verify with the host key", rec.seq));
          }
          checkpoints++;
        }
        lastCheckpointSeq = rec.seq;
        uncheckpointed = 0;
      } else {
        if (rec.sig !== undefined) return result(at('a signature on a record that is not a checkpoint', rec.seq));
        uncheckpointed++;
      }
      prev = sha256Hex(line);
      if (head !== null && rec.seq === head.seq) {
        if (prev !== head.hash) return result(at(`the anchor (audit.head) records a different line for seq ${head.seq}: the log was rewritten`, rec.seq));
        anchorFound = true;
      }
      records++;
      expectedSeq++;
      if (torn) notes.push(`${f.name}'s last record has no newline (a crash before it was completed); it verifies`);
    }
  }
  if (head !== null && !anchorFound) {
    const last = files.at(-1)!.name;
    return result({ file: last, line: 0, seq: expectedSeq, problem: `the log ends at seq ${expectedSeq - 1}, but the anchor (audit.head) records checkpoint seq ${head.seq}: records were removed from the end (truncated)` });
  }
  if (macKey === null) notes.push('MACs were not checked (no audit.key): edits after the last checkpoint would not show');
  if (publicKey === null) notes.push('checkpoint signatures were not checked (no host.pub)');
  if (head === null && options.head == null) notes.push('no anchor (audit.head): a truncation of the tail would not show');
  return result(null);
}

/** Filters for `readAuditRecords`. */
export interface AuditFilter {
  partition?: string;
  action?: string;
  outcome?: AuditOutcome;
  /** Ms since the epoch: records at or after. */
  since?: number;
  until?: number;
}

const AUDIT_FILTER_KEYS = ['partition', 'action', 'outcome', 'since', 'until'] as const satisfies readonly (keyof AuditFilter)[];

/**
 * A filter is the caller's: a misspelt key (`outcom`) was ignored and every record returned, a
 * `since` that is not a number matched nothing. Each is ERR_INVALID_ARGUMENT naming it.
 */
function checkAuditFilter(filter: unknown): void {
  const where = 'readAuditRecords: filter';
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) throw new InvalidArgumentError(`${where}: expected an object, got ${given(filter)}`);
  refuseUnknownKeys(filter, AUDIT_FILTER_KEYS, where);
  const f = filter as Record<string, unknown>;
  for (const key of ['partition', 'action'] as const) {
    if (f[key] !== undefined && typeof f[key] !== 'string') throw new InvalidArgumentError(`${where}: ${key}: expected a string, got ${given(f[key])}`);
  }
  if (f['outcome'] !== undefined && f['outcome'] !== 'success' && f['outcome'] !== 'denied' && f['outcome'] !== 'failure') {
    throw new InvalidArgumentError(`${where}: outcome: expected success, denied or failure, got ${given(f['outcome'])}`);
  }
  for (const key of ['since', 'until'] as const) {
    const v = f[key];
    if (v !== undefined && (typeof v !== 'number' || Number.isNaN(v))) throw new InvalidArgumentError(`${where}: ${key}: expected a time in ms since the epoch, got ${given(v)}`);
  }
}

/**
 * Reads the records of the log in `dir` that match `filter` (without verifying: use
 * verifyAuditLog for that). Lines that are not records are skipped and counted.
 */
export function readAuditRecords(dir: string, filter: AuditFilter = {}): { records: AuditRecord[]; skipped: number } {
  checkPathArgument(dir, 'readAuditRecords: dir');
  checkAuditFilter(filter);
  const records: AuditRecord[] = [];
  let skipped = 0;
  let files: { name: string; index: number }[];
  try {
    files = listAuditFiles(dir);
  } catch (error) {
    // As verifyAuditLog: a missing or unreadable directory was a raw ENOENT Error.
    throw new StorageError(`cannot read the audit log directory ${dir}: ${(error as Error).message}`, { cause: error });
  }
  for (const f of files) {
    for (const line of readAuditFile(path.join(dir, f.name)).toString('utf8').split('\n')) {
      if (line.length === 0) continue;
      let rec: AuditRecord;
      try {
        rec = JSON.parse(line) as AuditRecord;
        if (explain(AuditRecordSchema, rec).length > 0) throw new Error('not a record');
      } catch {
        skipped++;
        continue;
      }
      if (filter.partition !== undefined && rec.target !== filter.partition && rec.details?.['partition'] !== filter.partition) continue;
      if (filter.action !== undefined && rec.action !== filter.action && !rec.action.startsWith(`${filter.action}.`)) continue;
      if (filter.outcome !== undefined && rec.outcome !== filter.outcome) continue;
      const t = Date.parse(rec.time);
      if (filter.since !== undefined && !(t >= filter.since)) continue;
      if (filter.until !== undefined && !(t <= filter.until)) continue;
      records.push(rec);
    }
  }
  return { records, skipped };
}

/**
 * The newest `limit` records of the log in `dir` that `match` accepts, oldest first, without
 * verifying. The files are read newest first, one at a time (yielding to the event loop between
 * them), and reading stops once `limit` matches are in hand, or at a file that begins before
 * `since` (an ISO time: older files hold only older records). A query so costs the files it
 * needs, not the whole log, which on a busy host grows by gigabytes and was read whole, on the
 * event loop, for every `GET /audit`. A filter that matches fewer than `limit` records with no
 * `since` needs every file: its memory stays one file's, its time grows with the log.
 */
export async function newestAuditRecords(dir: string, match: (r: AuditRecord) => boolean, limit: number, since?: string): Promise<AuditRecord[]> {
  checkPathArgument(dir, 'newestAuditRecords: dir');
  const newestFirst: AuditRecord[][] = [];
  let found = 0;
  const files = listAuditFiles(dir);
  for (let i = files.length - 1; i >= 0 && found < limit; i--) {
    if (i < files.length - 1) await new Promise<void>((resolve) => setImmediate(resolve));
    let text: string;
    try {
      text = readAuditFile(path.join(dir, files[i]!.name)).toString('utf8');
    } catch (error) {
      // Rotated away (or removed) since it was listed: its records are no longer the log's.
      if (isMissingFile(error)) continue;
      throw error;
    }
    const matched: AuditRecord[] = [];
    let oldest: string | null = null;
    for (const line of text.split('\n')) {
      if (line.length === 0) continue;
      let rec: AuditRecord;
      try {
        rec = JSON.parse(line) as AuditRecord;
        if (explain(AuditRecordSchema, rec).length > 0) continue;
      } catch {
        continue;
      }
      oldest ??= rec.time;
      if (match(rec)) matched.push(rec);
    }
    const taken = matched.slice(Math.max(0, matched.length - (limit - found)));
    newestFirst.push(taken);
    found += taken.length;
    if (since !== undefined && oldest !== null && oldest < since) break;
  }
  return newestFirst.reverse().flat();
}

/** Typed error for an audit verification that found a bad record (what the CLI raises). */
export function auditFailure(v: AuditVerification): IntegrityError {
  const f = v.first!;
  return new IntegrityError(`audit log: ${f.file}${f.line > 0 ? ` line ${f.line}` : ''} (seq ${f.seq}): ${f.problem}`);
}
