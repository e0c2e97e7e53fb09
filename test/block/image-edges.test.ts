/**
 * Edges of the block engine (host/storage/image.ts) that its workloads do not reach, found by
 * mutation testing (docs/MUTATION.md, issue 17): reads past the end of a file, the constructor's
 * bounds, the cache of epoch keys at its bound, an epoch drawn as all zeros.
 *
 * `node:crypto` and `node:fs` are wrapped (every call goes to the real one) so that one test can
 * choose what the engine's first random draw returns, and another can count its fsyncs.
 */
import { randomBytes } from 'node:crypto';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { HvStatus } from '../../host/abi/codes.ts';
import {
  BlockImage,
  dataOffset,
  EPOCH_AT,
  fdIo,
  GROUP_BYTES,
  GROUP_SECTORS,
  type BlockIo,
  HEADER_SIZE,
  ImageError,
  imageFileSize,
  MAX_SECTORS,
  metaOffset,
  META_SIZE,
  NONCE_AT,
  peekHeader,
  SECTOR_SIZE,
  TAG_AT,
  type FileOps,
} from '../../host/storage/image.ts';
import { pattern, prng, SimDisk } from './sim-disk.ts';

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  return { ...real, fsyncSync: vi.fn(real.fsyncSync) };
});

vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, randomFillSync: vi.fn(real.randomFillSync), createDecipheriv: vi.fn(real.createDecipheriv) };
});

