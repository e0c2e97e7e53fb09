/**
 * The cryptography of the block engine, checked on the bytes it writes (issue #18, "tests that
 * would have caught this"): fresh nonces on every write, across restarts and slots; every field
 * of the additional data bound (a slot moved to another sector, image or generation fails); key
 * epochs (no key seals more than `sealsPerKey` sectors, older epochs stay readable); generations
 * numbered from verified slots only.
 */
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HvStatus } from '../../host/abi/codes.ts';
import {
  BlockImage,
  dataOffset,
  deriveEpochKey,
  EPOCH_AT,
  fdIo,
  GEN_AT,
  imageFileSize,
  META_SIZE,
  metaOffset,
  NONCE_AT,
  SECTOR_SIZE,
  TAG_AT,
} from '../../host/storage/image.ts';
import { pattern, prng, SimDisk } from './sim-disk.ts';

const SECTORS = 8;
/** A slot as these tests handle it: its metadata entry, then its ciphertext. */
const SLOT_META = META_SIZE;
const SLOT_SIZE = META_SIZE + SECTOR_SIZE;

function setup(opts: { sealsPerKey?: number } = {}) {
  const disk = new SimDisk(imageFileSize(SECTORS), prng(1));
  const keys = { imageId: randomBytes(16), dataKey: randomBytes(32) };
  const open = (over: Partial<typeof keys> = {}) =>
    new BlockImage({ fd: -1, io: fdIo(-1, disk), sectorCount: SECTORS, ...keys, ...over, ...opts });
  const slot = (s: number, k: number) => {
    const b = Buffer.alloc(SLOT_SIZE);
    disk.readSync(-1, b, 0, META_SIZE, metaOffset(s, k));
    disk.readSync(-1, b, META_SIZE, SECTOR_SIZE, dataOffset(s, k));
    return b;
  };
  const put = (s: number, k: number, bytes: Buffer) => {
    disk.writeSync(-1, bytes, 0, META_SIZE, metaOffset(s, k));
    disk.writeSync(-1, bytes, META_SIZE, SECTOR_SIZE, dataOffset(s, k));
    disk.fsyncSync();
  };
  return { disk, keys, open, slot, put };
}

/** Writes and flushes versions `ids` of sector s, one after the other. */
function flushed(img: BlockImage, s: number, ...ids: number[]): void {
  for (const id of ids) {
    expect(img.write(s, 1, pattern(id, s))).toBe(0);
    expect(img.flush()).toBe(0);
  }
}

function readOne(img: BlockImage, s: number) {
  const data = Buffer.alloc(SECTOR_SIZE, 0xee);
  return { status: img.read(s, 1, data), data };
}

describe('nonces', () => {
  it('every sealed version has a fresh nonce: across writes, slots, sectors and restarts', () => {
    const { open, slot } = setup();
    const seen = new Set<string>();
    const versions = new Set<string>();
    for (let boot = 0; boot < 4; boot++) {
      const img = open();
      for (let round = 0; round < 6; round++) {
        for (let s = 0; s < SECTORS; s++) {
          // The same plaintext every time: identical nonces would show as identical ciphertexts.
          expect(img.write(s, 1, pattern(1, 0))).toBe(0);
          if (round % 2 === 1) img.flush();
          for (const k of [0, 1]) {
            const b = slot(s, k);
            if (b.readUInt32LE(GEN_AT) === 0) continue;
            const id = `${s}/${k}/${b.readUInt32LE(GEN_AT)}/${b.subarray(EPOCH_AT, EPOCH_AT + 8).toString('hex')}`;
            const nonce = b.subarray(NONCE_AT, NONCE_AT + 12).toString('hex');
            if (versions.has(id)) continue; // the same stored version seen again
            versions.add(id);
            expect(seen.has(nonce), `nonce reused by ${id}`).toBe(false);
            seen.add(nonce);
            expect(nonce).not.toBe('0'.repeat(24));
          }
        }
      }
      img.flush();
      img.close();
    }
    expect(seen.size).toBeGreaterThan(4 * 6 * SECTORS * 0.9);
  });
});

describe('nonces within one engine', () => {
  it('stay fresh past the pool of 256 drawn at once: 600 writes, 600 nonces', () => {
    const { open, disk } = setup();
    const img = open();
    const seen = new Set<string>();
    const entry = Buffer.alloc(META_SIZE);
    for (let i = 0; i < 600; i++) {
      expect(img.write(i % SECTORS, 1, pattern(1, 0))).toBe(0);
      if (i % 2 === 1) img.flush();
      // The version just written: the entry whose gen is the highest for that sector.
      const s = i % SECTORS;
      let best = -1;
      let nonce = '';
      for (const k of [0, 1]) {
        disk.readSync(-1, entry, 0, META_SIZE, metaOffset(s, k));
        const gen = entry.readUInt32LE(GEN_AT);
        if (gen > best) {
          best = gen;
          nonce = entry.subarray(NONCE_AT, NONCE_AT + 12).toString('hex');
        }
      }
      expect(seen.has(nonce), `write ${i}`).toBe(false);
      seen.add(nonce);
    }
  });
});

