/**
 * Guest attestation reports and the partition certificates behind them: binary, fixed-size, and
 * free of any schema library, because this file runs in every partition's worker (the
 * ATTEST_REPORT front-end builds reports here) and must not slow a worker's start.
 *
 * When a partition granted the attestation device is created, the host gives it a fresh Ed25519
 * key and a certificate (CERT_BYTES, signed by the host key) binding that key to the partition's
 * name, measurement, spec hash, signers and the runtime register; the worker signs reports with
 * the partition key, so the host key never enters a worker. Layouts (little-endian), also in
 * docs/ABI.md, "Attestation (1.3)":
 *
 * Certificate:
 *   0 'WVAC' · 4 u16 version (1) · 6 u16 0 · 8 u64 issued (ms since the epoch) · 16 name (64 bytes,
 *   UTF-8, zero-padded) · 80 measurement (32) · 112 spec hash (32) · 144 signer hash (32, zeros when
 *   unsigned) · 176 runtime register (32) · 208 partition public key (32) ·
 *   240 Ed25519(host, "wasmvisor-partition-certificate/1\0" ‖ bytes 0..240) (64)          = 304
 * Guest report:
 *   0 'WVGR' · 4 u16 version (1) · 6 u16 nonce length (0..64) · 8 u64 time (ms) · 16 certificate
 *   (304) · 320 report data (64) · 384 nonce (64, zero-padded) ·
 *   448 Ed25519(partition, "wasmvisor-guest-report/1\0" ‖ bytes 0..448) (64)                = 512
 *
 * `verifyGuestReport` is a pure function of the bytes and the host's public key.
 */
import { createHash, KeyObject, randomBytes } from 'node:crypto';
import { IntegrityError, InvalidArgumentError } from '../errors.ts';
import { given, refuseUnknownKeys } from '../schema/check.ts';
import { SHA256_PATTERN } from '../schema/patterns.ts';
import { canonicalJson } from './canonical.ts';
import { parsePublicKey, secretKeyFromSeed, signBytes, verifyBytes, type PublicKey, type SecretKey } from './keys.ts';
import { bytesEqual, concat, fromHex, toHex, utf8 } from './wire.ts';

/** Most bytes of a nonce (host and guest reports). */
export const MAX_NONCE_BYTES = 64;
/** Size of a guest's chosen report data. */
export const REPORT_DATA_BYTES = 64;
export const CERT_BYTES = 304;
export const GUEST_REPORT_BYTES = 512;

const DOMAIN_CERT = utf8('wasmvisor-partition-certificate/1\0');
const DOMAIN_GUEST = utf8('wasmvisor-guest-report/1\0');
const CERT_MAGIC = utf8('WVAC');
const GUEST_MAGIC = utf8('WVGR');

/** The checks a report's verification makes, each the `check` of the AttestationCheckError it fails with (README, docs/SECURITY.md). */
export const ATTESTATION_CHECKS = ['format', 'key', 'certificate', 'signature', 'nonce', 'log', 'partitions', 'expectations', 'freshness'] as const;
export type AttestationCheck = (typeof ATTESTATION_CHECKS)[number];

/** A failed verification check: `check` is its name (one of ATTESTATION_CHECKS). */
export class AttestationCheckError extends IntegrityError {
  constructor(
    readonly check: AttestationCheck,
    message: string,
  ) {
    super(`attestation ${check} check failed: ${message}`);
  }
}

/** What a partition certificate binds. */
export interface CertificateFields {
  name: string;
  measurement: string;
  specHash: string;
  /** SHA-256 hex of the signer list (see signerHash), or null for an unsigned module. */
  signerHash: string | null;
  runtimeRegister: string;
  issuedMs: number;
}

/** SHA-256 of the canonical JSON of the signers' publishers and keys. */
export function signerHash(signers: readonly { publisher: string; publicKey: string }[]): string | null {
  if (signers.length === 0) return null;
  return createHash('sha256')
    .update(canonicalJson(signers.map((s) => ({ publisher: s.publisher, publicKey: s.publicKey }))))
    .digest('hex');
}