const dir = mkdtempSync(join(tmpdir(), 'wv-image-edges-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function readOne(img: BlockImage, s: number): { status: number; data: Buffer } {
  const data = Buffer.alloc(SECTOR_SIZE, 0xee);
  return { status: img.read(s, 1, data), data };
}

/** An engine on a simulated disk of its own: `open()` makes a new engine on the same disk and keys. */
function onSimDisk(sectors: number, seed: number, options: { sealsPerKey?: number } = {}) {
  const disk = new SimDisk(imageFileSize(sectors), prng(seed));
  const keys = { imageId: randomBytes(16), dataKey: randomBytes(32) };
  const open = () => new BlockImage({ fd: -1, io: fdIo(-1, disk), sectorCount: sectors, ...keys, ...options });
  return { disk, keys, open };
}

describe('fdIo over a real file', () => {
  it('reads past the end of the file as zeros, stops at the first read that returns nothing, and reads no more than asked', () => {
    const path = join(dir, 'short.img');
    writeFileSync(path, Buffer.alloc(6000, 0x5a));
    const fd = openSync(path, 'r');
    try {
      const calls: number[] = [];
      // The real readSync, counted (and cut off, so that a loop that never ends fails instead).
      const ops: FileOps = {
        readSync: (f, buf, offset, length, position) => {
          calls.push(position);
          if (calls.length > 4) throw new Error('pread kept reading past the end of the file');
          return readSync(f, buf, offset, length, position);
        },
        writeSync: () => {
          throw new Error('not written here');
        },
        fsyncSync: () => {},
      };
      const io = fdIo(fd, ops);
      const buf = Buffer.alloc(8192, 0xee);
      io.pread(buf, 0);
      expect(buf.subarray(0, 6000).every((x) => x === 0x5a)).toBe(true);
      expect(buf.subarray(6000).every((x) => x === 0)).toBe(true);
      expect(calls).toEqual([0, 6000]);
      // Wholly inside the file: one read, and no second one to find the end.
      const inside = Buffer.alloc(4096, 0xee);
      calls.length = 0;
      io.pread(inside, 1000);
      expect(inside.every((x) => x === 0x5a)).toBe(true);
      expect(calls).toEqual([1000]);
      // Wholly past the end: one read, all zeros.
      const far = Buffer.alloc(4096, 0xee);
      calls.length = 0;
      io.pread(far, 1 << 20);
      expect(far.every((x) => x === 0)).toBe(true);
      expect(calls).toEqual([1 << 20]);
    } finally {
      closeSync(fd);
    }
  });
});

describe('the engine on a file descriptor (no io given)', () => {
  it('fsyncs the file, unless it was opened for durable writes (O_DSYNC: a partition process may not fsync)', () => {
    const fsync = vi.mocked(fs.fsyncSync);
    const keys = { imageId: randomBytes(16), dataKey: randomBytes(32) };
    for (const durableWrites of [undefined, false, true]) {
      const path = join(dir, `fd-${String(durableWrites)}.img`);
      writeFileSync(path, '');
      const fd = openSync(path, durableWrites === true ? fs.constants.O_RDWR | fs.constants.O_DSYNC : 'r+');
      try {
        ftruncateSync(fd, imageFileSize(4));
        fsync.mockClear();
        const img = new BlockImage({ fd, sectorCount: 4, ...keys, durableWrites });
        expect(img.write(1, 1, pattern(7, 1))).toBe(0);
        expect(img.flush()).toBe(0);
        img.close();
        // Open, then the flush: each an fsync of this descriptor, or none at all.
        expect(fsync.mock.calls, String(durableWrites)).toEqual(durableWrites === true ? [] : [[fd], [fd]]);
        const again = new BlockImage({ fd, sectorCount: 4, ...keys, durableWrites });
        expect(readOne(again, 1).data.equals(pattern(7, 1))).toBe(true);
        again.close();
      } finally {
        closeSync(fd);
      }
    }
  });
});

/** A BlockIo over a SimDisk that records every operation: [kind, bytes, position]. */
function recorded(sectors: number) {
  const disk = new SimDisk(imageFileSize(sectors), prng(12));
  const raw = fdIo(-1, disk);
  const log: [string, number, number][] = [];
  const io: BlockIo = {
    pread: (b, p) => (log.push(['pread', b.length, p]), raw.pread(b, p)),
    pwrite: (b, p) => (log.push(['pwrite', b.length, p]), raw.pwrite(b, p)),
    fsync: () => (log.push(['fsync', 0, 0]), raw.fsync()),
  };
  const keys = { imageId: randomBytes(16), dataKey: randomBytes(32) };
  const open = () => new BlockImage({ fd: -1, io, sectorCount: sectors, ...keys });
  return { disk, log, open };
}

describe('what a read reads', () => {
  it('only the sectors asked for: one metadata page, then the ciphertext of each slot letter’s span', () => {
    const { log, open } = recorded(64);
    const img = open();
    expect(img.write(0, 3, Buffer.concat([pattern(1, 0), pattern(2, 1), pattern(3, 2)]))).toBe(0);
    expect(img.flush()).toBe(0);
    const fresh = open();
    log.length = 0;
    expect(readOne(fresh, 1).data.equals(pattern(2, 1))).toBe(true);
    expect(log).toEqual([
      ['pread', 4096, HEADER_SIZE],
      ['pread', SECTOR_SIZE, dataOffset(1, 0)],
    ]);
    log.length = 0;
    const two = Buffer.alloc(2 * SECTOR_SIZE);
    expect(fresh.read(0, 2, two)).toBe(0);
    expect(log).toEqual([['pread', 2 * SECTOR_SIZE, dataOffset(0, 0)]]);
    expect(two.equals(Buffer.concat([pattern(1, 0), pattern(2, 1)]))).toBe(true);
  });

  it('mixed slot letters: each letter’s span from its first sector to its last, no more', () => {
    const { log, open } = recorded(64);
    const img = open();
    expect(img.write(0, 4, Buffer.concat([0, 1, 2, 3].map((s) => pattern(1, s))))).toBe(0); // slot A
    expect(img.flush()).toBe(0);
    expect(img.write(0, 1, pattern(2, 0))).toBe(0); // sector 0 now in slot B
    log.length = 0;
    const out = Buffer.alloc(4 * SECTOR_SIZE);
    expect(img.read(0, 4, out)).toBe(0);
    expect(out.equals(Buffer.concat([pattern(2, 0), pattern(1, 1), pattern(1, 2), pattern(1, 3)]))).toBe(true);
    expect(log).toEqual([
      ['pread', 3 * SECTOR_SIZE, dataOffset(1, 0)],
      ['pread', SECTOR_SIZE, dataOffset(0, 1)],
    ]);
  });

  it('across a group boundary: one request per group, every sector authentic on the first try', () => {
    const { log, open } = recorded(64);
    const img = open();
    const data = Buffer.concat([30, 31, 32, 33].map((s) => pattern(s + 1, s)));
    expect(img.write(30, 4, data)).toBe(0);
    log.length = 0;
    const out = Buffer.alloc(4 * SECTOR_SIZE);
    expect(img.read(30, 4, out)).toBe(0);
    expect(out.equals(data)).toBe(true);
    expect(log).toEqual([
      ['pread', 2 * SECTOR_SIZE, dataOffset(30, 0)],
      ['pread', 2 * SECTOR_SIZE, dataOffset(32, 0)],
    ]);
    expect(img.counters).toEqual({ tornRecovered: 0, integrityFailures: 0, ioErrors: 0 });
  });

  it('a failed read is counted once in ioErrors', () => {
    const { disk, open } = recorded(8);
    const img = open();
    disk.fault = { kind: 'read', index: disk.calls.read };
    expect(readOne(img, 0).status).toBe(HvStatus.IO_ERROR);
    expect(img.counters).toEqual({ tornRecovered: 0, integrityFailures: 0, ioErrors: 1 });
  });
});

describe('first touch', () => {
  it('a write as a fresh engine’s first touch of sectors goes over the older of each one’s two versions (it learns them without reading out), and is the newest', () => {
    const { disk, open } = onSimDisk(8, 16);
    const entry = (s: number, k: number) => {
      const b = Buffer.alloc(META_SIZE);
      disk.readSync(-1, b, 0, META_SIZE, metaOffset(s, k));
      return b;
    };
    const both = (v: number) => Buffer.concat([pattern(v, 4), pattern(v, 5)]);
    const img = open();
    for (const v of [1, 2, 3]) {
      expect(img.write(4, 2, both(v))).toBe(0);
      expect(img.flush()).toBe(0);
    }
    // Slot A of sectors 4 and 5 holds version 3 (gen 3, the newest, flushed), slot B version 2.
    const newest = [entry(4, 0), entry(5, 0)];
    expect(newest.map((e) => e.readUInt32LE(0))).toEqual([3, 3]);
    const fresh = open();
    expect(fresh.write(4, 2, both(4))).toBe(0);
    // Each went over its older version (B), as gen 4: the flushed newest is untouched until the next flush.
    for (const s of [4, 5]) {
      expect(entry(s, 0).equals(newest[s - 4]!), `sector ${s}`).toBe(true);
      expect(entry(s, 1).readUInt32LE(0), `sector ${s}`).toBe(4);
      expect(readOne(fresh, s).data.equals(pattern(4, s))).toBe(true);
    }
    expect(fresh.flush()).toBe(0);
    expect(fresh.counters).toEqual({ tornRecovered: 0, integrityFailures: 0, ioErrors: 0 });
    const out = Buffer.alloc(2 * SECTOR_SIZE);
    expect(open().read(4, 2, out)).toBe(0);
    expect(out.equals(both(4))).toBe(true);
  });

  it('a sector whose newest slot is torn is learned once, at its own first touch: reading it again is no integrity failure', () => {
    const { disk, open } = onSimDisk(8, 17);
    const img = open();
    expect(img.write(5, 1, pattern(1, 5))).toBe(0);
    expect(img.flush()).toBe(0);
    expect(img.write(5, 1, pattern(2, 5))).toBe(0); // slot B, gen 2
    expect(img.flush()).toBe(0);
    disk.writeSync(-1, randomBytes(2048), 0, 2048, dataOffset(5, 1) + 2048); // torn, as a crash leaves it
    disk.fsyncSync();
    const fresh = open();
    // Writing its neighbour does not touch it.
    expect(fresh.write(4, 1, pattern(9, 4))).toBe(0);
    expect(fresh.counters).toEqual({ tornRecovered: 0, integrityFailures: 0, ioErrors: 0 });
    for (let i = 0; i < 3; i++) expect(readOne(fresh, 5).data.equals(pattern(1, 5)), `read ${i}`).toBe(true);
    expect(fresh.counters).toEqual({ tornRecovered: 1, integrityFailures: 0, ioErrors: 0 });
    // A discard does not learn it again either.
    expect(fresh.discard(5, 1)).toBe(0);
    expect(readOne(fresh, 5).data.every((x) => x === 0)).toBe(true);
    expect(fresh.counters).toEqual({ tornRecovered: 1, integrityFailures: 0, ioErrors: 0 });
  });
});

describe('a known slot that stops authenticating', () => {
  it('is relearned from the file: fsync first (what is found is then flushed), its metadata page read again', () => {
    const { disk, log, open } = recorded(64);
    const img = open();
    expect(img.write(36, 1, pattern(1, 36))).toBe(0);
    expect(img.flush()).toBe(0);
    expect(img.write(36, 1, pattern(2, 36))).toBe(0); // slot B
    expect(img.flush()).toBe(0);
    disk.writeSync(-1, Buffer.from([1, 2, 3]), 0, 3, dataOffset(36, 1) + 100);
    disk.fsyncSync();
    log.length = 0;
    expect(readOne(img, 36).data.equals(pattern(1, 36))).toBe(true);
    expect(img.counters).toEqual({ tornRecovered: 1, integrityFailures: 1, ioErrors: 0 });
    expect(log).toEqual([
      ['pread', SECTOR_SIZE, dataOffset(36, 1)],
      ['fsync', 0, 0],
      ['pread', 4096, HEADER_SIZE + GROUP_BYTES],
      ['pread', SECTOR_SIZE, dataOffset(36, 1)],
      ['pread', SECTOR_SIZE, dataOffset(36, 0)],
    ]);
  });

  it('an fsync that fails before relearning fails the image, naming the fsync', () => {
    const { disk, open } = onSimDisk(8, 18);
    const img = open();
    expect(img.write(3, 1, pattern(1, 3))).toBe(0);
    expect(img.flush()).toBe(0);
    expect(img.write(3, 1, pattern(2, 3))).toBe(0);
    expect(img.flush()).toBe(0);
    disk.writeSync(-1, Buffer.from([1, 2, 3]), 0, 3, dataOffset(3, 1) + 100);
    disk.fsyncSync();
    disk.fault = { kind: 'fsync', index: disk.calls.fsync };
    expect(readOne(img, 3).data.equals(pattern(1, 3))).toBe(true);
    expect(img.failed).toMatch(/^fsync failed: EIO/);
    expect(img.write(3, 1, pattern(3, 3))).toBe(HvStatus.IO_ERROR);
  });
});

describe('dirty sectors', () => {
  it('each is listed once until the flush, however often it is written (a guest cannot grow the list)', () => {
    const { open } = recorded(8);
    const img = open();
    const internals = img as unknown as { dirtyList: number[] };
    for (let i = 0; i < 100; i++) expect(img.write(i % 2, 1, pattern(i + 1, i % 2))).toBe(0);
    expect(img.discard(0, 2)).toBe(0);
    expect(internals.dirtyList).toEqual([0, 1]);
    expect(img.flush()).toBe(0);
    expect(internals.dirtyList).toEqual([]);
  });

  it('a write after a discard, before the flush, still has the discarded version’s slot scrubbed', () => {
    const { disk, open } = recorded(8);
    const img = open();
    expect(img.write(3, 1, pattern(1, 3))).toBe(0); // slot A
    expect(img.flush()).toBe(0);
    expect(img.discard(3, 1)).toBe(0); // a zero version in slot B
    expect(img.write(3, 1, pattern(2, 3))).toBe(0); // over it, in slot B
    expect(img.flush()).toBe(0);
    const slotA = Buffer.alloc(META_SIZE + SECTOR_SIZE, 0xee);
    disk.readSync(-1, slotA, 0, META_SIZE, metaOffset(3, 0));
    disk.readSync(-1, slotA, META_SIZE, SECTOR_SIZE, dataOffset(3, 0));
    expect(slotA.every((x) => x === 0)).toBe(true);
    expect(readOne(open(), 3).data.equals(pattern(2, 3))).toBe(true);
  });
});

describe('a write that fails', () => {
  it('has every sector of its run relearned: each reads its flushed version, with no integrity failure', () => {
    const disk = new SimDisk(imageFileSize(8), prng(20));
    const raw = fdIo(-1, disk);
    let failWrites = false;
    // The ciphertext reaches the file whole, then the write reports an error (its entries are never written).
    const io: BlockIo = {
      pread: (b, p) => raw.pread(b, p),
      pwrite: (b, p) => {
        raw.pwrite(b, p);
        if (failWrites) throw new Error('EIO: simulated, after the data was written');
      },
      fsync: () => raw.fsync(),
    };
    const img = new BlockImage({ fd: -1, io, sectorCount: 8, ...{ imageId: randomBytes(16), dataKey: randomBytes(32) } });
    const three = (v: number) => Buffer.concat([0, 1, 2].map((s) => pattern(v, s)));
    expect(img.write(0, 3, three(1))).toBe(0);
    expect(img.flush()).toBe(0);
    expect(img.write(0, 3, three(2))).toBe(0); // slot B, not flushed
    failWrites = true;
    expect(img.write(0, 3, three(3))).toBe(HvStatus.IO_ERROR); // over slot B again: its ciphertext now v3's, its entries v2's
    expect(img.failed).toMatch(/^write failed: EIO/);
    for (let s = 0; s < 3; s++) expect(readOne(img, s).data.equals(pattern(1, s)), `sector ${s}`).toBe(true);
    expect(img.counters.integrityFailures).toBe(0);
  });
});

describe('a discard whose write fails', () => {
  it('stops there: IO_ERROR, the image failed, and no later sector of the request is written', () => {
    const { disk, log, open } = recorded(8);
    const img = open();
    expect(img.write(0, 3, Buffer.concat([0, 1, 2].map((s) => pattern(1, s))))).toBe(0);
    expect(img.flush()).toBe(0);
    disk.fault = { kind: 'eio', index: disk.calls.write }; // the zero version of sector 0
    log.length = 0;
    expect(img.discard(0, 3)).toBe(HvStatus.IO_ERROR);
    expect(img.failed).toMatch(/^write failed: EIO/);
    expect(log.filter(([op]) => op === 'pwrite')).toEqual([['pwrite', SECTOR_SIZE, dataOffset(0, 1)]]);
  });
});

describe('a read that fails while a write learns its sector', () => {
  it('fails that write only: the image does not fail, and the next write succeeds', () => {
    const { disk, open } = onSimDisk(8, 19);
    const img = open();
    expect(img.write(6, 1, pattern(1, 6))).toBe(0);
    expect(img.flush()).toBe(0);
    const fresh = open();
    disk.fault = { kind: 'read', index: disk.calls.read }; // the write's read of sector 6's entries
    expect(fresh.write(6, 1, pattern(2, 6))).toBe(HvStatus.IO_ERROR);
    expect(fresh.failed).toBeNull();
    expect(fresh.counters.ioErrors).toBe(1);
    expect(fresh.write(6, 1, pattern(3, 6))).toBe(0);
    expect(fresh.flush()).toBe(0);
    expect(readOne(open(), 6).data.equals(pattern(3, 6))).toBe(true);
  });
});

describe('the cache of metadata pages', () => {
  it('evicts the least recently used page, not the first read', () => {
    const sectors = 513 * GROUP_SECTORS;
    const { log, open } = recorded(sectors);
    const img = open();
    const out = Buffer.alloc(SECTOR_SIZE);
    for (let g = 0; g < 512; g++) expect(img.read(g * GROUP_SECTORS, 1, out)).toBe(0); // all empty: pages only
    expect(img.read(1, 1, out)).toBe(0); // group 0 again: now the most recently used
    log.length = 0;
    expect(img.read(512 * GROUP_SECTORS, 1, out)).toBe(0); // a 513th page evicts group 1's
    expect(img.read(2, 1, out)).toBe(0);
    expect(img.read(GROUP_SECTORS + 1, 1, out)).toBe(0);
    expect(log).toEqual([
      ['pread', 4096, HEADER_SIZE + 512 * GROUP_BYTES],
      ['pread', 4096, HEADER_SIZE + GROUP_BYTES],
    ]);
  });
});

describe('requests longer than the device’s', () => {
  it('a write and a read of 40 sectors (more than a group, more than a batch) round-trip, in runs of at most 16', () => {
    const { log, open } = recorded(64);
    const img = open();
    const data = Buffer.concat(Array.from({ length: 40 }, (_, s) => pattern(s + 1, s)));
    log.length = 0;
    expect(img.write(0, 40, data)).toBe(0);
    // Runs: sectors 0-15, 16-31, 32-39; each its ciphertext, then its entries.
    expect(log.filter(([op]) => op === 'pwrite')).toEqual([
      ['pwrite', 16 * SECTOR_SIZE, dataOffset(0, 0)],
      ['pwrite', 16 * META_SIZE, metaOffset(0, 0)],
      ['pwrite', 16 * SECTOR_SIZE, dataOffset(16, 0)],
      ['pwrite', 16 * META_SIZE, metaOffset(16, 0)],
      ['pwrite', 8 * SECTOR_SIZE, dataOffset(32, 0)],
      ['pwrite', 8 * META_SIZE, metaOffset(32, 0)],
    ]);
    expect(img.flush()).toBe(0);
    const out = Buffer.alloc(40 * SECTOR_SIZE);
    expect(open().read(0, 40, out)).toBe(0);
    expect(out.equals(data)).toBe(true);
  });
});

describe('close', () => {
  it('zeroes the format-1 key (epoch 0) and the nonce and tag it last handled', () => {
    const disk = new SimDisk(imageFileSize(8), prng(13));
    const keys = { imageId: randomBytes(16), dataKey: randomBytes(32) };
    // A version of sector 3 as format 1 sealed it: epoch 0, the data key itself, AAD = id | sector | gen.
    const entry = Buffer.alloc(META_SIZE);
    entry.writeUInt32LE(1, 0);
    const nonce = randomBytes(12);
    nonce.copy(entry, NONCE_AT);
    const aad = Buffer.alloc(32);
    keys.imageId.copy(aad, 0);
    aad.writeUInt32LE(3, 16);
    aad.writeUInt32LE(1, 24);
    const c = crypto.createCipheriv('aes-256-gcm', keys.dataKey, nonce);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(pattern(9, 3)), c.final()]);
    c.getAuthTag().copy(entry, TAG_AT);
    disk.writeSync(-1, entry, 0, META_SIZE, metaOffset(3, 0));
    disk.writeSync(-1, ct, 0, SECTOR_SIZE, dataOffset(3, 0));
    disk.fsyncSync();
    const img = new BlockImage({ fd: -1, io: fdIo(-1, disk), sectorCount: 8, ...keys });
    expect(readOne(img, 3).data.equals(pattern(9, 3))).toBe(true);
    const internals = img as unknown as { legacyKey: { raw: Buffer } | null; iv: Buffer; tag: Buffer };
    const legacy = internals.legacyKey!.raw;
    expect(legacy.equals(keys.dataKey)).toBe(true);
    expect(internals.iv.equals(nonce) && internals.tag.equals(entry.subarray(TAG_AT, TAG_AT + 16))).toBe(true);
    img.close();
    expect(legacy.every((x) => x === 0)).toBe(true);
    expect(internals.legacyKey).toBeNull();
    expect(internals.iv.every((x) => x === 0) && internals.tag.every((x) => x === 0)).toBe(true);
  });
});