describe('additional data: every field is bound', () => {
  it('a slot moved to another sector does not open there', () => {
    const { open, slot, put } = setup();
    const img = open();
    img.write(1, 1, pattern(11, 1));
    img.write(2, 1, pattern(22, 2));
    img.flush();
    put(2, 0, slot(1, 0)); // sector 1's version over sector 2's, same slot, same gen
    const again = open();
    const r = readOne(again, 2);
    expect(r.status).toBe(0);
    expect(r.data.equals(pattern(11, 1))).toBe(false);
    expect(r.data.every((x) => x === 0)).toBe(true); // its only version failed: reads as never written
    expect(again.counters.tornRecovered).toBe(1);
  });

  it('a slot moved to another image under the same key does not open there (the image id is bound)', () => {
    const one = setup();
    const img = one.open();
    img.write(3, 1, pattern(33, 3));
    img.flush();
    // A second image that shares the data key but has another image id.
    const two = setup();
    const other = two.open({ dataKey: one.keys.dataKey });
    other.write(3, 1, pattern(44, 3));
    other.flush();
    two.put(3, 1, one.slot(3, 0)); // image one's version (gen 1) in image two's empty slot B
    const b = two.slot(3, 1);
    b.writeUInt32LE(2, GEN_AT); // and newer than two's own gen 1 — still refused
    two.put(3, 1, b);
    const r = readOne(two.open({ dataKey: one.keys.dataKey }), 3);
    expect(r.data.equals(pattern(44, 3))).toBe(true);
    // Positive control: in its own image, under its own id, the same bytes do open.
    expect(readOne(one.open(), 3).data.equals(pattern(33, 3))).toBe(true);
  });

  it('a version relabelled with another generation does not open', () => {
    const { open, slot, put } = setup();
    const img = open();
    flushed(img, 5, 1, 2);
    const b = slot(5, 1);
    b.writeUInt32LE(7, GEN_AT); // claim gen 7
    put(5, 1, b);
    const r = readOne(open(), 5);
    expect(r.status).toBe(0);
    expect(r.data.equals(pattern(1, 5))).toBe(true); // the relabelled version is refused; gen 1 is used
  });

  it('a version relabelled with another key epoch does not open', () => {
    const { open, slot, put } = setup();
    const img = open();
    flushed(img, 6, 1, 2);
    for (const epoch of [Buffer.alloc(8), randomBytes(8)]) {
      const b = slot(6, 1);
      epoch.copy(b, EPOCH_AT);
      put(6, 1, b);
      expect(readOne(open(), 6).data.equals(pattern(1, 6))).toBe(true);
    }
  });

  it('a slot with non-zero reserved bytes is refused, and reading one never leaks them into the next write', () => {
    const { open, slot, put } = setup();
    flushed(open(), 1, 1); // slot A
    for (const at of [44, 51, 63]) {
      // Each reserved byte, in a fresh image: refused by rule (they are not covered by the tag).
      const other = setup();
      flushed(other.open(), 0, 1);
      const e = other.slot(0, 0);
      e[at] = 1;
      other.put(0, 0, e);
      expect(readOne(other.open(), 0).data.every((x) => x === 0), `reserved byte ${at}`).toBe(true);
    }
    const b = slot(1, 0);
    b[47] = 0x5a; // reserved: not covered by the tag, so refused by rule
    put(1, 0, b);
    const img = open();
    expect(readOne(img, 1).data.every((x) => x === 0)).toBe(true); // its only version is refused
    expect(img.write(1, 1, pattern(2, 1))).toBe(0); // into slot A again: its entry must come out clean
    expect(img.flush()).toBe(0);
    expect(slot(1, 0)[47] === 0 || slot(1, 1)[47] === 0).toBe(true);
    expect(readOne(open(), 1).data.equals(pattern(2, 1))).toBe(true);
  });

  it('the nonce, the tag and the ciphertext are each authenticated', () => {
    for (const [at, what] of [
      [NONCE_AT, 'nonce'],
      [TAG_AT, 'tag'],
      [SLOT_META + 4095, 'ciphertext'],
    ] as const) {
      const { open, slot, put } = setup();
      const img = open();
      flushed(img, 0, 1, 2);
      const b = slot(0, 1);
      b[at]! ^= 1;
      put(0, 1, b);
      expect(readOne(open(), 0).data.equals(pattern(1, 0)), what).toBe(true);
    }
  });
});