/** Issues a partition key and its certificate, signed by the host key. The seed goes to the partition's worker. */
export function issueCertificate(hostKey: SecretKey, fields: CertificateFields): { certificate: Uint8Array; seed: Uint8Array } {
  const seed = new Uint8Array(randomBytes(32));
  const partitionKey = secretKeyFromSeed(seed);
  const cert = new Uint8Array(CERT_BYTES);
  const dv = new DataView(cert.buffer);
  cert.set(CERT_MAGIC, 0);
  dv.setUint16(4, 1, true);
  dv.setBigUint64(8, BigInt(Math.max(0, Math.floor(fields.issuedMs))), true);
  const name = utf8(fields.name);
  if (name.length > 64) throw new IntegrityError(`partition name ${fields.name} takes more than 64 bytes`);
  cert.set(name, 16);
  cert.set(fromHex(fields.measurement)!, 80);
  cert.set(fromHex(fields.specHash)!, 112);
  if (fields.signerHash !== null) cert.set(fromHex(fields.signerHash)!, 144);
  cert.set(fromHex(fields.runtimeRegister)!, 176);
  cert.set(partitionKey.publicKey.raw, 208);
  cert.set(signBytes(hostKey, concat([DOMAIN_CERT, cert.subarray(0, 240)])), 240);
  return { certificate: cert, seed };
}

/**
 * Builds and signs a guest report. Runs in the partition's worker (the ATTEST_REPORT front-end);
 * `reportData` is 64 bytes, `nonce` at most 64.
 */
export function buildGuestReport(partitionKey: SecretKey, certificate: Uint8Array, reportData: Uint8Array, nonce: Uint8Array, timeMs: number, out: Uint8Array): void {
  out.fill(0, 0, GUEST_REPORT_BYTES);
  const dv = new DataView(out.buffer, out.byteOffset, GUEST_REPORT_BYTES);
  out.set(GUEST_MAGIC, 0);
  dv.setUint16(4, 1, true);
  dv.setUint16(6, nonce.length, true);
  dv.setBigUint64(8, BigInt(Math.max(0, Math.floor(timeMs))), true);
  out.set(certificate, 16);
  out.set(reportData.subarray(0, REPORT_DATA_BYTES), 320);
  out.set(nonce, 384);
  out.set(signBytes(partitionKey, concat([DOMAIN_GUEST, out.subarray(0, 448)])), 448);
}

/** A decoded guest report. */
export interface GuestReport {
  readonly name: string;
  readonly measurement: string;
  readonly specHash: string;
  readonly signerHash: string | null;
  readonly runtimeRegister: string;
  readonly issuedMs: number;
  readonly timeMs: number;
  readonly reportData: Uint8Array;
  readonly nonce: Uint8Array;
  readonly partitionKey: string;
}

/** What a verifier expects of a guest report. */
export interface GuestReportExpectations {
  nonce?: string | Uint8Array;
  measurement?: string;
  specHash?: string;
  reportData?: Uint8Array;
  /** Largest age of the report, ms (by the time it says it was made, bytes 8..16, and `now`): the `freshness` check, as for a host report. */
  maxAgeMs?: number;
  now?: number;
}

/** A measurement or spec hash a verifier expects: the schemas' own pattern (schema/patterns.ts). */
const SHA256 = new RegExp(SHA256_PATTERN);

/**
 * A verifier's expectations are the caller's argument, checked before the evidence: not an
 * object, a key the function does not know (named with the nearest known one), or a value of the
 * wrong kind is ERR_INVALID_ARGUMENT naming it. A misspelt `nonse` was ignored, and a replayed
 * report verified; a non-hex nonce or a negative `maxAgeMs` answered as if the report had failed
 * the check (ERR_INTEGRITY), a measurement that is not a string threw an untyped TypeError, and a
 * single measurement given as a string was taken character by character.
 */
