/**
 * Format-1 block images, as the first versions of the engine wrote them (a v1 header, then a pair
 * of 4144-byte slots [entry 48 | ciphertext 4096] per sector): for the tests of their conversion
 * (test/block/image) and of their checks (test/block/storage-edges).
 */
import { createHmac } from 'node:crypto';

/** Bytes of one sector's pair of slots in a format-1 image. */
export const FORMAT1_PAIR = 8288;

/** The 4096-byte v1 header of an image of `sectors` sectors, with its MAC under `macKey` over its first 48 bytes and the name. */
export function format1Header(macKey: Uint8Array, imageId: Uint8Array, name: string, sectors: number): Buffer {
  const h = Buffer.alloc(4096);
  h.write('WVBLOCK\0', 0, 'latin1');
  h.writeUInt32LE(1, 8);
  h.writeUInt32LE(4096, 12);
  h.writeUInt32LE(sectors, 16);
  h.writeUInt32LE(4144, 24);
  Buffer.from(imageId).copy(h, 32);
  createHmac('sha256', macKey).update(h.subarray(0, 48)).update(name).digest().copy(h, 48);
  return h;
}
