/**
 * A keystore update that fails after its temporary file exists (the rename, the write or the
 * fsync fails) removes that file: no copy of the keys is left beside the keystore, and the
 * keystore itself is unchanged. The file-system calls are made to fail here by replacing them.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const failing = { call: '' as '' | 'rename' | 'sync' };

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    rename: async (from: string, to: string) => {
      if (failing.call === 'rename' && from.endsWith('.tmp')) throw Object.assign(new Error('EIO: simulated rename failure'), { code: 'EIO' });
      return real.rename(from, to);
    },
    open: async (...args: Parameters<typeof real.open>) => {
      const handle = await real.open(...args);
      if (failing.call === 'sync' && String(args[0]).endsWith('.tmp')) {
        handle.sync = async () => {
          throw Object.assign(new Error('EIO: simulated fsync failure'), { code: 'EIO' });
        };
      }
      return handle;
    },
  };
});

const { Storage } = await import('../../host/storage/storage.ts');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-ksfail-'));
  failing.call = '';
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('failed keystore updates', () => {
  for (const call of ['rename', 'sync'] as const) {
    it(`a failed ${call} leaves no temporary file and the keystore as it was`, async () => {
      const st = new Storage({ dataDir: dir });
      const a = await st.attach('first', 1);
      await st.detach(a);
      const before = readFileSync(path.join(dir, 'keystore'));
      failing.call = call;
      await expect(st.attach('second', 1)).rejects.toMatchObject({ code: 'ERR_STORAGE', message: expect.stringContaining('simulated') });
      expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      expect(readFileSync(path.join(dir, 'keystore')).equals(before)).toBe(true);
      expect(existsSync(path.join(dir, 'images', 'second.img'))).toBe(false);
      failing.call = '';
      const b = await st.attach('second', 1);
      expect(b.created).toBe(true);
      await st.detach(b);
    });
  }
});
