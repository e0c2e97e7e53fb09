/**
 * Attestation: signed statements of what a host runs, for a remote verifier that has only the
 * statement and the host's public key (`host.pub`, see host-keys.ts).
 *
 * Host report (JSON, `REPORT_FORMAT`): the registers and event log of measured boot, the live
 * partitions with their measurements, spec hashes and signers, the verifier's nonce and the time,
 * signed with the host key: Ed25519(host, "wasmvisor-attestation-report/1\0" ‖ canonical JSON of
 * every field but `signature`).
 *
 * Guest reports (binary, signed in the partition's worker by a key the host certified) are in
 * guest-report.ts, which stays free of the schema library so workers start fast.
 *
 * Verification (`verifyReport`, `verifyGuestReport`) is a pure library function: no hypervisor,
 * no files. A failed check throws AttestationCheckError (ERR_INTEGRITY) whose `check` names it.
 */
import { Type, type Static } from '@sinclair/typebox';
import { explain } from '../schema/check.ts';
import { canonicalJson } from './canonical.ts';
import { signBytes, verifyBytes, type PublicKey, type SecretKey } from './keys.ts';
import { AttestationCheckError, checkExpectationKeys, hostKeyArgument, MAX_NONCE_BYTES } from './guest-report.ts';
import { BootEventSchema, MAX_EVENTS, replayEventLog, REGISTERS } from './measured-boot.ts';
import { bytesEqual, concat, fromHex, toHex, utf8 } from './wire.ts';
import { quoted } from '../escape.ts';

export {
  ATTESTATION_CHECKS,
  AttestationCheckError,
  CERT_BYTES,
  GUEST_REPORT_BYTES,
  MAX_NONCE_BYTES,
  REPORT_DATA_BYTES,
  buildGuestReport,
  issueCertificate,
  signerHash,
  verifyGuestReport,
} from './guest-report.ts';
export type { AttestationCheck, CertificateFields, GuestReport, GuestReportExpectations } from './guest-report.ts';

export const REPORT_FORMAT = 'wasmvisor-attestation/1';
/** Largest host report accepted by the verifier, bytes of JSON. */
export const MAX_REPORT_BYTES = 64 * 1024 * 1024;

const DOMAIN_REPORT = utf8('wasmvisor-attestation-report/1\0');


const Hex32 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const SignerSchema = Type.Object(
  { publisher: Type.String({ maxLength: 64 }), keyId: Type.String({ pattern: '^[0-9a-f]{0,512}$' }), publicKey: Hex32, full: Type.Boolean() },
  { additionalProperties: false },
);
export const ReportPartitionSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    measurement: Hex32,
    specHash: Hex32,
    admittedBy: Type.String({ maxLength: 32 }),
    signers: Type.Array(SignerSchema, { maxItems: 64 }),
    state: Type.String({ maxLength: 16 }),
  },
  { additionalProperties: false },
);
export const ReportSchema = Type.Object(
  {
    format: Type.Literal(REPORT_FORMAT),
    version: Type.String({ maxLength: 64 }),
    time: Type.String({ maxLength: 64 }),
    nonce: Type.String({ pattern: `^(?:[0-9a-f]{2}){0,${MAX_NONCE_BYTES}}$` }),
    registers: Type.Object(Object.fromEntries(REGISTERS.map((r) => [r, Hex32])) as Record<(typeof REGISTERS)[number], typeof Hex32>, { additionalProperties: false }),
    events: Type.Array(BootEventSchema, { maxItems: MAX_EVENTS }),
    eventsDropped: Type.Integer({ minimum: 0 }),
    partitions: Type.Array(ReportPartitionSchema, { maxItems: MAX_EVENTS }),
    hostKey: Hex32,
    signature: Type.String({ pattern: '^[0-9a-f]{128}$' }),
  },
  { additionalProperties: false },
);
/** A signed host attestation report. */
export type AttestationReport = Static<typeof ReportSchema>;
export type ReportPartition = Static<typeof ReportPartitionSchema>;

/** Signs a report body with the host key. */
export function signReport(hostKey: SecretKey, body: Omit<AttestationReport, 'format' | 'hostKey' | 'signature'>): AttestationReport {
  const unsigned = { format: REPORT_FORMAT, ...body, hostKey: toHex(hostKey.publicKey.raw) } as const;
  const signature = signBytes(hostKey, concat([DOMAIN_REPORT, utf8(canonicalJson(unsigned))]));
  return { ...unsigned, signature: toHex(signature) };
}

