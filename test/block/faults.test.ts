/**
 * I/O errors under the block engine (issue #18, item 1). A failing write or fsync must never cost
 * a flushed sector: the slot a failed write tore never becomes the sector's newest, a failure is
 * sticky (every later write, discard and flush is IO_ERROR until the image is opened again, as
 * PostgreSQL treats fsync errors since 2018), and a full disk shared by two images costs neither
 * its flushed data.
 *
 * The sweep at the end injects each kind of failure (ENOSPC, EIO, short write, fsync EIO, read
 * EIO) at every step of seeded workloads, on the simulated disk of sim-disk.ts, and checks the
 * promises after the failure, after a power cut, and after reopening.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HvStatus } from '../../host/abi/codes.ts';
import { BlockImage, dataOffset, fdIo, imageFileSize, SECTOR_SIZE, type FileOps } from '../../host/storage/image.ts';
import { pattern, prng, SectorModel, SimDisk, Space, type Fault, type FaultKind } from './sim-disk.ts';
import { budget, mutating } from '../helpers.ts';

const SECTORS = 6;

function engine(disk: SimDisk, keys = { imageId: randomBytes(16), dataKey: randomBytes(32) }, sectors = SECTORS) {
  const img = new BlockImage({ fd: -1, io: fdIo(-1, disk), sectorCount: sectors, ...keys });
  return { img, reopen: () => new BlockImage({ fd: -1, io: fdIo(-1, disk), sectorCount: sectors, ...keys }) };
}

function readOne(img: BlockImage, s: number): { status: number; data: Buffer } {
  const data = Buffer.alloc(SECTOR_SIZE, 0xee);
  return { status: img.read(s, 1, data), data };
}

describe('I/O errors in the block engine', () => {
  it('a write that fails part-way never hides the flushed version, and every later write, discard and flush is IO_ERROR', () => {
    const disk = new SimDisk(imageFileSize(SECTORS), prng(7));
    const { img, reopen } = engine(disk);
    expect(img.write(0, 1, pattern(1, 0))).toBe(0);
    expect(img.flush()).toBe(0);
    expect(img.write(0, 1, pattern(2, 0))).toBe(0); // slot B, unflushed
    disk.fault = { kind: 'eio', index: disk.calls.write }; // v3 overwrites B and tears it
    expect(img.write(0, 1, pattern(3, 0))).toBe(HvStatus.IO_ERROR);
    expect(img.failed).toMatch(/write failed/);
    // The torn slot is not the newest: the read falls back to the flushed v1 (before: INTEGRITY).
    const r = readOne(img, 0);
    expect(r.status).toBe(0);
    expect(r.data.equals(pattern(1, 0))).toBe(true);
    // Sticky: nothing more is written, and a flush never reports success for lost data.
    expect(img.flush()).toBe(HvStatus.IO_ERROR);
    expect(img.write(0, 1, pattern(4, 0))).toBe(HvStatus.IO_ERROR);
    expect(img.write(1, 1, pattern(4, 1))).toBe(HvStatus.IO_ERROR);
    expect(img.discard(0, 1)).toBe(HvStatus.IO_ERROR);
    expect(img.counters.ioErrors).toBe(1);
    // Reopening (after a power cut) learns from disk: v1 survived, and the image works again.
    img.close();
    disk.powerLoss();
    const again = reopen();
    expect(again.failed).toBeNull();
    expect(readOne(again, 0).data.equals(pattern(1, 0))).toBe(true);
    expect(again.write(0, 1, pattern(5, 0))).toBe(0);
    expect(again.flush()).toBe(0);
    expect(readOne(again, 0).data.equals(pattern(5, 0))).toBe(true);
  });

  it('a failed fsync is never retried into a success (Linux reports a writeback error once)', () => {
    const disk = new SimDisk(imageFileSize(SECTORS), prng(3));
    const { img } = engine(disk);
    expect(img.write(2, 1, pattern(1, 2))).toBe(0);
    disk.fault = { kind: 'fsync', index: disk.calls.fsync };
    expect(img.flush()).toBe(HvStatus.IO_ERROR);
    // The disk's next fsync would succeed; the engine must not say the data is durable.
    expect(img.flush()).toBe(HvStatus.IO_ERROR);
    expect(img.write(3, 1, pattern(2, 3))).toBe(HvStatus.IO_ERROR);
    expect(img.failed).toMatch(/fsync failed/);
  });

  it('an fsync that fails when the image is opened leaves it readable and refuses writes', () => {
    const disk = new SimDisk(imageFileSize(SECTORS), prng(4));
    const keys = { imageId: randomBytes(16), dataKey: randomBytes(32) };
    const first = engine(disk, keys).img;
    first.write(1, 1, pattern(9, 1));
    first.flush();
    first.close();
    disk.fault = { kind: 'fsync', index: disk.calls.fsync };
    const img = engine(disk, keys).img;
    expect(img.failed).toMatch(/fsync on open failed/);
    expect(readOne(img, 1).data.equals(pattern(9, 1))).toBe(true);
    expect(img.write(1, 1, pattern(10, 1))).toBe(HvStatus.IO_ERROR);
  });

  it('a failed read is reported and is not sticky', () => {
    const disk = new SimDisk(imageFileSize(SECTORS), prng(5));
    const { img } = engine(disk);
    disk.fault = { kind: 'read', index: disk.calls.read };
    expect(readOne(img, 0).status).toBe(HvStatus.IO_ERROR);
    expect(img.failed).toBeNull();
    expect(img.write(0, 1, pattern(1, 0))).toBe(0);
    expect(img.flush()).toBe(0);
  });

  it('a known slot that stops authenticating falls back to the other slot', () => {
    const disk = new SimDisk(imageFileSize(SECTORS), prng(6));
    const { img } = engine(disk);
    img.write(4, 1, pattern(1, 4));
    img.flush();
    img.write(4, 1, pattern(2, 4)); // slot B
    img.flush();
    expect(readOne(img, 4).data.equals(pattern(2, 4))).toBe(true);
    // Someone damages slot B under the running engine.
    disk.writeSync(-1, Buffer.from([1, 2, 3]), 0, 3, dataOffset(4, 1) + 200);
    disk.fsyncSync();
    const r = readOne(img, 4);
    expect(r.status).toBe(0);
    expect(r.data.equals(pattern(1, 4))).toBe(true);
    expect(img.counters.integrityFailures).toBe(1);
    // The next write replaces the damaged slot, never the intact one.
    expect(img.write(4, 1, pattern(3, 4))).toBe(0);
    expect(img.flush()).toBe(0);
    expect(readOne(img, 4).data.equals(pattern(3, 4))).toBe(true);
  });

  it('one image filling a shared file system never costs another image its flushed data', () => {
    // Two images on one simulated file system with room for a few hundred blocks.
    const space = new Space(100);
    const sectors = 64;
    const diskA = new SimDisk(imageFileSize(sectors), prng(11), space);
    const diskB = new SimDisk(imageFileSize(sectors), prng(12), space);
    const a = engine(diskA, undefined, sectors);
    const b = engine(diskB, undefined, sectors);
    for (let s = 0; s < 8; s++) expect(b.img.write(s, 1, pattern(100 + s, s))).toBe(0);
    expect(b.img.flush()).toBe(0);
    // A writes until the file system is full.
    let status = 0;
    let written = 0;
    for (let round = 1; status === 0 && round < 100; round++) {
      for (let s = 0; s < sectors && status === 0; s++) {
        status = a.img.write(s, 1, pattern(round * 1000 + s, s));
        if (status === 0) written++;
      }
      if (status === 0) status = a.img.flush();
    }
    expect(status).toBe(HvStatus.IO_ERROR);
    expect(written).toBeGreaterThan(0);
    expect(space.freeBlocks).toBe(0);
    // B, rewriting its flushed sectors (the other slots need new blocks), fails too, and loses nothing.
    let bStatus = 0;
    for (let s = 0; s < 8 && bStatus === 0; s++) bStatus = b.img.write(s, 1, pattern(200 + s, s));
    expect(bStatus).toBe(HvStatus.IO_ERROR);
    expect(b.img.flush()).toBe(HvStatus.IO_ERROR);
    b.img.close();
    diskB.powerLoss();
    const b2 = b.reopen();
    for (let s = 0; s < 8; s++) {
      const r = readOne(b2, s);
      expect(r.status).toBe(0);
      expect(r.data.equals(pattern(100 + s, s)) || r.data.equals(pattern(200 + s, s)), `sector ${s} of B`).toBe(true);
    }
  });

  it('short writes are continued to the end; a write that makes no progress is an error', () => {
    const file = Buffer.alloc(8192);
    const calls: number[] = [];
    const ops: FileOps = {
      readSync: (_fd, buf, off, len, pos) => (file.copy(buf, off, pos, pos + Math.min(len, 7)), Math.min(len, 7, file.length - pos)),
      writeSync: (_fd, buf, off, len, pos) => {
        const n = Math.min(len, 1000);
        calls.push(n);
        file.set(buf.subarray(off, off + n), pos);
        return n;
      },
      fsyncSync: () => undefined,
    };
    const io = fdIo(3, ops);
    io.pwrite(Buffer.alloc(4096, 9), 100);
    expect(calls).toEqual([1000, 1000, 1000, 1000, 96]);
    expect(file.subarray(100, 4196).every((x) => x === 9)).toBe(true);
    const back = Buffer.alloc(4096);
    io.pread(back, 100);
    expect(back.every((x) => x === 9)).toBe(true);
    const stuck = fdIo(3, { ...ops, writeSync: () => 0 });
    expect(() => stuck.pwrite(Buffer.alloc(10), 0)).toThrow(/no progress/);
  });
});

/**
 * One seeded workload with an optional fault. Checks, and returns as problems: after a write or
 * fsync fault, every later write, discard and flush is IO_ERROR; reads never go back before the
 * last flush; after a power cut and a reopen every sector reads, whole, no older than the last
 * flush, and the image takes writes again.
 */
