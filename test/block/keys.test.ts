/**
 * Keys bound to images (issue #18 item 2, #10 item 5): a key is filed under its image's random id,
 * never overwritten by a create; a missing image whose key exists is ERR_STORAGE; wipe removes
 * exactly its image's key; keystore updates are atomic and leave no temporary file behind; images
 * are locked while attached; nothing is followed through a symlink.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, closeSync, rmSync, symlinkSync, writeFileSync, fstatSync, renameSync, utimesSync, statSync, writeSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockImage, HEADER_SIZE, imageFileSize, SECTOR_SIZE } from '../../host/storage/image.ts';
import { Keystore } from '../../host/storage/keystore.ts';
import { bootId, FileLock, lockHolder, processStart } from '../../host/storage/lock.ts';
import { Storage, type BlockAttachment } from '../../host/storage/storage.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const fill = (c: string) => Buffer.alloc(SECTOR_SIZE, c);

/** Attach, write `c` to sector 0 (when given), read sector 0 back, detach. */
async function use(st: Storage, name: string, c: string | null, override?: string): Promise<{ data: Buffer; a: BlockAttachment }> {
  const a = await st.attach(name, 1, override);
  const img = new BlockImage({ fd: a.fd, sectorCount: a.sectorCount, imageId: a.imageId, dataKey: a.dataKey });
  try {
    if (c !== null) {
      img.write(0, 1, fill(c));
      img.flush();
    }
    const data = Buffer.alloc(SECTOR_SIZE);
    img.read(0, 1, data);
    return { data, a: { ...a, imageId: new Uint8Array(a.imageId) } };
  } finally {
    img.close();
    await st.detach(a);
  }
}

const entries = (st: Storage) => st.keystore!.list();

