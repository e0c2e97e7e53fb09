/**
 * The keystore leaves no key behind (host/storage/keystore.ts): every buffer it makes for key
 * material (secret.ts: each key read from the file, each key filed, the file's image read and
 * written) is zeroed before the call returns, except the copy a lookup hands to its caller; and
 * every file it opened is closed. The buffers are watched by wrapping secret.ts's two makers, the
 * files by wrapping fs.promises.open. Also: the image keys a wipe derives to tell whose an image
 * is (image.ts's deriveImageKeys, wrapped) are zeroed.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const made: Buffer[] = [];
vi.mock('../../host/storage/secret.ts', async (importOriginal) => {
  const secret = await importOriginal<typeof import('../../host/storage/secret.ts')>();
  return {
    ...secret,
    secretBuffer: (n: number) => {
      const b = secret.secretBuffer(n);
      made.push(b);
      return b;
    },
    secretCopy: (src: Uint8Array) => {
      const b = secret.secretCopy(src);
      made.push(b);
      return b;
    },
  };
});

/** Every pair of image keys storage.ts derives (image.ts's deriveImageKeys, wrapped). */
const derived: Buffer[] = [];
vi.mock('../../host/storage/image.ts', async (importOriginal) => {
  const image = await importOriginal<typeof import('../../host/storage/image.ts')>();
  return {
    ...image,
    deriveImageKeys: (...args: Parameters<typeof image.deriveImageKeys>) => {
      const keys = image.deriveImageKeys(...args);
      derived.push(keys.dataKey, keys.macKey);
      return keys;
    },
  };
});

vi.mock('node:fs/promises', async (importOriginal) => {
  const fsp = await importOriginal<typeof import('node:fs/promises')>();
  const open = (await import('./open-files.ts')).trackedOpen(fsp);
  return { ...fsp, default: { ...fsp, open }, open };
});

const { openHandles } = await import('./open-files.ts');
const { Keystore } = await import('../../host/storage/keystore.ts');
const { Storage } = await import('../../host/storage/storage.ts');
const { deriveImageKeys } = await import('../../host/storage/image.ts');
const { FORMAT1_PAIR, format1Header } = await import('./format1.ts');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-kszero-'));
  made.length = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs op; every buffer secret.ts made meanwhile is all zeros afterwards, except those it returned, and every file it opened is closed, except those it keeps open. */
async function leavesNoKey<T>(what: string, op: () => Promise<T>, returned: (result: T) => Buffer[] = () => [], keptOpen: (result: T) => unknown[] = () => []): Promise<T> {
  made.length = 0;
  const result = await op();
  const kept = new Set(returned(result));
  const left = made.filter((b) => !kept.has(b) && b.some((x) => x !== 0));
  expect(made.length, `${what} made key buffers`).toBeGreaterThan(0);
  expect(left.length, `${what} left ${left.length} key buffers with key bytes`).toBe(0);
  expect([...openHandles], `${what} left files open`).toEqual(keptOpen(result));
  return result;
}

describe('the keystore zeroes every key it handled', () => {
  it('in each read and each update, keeping only the copy it returns', async () => {
    const file = path.join(dir, 'keystore');
    const ks = new Keystore(file);
    const id = randomBytes(16);
    const other = randomBytes(16);
    const key = randomBytes(32);
    await leavesNoKey('reserve', () => ks.reserve(id, 'p', '/d/p.img', Buffer.from(key), true));
    await leavesNoKey('reserve of a second key', () => ks.reserve(other, 'q', '/d/q.img', randomBytes(32), true));
    await leavesNoKey('commit', () => ks.commit(id));
    await leavesNoKey('commit that changes nothing', () => ks.commit(id));
    await leavesNoKey('list', () => ks.list());
    const found = await leavesNoKey('find', () => ks.find(id), (r) => [r!.key]);
    expect(found!.key.equals(key)).toBe(true);
    await leavesNoKey('nameKey', () => ks.nameKey('p'));
    await leavesNoKey('remove', () => ks.remove(other, '/d/q.img', 'q', false));
    await leavesNoKey('remove of nothing', () => ks.remove(other, '/d/q.img', 'q', false).then((r) => expect(r).toBe(false)));
  });

  it('taking over a format-1 keystore, and adopting its name key', async () => {
    const legacy = path.join(dir, 'keystore.json');
    writeFileSync(legacy, JSON.stringify({ format: 'wasmvisor-keystore/1', keys: { old: randomBytes(32).toString('base64') } }));
    const ks = new Keystore(path.join(dir, 'keystore'), legacy);
    await leavesNoKey('nameKey from the format-1 file', () => ks.nameKey('old'), (r) => [r!]);
    await leavesNoKey('adoptNameKey', () => ks.adoptNameKey('old', randomBytes(16), '/d/old.img'));
  });

  it('creating an image keeps no copy of its new keystore key', async () => {
    const st = new Storage({ dataDir: dir });
    const a = await leavesNoKey('attach that creates the image', () => st.attach('p', 1), () => [], (r) => [r.handle]);
    expect(a.created).toBe(true);
    await st.detach(a);
  });

  it("a wipe zeroes the keys it derived to tell whose an image is (under the storage key, under each format-1 name key)", async () => {
    const keyed = new Storage({ dataDir: path.join(dir, 'keyed'), masterKey: randomBytes(32) });
    await keyed.detach(await keyed.attach('p', 1));
    derived.length = 0;
    expect(await keyed.wipe('p')).toMatchObject({ removedImage: true });
    expect(derived.length).toBe(2);
    expect(derived.every((b) => b.every((x) => x === 0))).toBe(true);
    // A format-1 keystore: each name key is tried (a's does not open p's header, p's does).
    const pKey = randomBytes(32);
    writeFileSync(path.join(dir, 'keystore.json'), JSON.stringify({ format: 'wasmvisor-keystore/1', keys: { a: randomBytes(32).toString('base64'), p: pKey.toString('base64') } }));
    const imageId = randomBytes(16);
    mkdirSync(path.join(dir, 'images'));
    writeFileSync(path.join(dir, 'images', 'p.img'), format1Header(deriveImageKeys(pKey, imageId, 'p').macKey, imageId, 'p', 256));
    truncateSync(path.join(dir, 'images', 'p.img'), 4096 + 256 * FORMAT1_PAIR);
    const st = new Storage({ dataDir: dir });
    derived.length = 0;
    expect(await leavesNoKey('wipe of a format-1 image', () => st.wipe('p'))).toMatchObject({ removedImage: true, removedKey: true });
    expect(derived.length).toBe(4);
    expect(derived.every((b) => b.every((x) => x === 0))).toBe(true);
  });

  it('opening an existing image keeps no copy of its keystore key', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    // The attachment's data key is the image's own (derived), handed to the caller: not a secret.ts copy.
    const a = await leavesNoKey('attach of an existing image', () => st.attach('p', 1), () => [], (r) => [r.handle]);
    await st.detach(a);
  });
});