/** What a verifier expects of a report. */
export interface ReportExpectations {
  /** The nonce it sent (hex or bytes); required to match when given. */
  nonce?: string | Uint8Array;
  /** Module measurements (hex) that must be among the report's partitions. */
  measurements?: readonly string[];
  /** Largest age of the report, ms (by its time and `now`). */
  maxAgeMs?: number;
  now?: number;
}

/**
 * Verifies a host report: its shape, that it is signed by `hostKey`, the nonce, that the event
 * log replays to the registers, that every partition it lists was measured into the log, and the
 * expectations. Returns the typed report; throws AttestationCheckError naming the first failed check.
 * `report` is untrusted: parsed JSON or the JSON text.
 */
export function verifyReport(report: unknown, hostKey: PublicKey | Uint8Array, expect: ReportExpectations = {}): AttestationReport {
  checkExpectationKeys(expect, ['nonce', 'measurements', 'maxAgeMs', 'now'], 'verifyReport');
  const key = hostKeyArgument(hostKey, 'verifyReport');
  let value = report;
  if (typeof value === 'string') {
    if (value.length > MAX_REPORT_BYTES) throw new AttestationCheckError('format', `the report is larger than ${MAX_REPORT_BYTES} bytes`);
    try {
      value = JSON.parse(value);
    } catch (error) {
      throw new AttestationCheckError('format', `the report is not JSON: ${(error as Error).message}`);
    }
  }
  const problems = explain(ReportSchema, value);
  if (problems.length > 0) throw new AttestationCheckError('format', `the report is malformed: ${problems.join('; ')}`);
  const r = value as AttestationReport;

  if (r.hostKey !== toHex(key.raw)) throw new AttestationCheckError('key', `the report names host key ${r.hostKey.slice(0, 16)}…, not the given key ${toHex(key.raw).slice(0, 16)}…`);
  const { signature, ...unsigned } = r;
  if (!verifyBytes(key, concat([DOMAIN_REPORT, utf8(canonicalJson(unsigned))]), fromHex(signature)!)) {
    throw new AttestationCheckError('signature', 'the host signature does not verify: the report was changed after it was signed, or signed by another key');
  }
  if (expect.nonce !== undefined) {
    // Hex, checked with the expectations (checkExpectationKeys).
    const want = typeof expect.nonce === 'string' ? fromHex(expect.nonce)! : expect.nonce;
    if (!bytesEqual(want, fromHex(r.nonce)!)) throw new AttestationCheckError('nonce', `the report answers nonce ${r.nonce || '(none)'}, not ${toHex(want)} (a replayed or foreign report)`);
  }
  if (r.eventsDropped > 0) throw new AttestationCheckError('log', `the host dropped ${r.eventsDropped} events past its log's capacity; the registers cannot be replayed`);
  let replayed;
  try {
    replayed = replayEventLog(r.events);
  } catch (error) {
    throw new AttestationCheckError('log', (error as Error).message);
  }
  for (const reg of REGISTERS) {
    if (replayed[reg] !== r.registers[reg]) {
      throw new AttestationCheckError('log', `replaying the event log gives register ${reg} = ${replayed[reg].slice(0, 16)}…, the report says ${r.registers[reg].slice(0, 16)}… (the log was edited, reordered or truncated)`);
    }
  }
  for (const p of r.partitions) {
    const measured = r.events.some(
      (e) => e.type === 'partition.create' && e.data['partition'] === p.name && e.data['measurement'] === p.measurement && e.data['specHash'] === p.specHash,
    );
    if (!measured) throw new AttestationCheckError('partitions', `partition ${quoted(p.name)} (sha256:${p.measurement.slice(0, 16)}…) is not in the event log`);
  }
  for (const m of expect.measurements ?? []) {
    if (!r.partitions.some((p) => p.measurement === m.toLowerCase())) {
      throw new AttestationCheckError('expectations', `no partition runs a module with measurement ${m.toLowerCase()} (running: ${r.partitions.map((p) => `${quoted(p.name)} ${p.measurement.slice(0, 16)}…`).join(', ') || 'none'})`);
    }
  }
  if (expect.maxAgeMs !== undefined) {
    const age = (expect.now ?? Date.now()) - Date.parse(r.time);
    if (!(age <= expect.maxAgeMs)) throw new AttestationCheckError('freshness', `the report is ${Number.isNaN(age) ? 'undated' : `${age} ms old`}, more than ${expect.maxAgeMs} ms`);
  }
  return r;
}