describe('keys are bound to images', () => {
  it('one name at two paths: two images, two keys, both readable (a create never replaces a key)', async () => {
    const st = new Storage({ dataDir: dir });
    await use(st, 'p', 'a', 'one.img');
    await use(st, 'p', 'b', 'two.img');
    expect((await use(st, 'p', null, 'one.img')).data.equals(fill('a'))).toBe(true);
    expect((await use(st, 'p', null, 'two.img')).data.equals(fill('b'))).toBe(true);
    const list = await entries(st);
    expect(list.map((e) => path.basename(e.path)).sort()).toEqual(['one.img', 'two.img']);
    expect(list.every((e) => e.name === 'p' && !e.pending)).toBe(true);
  });

  it('two data directories sharing one keystore never collide', async () => {
    const keystorePath = path.join(dir, 'shared', 'keys');
    const one = new Storage({ dataDir: path.join(dir, 'd1'), keystorePath });
    const two = new Storage({ dataDir: path.join(dir, 'd2'), keystorePath });
    await use(one, 'p', 'x');
    await use(two, 'p', 'y');
    expect((await use(one, 'p', null)).data.equals(fill('x'))).toBe(true);
    expect((await use(two, 'p', null)).data.equals(fill('y'))).toBe(true);
    expect(await entries(one)).toHaveLength(2);
  });

  it('a missing image whose key exists is ERR_STORAGE naming both, never a silent new disk', async () => {
    const keystorePath = path.join(dir, 'elsewhere', 'keys');
    const dataDir = path.join(dir, 'volume');
    const st = new Storage({ dataDir, keystorePath });
    const { a } = await use(st, 'db', 'k');
    // The data volume is not mounted at boot: the image is gone, the keystore is not.
    renameSync(dataDir, `${dataDir}.unmounted`);
    const again = new Storage({ dataDir, keystorePath });
    const error = await again.attach('db', 1).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_STORAGE' });
    const message = (error as Error).message;
    expect(message).toContain(path.join(dataDir, 'images', 'db.img'));
    expect(message).toContain(keystorePath);
    expect(message).toContain(Buffer.from(a.imageId).toString('hex'));
    expect(existsSync(path.join(dataDir, 'images', 'db.img'))).toBe(false);
    // The volume comes back: the real disk is intact and opens.
    rmSync(dataDir, { recursive: true, force: true });
    renameSync(`${dataDir}.unmounted`, dataDir);
    expect((await use(again, 'db', null)).data.equals(fill('k'))).toBe(true);
    // Deliberately starting over: wipe drops the key, and a new image is made.
    renameSync(path.join(dataDir, 'images', 'db.img'), path.join(dir, 'moved.img'));
    expect(await again.wipe('db')).toMatchObject({ removedImage: false, removedKey: true });
    expect((await use(again, 'db', null)).a.created).toBe(true);
  });

  it('wipe removes exactly the key of the image it scrubbed', async () => {
    const st = new Storage({ dataDir: dir });
    await use(st, 'p', 'a', 'one.img');
    const { a: two } = await use(st, 'p', 'b', 'two.img');
    await use(st, 'q', 'c');
    expect(await st.wipe('p', 'one.img')).toMatchObject({ removedImage: true, removedKey: true });
    const left = await entries(st);
    expect(left.map((e) => `${e.name}:${path.basename(e.path)}`).sort()).toEqual(['p:two.img', 'q:q.img']);
    expect(left.find((e) => e.name === 'p')!.imageId).toBe(Buffer.from(two.imageId).toString('hex'));
    expect((await use(st, 'p', null, 'two.img')).data.equals(fill('b'))).toBe(true);
  });

  it('a create that crashed before its image appeared is forgotten; one that crashed after is confirmed', async () => {
    const st = new Storage({ dataDir: dir });
    const file = st.imagePath('p');
    mkdirSync(path.dirname(file), { recursive: true });
    // Crash between filing the key and linking the image: a pending key, a temporary image.
    const ghost = randomBytes(16);
    await st.keystore!.reserve(ghost, 'p', file, randomBytes(32), true);
    writeFileSync(`${file}.${ghost.toString('hex')}.new`, 'partial');
    const { a } = await use(st, 'p', 'n');
    expect(a.created).toBe(true);
    expect(existsSync(`${file}.${ghost.toString('hex')}.new`)).toBe(false);
    expect((await entries(st)).map((e) => e.imageId)).toEqual([Buffer.from(a.imageId).toString('hex')]);
    // Crash between linking the image and confirming its key: the key is still pending, the image complete.
    const ks = new Keystore(st.keystore!.file);
    const key = (await ks.find(a.imageId))!.key;
    await ks.remove(a.imageId, file, 'p', false);
    await ks.reserve(a.imageId, 'p', file, key, false);
    expect((await entries(st))[0]!.pending).toBe(true);
    expect((await use(st, 'p', null)).data.equals(fill('n'))).toBe(true);
    expect((await entries(st))[0]!.pending).toBe(false);
  });

  it('takes over a format-1 keystore (keys by name) without losing a disk', async () => {
    const st = new Storage({ dataDir: dir });
    const { a } = await use(st, 'old', 'o');
    // Rewrite the keystore as format 1 had it: keystore.json, name -> base64 key.
    const key = (await st.keystore!.find(a.imageId))!.key;
    rmSync(path.join(dir, 'keystore'));
    writeFileSync(path.join(dir, 'keystore.json'), JSON.stringify({ format: 'wasmvisor-keystore/1', keys: { old: key.toString('base64') } }));
    const fresh = new Storage({ dataDir: dir });
    expect((await use(fresh, 'old', null)).data.equals(fill('o'))).toBe(true);
    expect(existsSync(path.join(dir, 'keystore.json'))).toBe(false);
    expect((await entries(fresh)).map((e) => [e.name, e.imageId])).toEqual([['old', Buffer.from(a.imageId).toString('hex')]]);
  });
});

