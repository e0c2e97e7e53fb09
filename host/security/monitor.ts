/**
 * The hypervisor's security monitor: one object that ties the policy, measured boot, attestation
 * and the audit log to the partitions' lifecycle, so host/hypervisor.ts only calls it at a few
 * points (create, refuse, attest, close) and stays about partitions.
 *
 * Order of a partition's creation, as the Hypervisor runs it:
 *   admit (signature / pin, on the module's bytes, before anything else parses them)
 *   → checkGrants (the spec against the admitting rule's grants)
 *   → … the module pipeline, storage, WASI …
 *   → created(): measured into the `partitions` register (module, signers, spec hash, each device),
 *     certificate issued for the attestation device, audited (durable before createPartition returns)
 * A refusal anywhere is audited with its code (refused()).
 *
 * Violations are aggregated per partition per second (one record says how many, including those
 * the partition's own violation rate limit did not report), and so are guest attestation requests:
 * a guest cannot flood the log.
 */
import os from 'node:os';
import path from 'node:path';
import { VERSION } from '../cli/version.ts';
import { InvalidArgumentError, WasmvisorError } from '../errors.ts';
import type { Partition, PartitionExit, Violation } from '../partition/partition.ts';
import type { ResolvedDevices } from '../devices/config.ts';
import type { AttestationInit } from '../devices/attestation.ts';
import { issueCertificate, signerHash, signReport, type AttestationReport, type ReportPartition } from './attestation.ts';
import { AuditLog, type AuditEntry, type AuditSink } from './audit.ts';
import { canonicalHash } from './canonical.ts';
import { AUDIT_HEAD_FILE, AUDIT_KEY_FILE, keysDir, loadOrCreateAuditKey, loadOrCreateHostKey } from './host-keys.ts';
import { encodePublicKey, type SecretKey } from './keys.ts';
import { EventLog, runtimeCodeMeasurements, type BootEvent, type Registers } from './measured-boot.ts';
import { Policy, type Admission, type GrantAsk, type PolicyDocument, type SignerInfo } from './policy.ts';
import { fromHex, toHex } from './wire.ts';
import type { AuditOptions } from '../schema/hypervisor.ts';
import { checkPathArgument, given } from '../schema/check.ts';

export type { AuditOptions };

/** What the Hypervisor passes on, already checked against its options schema (schema/hypervisor.ts). */
export interface SecurityOptions {
  dataDir: string;
  policy?: Policy | PolicyDocument | string;
  allowList?: Iterable<string>;
  /** true: an audit log in `<dataDir>/audit`; an object: its settings; a sink: record through it. Default: none. */
  audit?: boolean | AuditOptions | AuditSink;
  /** The actor of records about the embedder's actions. Default `embedder`. */
  actor?: string;
}

/**
 * Distinct `call status` keys a partition's violations keep per second (the aggregate record
 * names the 4 most frequent); violations past them count under OTHER_VIOLATIONS.
 */
export const MAX_VIOLATION_KEYS = 32;
const OTHER_VIOLATIONS = '(other)';

/** What the monitor knows of a live partition. */
interface Tracked {
  name: string;
  measurement: string;
  specHash: string;
  admittedBy: string;
  signers: readonly SignerInfo[];
  partition: Partition | null;
  violations: number;
  byCall: Map<string, number>;
  firstReason: string;
  suppressedSeen: number;
  attestSeen: number;
}

/** The security-relevant facts of a partition being created. */
export interface CreatedPartition {
  name: string;
  measurement: string;
  admission: Admission | null;
  /** The resolved spec (plain data; hashed canonically). */
  resolvedSpec: unknown;
  devices: ResolvedDevices;
}

/** Also an AuditSink that records as the hypervisor's actor (storage records through it); a no-op when auditing is off. */
export class SecurityMonitor implements AuditSink {
  readonly events = new EventLog();
  readonly actor: string;
  private policyValue: Policy | null;
  private readonly dataDir: string;
  private readonly sink: AuditSink | null;
  private readonly ownedLog: AuditLog | null;
  private hostKey: SecretKey | null = null;
  private readonly tracked = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | null = null;

