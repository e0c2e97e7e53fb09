/**
 * The files around the keystore (host/storage/keystore.ts): an update removes the temporary files
 * of writers that died — its own name's, with a dead pid or this process's (whose saves never
 * overlap an update) — and nothing else in the folder; and two removes of one key race safely.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Keystore, syncDir } from '../../host/storage/keystore.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-ksfiles-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The pid of a process that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

describe('temporary files', () => {
  it('of dead writers and of this process are removed; a live writer’s, another file’s and other names are kept', async () => {
    const file = path.join(dir, 'keystore');
    const ks = new Keystore(file);
    const tmp = (base: string, pid: number, tail = '') => {
      const name = path.join(dir, `${base}.${pid}.${randomBytes(6).toString('hex')}.tmp${tail}`);
      writeFileSync(name, 'keys');
      return name;
    };
    const dead = tmp('keystore', deadPid());
    const own = tmp('keystore', process.pid);
    const live = tmp('keystore', process.ppid);
    const otherFile = tmp('other-keystore', deadPid());
    const notTmp = tmp('keystore', deadPid(), '.keep');
    await ks.reserve(randomBytes(16), 'p', '/d/p.img', randomBytes(32), true);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(own)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(otherFile)).toBe(true);
    expect(existsSync(notTmp)).toBe(true);
  });
});

describe('syncDir', () => {
  it('answers quietly for a folder it cannot open (nothing to make durable), and syncs one it can', async () => {
    await expect(syncDir(path.join(dir, 'missing'))).resolves.toBeUndefined();
    await expect(syncDir(path.join(dir, 'missing', 'deeper'))).resolves.toBeUndefined();
    await expect(syncDir(dir)).resolves.toBeUndefined();
  });
});

describe('two processes removing one key', () => {
  it('at once: exactly one of them removes it, and the other is told it found nothing', async () => {
    const file = path.join(dir, 'keystore');
    const id = randomBytes(16);
    await new Keystore(file).reserve(id, 'p', '/d/p.img', randomBytes(32), true);
    // Both see the key before either takes the lock; the second finds it gone under the lock.
    const results = await Promise.all([new Keystore(file).remove(id, '/d/p.img', 'p', false), new Keystore(file).remove(id, '/d/p.img', 'p', false)]);
    expect(results.sort()).toEqual([false, true]);
    expect(await new Keystore(file).list()).toEqual([]);
  });
});