describe('keystore files', () => {
  it('many concurrent creates (two Storages, one data directory): every key filed, no temporary file left', async () => {
    const one = new Storage({ dataDir: dir });
    const two = new Storage({ dataDir: dir });
    const names = Array.from({ length: 16 }, (_, i) => `n${i}`);
    await Promise.all(names.map((n, i) => use(i % 2 ? one : two, n, String.fromCharCode(97 + i))));
    const list = await entries(one);
    expect(list.map((e) => e.name).sort()).toEqual([...names].sort());
    expect(list.every((e) => !e.pending)).toBe(true);
    for (const [i, n] of names.entries()) expect((await use(i % 2 ? two : one, n, null)).data.equals(fill(String.fromCharCode(97 + i)))).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp') || f.endsWith('.lock'))).toEqual([]);
    expect(readdirSync(path.join(dir, 'images')).filter((f) => !f.endsWith('.img'))).toEqual([]);
  });

  it('a keystore that cannot be read is ERR_STORAGE, and no image or key file is made', async () => {
    const keystorePath = path.join(dir, 'ks');
    mkdirSync(path.join(keystorePath, 'in-the-way'), { recursive: true }); // a directory where the keystore should be
    const st = new Storage({ dataDir: path.join(dir, 'data'), keystorePath });
    await expect(st.attach('p', 1)).rejects.toMatchObject({ code: 'ERR_STORAGE' });
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
    expect(existsSync(path.join(dir, 'data', 'images', 'p.img'))).toBe(false);
    expect(readdirSync(path.join(dir, 'data', 'images'))).toEqual([]);
  });

  it('temporary files of a writer that died are removed at the next update', async () => {
    const st = new Storage({ dataDir: dir });
    await use(st, 'a', 'a');
    const dead = path.join(dir, 'keystore.999999.0123456789ab.tmp');
    writeFileSync(dead, 'keys of a crashed writer');
    await use(st, 'b', 'b');
    expect(existsSync(dead)).toBe(false);
  });

  it('never follows a symlink: keystore and image', async () => {
    const st = new Storage({ dataDir: dir });
    await use(st, 'p', 'p');
    // A keystore replaced by a symlink (to a copy of itself) is refused.
    const real = path.join(dir, 'real-keystore');
    writeFileSync(real, readFileSync(path.join(dir, 'keystore')));
    rmSync(path.join(dir, 'keystore'));
    symlinkSync(real, path.join(dir, 'keystore'));
    await expect(new Storage({ dataDir: dir }).attach('p', 1)).rejects.toMatchObject({ code: 'ERR_STORAGE' });
    // An image path that is a symlink is refused too, and the target is not touched.
    const dir2 = mkdtempSync(path.join(tmpdir(), 'wv-keys-'));
    try {
      const st2 = new Storage({ dataDir: dir2 });
      mkdirSync(path.join(dir2, 'images'));
      const target = path.join(dir2, 'victim');
      writeFileSync(target, 'do not touch');
      symlinkSync(target, path.join(dir2, 'images', 'q.img'));
      await expect(st2.attach('q', 1)).rejects.toMatchObject({ code: 'ERR_STORAGE' });
      await expect(st2.wipe('q')).rejects.toMatchObject({ code: 'ERR_STORAGE' });
      expect(readFileSync(target, 'utf8')).toBe('do not touch');
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  it('a damaged keystore is ERR_STORAGE naming it, not a silent empty one', async () => {
    const st = new Storage({ dataDir: dir });
    await use(st, 'p', 'p');
    const file = path.join(dir, 'keystore');
    const bytes = readFileSync(file);
    bytes[20]! ^= 1;
    writeFileSync(file, bytes);
    await expect(new Storage({ dataDir: dir }).attach('p', 1)).rejects.toMatchObject({ code: 'ERR_STORAGE', message: expect.stringContaining(file) });
    await expect(new Storage({ dataDir: dir }).attach('fresh', 1)).rejects.toMatchObject({ code: 'ERR_STORAGE' });
  });
});

describe('image locks', () => {
  it('an attached image is refused to a second attach and to wipe, naming the holder; released at detach', async () => {
    const one = new Storage({ dataDir: dir });
    const two = new Storage({ dataDir: dir });
    const a = await one.attach('p', 1);
    for (const attempt of [two.attach('p', 1), two.wipe('p'), one.attach('p', 1)]) {
      const error = await attempt.catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'ERR_INVALID_STATE' });
      expect((error as Error).message).toMatch(new RegExp(`process ${process.pid} on host .*this process.*partition p`));
    }
    await one.detach(a);
    await one.detach(a); // idempotent
    const b = await two.attach('p', 1);
    await two.detach(b);
    expect(existsSync(`${one.imagePath('p')}.lock`)).toBe(false);
  });

  it('a lock left by a process that died is broken; one from another host is not', async () => {
    const file = path.join(dir, 'x.lock');
    const fake = (over: object) => JSON.stringify({ pid: 999_999, host: os.hostname(), boot: 'x', start: '', since: 'then', purpose: 'test', token: 't', ...over });
    writeFileSync(file, fake({ boot: bootId() }));
    const lock = await FileLock.acquire(file, 'me');
    expect(lock.holder.pid).toBe(process.pid);
    await lock.release();
    writeFileSync(file, fake({ host: 'elsewhere.example' }));
    await expect(FileLock.acquire(file, 'me')).rejects.toThrow(/process 999999 on host elsewhere.example \(test, since then\)/);
    // A lock from an earlier boot of this host is stale even if the pid is alive now.
    writeFileSync(file, fake({ pid: process.pid, boot: 'an-earlier-boot' }));
    await (await FileLock.acquire(file, 'me')).release();
  });

  it('a live holder is respected (waiting for it when asked); a pid reused by another process is not', async () => {
    const file = path.join(dir, 'y.lock');
    const mine = processStart(process.pid);
    const fake = (over: object) => JSON.stringify({ pid: process.pid, host: os.hostname(), boot: bootId(), start: mine, since: 'then', purpose: 'held', token: 't', ...over });
    writeFileSync(file, fake({}));
    expect(await lockHolder(file)).toMatchObject({ pid: process.pid, purpose: 'held' });
    await expect(FileLock.acquire(file, 'me')).rejects.toThrow(/held/);
    // Waiting: the holder releases (the file goes) after 100 ms, and the waiter gets it.
    setTimeout(() => rmSync(file), 100);
    // The removal ends the wait; the bound only keeps a broken lock from hanging the test.
    const got = await FileLock.acquire(file, 'me', 60_000);
    expect(got.holder.purpose).toBe('me');
    await got.release();
    expect(existsSync(file)).toBe(false);
    if (mine !== '') {
      // Same pid, other start time: the pid now belongs to another process; the lock is stale.
      writeFileSync(file, fake({ start: String(Number(mine) + 1) }));
      expect(await lockHolder(file)).toBeNull();
      await (await FileLock.acquire(file, 'me')).release();
    }
  });

  it('release removes only its own lock; an unreadable lock file is stale only once it is old', async () => {
    const file = path.join(dir, 'z.lock');
    const lock = await FileLock.acquire(file, 'first');
    rmSync(file);
    const second = await FileLock.acquire(file, 'second');
    await lock.release(); // the file is the second's now: left alone
    expect(await lockHolder(file)).toMatchObject({ purpose: 'second' });
    await second.release();
    await second.release(); // idempotent
    writeFileSync(file, 'not a lock record');
    await expect(FileLock.acquire(file, 'me')).rejects.toThrow(/no readable lock record/);
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    await (await FileLock.acquire(file, 'me')).release();
    // A breaker that died left its .break lock: removed once it is old, then the stale lock is broken.
    writeFileSync(file, JSON.stringify({ pid: 999_999, host: os.hostname(), boot: bootId(), start: '', since: 'then', purpose: 'dead', token: 'd' }));
    writeFileSync(`${file}.break`, 'a breaker that died');
    utimesSync(`${file}.break`, old, old);
    await (await FileLock.acquire(file, 'me', 1000)).release();
    expect(existsSync(`${file}.break`)).toBe(false);
  });
});

describe('free space', () => {
  it('warns at attach when the attached images can grow past the free space, and only then', async () => {
    const events: unknown[] = [];
    const free = 3 * 1024 * 1024; // 3 MiB free
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e), statfs: async () => ({ bavail: free / 4096, bsize: 4096 }) });
    const a = await st.attach('one', 1); // a 1 MiB disk may grow by ~2 MiB (two slots a sector)
    expect(events.filter((e) => (e as { kind: string }).kind === 'overcommit')).toEqual([]);
    const b = await st.attach('two', 1); // now ~4 MiB may be needed
    const warnings = events.filter((e) => (e as { kind: string }).kind === 'overcommit') as { message: string; growableBytes: number; freeBytes: number }[];
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.freeBytes).toBe(free);
    expect(warnings[0]!.growableBytes).toBeGreaterThan(free);
    expect(warnings[0]!.message).toMatch(/can grow by 4 MiB more, but its file system has 3 MiB free: a guest that fills its disk will see HV_STATUS_IO_ERROR on writes \(flushed data stays safe\)$/);
    await st.detach(a);
    await st.detach(b);
  });

  it('counts what each attached image can still grow by (its full size less what it holds), and warns only past the free space', async () => {
    // The free space offered is what the attached images can grow by, read from their files when
    // asked, plus `slack`: at 0 they fit exactly (no warning), at -1 they do not.
    let slack = 0;
    let asked = 0;
    const files: string[] = [];
    const growable = () => files.filter((f) => existsSync(f)).reduce((sum, f) => sum + Math.max(0, imageFileSize(256) - statSync(f).blocks * 512), 0);
    const events: { kind: string; growableBytes?: number; freeBytes?: number }[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e), statfs: async () => {
        asked++;
        return { bavail: growable() + slack, bsize: 1 };
      },
    });
    files.push(st.imagePath('one'), st.imagePath('two'), st.imagePath('three'));
    const a = await st.attach('one', 1);
    const b = await st.attach('two', 1);
    expect(events.filter((e) => e.kind === 'overcommit')).toEqual([]);
    expect(asked).toBe(2);
    // 256 KiB of one's file allocated (as written sectors would be): it can grow by that much less.
    const fd = openSync(files[0]!, 'r+');
    writeSync(fd, Buffer.alloc(256 * 1024, 1), 0, 256 * 1024, HEADER_SIZE);
    closeSync(fd);
    expect(statSync(files[0]!).blocks * 512).toBeGreaterThanOrEqual(256 * 1024);
    slack = -1;
    const c = await st.attach('three', 1);
    const warnings = events.filter((e) => e.kind === 'overcommit');
    expect(warnings).toEqual([expect.objectContaining({ growableBytes: growable(), freeBytes: growable() - 1 })]);
    for (const x of [a, b, c]) await st.detach(x);
  });

  // /dev/shm (tmpfs) is another file system than the data directory where there is one.
  const shm = existsSync('/dev/shm') && statSync('/dev/shm').dev !== statSync(tmpdir()).dev ? '/dev/shm' : null;
  it.skipIf(shm === null)('counts only the images on the file system of the one attached (another file system has its own free space)', async () => {
    const other = mkdtempSync(path.join(shm!, 'wv-space-'));
    try {
      const seen: number[] = [];
      const events: { kind: string; growableBytes?: number }[] = [];
      const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e), statfs: async () => ({ bavail: 0, bsize: 1 }) });
      const far = await st.attach('far', 1, path.join(other, 'far.img'));
      const near = await st.attach('near', 1);
      for (const e of events) if (e.kind === 'overcommit') seen.push(e.growableBytes!);
      // Each warning counts its own image alone: the other lies on another file system.
      const alone = (f: string) => imageFileSize(256) - statSync(f).blocks * 512;
      expect(seen).toEqual([alone(path.join(other, 'far.img')), alone(st.imagePath('near'))]);
      await st.detach(far);
      await st.detach(near);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('wipe', () => {
  it('of a disk that never existed is a no-op that creates nothing', async () => {
    const st = new Storage({ dataDir: path.join(dir, 'none') });
    expect(await st.wipe('x')).toMatchObject({ removedImage: false, removedKey: false });
    expect(await st.list()).toEqual([]);
    expect(existsSync(path.join(dir, 'none'))).toBe(false);
  });

  it('leaves no non-zero data byte of the image on the disk', async () => {
    const st = new Storage({ dataDir: dir });
    const a = await st.attach('p', 1);
    const img = new BlockImage({ fd: a.fd, sectorCount: a.sectorCount, imageId: a.imageId, dataKey: a.dataKey });
    for (let s = 0; s < 256; s += 3) img.write(s, 1, fill('z'));
    img.flush();
    for (let s = 0; s < 256; s += 6) img.write(s, 1, fill('y'));
    img.flush();
    img.close();
    await st.detach(a);
    // Keep the inode open: after the unlink its blocks are still readable through this fd.
    const fd = openSync(st.imagePath('p'), 'r');
    try {
      const size = fstatSync(fd).size;
      const before = Buffer.alloc(size);
      readSync(fd, before, 0, size, 0);
      expect(before.subarray(HEADER_SIZE).some((x) => x !== 0)).toBe(true);
      expect(await st.wipe('p')).toMatchObject({ removedImage: true, removedKey: true });
      const after = Buffer.alloc(size);
      readSync(fd, after, 0, size, 0);
      expect(after.every((x) => x === 0)).toBe(true);
      expect(fstatSync(fd).nlink).toBe(0);
    } finally {
      closeSync(fd);
    }
  });
});