  constructor(options: SecurityOptions) {
    this.dataDir = options.dataDir;
    this.actor = options.actor ?? 'embedder';
    if (options.policy !== undefined && options.allowList !== undefined) {
      throw new InvalidArgumentError('give either policy or allowList: an allow list is a policy that only pins measurements (put them in policy.modules)');
    }
    this.policyValue = options.policy !== undefined ? toPolicy(options.policy) : options.allowList !== undefined ? Policy.fromAllowList(options.allowList) : null;

    this.events.extend('runtime', 'runtime.version', { version: VERSION, node: process.version });
    for (const f of runtimeCodeMeasurements()) this.events.extend('runtime', 'runtime.code', { path: f.path, sha256: f.sha256 });
    this.events.extend('runtime', 'policy.load', this.policyEvent());

    const created: string[] = [];
    if (options.audit === undefined || options.audit === false) {
      this.sink = null;
      this.ownedLog = null;
    } else if (isSink(options.audit)) {
      this.sink = options.audit;
      this.ownedLog = null;
    } else {
      const opened = openAuditLog({ dataDir: this.dataDir, actor: this.actor, ...(options.audit === true ? {} : options.audit) });
      created.push(...opened.created);
      this.hostKey = opened.hostKey;
      this.ownedLog = opened.log;
      this.sink = this.ownedLog;
    }
    if (this.sink !== null) {
      // Violations and guest attestation requests are aggregated per partition per second,
      // whichever log they go to (one this monitor opened, or the embedder's).
      this.timer = setInterval(() => this.tick(), 1000);
      this.timer.unref();
    }
    for (const file of created) this.note({ actor: 'wasmvisor', action: 'key.create', target: file, outcome: 'success', reason: 'created on first use' });
    if (this.policyValue !== null) this.note({ action: 'policy.load', target: this.policyValue.source, outcome: 'success', reason: 'policy in force', details: { ...this.policyValue.summary() } });
  }

  /** The policy in force, or null. */
  get policy(): Policy | null {
    return this.policyValue;
  }

  /** Where records go, or null when auditing is off. */
  get audit(): AuditSink | null {
    return this.sink;
  }

  /** Whether `audit` is a log this monitor opened (and closes), rather than the embedder's sink. */
  get ownsAuditLog(): boolean {
    return this.ownedLog !== null;
  }

  /** Replaces the policy in force (measured and audited). New partitions are judged by it; live ones keep running. */
  async setPolicy(policy: Policy | PolicyDocument | string | null, actor?: string): Promise<void> {
    const next = policy === null ? null : toPolicy(policy);
    const previous = this.policyValue?.hash ?? null;
    // Durable on the record before it is in force: a change the log refused (ERR_STORAGE) is not
    // made (it was in force, unaudited, while the caller was told it failed).
    await this.record({ ...(actor !== undefined ? { actor } : {}), action: 'policy.change', target: next?.source ?? '(none)', outcome: 'success', reason: next ? 'policy replaced' : 'policy removed', details: { previous, ...(next ? next.summary() : {}) } });
    this.policyValue = next;
    this.events.extend('runtime', 'policy.change', { ...this.policyEvent(), previous });
  }

  private policyEvent(): Record<string, string | number | boolean | null> {
    const p = this.policyValue;
    return p === null ? { sha256: null } : { sha256: p.hash, publishers: p.summary().publishers, keys: p.summary().keys, pins: p.summary().pins };
  }

  /** Admits a module's bytes under the policy (ERR_INTEGRITY), or null when no policy is in force. */
  admit(bytes: Uint8Array, options: { detachedSignature?: Uint8Array | null; sha256?: string }): Admission | null {
    return this.policyValue?.admit(bytes, options) ?? null;
  }