describe('plaintext hygiene', () => {
  it('every plaintext buffer decryption hands the engine is zeroed once copied out', async () => {
    const actual = await vi.importActual<typeof import('node:crypto')>('node:crypto');
    const decipher = vi.mocked(crypto.createDecipheriv);
    const plains: Buffer[] = [];
    decipher.mockImplementation(((...args: Parameters<typeof actual.createDecipheriv>) => {
      const d = actual.createDecipheriv(...args);
      const update = d.update.bind(d) as (data: Buffer) => Buffer;
      d.update = ((data: Buffer) => {
        const plain = update(data);
        plains.push(plain);
        return plain;
      }) as never;
      return d;
    }) as never);
    try {
      const { open } = recorded(8);
      const img = open();
      const data = Buffer.concat([pattern(1, 0), pattern(2, 1), pattern(3, 2)]);
      expect(img.write(0, 3, data)).toBe(0);
      const out = Buffer.alloc(3 * SECTOR_SIZE);
      expect(img.read(0, 3, out)).toBe(0);
      expect(open().read(0, 3, out)).toBe(0); // first touch: learned from the file
      expect(out.equals(data)).toBe(true);
      expect(plains.length).toBe(6);
      expect(plains.every((p) => p.length === SECTOR_SIZE && p.every((x) => x === 0))).toBe(true);
    } finally {
      decipher.mockImplementation(actual.createDecipheriv);
    }
  });
});

