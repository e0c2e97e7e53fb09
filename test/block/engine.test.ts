/**
 * The block engine's smaller promises, each checked directly: the header's layout and every way it
 * is refused; key derivations against answers computed here from the documented inputs; which
 * file operations a flush and a discard make; keys zeroed at close; the first failure reason kept;
 * metadata pages evicted and read again.
 */
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BlockImage,
  deriveImageKeys,
  encodeHeader,
  fdIo,
  GROUP_SECTORS,
  HEADER_SIZE,
  ImageError,
  imageFileSize,
  MAX_SECTORS,
  peekHeader,
  SECTOR_SIZE,
  verifyHeader,
  type BlockIo,
} from '../../host/storage/image.ts';
import { pattern, prng, SimDisk } from './sim-disk.ts';

const id = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const macKey = Buffer.alloc(32, 3);

describe('image header', () => {
  it('has the documented layout and a MAC over its first 48 bytes and the name', () => {
    const h = encodeHeader(256, id, macKey, 'web');
    expect(h.length).toBe(HEADER_SIZE);
    expect(h.subarray(0, 8).toString('latin1')).toBe('WVBLOCK\0');
    expect([h.readUInt32LE(8), h.readUInt32LE(12), h.readUInt32LE(16), h.readUInt32LE(20), h.readUInt32LE(24), h.readUInt32LE(28)]).toEqual([2, 4096, 256, 0, 64, 32]);
    expect(h.subarray(32, 48).equals(id)).toBe(true);
    const mac = createHmac('sha256', macKey).update(h.subarray(0, 48)).update('web').digest();
    expect(h.subarray(48, 80).equals(mac)).toBe(true);
    expect(h.subarray(80).every((x) => x === 0)).toBe(true);
    const parsed = verifyHeader(h, macKey, 'web');
    expect(parsed.format).toBe(2);
    expect(parsed.sectorCount).toBe(256);
    expect(Buffer.from(parsed.imageId).equals(id)).toBe(true);
    expect(parsed.imageId.byteOffset === 0 && parsed.imageId.buffer.byteLength === 16).toBe(true);
  });

  it('refuses every malformed header with a reason', () => {
    const good = encodeHeader(256, id, macKey, 'web');
    const variant = (at: number, value: number) => {
      const h = Buffer.from(good);
      h.writeUInt32LE(value, at);
      return h;
    };
    const format1 = variant(8, 1);
    format1.writeUInt32LE(4144, 24);
    format1.writeUInt32LE(0, 28);
    expect(peekHeader(format1).format).toBe(1);
    const cases: [Buffer, string, RegExp][] = [
      [good.subarray(0, 4095), 'truncated', /shorter than its header/],
      [variant(0, 0x4f4f4f4f), 'not-an-image', /not a wasmvisor block image/],
      [variant(8, 3), 'unsupported', /format 3, sector size 4096, layout 64\/32; this runtime reads format 1 \(layout 4144\/0\) and format 2 \(layout 64\/32\)/],
      [variant(12, 512), 'unsupported', /sector size 512/],
      [variant(24, 48), 'unsupported', /layout 48\/32/],
      [variant(28, 16), 'unsupported', /layout 64\/16/],
      [variant(16, 0), 'unsupported', /claims 0 sectors/],
      [variant(16, MAX_SECTORS + 1), 'unsupported', new RegExp(`claims ${MAX_SECTORS + 1} sectors`)],
      [variant(20, 1), 'unsupported', /claims 4294967552 sectors/],
    ];
    for (const [h, problem, message] of cases) {
      const error = (() => {
        try {
          peekHeader(h);
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(error, String(message)).toBeInstanceOf(ImageError);
      expect((error as ImageError).problem).toBe(problem);
      expect((error as ImageError).message).toMatch(message);
    }
    expect(peekHeader(variant(16, MAX_SECTORS)).sectorCount).toBe(MAX_SECTORS);
    expect(peekHeader(variant(16, 1)).sectorCount).toBe(1);
    // The MAC binds the key, the name and every byte of the first 48.
    expect(() => verifyHeader(good, Buffer.alloc(32, 4), 'web')).toThrow(/does not authenticate/);
    expect(() => verifyHeader(good, macKey, 'weB')).toThrow(ImageError);
    const tampered = Buffer.from(good);
    tampered[47]! ^= 1;
    expect(() => verifyHeader(tampered, macKey, 'web')).toThrow(/does not authenticate/);
  });

  it('image keys are HKDF-SHA256(partition key, image id, "wasmvisor block v1 data|header" NUL name)', () => {
    const partitionKey = randomBytes(32);
    const keys = deriveImageKeys(partitionKey, id, 'web');
    const expected = (what: string) => Buffer.from(hkdfSync('sha256', partitionKey, id, Buffer.from(`wasmvisor block v1 ${what}\0web`), 32));
    expect(keys.dataKey.equals(expected('data'))).toBe(true);
    expect(keys.macKey.equals(expected('header'))).toBe(true);
    expect(keys.dataKey.equals(keys.macKey)).toBe(false);
  });

  it('file size: the header and whole groups of 32 sectors', () => {
    const group = 4096 + 64 * 4096;
    expect(imageFileSize(1)).toBe(HEADER_SIZE + group);
    expect(imageFileSize(GROUP_SECTORS)).toBe(HEADER_SIZE + group);
    expect(imageFileSize(GROUP_SECTORS + 1)).toBe(HEADER_SIZE + 2 * group);
    expect(imageFileSize(256)).toBe(HEADER_SIZE + 8 * group);
  });
});

/** A SimDisk behind a BlockIo that counts what the engine asks of it. */
function counted(sectors: number) {
  const disk = new SimDisk(imageFileSize(sectors), prng(9));
  const raw = fdIo(-1, disk);
  const calls = { pread: 0, pwrite: 0, fsync: 0 };
  const io: BlockIo = {
    pread: (b, p) => (calls.pread++, raw.pread(b, p)),
    pwrite: (b, p) => (calls.pwrite++, raw.pwrite(b, p)),
    fsync: () => (calls.fsync++, raw.fsync()),
  };
  const keys = { imageId: randomBytes(16), dataKey: randomBytes(32) };
  const open = () => new BlockImage({ fd: -1, io, sectorCount: sectors, ...keys });
  return { disk, calls, open };
}

describe('file operations the engine makes', () => {
  it('open fsyncs once; a flush is one fsync, plus one after scrubbing discarded sectors', () => {
    const { calls, open } = counted(64);
    const img = open();
    expect(calls.fsync).toBe(1);
    expect(img.write(0, 1, pattern(1, 0))).toBe(0);
    expect(img.flush()).toBe(0);
    expect(calls.fsync).toBe(2);
    expect(img.flush()).toBe(0); // nothing new: still one fsync
    expect(calls.fsync).toBe(3);
    expect(img.write(0, 1, pattern(2, 0))).toBe(0);
    expect(img.discard(0, 1)).toBe(0);
    const writes = calls.pwrite;
    expect(img.flush()).toBe(0);
    expect(calls.fsync).toBe(5); // the flush, then the scrub's
    expect(calls.pwrite).toBe(writes + 2); // the stale slot's entry and ciphertext, zeroed
  });

  it('discarding sectors never written writes nothing; a run of 15 sectors in one slot letter is 2 writes', () => {
    const { calls, open } = counted(64);
    const img = open();
    expect(img.discard(20, 16)).toBe(0);
    expect(calls.pwrite).toBe(0);
    const data = Buffer.concat(Array.from({ length: 15 }, (_, j) => pattern(j + 1, j)));
    expect(img.write(0, 15, data)).toBe(0);
    expect(calls.pwrite).toBe(2);
    // Across a group boundary (sectors 30..33): one run per group.
    expect(img.write(30, 4, data.subarray(0, 4 * SECTOR_SIZE))).toBe(0);
    expect(calls.pwrite).toBe(6);
    // A read of 16 known sectors in one letter is one pread of ciphertext (entries are cached).
    const reads = calls.pread;
    const out = Buffer.alloc(16 * SECTOR_SIZE);
    expect(img.read(0, 15, out)).toBe(0);
    expect(calls.pread).toBe(reads + 1);
    for (let j = 0; j < 15; j++) expect(out.subarray(j * SECTOR_SIZE, (j + 1) * SECTOR_SIZE).equals(pattern(j + 1, j))).toBe(true);
  });

  it('mixed slot letters read in at most two preads per group, and every sector comes back right', () => {
    const { calls, open } = counted(64);
    const img = open();
    for (let s = 0; s < 16; s++) img.write(s, 1, pattern(100 + s, s)); // all in A
    img.flush();
    for (let s = 0; s < 16; s += 3) img.write(s, 1, pattern(200 + s, s)); // some now in B
    const reads = calls.pread;
    const out = Buffer.alloc(16 * SECTOR_SIZE);
    expect(img.read(0, 16, out)).toBe(0);
    expect(calls.pread).toBe(reads + 2);
    for (let s = 0; s < 16; s++) expect(out.subarray(s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE).equals(pattern(s % 3 === 0 ? 200 + s : 100 + s, s)), `sector ${s}`).toBe(true);
    // The same from a fresh engine, which first learns every sector from the metadata page.
    const again = open();
    const before = calls.pread;
    out.fill(0);
    expect(again.read(0, 16, out)).toBe(0);
    expect(calls.pread).toBe(before + 3); // the metadata page, then the A and the B ciphertext
    for (let s = 0; s < 16; s++) expect(out.subarray(s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE).equals(pattern(s % 3 === 0 ? 200 + s : 100 + s, s)), `sector ${s}`).toBe(true);
  });

  it('metadata pages are kept for 512 groups, then the least recently used is read again', () => {
    const sectors = 513 * GROUP_SECTORS;
    const { calls, open } = counted(sectors);
    const img = open();
    const out = Buffer.alloc(SECTOR_SIZE);
    for (let g = 0; g < 513; g++) expect(img.read(g * GROUP_SECTORS, 1, out)).toBe(0); // all empty: pages only
    expect(calls.pread).toBe(513);
    expect(img.read(1 * GROUP_SECTORS + 1, 1, out)).toBe(0); // group 1: still cached
    expect(calls.pread).toBe(513);
    expect(img.read(0 * GROUP_SECTORS + 1, 1, out)).toBe(0); // group 0: evicted by group 512, read again
    expect(calls.pread).toBe(514);
  });
});

describe('engine lifetime', () => {
  it('close zeroes every key it holds (data key, epoch keys, the format-1 key) and is idempotent', () => {
    const { open } = counted(64);
    const img = open();
    img.write(0, 1, pattern(1, 0));
    const internals = img as unknown as { dataKey: Buffer; epochKey: { raw: Buffer } | null; epochKeys: Map<bigint, { raw: Buffer }>; nonces: Buffer };
    const dataKey = internals.dataKey;
    const epochKey = internals.epochKey!.raw;
    expect(dataKey.some((x) => x !== 0) && epochKey.some((x) => x !== 0)).toBe(true);
    img.close();
    img.close();
    expect(dataKey.every((x) => x === 0)).toBe(true);
    expect(epochKey.every((x) => x === 0)).toBe(true);
    expect(internals.epochKey).toBeNull();
    expect(internals.epochKeys.size).toBe(0);
    expect(internals.nonces.every((x) => x === 0)).toBe(true);
    expect(() => img.read(0, 1, Buffer.alloc(SECTOR_SIZE))).toThrow(/closed/);
    expect(() => img.write(0, 1, Buffer.alloc(SECTOR_SIZE))).toThrow(/closed/);
    expect(() => img.flush()).toThrow(/closed/);
    expect(() => img.discard(0, 1)).toThrow(/closed/);
  });

  it('keeps the first failure reason', () => {
    const { open } = counted(64);
    const img = open();
    expect(img.failed).toBeNull();
    img.fail('first');
    img.fail('second');
    expect(img.failed).toBe('first');
    expect(img.write(0, 1, pattern(1, 0))).toBe(12);
    expect(img.discard(0, 1)).toBe(12);
    expect(img.flush()).toBe(12);
  });
});