describe('key epochs: no key seals more than sealsPerKey sectors', () => {
  it('rotates after sealsPerKey sealings; versions under older epochs stay readable', () => {
    const { open, slot } = setup({ sealsPerKey: 3 });
    const img = open();
    const epochs: string[] = [];
    for (let s = 0; s < 7; s++) {
      expect(img.write(s, 1, pattern(100 + s, s))).toBe(0);
      epochs.push(slot(s, 0).subarray(EPOCH_AT, EPOCH_AT + 8).toString('hex'));
    }
    // Sealings 1-3 under one epoch, 4-6 under the next, 7 under a third.
    expect(new Set(epochs.slice(0, 3)).size).toBe(1);
    expect(new Set(epochs.slice(3, 6)).size).toBe(1);
    expect(new Set(epochs).size).toBe(3);
    expect(epochs.every((e) => e !== '0'.repeat(16))).toBe(true);
    for (let s = 0; s < 7; s++) expect(readOne(img, s).data.equals(pattern(100 + s, s))).toBe(true);
    img.flush();
    img.close();
    // A new engine seals under an epoch of its own, and reads every older one.
    const again = open();
    again.write(7, 1, pattern(107, 7));
    expect(epochs).not.toContain(slot(7, 0).subarray(EPOCH_AT, EPOCH_AT + 8).toString('hex'));
    for (let s = 0; s < 8; s++) expect(readOne(again, s).data.equals(pattern(100 + s, s))).toBe(true);
  });

  it('an epoch key is HKDF of the data key and the image id: the engine’s slots open with it and nothing else', () => {
    const { open, slot, keys } = setup();
    const img = open();
    img.write(2, 1, pattern(5, 2));
    const b = slot(2, 0);
    const epoch = b.subarray(EPOCH_AT, EPOCH_AT + 8);
    const key = deriveEpochKey(keys.dataKey, keys.imageId, epoch);
    // Known answer, computed here from the documented inputs (docs/STORAGE.md, "Format").
    const info = Buffer.concat([Buffer.from('wasmvisor block epoch ', 'latin1'), epoch]);
    expect(key.equals(Buffer.from(hkdfSync('sha256', keys.dataKey, keys.imageId, info, 32)))).toBe(true);
    expect(key.equals(keys.dataKey)).toBe(false);
    expect(key.equals(deriveEpochKey(keys.dataKey, randomBytes(16), epoch))).toBe(false);
    // Re-seal the same plaintext with that key and this slot's nonce: the ciphertext matches.
    const aad = Buffer.alloc(32);
    keys.imageId.copy(aad, 0);
    aad.writeUInt32LE(2, 16);
    aad.writeUInt32LE(1, 24);
    const c = createCipheriv('aes-256-gcm', key, b.subarray(NONCE_AT, NONCE_AT + 12));
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(pattern(5, 2)), c.final()]);
    expect(ct.equals(b.subarray(SLOT_META))).toBe(true);
    expect(c.getAuthTag().equals(b.subarray(TAG_AT, TAG_AT + 16))).toBe(true);
  });

  it('reads versions of epoch 0 (format 1’s, sealed with the data key itself)', () => {
    const { open, put, keys } = setup();
    // A version as the format-1 engine wrote it: epoch bytes zero, the data key, AAD id|sector|gen.
    const slotBytes = Buffer.alloc(SLOT_SIZE);
    slotBytes.writeUInt32LE(4, GEN_AT);
    const nonce = randomBytes(12);
    nonce.copy(slotBytes, NONCE_AT);
    const aad = Buffer.alloc(32);
    keys.imageId.copy(aad, 0);
    aad.writeUInt32LE(3, 16);
    aad.writeUInt32LE(4, 24);
    const c = createCipheriv('aes-256-gcm', keys.dataKey, nonce);
    c.setAAD(aad);
    Buffer.concat([c.update(pattern(77, 3)), c.final()]).copy(slotBytes, SLOT_META);
    c.getAuthTag().copy(slotBytes, TAG_AT);
    put(3, 1, slotBytes);
    const img = open();
    expect(readOne(img, 3).data.equals(pattern(77, 3))).toBe(true);
    // Writing it again continues from gen 4, under a fresh epoch, in the other slot.
    expect(img.write(3, 1, pattern(78, 3))).toBe(0);
    expect(readOne(img, 3).data.equals(pattern(78, 3))).toBe(true);
  });

  it('refuses out-of-range sealsPerKey and sector counts', () => {
    const { keys } = setup();
    for (const sealsPerKey of [0, -1, 1.5, 2 ** 30 + 1]) {
      expect(() => new BlockImage({ fd: -1, io: fdIo(-1, new SimDisk(8192)), sectorCount: 1, ...keys, sealsPerKey })).toThrow(RangeError);
    }
    expect(() => new BlockImage({ fd: -1, io: fdIo(-1, new SimDisk(8192)), sectorCount: 1, ...keys, sealsPerKey: 2 ** 30 })).not.toThrow();
  });
});