describe('the scrub of a discarded sector’s older slot (at flush)', () => {
  it('a failed scrub write fails the flush and the image, naming the write; the sector still reads as zeros', () => {
    const { disk, open } = onSimDisk(8, 14);
    const img = open();
    expect(img.write(2, 1, pattern(1, 2))).toBe(0);
    expect(img.flush()).toBe(0);
    expect(img.discard(2, 1)).toBe(0);
    disk.fault = { kind: 'eio', index: disk.calls.write }; // the flush's first write: the scrub
    expect(img.flush()).toBe(HvStatus.IO_ERROR);
    expect(img.failed).toMatch(/^write failed: EIO/);
    expect(readOne(img, 2).data.every((x) => x === 0)).toBe(true);
    expect(img.write(3, 1, pattern(2, 3))).toBe(HvStatus.IO_ERROR);
    disk.powerLoss();
    expect(readOne(open(), 2).data.every((x) => x === 0)).toBe(true);
  });

  it('a failed fsync after the scrub fails the flush and the image, naming the fsync', () => {
    const { disk, open } = onSimDisk(8, 15);
    const img = open();
    expect(img.write(2, 1, pattern(1, 2))).toBe(0);
    expect(img.flush()).toBe(0);
    expect(img.discard(2, 1)).toBe(0);
    disk.fault = { kind: 'fsync', index: disk.calls.fsync + 1 }; // the flush's second fsync
    expect(img.flush()).toBe(HvStatus.IO_ERROR);
    expect(disk.fired).toBe('fsync');
    expect(img.failed).toMatch(/^fsync failed: EIO/);
  });
});