export function checkExpectationKeys(expect: unknown, known: readonly string[], what: string): void {
  if (typeof expect !== 'object' || expect === null || Array.isArray(expect)) throw new InvalidArgumentError(`${what} expectations: expected an object, got ${given(expect)}`);
  refuseUnknownKeys(expect, known, `${what} expectations`);
  const e = expect as Record<string, unknown>;
  const bad = (key: string, wanted: string): InvalidArgumentError => new InvalidArgumentError(`${what} expectations: ${key}: expected ${wanted}, got ${given(e[key])}`);
  const sha256 = (v: unknown): boolean => typeof v === 'string' && SHA256.test(v);
  for (const key of Object.keys(e)) {
    const v = e[key];
    if (v === undefined) continue;
    switch (key) {
      case 'nonce': {
        const bytes = typeof v === 'string' ? fromHex(v) : v instanceof Uint8Array ? v : null;
        if (bytes === null || bytes.length > MAX_NONCE_BYTES) throw bad(key, `hex of at most ${MAX_NONCE_BYTES} bytes or a Uint8Array`);
        break;
      }
      case 'measurement':
      case 'specHash':
        if (!sha256(v)) throw bad(key, 'a SHA-256 in hex (64 digits)');
        break;
      case 'measurements':
        if (!Array.isArray(v) || !v.every(sha256)) throw bad(key, 'an array of SHA-256s in hex (64 digits each)');
        break;
      case 'reportData':
        if (!(v instanceof Uint8Array) || v.length !== REPORT_DATA_BYTES) throw bad(key, `a Uint8Array of ${REPORT_DATA_BYTES} bytes`);
        break;
      case 'maxAgeMs':
        if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw bad(key, 'a finite number of ms, at least 0');
        break;
      case 'now':
        if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, 'a time in ms since the epoch');
        break;
    }
  }
}

/**
 * The verifier's host key argument: the bytes `hv.attestationPublicKey()` / `attest key` give
 * (parsed: a malformed key is ERR_INVALID_ARGUMENT from parsePublicKey), or a parsed PublicKey.
 * Anything else is ERR_INVALID_ARGUMENT naming `hostKey`, before any check: null or a string
 * threw an untyped TypeError from deep inside the signature check.
 */
export function hostKeyArgument(hostKey: unknown, what: string): PublicKey {
  if (hostKey instanceof Uint8Array) return parsePublicKey(hostKey, `${what}: hostKey`);
  const k = hostKey as Partial<PublicKey> | null;
  if (typeof k === 'object' && k !== null && k.raw instanceof Uint8Array && k.raw.length === 32 && k.keyObject instanceof KeyObject) return k as PublicKey;
  throw new InvalidArgumentError(`${what}: hostKey: expected the host's public key (a Uint8Array, as hv.attestationPublicKey() returns, or a parsed PublicKey), got ${given(hostKey)}`);
}

/**
 * Verifies a guest report: layout, the host's signature on the certificate, the partition's
 * signature on the report, then the expectations and its age. Pure; AttestationCheckError naming the check.
 */