  /** Checks the spec's asks against the admitting rules (ERR_POLICY_DENIED). */
  checkGrants(admission: Admission | null, ask: GrantAsk): void {
    if (admission !== null) this.policyValue!.checkGrants(admission, ask);
  }

  /**
   * Measures a partition that passed every check, issues its attestation certificate when the
   * device is granted, and returns what the worker needs for it.
   */
  measure(p: CreatedPartition): { specHash: string; attestation: AttestationInit | null } {
    const specHash = canonicalHash(p.resolvedSpec);
    const signers = p.admission?.signers ?? [];
    this.events.extend('partitions', 'partition.create', {
      partition: p.name,
      measurement: p.measurement,
      admittedBy: p.admission?.by ?? 'no-policy',
      signers: signers.map((s) => `${s.publisher}:${s.keyId}`).join(',') || null,
      specHash,
    });
    let attestation: AttestationInit | null = null;
    for (const [device, config] of Object.entries(p.devices)) {
      if (config === null) continue;
      const data: Record<string, string | number | boolean | null> = { partition: p.name, device, config: canonicalHash(config) };
      if (device === 'attestation') {
        const key = this.loadHostKey(true).key;
        attestation = issueCertificate(key, {
          name: p.name,
          measurement: p.measurement,
          specHash,
          signerHash: signerHash(signers),
          runtimeRegister: this.events.registers().runtime,
          issuedMs: Date.now(),
        });
        data['partitionKey'] = toHex(attestation.certificate.subarray(208, 240));
      }
      this.events.extend('partitions', 'device.attach', data);
    }
    this.tracked.set(p.name, {
      name: p.name,
      measurement: p.measurement,
      specHash,
      admittedBy: p.admission?.by ?? 'no-policy',
      signers,
      partition: null,
      violations: 0,
      byCall: new Map(),
      firstReason: '',
      suppressedSeen: 0,
      attestSeen: 0,
    });
    return { specHash, attestation };
  }

  /** Audits the creation (durable before it returns) and follows the partition's lifecycle. */
  async created(partition: Partition): Promise<void> {
    const t = this.tracked.get(partition.name);
    if (t) t.partition = partition;
    if (this.sink === null) return;
    partition.on('state', (state) => {
      if (state === 'running') this.note({ action: 'partition.start', target: partition.name, outcome: 'success', reason: 'started' });
    });
    partition.on('violation', (v) => this.countViolation(v));
    partition.on('exit', (exit) => this.exited(partition, exit));
    await this.record({
      action: 'partition.create',
      target: partition.name,
      outcome: 'success',
      reason: `admitted (${t?.admittedBy ?? 'no-policy'})`,
      details: { measurement: partition.measurement, specHash: t?.specHash ?? null, signers: t?.signers.map((s) => s.publisher).join(',') || null },
    });
  }

  /** Audits a refused or failed creation with its code. */
  async refused(name: unknown, error: unknown): Promise<void> {
    if (this.sink === null) return;
    const code = error instanceof WasmvisorError ? error.code : 'ERR_INTERNAL';
    const denied = ['ERR_INTEGRITY', 'ERR_POLICY_DENIED', 'ERR_IMPORT_DENIED', 'ERR_FEATURE_DENIED', 'ERR_MODULE_INVALID', 'ERR_LIMIT_MEMORY', 'ERR_LIMIT_TABLE', 'ERR_INVALID_ARGUMENT'].includes(code);
    await this.record({
      action: 'partition.create',
      target: typeof name === 'string' ? name.slice(0, 256) : '(invalid name)',
      outcome: denied ? 'denied' : 'failure',
      reason: error instanceof Error ? error.message : String(error),
      code,
    });
  }

  /** The partition is gone: its aggregate is flushed and it is no longer reported. */
  destroyed(name: string): void {
    const t = this.tracked.get(name);
    if (t === undefined) return;
    this.flushAggregate(t);
    this.tracked.delete(name);
    this.note({ action: 'partition.destroy', target: name, outcome: 'success', reason: 'destroyed' });
  }

