/**
 * The block device end to end: real partitions, real workers, images on disk.
 * Isolation (another partition's disk, a deleted partition's disk), encryption at rest,
 * persistence across boots, wipe.
 */
import { existsSync, linkSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { collect, guest, runToExit, hypervisor } from '../helpers.ts';

let dir: string;
let hv: Hypervisor;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-block-'));
  hv = hypervisor({ dataDir: dir, defaultLimits: { timeoutMs: 10_000 } });
});
afterEach(async () => {
  await hv.close();
  rmSync(dir, { recursive: true, force: true });
});

const SECRET = 'ALICE-SECRET-7f3a9c1e';

async function disk(name: string, mode: 'fill' | 'scan', sizeMiB = 1) {
  const p = await hv.createPartition({ name, module: guest('disk'), args: [mode, SECRET], devices: { console: true, block: { sizeMiB } } });
  const out = collect(p);
  const exit = await runToExit(p);
  return { p, out, exit };
}

describe('block device in partitions', () => {
  it('isolation: B scans every sector of its own disk and never sees A’s secret; A’s image holds no plaintext', async () => {
    const a = await disk('alice', 'fill');
    expect(a.exit, a.out.stderr.join('\n')).toMatchObject({ reason: 'exit', code: 0 });
    expect(a.out.stdout).toEqual(['filled 256 sectors']);
    expect(a.exit.metrics.block.writeBytes).toBe(1 << 20);
    // A still exists (not destroyed) while B runs: separate disks, not merely sequential use.
    const b = await disk('bob', 'scan');
    expect(b.exit, b.out.stderr.join('\n')).toMatchObject({ reason: 'exit', code: 0 });
    expect(b.out.stdout).toEqual(['scanned 256 sectors, found 0, nonzero 0']);
    // Positive control: A's own scan of its disk finds the secret everywhere.
    await a.p.destroy();
    const again = await disk('alice', 'scan');
    const found = /found (\d+), nonzero (\d+)/.exec(again.out.stdout[0] ?? '');
    expect(Number(found?.[1])).toBeGreaterThan(40_000);
    expect(Number(found?.[2])).toBe(256);
    // Encryption at rest: the image file holds neither the secret nor a fragment of it.
    const image = readFileSync(path.join(dir, 'images', 'alice.img'));
    expect(image.includes(Buffer.from(SECRET))).toBe(false);
    expect(image.includes(Buffer.from(SECRET.slice(0, 6)))).toBe(false);
    const keystore = readFileSync(path.join(dir, 'keystore'));
    expect(keystore.includes(Buffer.from(SECRET))).toBe(false);
    expect(keystore.includes(Buffer.from('alice'))).toBe(true);
  });

  it('deletion: destroy({ wipe: true }) removes the image and key; a new partition of the same name reads zeros', async () => {
    const events: unknown[] = [];
    hv.on('storage', (e) => events.push(e));
    const a = await disk('carol', 'fill');
    expect(a.exit.code).toBe(0);
    const image = path.join(dir, 'images', 'carol.img');
    expect(existsSync(image)).toBe(true);
    // A wipe asked for with something other than true is refused, and nothing is done: it would have kept the disk.
    for (const wipe of [1, 'yes', null]) {
      await expect(a.p.destroy({ wipe } as unknown as { wipe: boolean })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('destroy options of partition carol: wipe: expected true or false') });
    }
    // So is a misspelt wipe: it too would have kept the disk (and destroyed the partition).
    await expect(a.p.destroy({ wpie: true } as unknown as { wipe: boolean })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'destroy options of partition carol: wpie: unknown key; did you mean wipe?' });
    expect(a.p.state).not.toBe('destroyed');
    // The wipe answers what it removed, as hv.wipeStorage does; asked again, the same answer.
    const removed = { path: image, removedImage: true, removedKey: true, images: [image] };
    expect(await a.p.destroy({ wipe: true })).toEqual(removed);
    expect(await a.p.destroy({ wipe: true })).toEqual(removed);
    expect(await a.p.destroy()).toBeNull();
    expect(a.p.state).toBe('destroyed');
    expect(existsSync(image)).toBe(false);
    expect(readFileSync(path.join(dir, 'keystore')).includes(Buffer.from('carol'))).toBe(false);
    const b = await disk('carol', 'scan');
    expect(b.out.stdout).toEqual(['scanned 256 sectors, found 0, nonzero 0']);
    // What an audit log records: the key made for each image, and the wipe.
    expect(events).toEqual([
      { kind: 'key-created', name: 'carol', path: image, imageId: expect.stringMatching(/^[0-9a-f]{32}$/) },
      { kind: 'wiped', name: 'carol', path: image, removedImage: true, removedKey: true },
      { kind: 'key-created', name: 'carol', path: image, imageId: expect.stringMatching(/^[0-9a-f]{32}$/) },
    ]);
  });

  it("destroy({ wipe: true }) of a partition without a disk wipes the image an earlier partition of its name left", async () => {
    const events: unknown[] = [];
    hv.on('storage', (e) => events.push(e));
    const a = await disk('frank', 'fill');
    expect(a.exit.code).toBe(0);
    await a.p.destroy();
    const image = path.join(dir, 'images', 'frank.img');
    expect(existsSync(image)).toBe(true);
    // The name again, granted no disk: while it is live only its destroy can wipe the name's image.
    const p = await hv.createPartition({ name: 'frank', module: guest('counter') });
    await expect(hv.wipeStorage('frank')).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    await p.destroy({ wipe: true });
    expect(existsSync(image)).toBe(false);
    expect(readFileSync(path.join(dir, 'keystore')).includes(Buffer.from('frank'))).toBe(false);
    expect(events.at(-1)).toEqual({ kind: 'wiped', name: 'frank', path: image, removedImage: true, removedKey: true });
    // The next partition of the name with a disk reads zeros, not the earlier one's data.
    const b = await disk('frank', 'scan');
    expect(b.out.stdout).toEqual(['scanned 256 sectors, found 0, nonzero 0']);
    // With nothing of the name left, the wipe still says what it did: nothing.
    await b.p.destroy({ wipe: true });
    const c = await hv.createPartition({ name: 'frank', module: guest('counter') });
    expect(await c.destroy({ wipe: true })).toEqual({ path: image, removedImage: false, removedKey: false, images: [] });
    expect(events.at(-1)).toEqual({ kind: 'wiped', name: 'frank', path: image, removedImage: false, removedKey: false });
  });

  it('persistence: the counter guest goes up across boots; wipeStorage resets it', async () => {
    const boot = async () => {
      const p = await hv.createPartition({ name: 'counter', module: guest('counter'), devices: { console: true, block: { sizeMiB: 1 } } });
      const out = collect(p);
      const exit = await runToExit(p);
      await p.destroy();
      expect(exit, out.stderr.join('\n')).toMatchObject({ reason: 'exit', code: 0 });
      return out.stdout;
    };
    expect(await boot()).toEqual(['counter: 1']);
    expect(await boot()).toEqual(['counter: 2']);
    // A second hypervisor on the same data directory (a restarted host) sees the same disk.
    const hv2 = hypervisor({ dataDir: dir });
    const p = await hv2.createPartition({ name: 'counter', module: guest('counter'), devices: { console: true, block: { sizeMiB: 1 } } });
    const out = collect(p);
    await runToExit(p);
    await hv2.close();
    expect(out.stdout).toEqual(['counter: 3']);
    expect(await hv.wipeStorage('counter')).toMatchObject({ removedImage: true, removedKey: true });
    expect(await boot()).toEqual(['counter: 1']);
  });

  /** Boots `name` once with the counter guest on a 1 MiB disk (at `diskPath` when given) and returns its output. */
  async function count(name: string, diskPath?: string, h: Hypervisor = hv): Promise<string[]> {
    const p = await h.createPartition({ name, module: guest('counter'), devices: { console: true, block: { sizeMiB: 1, ...(diskPath !== undefined ? { path: diskPath } : {}) } } });
    const out = collect(p);
    await runToExit(p);
    await p.destroy();
    return out.stdout;
  }

  it("a wipe of a name never scrubs another partition's image at that name's default place, live or not", async () => {
    // bee's disk lives where ann's would (its spec's path is ann's default place).
    const image = path.join(dir, 'images', 'ann.img');
    expect(await count('bee', 'images/ann.img')).toEqual(['counter: 1']);
    const bee = await hv.createPartition({ name: 'bee', module: guest('counter'), devices: { console: true, block: { sizeMiB: 1, path: 'images/ann.img' } } });
    // While bee is live: its lock refuses both wipe routes of ann.
    await expect(hv.wipeStorage('ann')).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: expect.stringContaining('attached to a live partition') });
    const ann = await hv.createPartition({ name: 'ann', module: guest('counter') });
    await expect(ann.destroy({ wipe: true })).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    // A second hypervisor of this process reaching bee's live image through another name for the
    // file (a hard link: another lock path) as the image of bee itself is refused too.
    const link = path.join(dir, 'link.img');
    linkSync(image, link);
    const hv2 = hypervisor({ dataDir: dir });
    try {
      await expect(hv2.wipeStorage('bee', { path: link })).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: `refusing to wipe ${link} as the block image of bee: it is the image of live partition bee (attached at ${image})` });
    } finally {
      await hv2.close();
    }
    rmSync(link);
    await bee.destroy();
    // Not live any more, still bee's: refused, not a byte changed, and bee's key kept.
    const before = readFileSync(image);
    await expect(hv.wipeStorage('ann')).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
      message: expect.stringMatching(new RegExp(`^refusing to wipe ${image} as the block image of ann: it is the block image of partition bee \\(image id [0-9a-f]{32}, its key filed under bee in .*\\); wipe it as bee's; it was left untouched$`)),
    });
    const again = await hv.createPartition({ name: 'ann', module: guest('counter') });
    await expect(again.destroy({ wipe: true })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    // Destroyed all the same: a destroy without a wipe resolves (the management API undeclares so).
    expect(again.state).toBe('destroyed');
    await expect(again.destroy()).resolves.toBeNull();
    expect(readFileSync(image).equals(before)).toBe(true);
    expect(await count('bee', 'images/ann.img')).toEqual(['counter: 2']);
    // bee's own wipe removes it.
    expect(await hv.wipeStorage('bee')).toMatchObject({ path: image, removedImage: true, removedKey: true, images: [image] });
    expect(existsSync(image)).toBe(false);
    expect(await hv.listStorage()).toEqual([]);
    // A refused wipe may be asked for again once its cause is gone: nothing of ann's is left now, and it says so.
    await expect(again.destroy({ wipe: true })).resolves.toEqual({ path: image, removedImage: false, removedKey: false, images: [] });
  });

  it('a wipe of a name finds its image at a custom path (the keystore files it): destroy({ wipe: true }) and wipeStorage alike', async () => {
    const custom = path.join(dir, 'elsewhere', 'gus.img');
    expect(await count('gus', custom)).toEqual(['counter: 1']);
    // The name again without a disk: its destroy with wipe finds the custom-path image.
    const p = await hv.createPartition({ name: 'gus', module: guest('counter') });
    await p.destroy({ wipe: true });
    expect(existsSync(custom)).toBe(false);
    expect(await hv.listStorage()).toEqual([]);
    // hv.wipeStorage(name) too, with the default place's image and a custom one of the name at once.
    expect(await count('gus', custom)).toEqual(['counter: 1']);
    expect(await count('gus')).toEqual(['counter: 1']);
    const result = await hv.wipeStorage('gus');
    expect(result).toEqual({ path: path.join(dir, 'images', 'gus.img'), removedImage: true, removedKey: true, images: [path.join(dir, 'images', 'gus.img'), custom] });
    expect(existsSync(custom)).toBe(false);
    expect(await hv.listStorage()).toEqual([]);
    // Nothing lost: a partition with that disk again starts from zeros, as after any wipe.
    expect(await count('gus', custom)).toEqual(['counter: 1']);
  });

  it('refuses a live partition’s storage to wipeStorage, a second partition on one image, and a resize', async () => {
    const p = await hv.createPartition({ name: 'dave', module: guest('counter'), devices: { block: { sizeMiB: 1 } } });
    await expect(hv.wipeStorage('dave')).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    // Options the embedder got wrong: typed, naming the option (a number as path was a bare TypeError).
    await expect(hv.wipeStorage('other', { path: 5 as unknown as string })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'wipeStorage options: path: expected a non-empty path without NUL characters, got the number 5' });
    // An empty path would resolve to the data directory itself.
    await expect(hv.wipeStorage('other', { path: '' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'wipeStorage options: path: expected a non-empty path without NUL characters, got the string ""' });
    await expect(hv.wipeStorage('other', null as unknown as {})).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'wipeStorage options: (root): expected an object, got null' });
    // A misspelt path would have wiped the disk at the default place, not the one named.
    await expect(hv.wipeStorage('other', { pth: 'elsewhere.img' } as unknown as {})).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'wipeStorage options: pth: unknown key; did you mean path?' });
    expect(await hv.listStorage()).toEqual([
      expect.objectContaining({ name: 'dave', sizeBytes: 1 << 20, key: 'keystore', inUse: expect.objectContaining({ pid: process.pid, purpose: 'partition dave' }) }),
    ]);
    await expect(
      hv.createPartition({ name: 'eve', module: guest('counter'), devices: { block: { sizeMiB: 1, path: 'images/dave.img' } } }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    await p.destroy();
    await expect(hv.createPartition({ name: 'dave', module: guest('counter'), devices: { block: { sizeMiB: 2 } } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
    // the image at a custom path of another partition does not open under eve's key
    await expect(
      hv.createPartition({ name: 'eve', module: guest('counter'), devices: { block: { sizeMiB: 1, path: 'images/dave.img' } } }),
    ).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
  });

  it('hostile requests from a real guest are refused with statuses and change nothing', async () => {
    const p = await hv.createPartition({ name: 'mallory', module: guest('attack-block'), devices: { console: true, block: { sizeMiB: 1 } } });
    const out = collect(p);
    const violations: string[] = [];
    p.on('violation', (v) => violations.push(`${v.call} ${v.status}`));
    const exit = await runToExit(p);
    expect(out.stdout).toEqual(['refused: 13']);
    expect(exit).toMatchObject({ reason: 'exit', code: 0 });
    // Bad windows are violations (as for every call); bad arguments are plain statuses.
    expect(violations).toEqual(['BLOCK_READ HV_STATUS_INVALID_ADDRESS', 'BLOCK_READ HV_STATUS_TOO_LARGE', 'BLOCK_WRITE HV_STATUS_TOO_LARGE']);
    expect(exit.metrics.block).toMatchObject({ writeBytes: 0, readBytes: 1 << 20 });
  });

  it('rate limits hold a guest to its byte budget; a throttled guest still stops at once', async () => {
    // 1 MiB to fill at 64 KiB/s would take 16 s: the guest spends its time waiting for tokens.
    const p = await hv.createPartition({
      name: 'slow',
      module: guest('disk'),
      args: ['fill', SECRET],
      devices: { console: true, block: { sizeMiB: 1, bytesPerSecond: 65536 } },
    });
    const started = performance.now();
    await p.start();
    await new Promise((r) => setTimeout(r, 400));
    const t0 = performance.now();
    const exit = await p.stop();
    const stopMs = performance.now() - t0;
    const ranMs = performance.now() - started;
    expect(exit.reason).toBe('ERR_KILLED');
    expect(exit.metrics.block.throttledMs).toBeGreaterThan(0);
    // Held to its budget: the burst (64 KiB) plus the refill for the time it ran (however long a
    // loaded machine made that), plus one request (at most 64 KiB) granted as the stop came.
    const writeBytes = exit.metrics.block.writeBytes;
    expect(writeBytes).toBeLessThanOrEqual(65536 + (65536 * ranMs) / 1000 + 65536);
    expect(writeBytes).toBeLessThan(1 << 20);
    // "At once": the stop did not wait for the tokens the guest still needed (16 s for 1 MiB at
    // 64 KiB/s, less what it wrote): a ratio to that wait, not an absolute time.
    const stillNeededMs = (((1 << 20) - writeBytes) / 65536) * 1000;
    expect(stopMs).toBeLessThan(stillNeededMs / 2);
  });

  it('a data directory that cannot be created is ERR_STORAGE, before the guest runs', async () => {
    const { writeFileSync } = await import('node:fs');
    const file = path.join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const bad = hypervisor({ dataDir: path.join(file, 'sub') });
    await expect(bad.createPartition({ name: 'x', module: guest('counter'), devices: { block: { sizeMiB: 1 } } })).rejects.toMatchObject({
      code: 'ERR_STORAGE',
    });
    expect(bad.partitions()).toEqual([]);
    await bad.close();
  });

  it.skipIf(!existsSync('/dev/shm'))('warns (event) when the disks attached on a file system could outgrow it', async () => {
    const shm = mkdtempSync('/dev/shm/wv-block-');
    const { statfsSync } = await import('node:fs');
    const h = new Hypervisor({ dataDir: shm });
    const warnings: { code: string; message: string }[] = [];
    h.on('warning', (w) => warnings.push(w));
    try {
      const s = statfsSync(shm);
      const count = Math.ceil((s.bavail * s.bsize) / (2 * 4096 * 1048576)) + 1; // a 4 GiB disk may take ~8 GiB
      expect(count).toBeLessThan(64);
      for (let i = 0; i < count; i++) await h.createPartition({ name: `big${i}`, module: guest('counter'), devices: { block: { sizeMiB: 4096 } } });
      expect(warnings.length).toBeGreaterThan(0);
      expect(warnings[0]!.code).toBe('STORAGE_OVERCOMMIT');
      expect(warnings[0]!.message).toContain(path.join(shm, 'images'));
    } finally {
      await h.close();
      rmSync(shm, { recursive: true, force: true });
    }
  });

  it('a master key works the same way, and a different master key cannot open the images', async () => {
    const key = Buffer.alloc(32, 7);
    const dir2 = mkdtempSync(path.join(tmpdir(), 'wv-block-mk-'));
    try {
      const h1 = hypervisor({ dataDir: dir2, storageKey: key });
      const p = await h1.createPartition({ name: 'mk', module: guest('counter'), devices: { console: true, block: { sizeMiB: 1 } } });
      const out = collect(p);
      await runToExit(p);
      await h1.close();
      expect(out.stdout).toEqual(['counter: 1']);
      expect(existsSync(path.join(dir2, 'keystore'))).toBe(false);
      expect(existsSync(path.join(dir2, 'keystore.json'))).toBe(false);
      const h2 = hypervisor({ dataDir: dir2, storageKey: Buffer.alloc(32, 8) });
      await expect(h2.createPartition({ name: 'mk', module: guest('counter'), devices: { block: { sizeMiB: 1 } } })).rejects.toMatchObject({
        code: 'ERR_INTEGRITY',
      });
      await h2.close();
      expect(() => hypervisor({ dataDir: dir2, storageKey: Buffer.alloc(16) })).toThrow(/32 bytes/);
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});