describe('fdIo’s errors', () => {
  it('a write that stops making progress names the offset it stopped at', () => {
    const lengths: number[] = [];
    const ops: FileOps = {
      readSync: () => 0,
      // 3 bytes, then nothing: the second call is at 100 + 3.
      writeSync: (_fd, _buf, _off, len) => (lengths.push(len), lengths.length === 1 ? 3 : 0),
      fsyncSync: () => {},
    };
    expect(() => fdIo(3, ops).pwrite(Buffer.alloc(10), 100)).toThrow(/^write at 103 made no progress$/);
    expect(lengths).toEqual([10, 7]);
  });
});

describe('header errors', () => {
  it('are ImageErrors by name, as a log prints them', () => {
    const error = (() => {
      try {
        peekHeader(Buffer.alloc(HEADER_SIZE));
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(ImageError);
    expect(error!.name).toBe('ImageError');
    expect(String(error)).toBe('ImageError: the file is not a wasmvisor block image');
  });
});

describe('the engine’s bounds', () => {
  it('refuses a sector count outside 1..MAX_SECTORS and a sealsPerKey outside 1..2^30, naming them; accepts both ends', () => {
    const keys = { imageId: randomBytes(16), dataKey: randomBytes(32) };
    const make = (sectorCount: number) => new BlockImage({ fd: -1, io: fdIo(-1, new SimDisk(8192)), sectorCount, ...keys });
    for (const bad of [0, -1, 1.5, Number.NaN, MAX_SECTORS + 1]) {
      expect(() => make(bad), String(bad)).toThrow(RangeError);
      expect(() => make(bad), String(bad)).toThrow(`sector count ${bad} is out of range`);
    }
    for (const sealsPerKey of [0, -1, 1.5, Number.NaN, 2 ** 30 + 1]) {
      expect(() => new BlockImage({ fd: -1, io: fdIo(-1, new SimDisk(8192)), sectorCount: 1, ...keys, sealsPerKey })).toThrow(
        new RangeError(`sealsPerKey ${sealsPerKey} is out of range`),
      );
    }
    expect(make(1).sectorCount).toBe(1);
    const largest = make(MAX_SECTORS);
    expect(largest.sectorCount).toBe(MAX_SECTORS);
    expect(readOne(largest, MAX_SECTORS - 1).data.every((x) => x === 0)).toBe(true);
    largest.close();
  });
});

/**
 * Makes the engine's next random draw return `first`: an engine's first draw is its epoch (at its
 * first write), then its pool of nonces. Every other draw is the real one.
 */
function draws(first: Buffer): void {
  const fill = vi.mocked(crypto.randomFillSync);
  fill.mockClear();
  fill.mockImplementationOnce(<T extends NodeJS.ArrayBufferView>(buf: T): T => {
    first.copy(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
    return buf;
  });
}

/** An epoch id from its two words. */
const epoch = (lo: number, hi: number) => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(lo, 0);
  b.writeUInt32LE(hi, 4);
  return b;
};

describe('key epochs', () => {
  /** Internals the cache test watches: the keys of older epochs, least recently used first. */
  type Internals = { epochKeys: Map<bigint, { raw: Buffer }> };

  it('keeps at most 32 keys of older epochs: the least recently used is zeroed and dropped, and derived again when needed', () => {
    const sectors = 40;
    const { open } = onSimDisk(sectors, 3, { sealsPerKey: 1 });
    const writer = open();
    // One sealing per key: each sector's version is under an epoch of its own.
    for (let s = 0; s < sectors; s++) expect(writer.write(s, 1, pattern(s + 1, s))).toBe(0);
    expect(writer.flush()).toBe(0);
    writer.close();
    const reader = open();
    const cache = (reader as unknown as Internals).epochKeys;
    for (let s = 0; s < 32; s++) expect(readOne(reader, s).data.equals(pattern(s + 1, s))).toBe(true);
    expect(cache.size).toBe(32);
    const [key0, key1] = [...cache.values()];
    expect(key0!.raw.some((x) => x !== 0) && key1!.raw.some((x) => x !== 0)).toBe(true);
    // Sector 0 again: its key is found (the same one, not derived again) and becomes the most recently used.
    expect(readOne(reader, 0).data.equals(pattern(1, 0))).toBe(true);
    expect([...cache.values()].at(-1)).toBe(key0);
    expect(cache.size).toBe(32);
    // The 33rd epoch evicts the least recently used one (sector 1's), zeroing its key.
    expect(readOne(reader, 32).data.equals(pattern(33, 32))).toBe(true);
    expect(cache.size).toBe(32);
    expect(key1!.raw.every((x) => x === 0)).toBe(true);
    expect(key0!.raw.some((x) => x !== 0)).toBe(true);
    for (let s = 33; s < sectors; s++) expect(readOne(reader, s).data.equals(pattern(s + 1, s))).toBe(true);
    expect(cache.size).toBe(32);
    // Sector 1 was learned: it reads from its known slot with its epoch's key derived again.
    expect(readOne(reader, 1).data.equals(pattern(2, 1))).toBe(true);
    expect(cache.size).toBe(32);
    reader.close();
  });

  it('epochs that share a word are told apart: by the engine sealing under one, and by the cache of the others', () => {
    const sectors = 8;
    const { keys, open } = onSimDisk(sectors, 5);
    // Sector s is written by an engine sealing under epochs[s].
    const epochs = [epoch(5, 1), epoch(5, 2), epoch(6, 1), epoch(6, 2)];
    epochs.forEach((e, s) => {
      draws(e);
      const img = open();
      // Before its own write, this engine reads the earlier sectors (their keys are not its own).
      for (let t = 0; t < s; t++) expect(readOne(img, t).data.equals(pattern(t + 1, t)), `sector ${t} before write ${s}`).toBe(true);
      expect(img.write(s, 1, pattern(s + 1, s))).toBe(0);
      // After it, its epoch shares a word with some of theirs: each still opens with its own key.
      const fresh = open();
      for (let t = 0; t <= s; t++) {
        expect(readOne(img, t).data.equals(pattern(t + 1, t)), `sector ${t} after write ${s}`).toBe(true);
        expect(readOne(fresh, t).data.equals(pattern(t + 1, t)), `sector ${t} from a fresh engine`).toBe(true);
      }
      expect(img.counters).toEqual({ tornRecovered: 0, integrityFailures: 0, ioErrors: 0 });
      expect(img.flush()).toBe(0);
      img.close();
    });
    // One engine reads all four, in an order that finds each epoch's key in the cache after another's.
    const reader = open();
    for (const t of [0, 1, 2, 3, 1, 0, 3, 2]) expect(readOne(reader, t).data.equals(pattern(t + 1, t)), `sector ${t}`).toBe(true);
    expect(reader.counters).toEqual({ tornRecovered: 0, integrityFailures: 0, ioErrors: 0 });
  });

  it('a rotation keeps the previous epoch’s key for reading, and close zeroes it', () => {
    const { open } = onSimDisk(8, 6, { sealsPerKey: 2 });
    const img = open();
    const internals = img as unknown as { epochKey: { raw: Buffer } | null; epochKeys: Map<bigint, { raw: Buffer }> };
    expect(img.write(0, 2, Buffer.concat([pattern(1, 0), pattern(2, 1)]))).toBe(0);
    const first = internals.epochKey!;
    expect(internals.epochKeys.size).toBe(0);
    expect(img.write(2, 1, pattern(3, 2))).toBe(0); // the third sealing: a new epoch
    expect(internals.epochKey).not.toBe(first);
    expect([...internals.epochKeys.values()]).toEqual([first]);
    expect(first.raw.some((x) => x !== 0)).toBe(true);
    for (let s = 0; s < 3; s++) expect(readOne(img, s).data.equals(pattern(s + 1, s))).toBe(true);
    expect(internals.epochKeys.size).toBe(1);
    img.close();
    expect(first.raw.every((x) => x === 0)).toBe(true);
  });

  it('nonces are drawn from the CSPRNG 256 at a time: 600 writes, three draws', () => {
    const fill = vi.mocked(crypto.randomFillSync);
    const { open } = recorded(8);
    const img = open();
    fill.mockClear();
    for (let i = 0; i < 600; i++) expect(img.write(i % 8, 1, pattern(i + 1, i % 8))).toBe(0);
    expect(fill.mock.calls.map(([b]) => (b as Buffer).byteLength)).toEqual([8, 12 * 256, 12 * 256, 12 * 256]);
  });

  it('an epoch is drawn again when it comes out all zeros (epoch 0 is the data key itself), and only then', () => {
    const fill = vi.mocked(crypto.randomFillSync);
    const { disk, open } = onSimDisk(8, 4);
    const epochOf = (s: number) => {
      const entry = Buffer.alloc(META_SIZE);
      disk.readSync(-1, entry, 0, META_SIZE, metaOffset(s, 0));
      return entry.subarray(EPOCH_AT, EPOCH_AT + 8);
    };
    draws(Buffer.alloc(8));
    const img = open();
    expect(img.write(0, 1, pattern(1, 0))).toBe(0);
    expect(fill.mock.calls.filter(([b]) => (b as Buffer).byteLength === 8)).toHaveLength(2);
    expect(epochOf(0).equals(Buffer.alloc(8))).toBe(false);
    expect(img.flush()).toBe(0);
    expect(readOne(open(), 0).data.equals(pattern(1, 0))).toBe(true);
    // An epoch with a zero low word (or a zero high word) is not all zeros: it is kept.
    for (const [s, first] of [
      [1, Buffer.from('0000000001000000', 'hex')],
      [2, Buffer.from('0100000000000000', 'hex')],
    ] as const) {
      draws(first);
      const other = open();
      expect(other.write(s, 1, pattern(s + 1, s))).toBe(0);
      expect(fill.mock.calls.filter(([b]) => (b as Buffer).byteLength === 8)).toHaveLength(1);
      expect(epochOf(s).equals(first)).toBe(true);
      expect(other.flush()).toBe(0);
      expect(readOne(open(), s).data.equals(pattern(s + 1, s))).toBe(true);
    }
  });
});