  /** A host attestation report over the registers, the log and the live partitions. */
  /** `options` was checked against AttestOptionsSchema (hex or bytes, at most MAX_NONCE_BYTES). */
  async attest(options: { nonce?: Uint8Array | string; actor?: string } = {}): Promise<AttestationReport> {
    const nonce = typeof options.nonce === 'string' ? fromHex(options.nonce)! : (options.nonce ?? new Uint8Array(0));
    const key = this.loadHostKey(true).key;
    const partitions: ReportPartition[] = [...this.tracked.values()].map((t) => ({
      name: t.name,
      measurement: t.measurement,
      specHash: t.specHash,
      admittedBy: t.admittedBy,
      signers: t.signers.map((s) => ({ ...s })),
      state: t.partition?.state ?? 'created',
    }));
    const report = signReport(key, {
      version: VERSION,
      time: new Date().toISOString(),
      nonce: toHex(nonce),
      registers: this.events.registers(),
      events: this.events.events(),
      eventsDropped: this.events.dropped,
      partitions,
    });
    await this.record({ ...(options.actor !== undefined ? { actor: options.actor } : {}), action: 'attestation.request', target: 'host', outcome: 'success', reason: 'host report signed', details: { nonce: toHex(nonce), partitions: partitions.length } });
    return report;
  }

  /** The host's attestation public key in the signature format's serialization (created on first use). */
  publicKey(): Uint8Array {
    return encodePublicKey(this.loadHostKey(true).key.publicKey);
  }

  /** The registers and a copy of the event log. */
  eventLog(): { registers: Registers; events: BootEvent[]; dropped: number } {
    return { registers: this.events.registers(), events: this.events.events(), dropped: this.events.dropped };
  }

  async record(entry: AuditEntry): Promise<void> {
    if (this.sink) await this.sink.record({ actor: this.actor, ...entry });
  }

  note(entry: AuditEntry): void {
    this.sink?.note({ actor: this.actor, ...entry });
  }

  /** Stops the aggregation timer and closes the log this monitor opened. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const t of this.tracked.values()) this.flushAggregate(t);
    await this.ownedLog?.close();
  }

  private loadHostKey(audit: boolean): { key: SecretKey; created: boolean; file: string } {
    if (this.hostKey !== null) return { key: this.hostKey, created: false, file: '' };
    const loaded = loadOrCreateHostKey(this.dataDir);
    this.hostKey = loaded.key;
    if (audit && loaded.created) this.note({ actor: 'wasmvisor', action: 'key.create', target: loaded.file, outcome: 'success', reason: 'host attestation key created on first use' });
    return loaded;
  }

  private countViolation(v: Violation): void {
    const t = this.tracked.get(v.partition);
    if (t === undefined) return;
    if (t.violations === 0) t.firstReason = `${v.call} ${v.status}: ${v.reason}`;
    t.violations++;
    // The call and status come from the partition's side (a process child writes them as it
    // likes): past MAX_VIOLATION_KEYS distinct keys in a second, the rest share one bucket.
    const named = `${v.call} ${v.status}`;
    const k = t.byCall.has(named) || t.byCall.size < MAX_VIOLATION_KEYS ? named : OTHER_VIOLATIONS;
    t.byCall.set(k, (t.byCall.get(k) ?? 0) + 1);
  }

  private exited(partition: Partition, exit: PartitionExit): void {
    const t = this.tracked.get(partition.name);
    if (t) this.flushAggregate(t);
    this.note({
      action: 'partition.exit',
      target: partition.name,
      outcome: exit.state === 'exited' ? 'success' : 'failure',
      reason: exit.reason === 'exit' ? `exited with code ${exit.code}` : `${exit.state}: ${exit.error?.message ?? exit.reason}`,
      ...(exit.reason !== 'exit' ? { code: exit.reason } : {}),
      details: { state: exit.state, code: exit.code, runTimeMs: Math.round(exit.runTimeMs) },
    });
  }

  /** Once a second: one record per partition that had violations or made attestation requests. */
  private tick(): void {
    for (const t of this.tracked.values()) this.flushAggregate(t);
  }