describe('generations come from verified slots only', () => {
  it('a planted generation near 2^53 neither wins nor makes the sector unwritable', () => {
    const { open, slot, put } = setup();
    const img = open();
    img.write(4, 1, pattern(1, 4));
    img.flush();
    for (const gen of [2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n]) {
      const b = slot(4, 0);
      const planted = Buffer.from(b);
      planted.writeBigUInt64LE(gen, GEN_AT);
      put(4, 1, planted); // slot B: a huge gen, not authentic
      const again = open();
      expect(readOne(again, 4).data.equals(pattern(1, 4))).toBe(true);
      // A gen that large is not even tried (it could never verify): nothing was "torn".
      expect(again.counters.tornRecovered).toBe(gen === 2n ** 53n - 1n ? 1 : 0);
      // The next version is numbered 2 (verified gen 1 + 1), lands in B and reads back.
      expect(again.write(4, 1, pattern(2, 4))).toBe(0);
      expect(again.flush()).toBe(0);
      expect(slot(4, 1).readBigUInt64LE(GEN_AT)).toBe(2n);
      expect(readOne(open(), 4).data.equals(pattern(2, 4))).toBe(true);
      put(4, 1, Buffer.alloc(SLOT_SIZE));
    }
  });

  it('a planted generation on a sector with no authentic version does not number the next ones', () => {
    const { open, slot, put } = setup();
    const junk = randomBytes(SLOT_SIZE);
    junk.writeBigUInt64LE(2n ** 53n - 2n, GEN_AT);
    junk.fill(0, EPOCH_AT, SLOT_META);
    put(6, 0, junk);
    const img = open();
    expect(readOne(img, 6).data.every((x) => x === 0)).toBe(true);
    for (let v = 1; v <= 4; v++) {
      expect(img.write(6, 1, pattern(v, 6))).toBe(0);
      expect(img.flush()).toBe(0);
      const fresh = open();
      expect(readOne(fresh, 6).data.equals(pattern(v, 6)), `version ${v}`).toBe(true);
      fresh.close();
    }
    expect(Math.max(slot(6, 0).readUInt32LE(GEN_AT), slot(6, 1).readUInt32LE(GEN_AT))).toBe(4);
    expect(slot(6, 0).readUInt32LE(GEN_AT + 4) + slot(6, 1).readUInt32LE(GEN_AT + 4)).toBe(0);
  });

  it('gens above 2^32 are carried exactly (both words in the entry and in the AAD)', () => {
    const { open, put, slot, keys } = setup();
    const gen = 2 ** 32 + 5;
    const entry = Buffer.alloc(META_SIZE + SECTOR_SIZE);
    entry.writeBigUInt64LE(BigInt(gen), GEN_AT);
    const nonce = randomBytes(12);
    nonce.copy(entry, NONCE_AT);
    const aad = Buffer.alloc(32);
    keys.imageId.copy(aad, 0);
    aad.writeBigUInt64LE(7n, 16);
    aad.writeBigUInt64LE(BigInt(gen), 24);
    const c = createCipheriv('aes-256-gcm', keys.dataKey, nonce); // epoch 0
    c.setAAD(aad);
    Buffer.concat([c.update(pattern(50, 7)), c.final()]).copy(entry, META_SIZE);
    c.getAuthTag().copy(entry, TAG_AT);
    put(7, 0, entry);
    const img = open();
    expect(readOne(img, 7).data.equals(pattern(50, 7))).toBe(true);
    expect(img.write(7, 1, pattern(51, 7))).toBe(0);
    expect(slot(7, 1).readBigUInt64LE(GEN_AT)).toBe(BigInt(gen + 1));
    img.flush();
    expect(readOne(open(), 7).data.equals(pattern(51, 7))).toBe(true);
  });

  it('two damaged versions: INTEGRITY until a write replaces them, numbered from 1', () => {
    const { open, slot, put } = setup();
    const img = open();
    flushed(img, 0, 1, 2);
    for (const k of [0, 1]) {
      const b = slot(0, k);
      b[SLOT_META + 10]! ^= 0xff;
      b.writeUInt32LE(1000, GEN_AT);
      put(0, k, b);
    }
    const again = open();
    expect(readOne(again, 0).status).toBe(HvStatus.INTEGRITY);
    expect(again.counters.integrityFailures).toBe(1);
    expect(again.write(0, 1, pattern(3, 0))).toBe(0);
    expect(slot(0, 0).readUInt32LE(GEN_AT)).toBe(1);
    expect(readOne(again, 0).data.equals(pattern(3, 0))).toBe(true);
  });
});
