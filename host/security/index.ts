/**
 * The security room's public API: signed modules and keys, the policy, measured boot,
 * attestation (reports and their verification, which needs no hypervisor) and the audit log.
 */
export { Policy, PolicySchema, GrantsSchema, GRANTABLE_DEVICES } from './policy.ts';
export type { PolicyDocument, Grants, Admission, SignerInfo, GrantRule } from './policy.ts';
export {
  signModule,
  verifyModule,
  detachSignature,
  parseSignatureData,
  encodeSignatureData,
  scanSections,
  digestModule,
  SIGNATURE_SECTION,
  DELIMITER_SECTION,
} from './signature.ts';
export type { SignOptions, ModuleVerification, Signer, SignatureData, SignedHashes, SignatureRecord, SignatureProblem } from './signature.ts';
export { generateKeyPair, parsePublicKey, parseSecretKey, encodePublicKey, encodeSecretKey, defaultKeyId, writeKeyPair } from './keys.ts';
export type { PublicKey, SecretKey } from './keys.ts';
export { replayEventLog, eventDigest, extendRegister, REGISTERS } from './measured-boot.ts';
export type { BootEvent, Registers, RegisterName } from './measured-boot.ts';
export { verifyReport, verifyGuestReport, AttestationCheckError, ATTESTATION_CHECKS, REPORT_FORMAT, GUEST_REPORT_BYTES } from './attestation.ts';
export type { AttestationCheck, AttestationReport, ReportExpectations, GuestReport, GuestReportExpectations } from './attestation.ts';
export { AuditLog, verifyAuditLog, verifyAuditFiles, readAuditRecords, BATCH_MS, BATCH_RECORDS, WRITE_RECORDS } from './audit.ts';
export type { AuditSink, AuditEntry, AuditRecord, AuditOutcome, AuditVerification, AuditProblem, AuditFilter } from './audit.ts';
export { openAuditLog } from './monitor.ts';
export type { AuditOptions } from './monitor.ts';
