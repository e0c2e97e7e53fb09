import { createCipheriv, createHash, randomFillSync, type Cipher } from 'node:crypto';
import { HvCall, HvDevice, HV_DEVICE_FLAG_DETERMINISTIC, HV_MAX_TRANSFER } from '../abi/codes.ts';
import { Stat } from '../channel/stats.ts';
import type { ResolvedEntropy } from './config.ts';
import type { Device, Handler } from './device.ts';

/**
 * Entropy device: fills the guest's whole output buffer with random bytes from node:crypto's
 * CSPRNG. With a seed, the stream is instead the AES-256-CTR keystream under SHA-256(seed):
 * reproducible run to run, for tests and teaching, and still uniformly distributed.
 */
export class EntropyDevice implements Device {
  readonly name = 'entropy';
  readonly record;
  readonly handlers: ReadonlyMap<number, Handler>;
  private readonly stream: Cipher | null;
  private readonly zeros: Uint8Array;

  constructor(config: ResolvedEntropy, private readonly stats: Float64Array) {
    if (config.seed !== null) {
      const key = createHash('sha256').update('wasmvisor-entropy-v1\0').update(config.seed).digest();
      this.stream = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
      this.zeros = new Uint8Array(HV_MAX_TRANSFER);
    } else {
      this.stream = null;
      this.zeros = new Uint8Array(0);
    }
    this.record = { id: HvDevice.ENTROPY, version: 1, param0: HV_MAX_TRANSFER, param1: this.stream ? HV_DEVICE_FLAG_DETERMINISTIC : 0 };
    this.handlers = new Map<number, Handler>([[HvCall.ENTROPY_GET, (_input, _inLen, out, outCap) => this.fill(out, outCap)]]);
  }

  /** Fills out[0, outCap) with the device's bytes (also used by WASI's random_get); returns outCap. */
  fill(out: Uint8Array, outCap: number): number {
    if (outCap === 0) return 0;
    if (this.stream) {
      out.set(this.stream.update(this.zeros.subarray(0, outCap)));
    } else {
      randomFillSync(out, 0, outCap);
    }
    this.stats[Stat.ENTROPY_BYTES]! += outCap;
    return outCap;
  }
}
