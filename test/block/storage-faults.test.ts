/**
 * An image file whose reads or metadata fail after it was opened (EIO from a failing disk): an
 * attach is refused as ERR_STORAGE naming the image and the cause, and undoes what it did (lock,
 * handle); a wipe is refused the same way and scrubs nothing (host/storage/storage.ts). The
 * file-system calls are made to fail here by replacing them on the image's handle. And a keystore
 * changed by another writer in the middle of a wipe's look at it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const failing = { call: '' as '' | 'stat' | 'read' };
const eio = (what: string) => Object.assign(new Error(`EIO: simulated ${what} failure`), { code: 'EIO' });

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open = async (...args: Parameters<typeof real.open>): Promise<FileHandle> => {
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
