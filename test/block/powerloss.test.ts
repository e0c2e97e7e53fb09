/**
 * The crash argument of docs/STORAGE.md under power loss, which a SIGKILL test cannot produce:
 * the real sector engine runs on a simulated disk with a volatile write cache (sim-disk.ts). A
 * power cut keeps, drops or tears (per 512-byte device sector) each write since the last fsync, in
 * any order; a process crash keeps the cache. A seeded random workload of writes, discards,
 * flushes, process crashes and power cuts runs on a small disk, and after every crash each sector
 * must read, be one whole version, and be no older than its newest version at the last
 * durability point.
 *
 * Negative control: the same workload with the engine's fsync-on-open disabled must lose flushed
 * data, which shows the harness can see the failure that the fsync prevents.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BlockImage, fdIo, imageFileSize, SECTOR_SIZE } from '../../host/storage/image.ts';
import { pattern, prng, SectorModel, SimDisk } from './sim-disk.ts';
import { budget, mutating } from '../helpers.ts';

/** The disk has 40 sectors; the workload uses 24..39, across the boundary between two groups (32). */
const SECTORS = 40;
const FIRST = 24;
const SEEDS = mutating ? [1, 2, 3, 4] : [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const OPS = mutating ? 600 : 1000;

/** Runs a workload; returns the violations found (empty when the engine keeps its promises). */
function run(seed: number, ops: number, syncOnOpen: boolean): string[] {
  const rnd = prng(seed);
  const disk = new SimDisk(imageFileSize(SECTORS), rnd);
  const imageId = randomBytes(16);
  const dataKey = randomBytes(32);
  const open = () => new BlockImage({ fd: -1, io: fdIo(-1, disk), sectorCount: SECTORS, imageId, dataKey, syncOnOpen });
  let img = open();
  const model = new SectorModel(SECTORS);
  const problems: string[] = [];
  let nextId = 1;
  const buf = Buffer.alloc(4 * SECTOR_SIZE);

  const verifyAfterCrash = (what: string, op: number) => {
    for (let s = FIRST; s < SECTORS; s++) {
      const one = buf.subarray(0, SECTOR_SIZE);
      const status = img.read(s, 1, one);
      const problem = status !== 0 ? `sector ${s} reads status ${status}` : model.check(s, one, true);
      if (problem) problems.push(`${what} at op ${op}: ${problem}`);
    }
    // With fsync-on-open, what a boot finds is durable.
    if (syncOnOpen) model.durable();
  };

  for (let op = 0; op < ops && problems.length === 0; op++) {
    const r = rnd();
    const s = FIRST + Math.floor(rnd() * (SECTORS - FIRST));
    // Requests of 1 to 4 sectors: runs of several sectors in one slot letter, and across groups.
    const n = Math.min(SECTORS - s, 1 + Math.floor(rnd() * 4));
    if (r < 0.5) {
      const ids = Array.from({ length: n }, () => nextId++);
      expect(img.write(s, n, Buffer.concat(ids.map((id, j) => pattern(id, s + j))))).toBe(0);
      ids.forEach((id, j) => model.wrote(s + j, id));
    } else if (r < 0.58) {
      expect(img.discard(s, n)).toBe(0);
      for (let j = 0; j < n; j++) model.wrote(s + j, 0);
    } else if (r < 0.72) {
      expect(img.flush()).toBe(0);
      model.durable();
    } else if (r < 0.86) {
      // Process crash: the page cache survives; a new boot opens the image.
      img.close();
      img = open();
      verifyAfterCrash('process crash', op);
    } else if (r < 0.94) {
      img.close();
      disk.powerLoss();
      img = open();
      verifyAfterCrash('power loss', op);
    } else {
      // While running, a read returns the newest write.
      const out = buf.subarray(0, n * SECTOR_SIZE);
      const status = img.read(s, n, out);
      for (let j = 0; j < n; j++) {
        const id = model.history[s + j]!.at(-1)!;
        if (status !== 0 || !out.subarray(j * SECTOR_SIZE, (j + 1) * SECTOR_SIZE).equals(pattern(id, s + j))) {
          problems.push(`read of sector ${s + j} at op ${op} is not its newest write`);
        }
      }
    }
  }
  return problems;
}

describe('crash consistency under simulated power loss', () => {
  it('no torn sector, no lost flush, over random workloads with process crashes and power cuts', () => {
    for (const seed of SEEDS) expect(run(seed, OPS, true), `seed ${seed}`).toEqual([]);
    // A hang guard, not a speed test: about 10 s on an idle 2-core machine, several times that under load.
  }, budget(300_000));

  it('negative control: without fsync on open, the harness does catch lost flushed data', () => {
    const problems = SEEDS.flatMap((seed) => run(seed, OPS, false));
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join('\n')).toMatch(/power loss/);
  }, budget(120_000));
});
