/**
 * The attestation device (ABI 1.3), front-end in the partition's worker.
 *
 * Invariant: the host's attestation key never reaches a worker. The root gives the worker only
 * this partition's own Ed25519 key (32-byte seed) and its certificate, which the host key signed
 * and which binds the key to the partition's name, measurement, spec hash, signers and the
 * runtime register (host/security/attestation.ts). A report the worker signs can therefore only
 * ever speak for this partition, whatever the guest (or code that escaped into the worker) does.
 *
 * ATTEST_INFO writes the measurement and spec hash (read from the certificate). ATTEST_REPORT
 * takes exactly 64 bytes of report data and a nonce of 0..64 bytes and writes the 512-byte
 * report; a window too small for it is BUFFER_TOO_SMALL and nothing is signed.
 */
import { HV_ATTEST_DATA_SIZE, HV_ATTEST_INFO_SIZE, HV_ATTEST_MAX_NONCE, HV_ATTEST_REPORT_SIZE, HvCall, HvDevice, HvStatus } from '../abi/codes.ts';
import { buildGuestReport, CERT_BYTES } from '../security/guest-report.ts';
import { secretKeyFromSeed, type SecretKey } from '../security/keys.ts';
import type { Device, DeviceRecord, Handler } from './device.ts';

/** What the root hands the worker for the attestation device: plain bytes, nothing else. */
export interface AttestationInit {
  /** The partition key's 32-byte seed. */
  seed: Uint8Array;
  /** The partition certificate (CERT_BYTES), signed by the host key. */
  certificate: Uint8Array;
}

export class AttestationDevice implements Device {
  readonly name = 'attestation';
  readonly record: DeviceRecord = { id: HvDevice.ATTESTATION, version: 1, param0: HV_ATTEST_REPORT_SIZE, param1: 0 };
  readonly handlers: ReadonlyMap<number, Handler>;
  private readonly key: SecretKey;
  private readonly certificate: Uint8Array;

  constructor(init: AttestationInit, private readonly now: () => number = Date.now) {
    if (init.certificate.length !== CERT_BYTES) throw new RangeError(`an attestation certificate has ${CERT_BYTES} bytes`);
    this.key = secretKeyFromSeed(init.seed);
    this.certificate = Uint8Array.from(init.certificate);
    // The seed is no longer needed in this form; the KeyObject holds the key.
    init.seed.fill(0);
    this.handlers = new Map<number, Handler>([
      [HvCall.ATTEST_INFO, (_input, _inLen, out, outCap) => this.info(out, outCap)],
      [HvCall.ATTEST_REPORT, (input, inLen, out, outCap) => this.report(input, inLen, out, outCap)],
    ]);
  }

  private info(out: Uint8Array, outCap: number): number {
    if (outCap < HV_ATTEST_INFO_SIZE) return -HvStatus.BUFFER_TOO_SMALL;
    // Certificate bytes 80..144: measurement, then spec hash.
    out.set(this.certificate.subarray(80, 144));
    return HV_ATTEST_INFO_SIZE;
  }

  private report(input: Uint8Array, inLen: number, out: Uint8Array, outCap: number): number {
    if (inLen < HV_ATTEST_DATA_SIZE || inLen > HV_ATTEST_DATA_SIZE + HV_ATTEST_MAX_NONCE) return -HvStatus.INVALID_ARGUMENT;
    if (outCap < HV_ATTEST_REPORT_SIZE) return -HvStatus.BUFFER_TOO_SMALL;
    buildGuestReport(this.key, this.certificate, input.subarray(0, HV_ATTEST_DATA_SIZE), input.subarray(HV_ATTEST_DATA_SIZE, inLen), this.now(), out);
    return HV_ATTEST_REPORT_SIZE;
  }
}
