/**
 * Locks on platforms and file systems that fail them (host/storage/lock.ts), by mocking node:fs:
 * - no boot id from the kernel: a platform without /proc/sys/kernel/random/boot_id tells boots
 *   apart by the boot time (now less the uptime), which drifts by a few seconds between
 *   processes, so two boot times less than two minutes apart are one boot;
 * - a hard link that fails for another reason than an existing lock is an error, not a wait;
 * - a stale lock broken and taken again by another process while this one was about to break it
 *   is left alone (the record is read again under the .break lock);
 * - every file a lock opens is closed (watched through fs.promises.open: a handle left open is
 *   closed only when the garbage collector finds it, so counting descriptors would not tell).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const readFileSync = ((file: unknown, ...rest: unknown[]) => {
    if (file === '/proc/sys/kernel/random/boot_id') throw Object.assign(new Error('ENOENT: no boot id here'), { code: 'ENOENT' });
    return (fs.readFileSync as (...args: unknown[]) => unknown)(file, ...rest);
  }) as typeof fs.readFileSync;
  return { ...fs, default: { ...fs, readFileSync }, readFileSync };
});

/** When set, fs.promises.link fails with this code. */
const linkFails: { code: string | null } = { code: null };
/** When set, runs once just before a hard link to a name ending in `.break` is made (another process acting meanwhile). */
const beforeBreakLink: { run: (() => void) | null } = { run: null };
vi.mock('node:fs/promises', async (importOriginal) => {
  const fsp = await importOriginal<typeof import('node:fs/promises')>();
  const link = (async (from: string, to: string) => {
    if (linkFails.code !== null) throw Object.assign(new Error(`${linkFails.code}: link failed`), { code: linkFails.code });
    if (to.endsWith('.break') && beforeBreakLink.run !== null) {
      const run = beforeBreakLink.run;
      beforeBreakLink.run = null;
      run();
    }
    return fsp.link(from, to);
  }) as typeof fsp.link;
  const open = (await import('./open-files.ts')).trackedOpen(fsp);
  return { ...fsp, default: { ...fsp, link, open }, link, open };
});

const { openHandles } = await import('./open-files.ts');
const { bootId, FileLock, LockedError, lockHolder, processStart } = await import('../../host/storage/lock.ts');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-lockboot-'));
});
afterEach(() => {
  linkFails.code = null;
  beforeBreakLink.run = null;
  rmSync(dir, { recursive: true, force: true });
});

/** The boot time in whole seconds that bootId() reports ('t:<seconds>'). */
function bootSeconds(): number {
  const id = bootId();
  expect(id).toMatch(/^t:\d+$/);
  return Number(id.slice(2));
}

describe('boot time instead of a boot id', () => {
  it('is now less the uptime, in seconds', () => {
    expect(Math.abs(bootSeconds() - (Date.now() / 1000 - os.uptime()))).toBeLessThan(5);
  });

  it('a lock of this process is held while its boot time is less than two minutes off, stale from two minutes', async () => {
    const file = path.join(dir, 'p.img.lock');
    const held = (offset: number) => {
      const holder = { pid: process.pid, host: os.hostname(), boot: `t:${bootSeconds() + offset}`, start: processStart(process.pid), since: '2026-01-01T00:00:00.000Z', purpose: 'partition p', token: '0123456789abcdef' };
      writeFileSync(file, JSON.stringify(holder));
      return lockHolder(file);
    };
    for (const offset of [0, 60, -60, 119, -119]) expect(await held(offset), `${offset} s`).toMatchObject({ pid: process.pid, purpose: 'partition p' });
    for (const offset of [120, -120, 3600]) expect(await held(offset), `${offset} s`).toBeNull();
  });
});

describe('processStart', () => {
  it('is empty for a process that does not exist', () => {
    // Above Linux's largest pid (2^22): never a process.
    expect(processStart(2 ** 22 + 1)).toBe('');
    expect(processStart(process.pid)).toMatch(/^\d+$/);
  });
});

describe('a lock that cannot be made', () => {
  it('is the file system’s error at once (no wait, no retry), and leaves no temporary file', async () => {
    linkFails.code = 'EIO';
    const file = path.join(dir, 'p.img.lock');
    await expect(FileLock.acquire(file, 'partition p', 60_000)).rejects.toMatchObject({ code: 'EIO' });
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('files', () => {
  it('every file a lock opens is closed: taking, reading, refusing, releasing', async () => {
    const file = path.join(dir, 'p.img.lock');
    const lock = await FileLock.acquire(file, 'partition p');
    expect(await lockHolder(file)).toMatchObject({ purpose: 'partition p' });
    await expect(FileLock.acquire(file, 'partition q')).rejects.toBeInstanceOf(LockedError);
    await lock.release();
    expect(openHandles.size).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('every file the storage opens to list images or wipe one is closed, an unreadable header too', async () => {
    const { Storage } = await import('../../host/storage/storage.ts');
    const st = new Storage({ dataDir: dir, masterKey: Buffer.alloc(32, 7) });
    await st.detach(await st.attach('p', 1));
    writeFileSync(st.imagePath('bad'), 'not an image');
    expect((await st.list()).map((d) => d.name)).toEqual(['bad', 'p']);
    expect(await st.wipe('p')).toMatchObject({ removedImage: true });
    // Not an image: refused and left (a wipe scrubs only the name's own image), its handle closed too.
    await expect(st.wipe('bad')).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    expect(openHandles.size).toBe(0);
    expect(readdirSync(path.join(dir, 'images'))).toEqual(['bad.img']);
  });
});

describe('breaking a stale lock', () => {
  it('leaves a fresh lock that another process took between our reading the stale one and our break lock', async () => {
    const file = path.join(dir, 'p.img.lock');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const record = (pid: number, token: string, purpose: string) =>
      JSON.stringify({ pid, host: os.hostname(), boot: bootId(), start: '', since: '2026-01-01T00:00:00.000Z', purpose, token });
    writeFileSync(file, record(dead, 'dead0000dead0000', 'dead'));
    // Another live process breaks the stale lock and takes it, just before we take the break lock.
    const fresh = record(process.pid, 'f7e5f7e5f7e5f7e5', 'partition other');
    beforeBreakLink.run = () => writeFileSync(file, fresh);
    const refused = await FileLock.acquire(file, 'partition p').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LockedError);
    expect((refused as InstanceType<typeof LockedError>).holder).toMatchObject({ purpose: 'partition other' });
    expect(readFileSync(file, 'utf8')).toBe(fresh);
    expect(existsSync(`${file}.break`)).toBe(false);
  });
});