function sweep(seed: number, ops: number, fault: Fault | null): { problems: string[]; calls: SimDisk['calls'] } {
  const rnd = prng(seed);
  const disk = new SimDisk(imageFileSize(SECTORS), prng(seed * 31 + 1));
  const keys = { imageId: randomBytes(16), dataKey: randomBytes(32) };
  const img = new BlockImage({ fd: -1, io: fdIo(-1, disk), sectorCount: SECTORS, ...keys });
  disk.fault = fault;
  const model = new SectorModel(SECTORS);
  model.durable();
  const problems: string[] = [];
  const buf = Buffer.alloc(SECTOR_SIZE);
  let nextId = 1;
  // Write, ENOSPC/EIO and fsync failures are sticky; a short write is no failure at all; a read failure fails only its request.
  const sticky = () => disk.fired === 'enospc' || disk.fired === 'eio' || disk.fired === 'fsync';
  for (let op = 0; op < ops && problems.length === 0; op++) {
    const r = rnd();
    const s = Math.floor(rnd() * SECTORS);
    const wasSticky = sticky();
    const before = disk.fired;
    const readFailedNow = () => before === null && disk.fired === 'read';
    if (r < 0.5) {
      // 1 to 3 sectors: a failure may hit a run of several in one write.
      const n = Math.min(SECTORS - s, 1 + Math.floor(rnd() * 3));
      const ids = Array.from({ length: n }, () => nextId++);
      const status = img.write(s, n, Buffer.concat(ids.map((id, j) => pattern(id, s + j))));
      // A write that failed part-way may have written some of its sectors: each may read as the
      // new version or as an older one (never before the last flush). One that failed on a read
      // (learning its sectors) wrote nothing.
      if (status === 0 || (sticky() && !wasSticky)) ids.forEach((id, j) => model.wrote(s + j, id));
      if (status !== 0 && !sticky() && !readFailedNow()) problems.push(`op ${op}: write failed (${status}) with no write fault`);
      if (wasSticky && status !== HvStatus.IO_ERROR) problems.push(`op ${op}: write after a failure returned ${status}`);
    } else if (r < 0.6) {
      const status = img.discard(s, 1);
      if (status === 0) model.wrote(s, 0);
      else if (!sticky() && !readFailedNow()) problems.push(`op ${op}: discard failed (${status}) with no fault`);
      if (wasSticky && status !== HvStatus.IO_ERROR) problems.push(`op ${op}: discard after a failure returned ${status}`);
    } else if (r < 0.75) {
      const status = img.flush();
      if (status === 0) model.durable();
      if (status === 0 && wasSticky) problems.push(`op ${op}: flush after a failure succeeded`);
      if (status !== 0 && !sticky()) problems.push(`op ${op}: flush failed (${status}) with no fault`);
    } else {
      const status = img.read(s, 1, buf);
      if (status === HvStatus.IO_ERROR && readFailedNow()) continue;
      const problem = status !== 0 ? `reads status ${status}` : model.check(s, buf);
      if (problem) problems.push(`op ${op}: read of ${problem}`);
    }
  }
  // Power cut, reboot: every sector whole and no older than the last flush; writes work again.
  const calls = { ...disk.calls };
  img.close();
  disk.fault = null;
  disk.powerLoss();
  const again = new BlockImage({ fd: -1, io: fdIo(-1, disk), sectorCount: SECTORS, ...keys });
  for (let s = 0; s < SECTORS; s++) {
    const status = again.read(s, 1, buf);
    const problem = status !== 0 ? `sector ${s} reads status ${status}` : model.check(s, buf, true);
    if (problem) problems.push(`after reboot: ${problem}`);
  }
  if (again.write(0, 1, pattern(1e6, 0)) !== 0 || again.flush() !== 0) problems.push('after reboot: the image does not take writes');
  again.close();
  return { problems, calls };
}

/** Operations per workload: each of its file operations gets a failure of each kind in its own run. */
const OPS = mutating ? 50 : 80;

describe('a failure at every step', () => {
  it('ENOSPC, EIO and short writes, fsync and read failures at every step of seeded workloads lose no flushed sector', () => {
    let runs = 0;
    for (const seed of mutating ? [1] : [1, 2]) {
      const clean = sweep(seed, OPS, null);
      expect(clean.problems, `seed ${seed} without faults`).toEqual([]);
      const plan: [FaultKind, number][] = [
        ['enospc', clean.calls.write],
        ['eio', clean.calls.write],
        ['short', clean.calls.write],
        ['fsync', clean.calls.fsync],
        ['read', clean.calls.read],
      ];
      for (const [kind, count] of plan) {
        for (let index = 0; index < count; index++) {
          const { problems } = sweep(seed, OPS, { kind, index });
          expect(problems, `seed ${seed}, ${kind} at call ${index}`).toEqual([]);
          runs++;
        }
      }
    }
    console.log(`fault sweep: ${runs} runs`);
    expect(runs).toBeGreaterThan(mutating ? 100 : 300);
  }, budget(300_000));
});
