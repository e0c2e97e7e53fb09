/**
 * An image file whose reads or metadata fail after it was opened (EIO from a failing disk): an
 * attach is refused as ERR_STORAGE naming the image and the cause, and undoes what it did (lock,
 * handle); a wipe is refused the same way and scrubs nothing (host/storage/storage.ts). The
 * file-system calls are made to fail here by replacing them on the image's handle. And a keystore
 * changed by another writer in the middle of a wipe's look at it. And an image lock whose release
 * fails (its file unreadable) after a wipe or a detach was done: ERR_STORAGE naming the lock file
 * and saying what was done, never an untyped rejection nor a `wipe-failed` for a finished wipe.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const failing = { call: '' as '' | 'stat' | 'read', lock: false };
const eio = (what: string) => Object.assign(new Error(`EIO: simulated ${what} failure`), { code: 'EIO' });

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open = async (...args: Parameters<typeof real.open>): Promise<FileHandle> => {
    // The lock's record is read (opened by its own name) only to release it here: acquiring creates it.
    if (failing.lock && String(args[0]).endsWith('.img.lock')) throw eio('lock read');
    const handle = await real.open(...args);
    if (String(args[0]).endsWith('.img')) {
      const { stat, read } = handle;
      // The identity (dev:ino) is asked with bigint: only that stat fails.
      handle.stat = (async (options?: { bigint?: boolean }) => {
        if (failing.call === 'stat' && options?.bigint === true) throw eio('fstat');
        return stat.call(handle, options as never);
      }) as typeof handle.stat;
      handle.read = (async (...a: unknown[]) => {
        if (failing.call === 'read') throw eio('read');
        return (read as (...b: unknown[]) => unknown).apply(handle, a);
      }) as typeof handle.read;
    }
    return handle;
  };
  return { ...real, default: { ...real, open }, open };
});

const { Storage } = await import('../../host/storage/storage.ts');
const { StorageError } = await import('../../host/errors.ts');
const { Keystore } = await import('../../host/storage/keystore.ts');
const { deriveImageKeys } = await import('../../host/storage/image.ts');
const { FORMAT1_PAIR, format1Header } = await import('./format1.ts');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-stfault-'));
  failing.call = '';
  failing.lock = false;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('an image whose file fails after it was opened', () => {
  it('is not attached: ERR_STORAGE naming the image and the cause, its lock released, and the next attach works', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    const file = st.imagePath('p');
    failing.call = 'stat';
    const refused = await st.attach('p', 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toBe(`cannot open the block image of p at ${file}: EIO: simulated fstat failure`);
    expect((refused as Error).cause).toMatchObject({ code: 'EIO' });
    expect(existsSync(`${file}.lock`)).toBe(false);
    failing.call = '';
    const again = await st.attach('p', 1);
    expect(again.created).toBe(false);
    await st.detach(again);
  });

  it('is not wiped: ERR_STORAGE naming the image and the cause, and the image, its key and its lock are as they were', async () => {
    const events: unknown[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e) });
    await st.detach(await st.attach('p', 1));
    const file = st.imagePath('p');
    const bytes = readFileSync(file);
    events.length = 0;
    failing.call = 'read';
    const refused = await st.wipe('p').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toBe(`cannot wipe the block image of p at ${file}: EIO: simulated read failure`);
    expect((refused as Error).cause).toMatchObject({ code: 'EIO' });
    expect(events).toEqual([{ kind: 'wipe-failed', name: 'p', path: file, code: 'ERR_STORAGE', message: (refused as Error).message }]);
    expect(readFileSync(file).equals(bytes)).toBe(true);
    expect(existsSync(`${file}.lock`)).toBe(false);
    expect((await st.keystore!.list()).map((k) => k.name)).toEqual(['p']);
    failing.call = '';
    expect(await st.wipe('p')).toMatchObject({ removedImage: true, removedKey: true });
  });
});

describe('a keystore changed by another writer during a wipe', () => {
  it("a format-1 name key removed between the wipe's listing and its look-up is skipped: the name's own image is still found and scrubbed", async () => {
    const pKey = randomBytes(32);
    writeFileSync(path.join(dir, 'keystore.json'), JSON.stringify({ format: 'wasmvisor-keystore/1', keys: { a: randomBytes(32).toString('base64'), p: pKey.toString('base64') } }));
    const imageId = randomBytes(16);
    const file = path.join(dir, 'images', 'p.img');
    mkdirSync(path.dirname(file));
    writeFileSync(file, format1Header(deriveImageKeys(pKey, imageId, 'p').macKey, imageId, 'p', 256));
    truncateSync(file, 4096 + 256 * FORMAT1_PAIR);
    const st = new Storage({ dataDir: dir });
    // Another writer (a second process's wipe of a) removes a's key just before this wipe reads it.
    const other = new Keystore(path.join(dir, 'keystore'), path.join(dir, 'keystore.json'));
    const nameKey = st.keystore!.nameKey.bind(st.keystore);
    const asked: string[] = [];
    st.keystore!.nameKey = async (name: string) => {
      asked.push(name);
      if (name === 'a') expect(await other.remove(null, '', 'a', true)).toBe(true);
      const key = await nameKey(name);
      if (name === 'a') expect(key).toBeNull();
      return key;
    };
    expect(await st.wipe('p')).toEqual({ path: file, removedImage: true, removedKey: true, images: [file] });
    expect(asked).toEqual(['a', 'p']);
    expect(await other.list()).toEqual([]);
  });
});

describe('an image lock whose release fails after the work it guarded was done', () => {
  it('a wipe that scrubbed the image is ERR_STORAGE naming the lock file and saying the image was scrubbed; no wipe-failed event', async () => {
    const events: { kind: string }[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e) });
    await st.detach(await st.attach('p', 1));
    const file = st.imagePath('p');
    events.length = 0;
    failing.lock = true;
    const refused = await st.wipe('p').catch((e: unknown) => e);
    failing.lock = false;
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as InstanceType<typeof StorageError>).code).toBe('ERR_STORAGE');
    expect((refused as Error).message).toBe(
      `wiped the block image of p at ${file} (the image scrubbed and removed, its key removed), but cannot release its lock ${file}.lock: ` +
        'EIO: simulated lock read failure; remove that file once no partition has the image attached',
    );
    expect((refused as Error).cause).toMatchObject({ code: 'EIO' });
    expect(events).toEqual([{ kind: 'wiped', name: 'p', path: file, removedImage: true, removedKey: true }]);
    expect(existsSync(file)).toBe(false);
    expect(existsSync(`${file}.lock`)).toBe(true);
    expect(await st.keystore!.list()).toEqual([]);
  });

  it('a wipe that found no image says so, and with a master key names no key', async () => {
    const st = new Storage({ dataDir: dir, masterKey: randomBytes(32) });
    mkdirSync(path.join(dir, 'images'), { recursive: true });
    const file = st.imagePath('q');
    failing.lock = true;
    const refused = await st.wipe('q').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toBe(
      `wiped the block image of q at ${file} (no image there), but cannot release its lock ${file}.lock: ` +
        'EIO: simulated lock read failure; remove that file once no partition has the image attached',
    );
  });

  it("a wipe that failed is refused with its own failure, not the lock's, and reported as wipe-failed", async () => {
    const events: unknown[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e) });
    await st.detach(await st.attach('p', 1));
    const file = st.imagePath('p');
    events.length = 0;
    failing.call = 'read';
    failing.lock = true;
    const refused = await st.wipe('p').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toBe(`cannot wipe the block image of p at ${file}: EIO: simulated read failure`);
    expect(events).toEqual([{ kind: 'wipe-failed', name: 'p', path: file, code: 'ERR_STORAGE', message: (refused as Error).message }]);
    expect(existsSync(file)).toBe(true);
  });

  it('a wipe that took no lock (no images folder) and failed is refused with its own failure', async () => {
    const events: unknown[] = [];
    writeFileSync(path.join(dir, 'keystore.json'), 'garbage');
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e) });
    const file = st.imagePath('p');
    const refused = await st.wipe('p').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toBe(`cannot wipe the block image of p at ${file}: ${path.join(dir, 'keystore.json')} is not a usable wasmvisor keystore: no keystore header`);
    expect(events).toEqual([{ kind: 'wipe-failed', name: 'p', path: file, code: 'ERR_STORAGE', message: (refused as Error).message }]);
    expect(existsSync(path.join(dir, 'images'))).toBe(false);
  });

  it("an attach that failed is refused with its own failure, not the lock's", async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    const file = st.imagePath('p');
    failing.lock = true;
    for (const call of ['read', 'stat'] as const) {
      failing.call = call;
      const refused = await st.attach('p', 1).catch((e: unknown) => e);
      expect(refused, call).toBeInstanceOf(StorageError);
      expect((refused as Error).message).toBe(`cannot open the block image of p at ${file}: EIO: simulated ${call === 'read' ? 'read' : 'fstat'} failure`);
      // The lock could not be read to be released: it stays, naming this process.
      expect(existsSync(`${file}.lock`)).toBe(true);
      rmSync(`${file}.lock`);
    }
  });

  it('a detach is ERR_STORAGE naming the lock file and saying the image was flushed and closed', async () => {
    const st = new Storage({ dataDir: dir });
    const attachment = await st.attach('p', 1);
    const file = st.imagePath('p');
    failing.lock = true;
    const refused = await st.detach(attachment).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toBe(
      `detached the block image at ${file} (flushed and closed), but cannot release its lock ${file}.lock: ` +
        'EIO: simulated lock read failure; remove that file once no partition has the image attached',
    );
    expect((refused as Error).cause).toMatchObject({ code: 'EIO' });
    expect(attachment.dataKey.every((b) => b === 0)).toBe(true);
    failing.lock = false;
    await st.detach(attachment);
  });
});