export function verifyGuestReport(bytes: Uint8Array, hostKey: PublicKey | Uint8Array, expect: GuestReportExpectations = {}): GuestReport {
  checkExpectationKeys(expect, ['nonce', 'measurement', 'specHash', 'reportData', 'maxAgeMs', 'now'], 'verifyGuestReport');
  const key = hostKeyArgument(hostKey, 'verifyGuestReport');
  if (!(bytes instanceof Uint8Array)) throw new AttestationCheckError('format', `a guest report is a Uint8Array of ${GUEST_REPORT_BYTES} bytes, got ${given(bytes)}`);
  if (bytes.length !== GUEST_REPORT_BYTES) throw new AttestationCheckError('format', `a guest report has ${GUEST_REPORT_BYTES} bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!bytesEqual(bytes.subarray(0, 4), GUEST_MAGIC) || dv.getUint16(4, true) !== 1) throw new AttestationCheckError('format', 'not a version 1 guest report (magic WVGR)');
  const nonceLength = dv.getUint16(6, true);
  if (nonceLength > MAX_NONCE_BYTES) throw new AttestationCheckError('format', `nonce length ${nonceLength} exceeds ${MAX_NONCE_BYTES}`);
  const cert = bytes.subarray(16, 16 + CERT_BYTES);
  const cdv = new DataView(cert.buffer, cert.byteOffset, CERT_BYTES);
  if (!bytesEqual(cert.subarray(0, 4), CERT_MAGIC) || cdv.getUint16(4, true) !== 1) throw new AttestationCheckError('format', 'the certificate is not version 1 (magic WVAC)');
  if (!verifyBytes(key, concat([DOMAIN_CERT, cert.subarray(0, 240)]), cert.subarray(240, 304))) {
    throw new AttestationCheckError('certificate', "the partition certificate is not signed by the given host key (altered, or another host's)");
  }
  let partitionKey: PublicKey;
  try {
    partitionKey = parsePublicKey(concat([Uint8Array.of(1), cert.subarray(208, 240)]), 'partition key');
  } catch {
    throw new AttestationCheckError('certificate', 'the certificate holds no usable partition key');
  }
  if (!verifyBytes(partitionKey, concat([DOMAIN_GUEST, bytes.subarray(0, 448)]), bytes.subarray(448, 512))) {
    throw new AttestationCheckError('signature', 'the report is not signed by the certified partition key (altered after signing)');
  }
  for (let i = 384 + nonceLength; i < 448; i++) if (bytes[i] !== 0) throw new AttestationCheckError('format', 'bytes past the nonce are not zero');
  const nameBytes = cert.subarray(16, 80);
  const nameEnd = nameBytes.indexOf(0) < 0 ? 64 : nameBytes.indexOf(0);
  const zeroHash = (b: Uint8Array): boolean => b.every((x) => x === 0);
  const report: GuestReport = {
    name: Buffer.from(nameBytes.subarray(0, nameEnd)).toString('utf8'),
    measurement: toHex(cert.subarray(80, 112)),
    specHash: toHex(cert.subarray(112, 144)),
    signerHash: zeroHash(cert.subarray(144, 176)) ? null : toHex(cert.subarray(144, 176)),
    runtimeRegister: toHex(cert.subarray(176, 208)),
    issuedMs: Number(cdv.getBigUint64(8, true)),
    timeMs: Number(dv.getBigUint64(8, true)),
    reportData: Uint8Array.from(bytes.subarray(320, 384)),
    nonce: Uint8Array.from(bytes.subarray(384, 384 + nonceLength)),
    partitionKey: toHex(partitionKey.raw),
  };
  if (expect.nonce !== undefined) {
    // Hex, checked with the expectations (checkExpectationKeys).
    const want = typeof expect.nonce === 'string' ? fromHex(expect.nonce)! : expect.nonce;
    if (!bytesEqual(want, report.nonce)) throw new AttestationCheckError('nonce', `the report answers nonce ${toHex(report.nonce) || '(none)'}, not the expected one`);
  }
  if (expect.measurement !== undefined && expect.measurement.toLowerCase() !== report.measurement) {
    throw new AttestationCheckError('expectations', `the partition runs sha256:${report.measurement}, not sha256:${expect.measurement.toLowerCase()}`);
  }
  if (expect.specHash !== undefined && expect.specHash.toLowerCase() !== report.specHash) throw new AttestationCheckError('expectations', `the partition's spec hash is ${report.specHash}, not the expected one`);
  if (expect.reportData !== undefined && !bytesEqual(expect.reportData, report.reportData)) throw new AttestationCheckError('expectations', 'the report data is not the expected value');
  if (expect.maxAgeMs !== undefined) {
    const age = (expect.now ?? Date.now()) - report.timeMs;
    if (!(age <= expect.maxAgeMs)) throw new AttestationCheckError('freshness', `the report is ${age} ms old, more than ${expect.maxAgeMs} ms`);
  }
  return report;
}
