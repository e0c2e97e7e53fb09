/**
 * Storage.list (what `wasmvisor disk list` prints), in process: each image with its name, size,
 * format, id and key source, who has it attached, and what is wrong with it — without using a key.
 */
import { mkdtempSync, rmSync, truncateSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Storage } from '../../host/storage/storage.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-list-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('Storage.list', () => {
  it('is empty without an images folder, and lists only .img files in it', async () => {
    const st = new Storage({ dataDir: dir });
    expect(await st.list()).toEqual([]);
    mkdirSync(path.join(dir, 'images'));
    writeFileSync(path.join(dir, 'images', 'notes.txt'), 'x');
    expect(await st.list()).toEqual([]);
  });

  it('names each image, gives its size, format, id and key, and who has it attached', async () => {
    const st = new Storage({ dataDir: dir });
    const a = await st.attach('alpha', 1);
    const elsewhere = path.join(dir, 'elsewhere', 'beta.img');
    mkdirSync(path.dirname(elsewhere));
    const b = await st.attach('beta', 2, elsewhere);
    await st.detach(b);
    const list = await st.list();
    expect(list.map((d) => d.path)).toEqual([path.join(dir, 'elsewhere', 'beta.img'), path.join(dir, 'images', 'alpha.img')].sort());
    const alpha = list.find((d) => d.name === 'alpha')!;
    expect(alpha).toMatchObject({ path: path.join(dir, 'images', 'alpha.img'), sizeBytes: 1 << 20, format: 2, key: 'keystore', problem: null });
    expect(alpha.imageId).toMatch(/^[0-9a-f]{32,}$/);
    expect(alpha.inUse).toMatchObject({ pid: process.pid, purpose: expect.stringContaining('alpha') });
    expect(Date.parse(alpha.modified!)).not.toBeNaN();
    expect(alpha.allocatedBytes).toBeGreaterThan(0);
    const beta = list.find((d) => d.name === 'beta')!;
    expect(beta).toMatchObject({ sizeBytes: 2 << 20, key: 'keystore', inUse: null, problem: null });
    await st.detach(a);
    expect((await st.list()).find((d) => d.name === 'alpha')!.inUse).toBeNull();
  });

  it('says when an image has no key, when its key has no image, and when it is cut short', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('alpha', 1));
    await st.detach(await st.attach('gamma', 1));
    const other = new Storage({ dataDir: dir, keystorePath: path.join(dir, 'other-keystore') });
    for (const d of await other.list()) expect(d).toMatchObject({ key: 'missing', problem: 'no key for it in the keystore' });
    const gamma = path.join(dir, 'images', 'gamma.img');
    unlinkSync(gamma);
    const alpha = path.join(dir, 'images', 'alpha.img');
    truncateSync(alpha, 4096);
    const list = await st.list();
    expect(list.find((d) => d.path === gamma)).toMatchObject({ name: 'gamma', key: 'keystore', sizeBytes: null, problem: 'the image is missing; its key is in the keystore' });
    expect(list.find((d) => d.path === gamma)!.imageId).toMatch(/^[0-9a-f]+$/);
    expect(list.find((d) => d.path === alpha)!.problem).toMatch(/^truncated \(4096 bytes, expected \d+\)$/);
    writeFileSync(alpha, 'not an image');
    expect(list.length).toBe(2);
    expect((await st.list()).find((d) => d.path === alpha)).toMatchObject({ name: 'alpha', sizeBytes: null, problem: expect.any(String) });
  });

  it('with a storage key every image is keyed by it', async () => {
    const st = new Storage({ dataDir: dir, masterKey: new Uint8Array(32).fill(7) });
    await st.detach(await st.attach('alpha', 1));
    expect(await st.list()).toEqual([expect.objectContaining({ name: 'alpha', key: 'storage-key', problem: null })]);
  });
});