  private flushAggregate(t: Tracked): void {
    const m = t.partition?.metrics();
    const suppressed = m ? m.violationsSuppressed - t.suppressedSeen : 0;
    const attest = m ? (m.hypercallsByCall['ATTEST_REPORT'] ?? 0) - t.attestSeen : 0;
    if (t.violations > 0 || suppressed > 0) {
      const top = [...t.byCall.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4);
      this.note({
        action: 'partition.violation',
        target: t.name,
        outcome: 'denied',
        reason: `${t.violations + suppressed} violation${t.violations + suppressed === 1 ? '' : 's'}${t.firstReason ? `, first: ${t.firstReason}` : ''}`,
        details: { count: t.violations + suppressed, reported: t.violations, unreported: suppressed, ...Object.fromEntries(top) },
      });
    }
    if (attest > 0) {
      this.note({ action: 'attestation.request', target: t.name, outcome: 'success', reason: `${attest} guest report request${attest === 1 ? '' : 's'} (ATTEST_REPORT)`, details: { count: attest } });
    }
    t.violations = 0;
    t.byCall.clear();
    t.firstReason = '';
    if (m) {
      t.suppressedSeen = m.violationsSuppressed;
      t.attestSeen = m.hypercallsByCall['ATTEST_REPORT'] ?? 0;
    }
  }
}

/**
 * Opens the audit log of a data directory (`<dataDir>/audit`, keys in `<dataDir>/keys` unless
 * `dir` / `keyDir` say otherwise), creating its MAC key and the host key on first use (returned in
 * `created`, for the caller to record). For a daemon that records through the same log as its
 * Hypervisor: open it once and give it to both (`new Hypervisor({ audit: log })`).
 */
export function openAuditLog(options: AuditOptions & { dataDir: string; actor?: string }): { log: AuditLog; hostKey: SecretKey; created: string[]; dir: string } {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError(`openAuditLog options: expected an object, got ${given(options)}`);
  checkPathArgument(options.dataDir, 'openAuditLog options: dataDir');
  for (const key of ['dir', 'keyDir'] as const) if (options[key] !== undefined) checkPathArgument(options[key], `openAuditLog options: ${key}`);
  const created: string[] = [];
  const keyDir = path.resolve(options.keyDir ?? keysDir(options.dataDir));
  const macFile = path.join(keyDir, AUDIT_KEY_FILE);
  const mac = loadOrCreateAuditKey(macFile);
  if (mac.created) created.push(macFile);
  const host = loadOrCreateHostKey(options.dataDir);
  if (host.created) created.push(host.file);
  const dir = path.resolve(options.dir ?? path.join(options.dataDir, 'audit'));
  const log = AuditLog.open({
    dir,
    macKey: mac.key,
    signingKey: host.key,
    headFile: path.join(keyDir, AUDIT_HEAD_FILE),
    ...(options.actor !== undefined ? { actor: options.actor } : {}),
    ...(options.durability !== undefined ? { durability: options.durability } : {}),
    ...(options.maxFileBytes !== undefined ? { maxFileBytes: options.maxFileBytes } : {}),
  });
  return { log, hostKey: host.key, created, dir };
}

function toPolicy(p: Policy | PolicyDocument | string): Policy {
  if (p instanceof Policy) return p;
  if (typeof p === 'string') return Policy.fromFile(p);
  return Policy.fromDocument(p);
}

function isSink(v: unknown): v is AuditSink {
  return typeof v === 'object' && v !== null && typeof (v as AuditSink).record === 'function' && typeof (v as AuditSink).note === 'function';
}

/** The CLI's actor: `cli:<user>`. */
export function cliActor(): string {
  try {
    return `cli:${os.userInfo().username}`;
  } catch {
    return `cli:uid-${process.getuid?.() ?? 'unknown'}`;
  }
}
