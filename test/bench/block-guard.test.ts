/**
 * Bench guard for the block device (issue #16): a guest's block I/O may not regress, measured only
 * as a ratio to Node's fs on a plain file in the same run, never as a time. bench/block.mjs
 * measures the whole guest path (worker, wasm, SDK); this guard drives the same layers below the
 * guest in-thread (bench/lib/block-layers.ts), so it is quick and steady: BLOCK_READ / BLOCK_WRITE /
 * BLOCK_FLUSH hypercalls through the real Dispatcher and GuestMemory into the real BlockDevice and
 * BlockImage on a real file (AES-256-GCM, every sector authenticated), against readSync /
 * writeSync / fsyncSync doing the same operations on a plain file.
 *
 * Rows: random 4 KiB reads, random 4 KiB writes, sequential 64 KiB reads (one call) and sequential
 * 64 KiB writes (15 + 1 sectors, as the SDK splits them); writes are flushed after each timed run,
 * untimed (below). Time is the
 * process's CPU time (process.cpuUsage): a run preempted on a shared machine does not count the
 * other tenants' time. Each round measures ours and fs alternately; each side's median over the
 * rounds makes the ratio fs/ours (the throughput ratio).
 *
 * Ratios on the 2-core development machine under a load average of 11-15 (docs/STORAGE.md,
 * "Performance" says why they are this low): random read 0.088-0.105, random write 0.083-0.19
 * (the noisiest: page-cache writes), sequential 64 KiB read 0.030-0.036, sequential 64 KiB write
 * 0.040-0.065. Each floor is about half the lowest (random write: 0.72 of it). The same path made
 * 3x slower (each timed run done three times) measured 0.042-0.060, 0.053-0.079, 0.012-0.014 and
 * 0.015-0.020, and failed every time (the sequential rows always, the random ones mostly), while
 * noise up to about 2x passes. A row under its floor is measured again, up to three times in all,
 * and its best ratio counts, so one burst of load on the machine cannot fail the suite alone.
 */
import { fsyncSync, ftruncateSync, mkdtempSync, openSync, closeSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { blockLayers } from '../../bench/lib/block-layers.ts';
import { HV_BLOCK_MAX_WRITE_SECTORS, HV_BLOCK_SECTOR_SIZE } from '../../host/abi/codes.ts';
import { Storage } from '../../host/storage/storage.ts';

const S = HV_BLOCK_SECTOR_SIZE;
const MIB = 8;
const SECTORS = (MIB * 1048576) / S;
const OPS = 1024;
const ROUNDS = 9;
/** Lowest throughput ratio ours/fs allowed per row (see above). */
const FLOORS = { 'rand-read-4k': 0.045, 'rand-write-4k': 0.06, 'seq-read-64k': 0.016, 'seq-write-64k': 0.024 } as const;
type Row = keyof typeof FLOORS;

function order(seed: number): number[] {
  let x = seed;
  return Array.from({ length: OPS }, () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) >>> 8) % SECTORS);
}

function cpu(fn: () => void): number {
  const t0 = process.cpuUsage();
  fn();
  const t = process.cpuUsage(t0);
  return t.user + t.system;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

describe('bench guard: block device (ratio to node:fs on a plain file in the same run)', () => {
  it('random 4 KiB and sequential 64 KiB reads and writes stay within 3x of their usual ratio to fs', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wv-block-guard-'));
    const storage = new Storage({ dataDir: dir, masterKey: new Uint8Array(32).fill(3) });
    const ours = await blockLayers(storage, 'guard', MIB);
    const fd = openSync(path.join(dir, 'plain'), 'w+');
    ftruncateSync(fd, SECTORS * S);
    const buf = Buffer.alloc(16 * S, 7);
    try {
      // Both sides hold data everywhere before reads are timed (reads of unwritten sectors would
      // cost the engine no cipher work).
      for (let s = 0; s < SECTORS; s += HV_BLOCK_MAX_WRITE_SECTORS) ours.write(s, Math.min(HV_BLOCK_MAX_WRITE_SECTORS, SECTORS - s));
      ours.flush();
      for (let s = 0; s < SECTORS; s += 16) writeSync(fd, buf, 0, 16 * S, s * S);
      fsyncSync(fd);

      const sync = () => {
        ours.flush();
        fsyncSync(fd);
      };
      const writes = order(1);
      const reads = order(2);
      // Writes are timed without their flush (made after each timed run, on both sides): the
      // kernel's writeback work lands partly on its own threads, which the CPU time of this
      // process does not see, so a timed fsync only adds noise. Flush semantics have their own tests.
      const sides: Record<Row, [() => void, () => void, (() => void) | null]> = {
        'rand-read-4k': [() => reads.forEach((s) => ours.read(s, 1)), () => reads.forEach((s) => readSync(fd, buf, 0, S, s * S)), null],
        'rand-write-4k': [() => writes.forEach((s) => ours.write(s, 1)), () => writes.forEach((s) => writeSync(fd, buf, 0, S, s * S)), sync],
        'seq-read-64k': [
          () => {
            for (let s = 0; s + 16 <= SECTORS; s += 16) ours.read(s, 16);
          },
          () => {
            for (let s = 0; s + 16 <= SECTORS; s += 16) readSync(fd, buf, 0, 16 * S, s * S);
          },
          null,
        ],
        'seq-write-64k': [
          () => {
            for (let s = 0; s + 16 <= SECTORS; s += 16) {
              ours.write(s, 15);
              ours.write(s + 15, 1);
            }
          },
          () => {
            for (let s = 0; s + 16 <= SECTORS; s += 16) writeSync(fd, buf, 0, 16 * S, s * S);
          },
          sync,
        ],
      };
      const measure = (row: Row): number => {
        const [o, b, after] = sides[row];
        o(); // warm-up of both sides
        b();
        after?.();
        const t: [number[], number[]] = [[], []];
        for (let r = 0; r < ROUNDS; r++) {
          t[0].push(cpu(o));
          t[1].push(cpu(b));
          after?.();
        }
        return median(t[1]) / median(t[0]);
      };
      const best = new Map<Row, number>();
      const rows = Object.keys(FLOORS) as Row[];
      for (let attempt = 0; attempt < 3; attempt++) {
        const low = rows.filter((row) => !((best.get(row) ?? 0) >= FLOORS[row]));
        if (low.length === 0) break;
        for (const row of low) best.set(row, Math.max(best.get(row) ?? 0, measure(row)));
      }
      console.log(`block guard (ours/fs throughput, CPU time): ${rows.map((r) => `${r} ${best.get(r)!.toFixed(3)} (floor ${FLOORS[r]})`).join(', ')}`);
      for (const row of rows) expect(best.get(row), `${row}: ours/fs = ${best.get(row)!.toFixed(3)}, floor ${FLOORS[row]}`).toBeGreaterThanOrEqual(FLOORS[row]);
    } finally {
      closeSync(fd);
      await ours.close();
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
