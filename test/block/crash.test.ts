/**
 * Crash consistency, for real: a child process runs a guest that writes and flushes in rounds and
 * prints "flushed <r>" after each flush returns. We SIGKILL the child at a random moment, reopen
 * the image (a restart), and check every sector:
 *   - it reads without error (no sector is left unreadable),
 *   - it holds one whole version (the pattern of a single round: never half old, half new),
 *   - that version is at least as new as the last round we saw flushed for that sector.
 * Then the next boot continues on the same image. Bounded: a handful of boots, a few seconds.
 *
 * When a boot is killed is chosen by the guest's progress, never by the clock alone: boot b is
 * killed a random 0-20 ms after its (b mod 4)-th "flushed" line (0: after "ready"), so every run
 * covers kills before the first flush and between later ones, and a loaded machine only moves the
 * kill within a round, never makes a boot end before it flushed.
 *
 * What SIGKILL tests: writes cut short and lost ordering between the process and the page cache.
 * It cannot pull power, so it does not prove that fsync reaches the platter; docs/STORAGE.md says
 * what is argued rather than tested.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockImage, SECTOR_SIZE } from '../../host/storage/image.ts';
import { Storage } from '../../host/storage/storage.ts';
import { budget, guest, mutating } from '../helpers.ts';

const SECTORS = 48;
const BOOTS = mutating ? 3 : 8;
const ROUND_SPACING = 1_000_000;
const A = 0x9e3779b1;
const B = 0x85ebca77;
const C = 0xc2b2ae3d;

/** The guest's pattern: word i of sector s in round r. */
const word = (r: number, s: number, i: number) => (Math.imul(r, A) + Math.imul(s, B) + Math.imul(i, C)) >>> 0;
/** Which sectors round r writes (mirrors guests/disk-crash.ts). */
const writes = (r: number, s: number) => r % 2 === 0 || (s + r) % 3 !== 0;
/** A^-1 mod 2^32, so a sector's round can be read back from its first word. */
const INV_A = (() => {
  const m = 1n << 32n;
  let x = 1n;
  for (let i = 0; i < 6; i++) x = (x * (2n - ((BigInt(A) * x) % m) + m)) % m;
  return x;
})();
const roundOf = (w0: number, s: number) => Number(((BigInt((w0 - Math.imul(s, B)) >>> 0) * INV_A) % (1n << 32n)));

const dir = mkdtempSync(path.join(tmpdir(), 'wv-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Boot b is killed after this many "flushed" lines (0: after "ready"). */
const flushesBeforeKill = (boot: number) => boot % 4;

/**
 * Runs one boot, killed a random 0-20 ms after the guest reported `killAfterFlushes` flushes;
 * returns the highest round seen flushed (0 if none) once the child is dead.
 */
async function bootAndKill(firstRound: number, killAfterFlushes: number): Promise<{ maxFlushed: number; lines: number }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./crash-child.mjs', import.meta.url)), dir, String(SECTORS), String(firstRound)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let maxFlushed = 0;
  let lines = 0;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let armed = false;
    const arm = () => {
      armed = true;
      setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, Math.floor(Math.random() * 21));
    };
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      if (line === 'ready') {
        if (killAfterFlushes === 0 && !armed) arm();
        return;
      }
      const m = /^flushed (\d+)$/.exec(line);
      if (m) {
        maxFlushed = Math.max(maxFlushed, Number(m[1]));
        lines++;
        if (lines >= killAfterFlushes && !armed) arm();
      }
    });
    child.once('exit', () => resolve()); // died before it was killed: checked below
    // A hang guard only (the child's progress decides when it dies): generous for a loaded machine.
    const guard = setTimeout(() => {
      child.kill('SIGKILL'); // never leave a writer running behind a failed test
      reject(new Error(`child made no progress (${lines} flushes seen): ${stderr}`));
    }, budget(60_000));
    void exited.then(() => clearTimeout(guard));
  });
  await exited;
  expect(stderr, 'the child process reported an error').not.toMatch(/ERR_|Error/);
  expect(lines, 'the child died before the flush it was to be killed after').toBeGreaterThanOrEqual(killAfterFlushes);
  return { maxFlushed, lines };
}

describe('crash consistency (SIGKILL of the host process)', () => {
  it('every flushed sector survives, and every sector is one whole version', async () => {
    guest('disk-crash');
    const storage = new Storage({ dataDir: dir });
    /** Per sector: the newest round we saw flushed that wrote it (0: only zeros are acceptable). */
    const floor = new Array<number>(SECTORS).fill(0);
    let firstRound = 2;
    let totalFlushed = 0;
    let newerThanFlushed = 0;
    for (let boot = 0; boot < BOOTS; boot++) {
      const killAfter = flushesBeforeKill(boot);
      const { maxFlushed, lines } = await bootAndKill(firstRound, killAfter);
      totalFlushed += lines;
      for (let r = firstRound; r <= maxFlushed; r++) {
        for (let s = 0; s < SECTORS; s++) if (writes(r, s)) floor[s] = r;
      }
      // Restart: open the image as a new boot would, learning every sector from disk.
      const a = await storage.attach('crash', 1);
      const img = new BlockImage({ fd: a.fd, sectorCount: a.sectorCount, imageId: a.imageId, dataKey: a.dataKey });
      try {
        const buf = Buffer.alloc(SECTOR_SIZE);
        for (let s = 0; s < SECTORS; s++) {
          expect(img.read(s, 1, buf), `sector ${s} after boot ${boot} (killed after ${killAfter} flushes)`).toBe(0);
          if (buf.every((x) => x === 0)) {
            expect(floor[s], `sector ${s} reads zeros but round ${floor[s]} was flushed`).toBe(0);
            continue;
          }
          const r = roundOf(buf.readUInt32LE(0), s);
          for (let i = 0; i < SECTOR_SIZE / 4; i++) {
            if (buf.readUInt32LE(i * 4) !== word(r, s, i)) {
              expect.fail(`sector ${s} is not one whole version of round ${r}: word ${i} differs (boot ${boot})`);
            }
          }
          expect(writes(r, s), `round ${r} never writes sector ${s}`).toBe(true);
          expect(r, `sector ${s} went back before its last flushed round`).toBeGreaterThanOrEqual(floor[s]!);
          expect(r).toBeLessThan(firstRound + ROUND_SPACING);
          if (r > floor[s]!) newerThanFlushed++;
        }
        expect(img.counters.integrityFailures).toBe(0);
      } finally {
        img.close();
        await storage.detach(a);
      }
      firstRound += ROUND_SPACING;
    }
    // The test means something only if the guest got to flush, many times, before being killed
    // (each boot waited for its flushes, so this holds however loaded the machine is).
    expect(totalFlushed).toBeGreaterThanOrEqual(Array.from({ length: BOOTS }, (_, b) => flushesBeforeKill(b)).reduce((a, b) => a + b, 0));
    console.log(`crash test: ${BOOTS} boots, ${totalFlushed} flushes observed, ${newerThanFlushed} sectors newer than their last seen flush`);
  }, budget(240_000));
});
