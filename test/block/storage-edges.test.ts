/**
 * The storage back-end's paths that the main suites leave out (host/storage/storage.ts, in process):
 * a closed Storage, a data directory it cannot make, a truncated image, a create that fails after
 * its key was filed, wiping without making anything and what is in an image's place, and listing
 * with a damaged or a format-1 keystore. Found by mutation testing (docs/MUTATION.md).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, linkSync, mkdirSync, renameSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, InvalidStateError, StorageError } from '../../host/errors.ts';
import { deriveImageKeys, imageFileSize } from '../../host/storage/image.ts';
import { Storage } from '../../host/storage/storage.ts';
import { FORMAT1_PAIR, format1Header } from './format1.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-stedge-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A format-1 keystore (keystore.json: name -> base64 key), as the first versions wrote it. */
function format1Keystore(keys: Record<string, Buffer>): void {
  const entries = Object.fromEntries(Object.entries(keys).map(([name, key]) => [name, key.toString('base64')]));
  writeFileSync(path.join(dir, 'keystore.json'), JSON.stringify({ format: 'wasmvisor-keystore/1', keys: entries }));
}

/**
 * A format-1 image as the first versions wrote it (a v1 header, then a pair of 4144-byte slots per
 * sector), with no sector written: enough for the size checks, which need a header that authenticates.
 */
function format1Image(file: string, masterKey: Buffer, name: string, sectors: number): number {
  const imageId = randomBytes(16);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, format1Header(deriveImageKeys(masterKey, imageId, name).macKey, imageId, name, sectors));
  const size = 4096 + sectors * FORMAT1_PAIR;
  truncateSync(file, size);
  return size;
}

describe('Storage refuses', () => {
  it('every attach once closed, as ERR_INVALID_STATE', async () => {
    const st = new Storage({ dataDir: dir });
    st.close();
    const refused = await st.attach('p', 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidStateError);
    expect((refused as Error).message).toBe('the storage of this hypervisor is closed');
    expect(existsSync(path.join(dir, 'images', 'p.img'))).toBe(false);
  });

  it('an image another Storage of this process has attached, reached by another path (a hard link), as ERR_INVALID_STATE', async () => {
    const first = new Storage({ dataDir: dir });
    const held = await first.attach('p', 1);
    const link = path.join(dir, 'link.img');
    linkSync(first.imagePath('p'), link);
    const second = new Storage({ dataDir: dir });
    await expect(second.attach('p', 1, link)).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: `cannot open the block image of p at ${link}: it is the image of live partition p (attached at ${first.imagePath('p')})` });
    // Refused whole: no lock left behind, and the first attachment still works.
    expect(existsSync(`${link}.lock`)).toBe(false);
    await first.detach(held);
    await second.detach(await second.attach('p', 1, link));
  });

  it('a data directory it cannot make, as ERR_STORAGE naming the image and the cause', async () => {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const st = new Storage({ dataDir: path.join(file, 'data') });
    const refused = await st.attach('p', 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    const image = path.join(file, 'data', 'images', 'p.img');
    expect((refused as Error).message).toMatch(new RegExp(`^cannot open the block image of p at ${image}: ENOTDIR`));
    expect((refused as Error).cause).toMatchObject({ code: 'ENOTDIR' });
  });

  it('an image shorter than its size, as ERR_INTEGRITY naming both sizes', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    const file = st.imagePath('p');
    const expected = imageFileSize(256);
    truncateSync(file, expected - 1);
    const refused = await st.attach('p', 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(IntegrityError);
    expect((refused as Error).message).toBe(`the block image of p at ${file} is truncated (${expected - 1} bytes, expected ${expected})`);
    // Nothing was changed, and the image is not left locked.
    truncateSync(file, expected);
    await st.detach(await st.attach('p', 1));
  });

  it('a format-1 image shorter than its size, as ERR_INTEGRITY naming both sizes, before converting anything', async () => {
    const masterKey = randomBytes(32);
    const st = new Storage({ dataDir: dir, masterKey });
    const file = st.imagePath('old');
    const expected = format1Image(file, masterKey, 'old', 256);
    truncateSync(file, expected - 1);
    const refused = await st.attach('old', 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(IntegrityError);
    expect((refused as Error).message).toBe(`the block image of old at ${file} is truncated (${expected - 1} bytes, expected ${expected})`);
    // Not converted: still format 1, as long as it was, and nothing beside it.
    expect((await st.list())[0]).toMatchObject({ format: 1, problem: `truncated (${expected - 1} bytes, expected ${expected})` });
    expect(statSync(file).size).toBe(expected - 1);
    expect(readdirSync(path.dirname(file))).toEqual(['old.img']);
    // Whole again, it opens (and is converted).
    truncateSync(file, expected);
    await st.detach(await st.attach('old', 1));
    expect((await st.list())[0]).toMatchObject({ format: 2, problem: null });
  });

  it('a format-1 image converts sparse: slots never written and groups without a version take no space', async () => {
    const masterKey = randomBytes(32);
    const st = new Storage({ dataDir: dir, masterKey });
    const file = st.imagePath('old');
    format1Image(file, masterKey, 'old', 2048);
    await st.detach(await st.attach('old', 8));
    expect((await st.list())[0]).toMatchObject({ format: 2, problem: null, sizeBytes: 8 << 20 });
    // Only the new header is written (a page or two of allocation, with room for a file system's
    // preallocation); a zero metadata page for each of the 64 groups would be 256 KiB more, every
    // empty slot copied 16 MiB.
    expect(statSync(file).size).toBe(imageFileSize(2048));
    expect(statSync(file).blocks * 512).toBeLessThanOrEqual(64 * 1024);
  });
});

describe('an existing image', () => {
  it('of another size is ERR_INVALID_ARGUMENT naming both sizes in MiB', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    await expect(st.attach('p', 3)).rejects.toThrow(
      'the block image of p holds 1 MiB, the spec asks for 3 MiB (images are not resized; wipe it to start over)',
    );
  });

  it('of a format this runtime does not read is ERR_STORAGE (not an integrity error: nothing was altered)', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    const header = Buffer.alloc(4);
    header.writeUInt32LE(3);
    const fd = openSync(st.imagePath('p'), 'r+');
    writeSync(fd, header, 0, 4, 8);
    closeSync(fd);
    const refused = await st.attach('p', 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect(refused).not.toBeInstanceOf(IntegrityError);
    expect((refused as Error).message).toMatch(/was refused: the image has format 3/);
  });

  it('behind a symlink is refused naming the link (ELOOP), and no key is made for it', async () => {
    const events: string[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e.kind) });
    mkdirSync(path.join(dir, 'images'));
    writeFileSync(path.join(dir, 'target'), 'x');
    symlinkSync(path.join(dir, 'target'), st.imagePath('p'));
    const refused = await st.attach('p', 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toMatch(/ELOOP/);
    expect(events).toEqual([]);
    expect(await st.keystore!.list()).toEqual([]);
  });
});

describe('a create', () => {
  it('tells the observer of the key it filed', async () => {
    const events: unknown[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e) });
    const a = await st.attach('p', 1);
    expect(events).toEqual([{ kind: 'key-created', name: 'p', path: st.imagePath('p'), imageId: Buffer.from(a.imageId).toString('hex') }]);
    await st.detach(a);
  });

  it('with a damaged keystore says what is wrong with it, not that an image is missing', async () => {
    writeFileSync(path.join(dir, 'keystore'), 'damaged');
    const refused = await new Storage({ dataDir: dir }).attach('p', 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toMatch(/is not a usable wasmvisor keystore/);
    expect((refused as Error).message).not.toMatch(/is missing/);
  });

  it('of an image whose key exists without it says how to start over', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('db', 1));
    rmSync(st.imagePath('db'));
    await expect(st.attach('db', 1)).rejects.toThrow(/or wipe it \(wasmvisor delete db, hv\.wipeStorage\) to drop that key and start over$/);
  });
});

describe('a create that fails after its key was filed', () => {
  it('removes that key (and only it) and every temporary file', async () => {
    const nameKey = randomBytes(32);
    format1Keystore({ p: nameKey });
    const st = new Storage({ dataDir: dir });
    const elsewhere = path.join(dir, 'elsewhere', 'p.img');
    mkdirSync(path.dirname(elsewhere));
    // 2^30 MiB: more sectors than a header holds, found once the key is filed and the temporary file made.
    const refused = await st.attach('p', 2 ** 30, elsewhere).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).cause).toBeInstanceOf(RangeError);
    // The format-1 key of p (which applies to p's default place, not to this one) is still there.
    expect(await st.keystore!.list()).toEqual([{ imageId: null, name: 'p', path: '', pending: false }]);
    expect(readdirSync(path.dirname(elsewhere))).toEqual([]);
    expect((await st.keystore!.nameKey('p'))!.equals(nameKey)).toBe(true);
  });
});

describe('wipe', () => {
  it("of a copy of another image (`cp kv.img kv2.img`, a backup at a path of its own) leaves that image's key: the original still opens", async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('kv', 1));
    const original = st.imagePath('kv');
    const copy = st.imagePath('kv2');
    const backup = path.join(dir, 'backup', 'kv.img');
    mkdirSync(path.dirname(backup));
    writeFileSync(copy, readFileSync(original));
    writeFileSync(backup, readFileSync(original));
    // The listing says what the copies are (before: both "ok", named kv).
    const listed = await st.list();
    expect(listed.find((d) => d.path === copy)).toMatchObject({ name: 'kv', problem: `a copy of ${original}, whose key the keystore holds (deleting the copy leaves that key)` });
    expect(listed.find((d) => d.path === original)).toMatchObject({ name: 'kv', problem: null });
    // Wiping a copy scrubs the copy only; the key stays with the image it was made for.
    expect(await st.wipe('kv2')).toEqual({ path: copy, removedImage: true, removedKey: false, images: [copy] });
    expect(await st.wipe('kv', backup)).toEqual({ path: backup, removedImage: true, removedKey: false, images: [backup] });
    await st.detach(await st.attach('kv', 1));
    // The original itself: image and key go.
    expect(await st.wipe('kv')).toEqual({ path: original, removedImage: true, removedKey: true, images: [original] });
    expect(await st.keystore!.list()).toEqual([]);
  });

  it('of a moved image (nothing of its id left where its key was filed) removes its key with it', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('kv', 1));
    const moved = path.join(dir, 'moved', 'kv.img');
    mkdirSync(path.dirname(moved));
    renameSync(st.imagePath('kv'), moved);
    expect(await st.wipe('kv', moved)).toEqual({ path: moved, removedImage: true, removedKey: true, images: [moved] });
    expect(await st.keystore!.list()).toEqual([]);
  });

  it('of an image at a path of its own makes no data directory', async () => {
    const st = new Storage({ dataDir: path.join(dir, 'data') });
    const own = path.join(dir, 'own', 'p.img');
    mkdirSync(path.dirname(own));
    expect(await st.wipe('p', own)).toEqual({ path: own, removedImage: false, removedKey: false, images: [] });
    expect(existsSync(path.join(dir, 'data'))).toBe(false);
  });

  it('leaves a file that is not an image in an image’s place untouched (ERR_INTEGRITY, keys kept), and removes a format-1 key only at the name’s own place', async () => {
    format1Keystore({ p: randomBytes(32) });
    const st = new Storage({ dataDir: dir });
    const own = path.join(dir, 'own', 'p.img');
    mkdirSync(path.dirname(own));
    // Not one of ours: a wipe must never scrub a file it cannot tell is the name's image.
    writeFileSync(own, 'not an image');
    await expect(st.wipe('p', own)).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
      message: `refusing to wipe ${own} as the block image of p: it is not a Wasmvisor block image (shorter than an image header); it was left untouched`,
    });
    expect(readFileSync(own, 'utf8')).toBe('not an image');
    rmSync(own);
    expect(await st.wipe('p', own)).toEqual({ path: own, removedImage: false, removedKey: false, images: [] });
    mkdirSync(path.join(dir, 'images'));
    writeFileSync(st.imagePath('p'), 'x'.repeat(5000));
    await expect(st.wipe('p')).rejects.toMatchObject({ code: 'ERR_INTEGRITY', message: expect.stringContaining('it does not start with the image magic') });
    expect(readFileSync(st.imagePath('p'), 'utf8')).toBe('x'.repeat(5000));
    expect((await st.keystore!.list()).map((k) => k.name)).toEqual(['p']);
    rmSync(st.imagePath('p'));
    expect(await st.wipe('p')).toEqual({ path: st.imagePath('p'), removedImage: false, removedKey: true, images: [] });
    expect(await st.keystore!.list()).toEqual([]);
  });

  it("scrubs only the name's own image: another name's (by its key, by the storage key, by a format-1 name key) and a special file are left untouched", async () => {
    // Keystore: the key filed for the image's id names its partition.
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('b', 1, 'images/a.img'));
    const image = st.imagePath('a');
    const bytes = readFileSync(image);
    await expect(st.wipe('a')).rejects.toMatchObject({ code: 'ERR_INTEGRITY', message: expect.stringContaining(`it is the block image of partition b (image id `) });
    expect(readFileSync(image).equals(bytes)).toBe(true);
    expect((await st.keystore!.list()).map((k) => [k.name, k.path])).toEqual([['b', image]]);
    // An image whose key is gone from this keystore: nothing in it can be read; the name may scrub it.
    rmSync(path.join(dir, 'keystore'));
    expect(await st.wipe('a')).toEqual({ path: image, removedImage: true, removedKey: false, images: [image] });
    // Storage key: the header authenticates for its own name only.
    const keyed = new Storage({ dataDir: path.join(dir, 'keyed'), masterKey: randomBytes(32) });
    await keyed.detach(await keyed.attach('b', 1, 'images/a.img'));
    await expect(keyed.wipe('a')).rejects.toMatchObject({ code: 'ERR_INTEGRITY', message: expect.stringContaining("does not authenticate as a's under the storage key") });
    expect(await keyed.wipe('b', 'images/a.img')).toMatchObject({ removedImage: true });
    // A format-1 keystore's name key opens its own name's image only.
    const legacy = path.join(dir, 'legacy');
    mkdirSync(path.join(legacy, 'images'), { recursive: true });
    const bKey = randomBytes(32);
    writeFileSync(path.join(legacy, 'keystore.json'), JSON.stringify({ format: 'wasmvisor-keystore/1', keys: { a: randomBytes(32).toString('base64'), b: bKey.toString('base64') } }));
    format1Image(path.join(legacy, 'images', 'a.img'), bKey, 'b', 256);
    const old = new Storage({ dataDir: legacy });
    await expect(old.wipe('a')).rejects.toMatchObject({ code: 'ERR_INTEGRITY', message: expect.stringContaining('it is the block image of partition b (image id ') });
    expect(existsSync(path.join(legacy, 'images', 'a.img'))).toBe(true);
    // Not a regular file: a directory in an image's place.
    mkdirSync(st.imagePath('d'));
    await expect(st.wipe('d')).rejects.toMatchObject({ code: 'ERR_INTEGRITY', message: `refusing to wipe ${st.imagePath('d')} as the block image of d: it is not a regular file; it was left untouched` });
    expect(existsSync(st.imagePath('d'))).toBe(true);
  });

  it("by name: finds the name's images at other paths through the keystore, and keeps the key of one whose directory is missing (a volume not mounted)", async () => {
    const st = new Storage({ dataDir: dir });
    const away = path.join(dir, 'volume', 'p.img');
    mkdirSync(path.dirname(away));
    await st.detach(await st.attach('p', 1, away));
    await st.detach(await st.attach('p', 1));
    await st.detach(await st.attach('q', 1, path.join(dir, 'volume', 'q.img')));
    rmSync(path.join(dir, 'volume'), { recursive: true });
    const refused = await st.wipeName('p').catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_STORAGE', message: expect.stringMatching(new RegExp(`^cannot wipe the block image of p at ${away}: its directory is missing`)) });
    // Refused before anything was wiped: the default place's image and every key are still there.
    expect(existsSync(st.imagePath('p'))).toBe(true);
    expect((await st.keystore!.list()).map((k) => k.name).sort()).toEqual(['p', 'p', 'q']);
    // The directory is back, its image gone (removed by hand): the name's wipe takes the default image and both of p's keys; q's stays.
    mkdirSync(path.dirname(away));
    expect(await st.wipeName('p')).toMatchObject({ removedImage: true, removedKey: true, images: [st.imagePath('p')] });
    expect((await st.keystore!.list()).map((k) => k.name)).toEqual(['q']);
  });

  it('by name: says exactly what it found, one `wiped` event per place, and a place with nothing there says so', async () => {
    const events: { kind: string; path?: string }[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e) });
    // Nothing of the name anywhere: the default place, nothing removed.
    expect(await st.wipeName('nobody')).toEqual({ path: st.imagePath('nobody'), removedImage: false, removedKey: false, images: [] });
    expect(events).toEqual([{ kind: 'wiped', name: 'nobody', path: st.imagePath('nobody'), removedImage: false, removedKey: false }]);
    // The default place only (its key filed there): wiped once, not again as a path the keystore files.
    await st.detach(await st.attach('p', 1));
    events.length = 0;
    expect(await st.wipeName('p')).toEqual({ path: st.imagePath('p'), removedImage: true, removedKey: true, images: [st.imagePath('p')] });
    expect(events).toEqual([{ kind: 'wiped', name: 'p', path: st.imagePath('p'), removedImage: true, removedKey: true }]);
    // Only a key left elsewhere (its image removed by hand, its directory there): the result names that place.
    const away = path.join(dir, 'volume', 'p.img');
    mkdirSync(path.dirname(away));
    await st.detach(await st.attach('p', 1, away));
    rmSync(away);
    expect(await st.wipeName('p')).toEqual({ path: away, removedImage: false, removedKey: true, images: [] });
    expect(await st.keystore!.list()).toEqual([]);
  });

  it('by name: a copy at the default place of the image elsewhere is scrubbed first (its key goes with the image it was filed for)', async () => {
    const events: { kind: string }[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e) });
    const away = path.join(dir, 'volume', 'p.img');
    mkdirSync(path.dirname(away));
    await st.detach(await st.attach('p', 1, away));
    mkdirSync(path.join(dir, 'images'));
    writeFileSync(st.imagePath('p'), readFileSync(away));
    events.length = 0;
    // Both images gone; the first place's wipe removed no key, the second's did: the result is the first image, and a key was removed.
    expect(await st.wipeName('p')).toEqual({ path: st.imagePath('p'), removedImage: true, removedKey: true, images: [st.imagePath('p'), away] });
    expect(events).toEqual([
      { kind: 'wiped', name: 'p', path: st.imagePath('p'), removedImage: true, removedKey: false },
      { kind: 'wiped', name: 'p', path: away, removedImage: true, removedKey: true },
    ]);
    expect(await st.keystore!.list()).toEqual([]);
  });

  it("by name: leaves another name's image and key at a path of its own, and finds no path for a format-1 key (it is the default place's)", async () => {
    const st = new Storage({ dataDir: dir });
    const other = path.join(dir, 'volume', 'q.img');
    mkdirSync(path.dirname(other));
    await st.detach(await st.attach('q', 1, other));
    const bytes = readFileSync(other);
    await st.detach(await st.attach('p', 1));
    expect(await st.wipeName('p')).toEqual({ path: st.imagePath('p'), removedImage: true, removedKey: true, images: [st.imagePath('p')] });
    expect(readFileSync(other).equals(bytes)).toBe(true);
    expect((await st.keystore!.list()).map((k) => [k.name, k.path])).toEqual([['q', other]]);
    // A format-1 keystore files its keys by name, with no path: only the default place is wiped.
    const legacy = path.join(dir, 'legacy');
    mkdirSync(legacy);
    const key = randomBytes(32);
    writeFileSync(path.join(legacy, 'keystore.json'), JSON.stringify({ format: 'wasmvisor-keystore/1', keys: { r: key.toString('base64') } }));
    const image = path.join(legacy, 'images', 'r.img');
    format1Image(image, key, 'r', 256);
    const old = new Storage({ dataDir: legacy });
    expect(await old.wipeName('r')).toEqual({ path: image, removedImage: true, removedKey: true, images: [image] });
    expect(await old.keystore!.list()).toEqual([]);
  });

  it('by name with a storage key: the default place only (nothing records other paths)', async () => {
    const st = new Storage({ dataDir: dir, masterKey: randomBytes(32) });
    await st.detach(await st.attach('p', 1));
    expect(await st.wipeName('p')).toEqual({ path: st.imagePath('p'), removedImage: true, removedKey: false, images: [st.imagePath('p')] });
    expect(existsSync(path.join(dir, 'keystore'))).toBe(false);
  });

  it('by name with a damaged keystore is ERR_STORAGE naming the name and the cause, and removes nothing', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    writeFileSync(path.join(dir, 'keystore'), 'damaged');
    const refused = await st.wipeName('p').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toMatch(/^cannot wipe the block images of p: \S/);
    expect((refused as Error).cause).toBeInstanceOf(Error);
    expect((refused as Error).message).toBe(`cannot wipe the block images of p: ${((refused as Error).cause as Error).message}`);
    expect(existsSync(st.imagePath('p'))).toBe(true);
  });

  it('by name: the refusal for a missing directory says how to go on', async () => {
    const st = new Storage({ dataDir: dir });
    const away = path.join(dir, 'volume', 'p.img');
    mkdirSync(path.dirname(away));
    await st.detach(await st.attach('p', 1, away));
    rmSync(path.dirname(away), { recursive: true });
    await expect(st.wipeName('p')).rejects.toMatchObject({
      code: 'ERR_STORAGE',
      message:
        `cannot wipe the block image of p at ${away}: its directory is missing (a volume not mounted?) and ${path.join(dir, 'keystore')} holds its key; ` +
        'mount it and wipe again, or wipe that image by its path (hv.wipeStorage(name, { path })) to drop the key',
    });
  });

  it("by path: a key another name filed for that path stays (its image may come back)", async () => {
    const st = new Storage({ dataDir: dir });
    const shared = path.join(dir, 'volume', 'disk.img');
    mkdirSync(path.dirname(shared));
    await st.detach(await st.attach('q', 1, shared));
    rmSync(shared);
    expect(await st.wipe('p', shared)).toEqual({ path: shared, removedImage: false, removedKey: false, images: [] });
    expect((await st.keystore!.list()).map((k) => [k.name, k.path])).toEqual([['q', shared]]);
    expect(await st.wipe('q', shared)).toEqual({ path: shared, removedImage: false, removedKey: true, images: [] });
  });

  it('tells the observer of a refused wipe, with its code and message', async () => {
    const events: unknown[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e) });
    mkdirSync(path.join(dir, 'images'));
    writeFileSync(st.imagePath('p'), 'x'.repeat(5000));
    const refused = (await st.wipe('p').catch((e: unknown) => e)) as Error;
    expect(refused).toBeInstanceOf(IntegrityError);
    expect(events).toEqual([{ kind: 'wipe-failed', name: 'p', path: st.imagePath('p'), code: 'ERR_INTEGRITY', message: refused.message }]);
  });

  it('refuses an image of a format this runtime does not read, as ERR_INTEGRITY, and leaves it untouched', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    const file = st.imagePath('p');
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from([99, 0, 0, 0]), 0, 4, 8); // the format field
    closeSync(fd);
    const bytes = readFileSync(file);
    await expect(st.wipe('p')).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
      message: expect.stringMatching(new RegExp(`^refusing to wipe ${file} as the block image of p: it is a Wasmvisor image this runtime does not read \\(the image has format 99, .*\\); it was left untouched$`)),
    });
    expect(readFileSync(file).equals(bytes)).toBe(true);
    expect((await st.keystore!.list()).map((k) => k.name)).toEqual(['p']);
  });

  it('refuses a FIFO and a socket in an image’s place as not regular files (ERR_INTEGRITY), without waiting on either', async () => {
    const st = new Storage({ dataDir: dir });
    mkdirSync(path.join(dir, 'images'));
    execFileSync('mkfifo', [st.imagePath('f')]);
    await expect(st.wipe('f')).rejects.toMatchObject({ code: 'ERR_INTEGRITY', message: `refusing to wipe ${st.imagePath('f')} as the block image of f: it is not a regular file; it was left untouched` });
    expect(statSync(st.imagePath('f')).isFIFO()).toBe(true);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(st.imagePath('s'), resolve));
    try {
      await expect(st.wipe('s')).rejects.toMatchObject({ code: 'ERR_INTEGRITY', message: `refusing to wipe ${st.imagePath('s')} as the block image of s: it is not a regular file; it was left untouched` });
      expect(statSync(st.imagePath('s')).isSocket()).toBe(true);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('refuses the image of a live partition reached by another path (a hard link), as ERR_INVALID_STATE, and leaves it untouched', async () => {
    const st = new Storage({ dataDir: dir });
    const held = await st.attach('p', 1);
    const link = path.join(dir, 'link.img');
    linkSync(st.imagePath('p'), link);
    const bytes = readFileSync(link);
    await expect(new Storage({ dataDir: dir }).wipe('p', link)).rejects.toMatchObject({
      code: 'ERR_INVALID_STATE',
      message: `refusing to wipe ${link} as the block image of p: it is the image of live partition p (attached at ${st.imagePath('p')})`,
    });
    expect(readFileSync(link).equals(bytes)).toBe(true);
    await st.detach(held);
    // Detached: the same path may be wiped (both names of the file are one image).
    expect(await st.wipe('p', link)).toMatchObject({ removedImage: true });
  });

  it('removes the half-built images of creates that died (`<image>.<32 hex digits>.new`), and no other file', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    const images = path.join(dir, 'images');
    const hex = randomBytes(16).toString('hex');
    const leftovers = [`p.img.${hex}.new`, `p.img.${'0f'.repeat(16)}.new`];
    const others = [
      `q.img.${hex}.new`, // another image's
      `xp.img.${hex}.new`,
      `p.img.x${hex}.new`,
      `p.img.${hex}.new.bak`,
      `p.img.${hex.slice(1)}.new`, // 31 digits
      `p.img.${hex}0.new`, // 33
      `p.img.${hex.toUpperCase().replace(/^[0-9]/, 'A')}.new`,
      `p.img.${'g'.repeat(32)}.new`,
      `p.img.${hex}`,
    ];
    for (const n of [...leftovers, ...others]) writeFileSync(path.join(images, n), 'half-built');
    expect(await st.wipe('p')).toMatchObject({ removedImage: true });
    expect(readdirSync(images).sort()).toEqual([...others].sort());
  });

  it('zeroes every byte of the image before removing it, and writes only the 1 MiB chunks that held bytes (holes stay holes)', async () => {
    const st = new Storage({ dataDir: dir, masterKey: randomBytes(32) });
    await st.detach(await st.attach('p', 8));
    const file = st.imagePath('p');
    const size = imageFileSize(2048);
    // Bytes in the first chunk (the header, a sector) and the last byte; the six chunks between are holes.
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 300 * 1024);
    writeSync(fd, Buffer.from([0x77]), 0, 1, size - 1);
    closeSync(fd);
    const kept = path.join(dir, 'kept'); // a second name for the same file: it outlives the wipe
    linkSync(file, kept);
    expect(await st.wipe('p')).toMatchObject({ removedImage: true });
    expect(existsSync(file)).toBe(false);
    const after = readFileSync(kept);
    expect(after.length).toBe(size);
    expect(after.every((b) => b === 0)).toBe(true);
    // Two chunks (and the partial one at the end) written with zeros, at most; all of it would be 8 MiB.
    expect(statSync(kept).blocks * 512).toBeLessThanOrEqual(3 * 1024 * 1024);
  });

  it('of an image moved by hand removes its key by the image id in its header (the key names the old place)', async () => {
    const st = new Storage({ dataDir: dir });
    const before = path.join(dir, 'a', 'p.img');
    const moved = path.join(dir, 'b', 'p.img');
    mkdirSync(path.dirname(before));
    mkdirSync(path.dirname(moved));
    await st.detach(await st.attach('p', 1, before));
    renameSync(before, moved);
    expect(await st.wipe('p', moved)).toEqual({ path: moved, removedImage: true, removedKey: true, images: [moved] });
    expect(await st.keystore!.list()).toEqual([]);
  });

  it('with a storage key removes the image and no key (there is no keystore)', async () => {
    const st = new Storage({ dataDir: dir, masterKey: randomBytes(32) });
    await st.detach(await st.attach('p', 1));
    expect(await st.wipe('p')).toEqual({ path: st.imagePath('p'), removedImage: true, removedKey: false, images: [st.imagePath('p')] });
    expect(existsSync(path.join(dir, 'keystore'))).toBe(false);
  });

  it('tells the observer what it removed', async () => {
    const events: unknown[] = [];
    const st = new Storage({ dataDir: dir, onEvent: (e) => events.push(e) });
    await st.detach(await st.attach('p', 1));
    events.length = 0;
    await st.wipe('p');
    expect(events).toEqual([{ kind: 'wiped', name: 'p', path: st.imagePath('p'), removedImage: true, removedKey: true }]);
  });

  it('refuses a symlink in an image’s place, as ERR_STORAGE, and leaves both the link and its target', async () => {
    const st = new Storage({ dataDir: dir });
    mkdirSync(path.join(dir, 'images'));
    const target = path.join(dir, 'target');
    writeFileSync(target, 'x'.repeat(5000));
    symlinkSync(target, st.imagePath('p'));
    const refused = await st.wipe('p').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).message).toMatch(new RegExp(`^cannot wipe the block image of p at ${st.imagePath('p')}: ELOOP`));
    expect((refused as Error).cause).toMatchObject({ code: 'ELOOP' });
    expect(existsSync(st.imagePath('p'))).toBe(true);
    expect(existsSync(`${st.imagePath('p')}.lock`)).toBe(false);
  });
});

describe('list', () => {
  it('still lists the images when the keystore is damaged (each without a key)', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    writeFileSync(path.join(dir, 'keystore'), 'damaged');
    expect(await st.list()).toEqual([expect.objectContaining({ name: 'p', path: st.imagePath('p'), key: 'missing', problem: 'no key for it in the keystore' })]);
  });

  it('counts a format-1 name key for the image at that name’s own place only', async () => {
    const st = new Storage({ dataDir: dir });
    const elsewhere = path.join(dir, 'elsewhere', 'p.img');
    mkdirSync(path.dirname(elsewhere));
    for (const [name, at] of [['p', undefined], ['q', undefined], ['p', elsewhere]] as const) await st.detach(await st.attach(name, 1, at));
    rmSync(path.join(dir, 'keystore'));
    format1Keystore({ p: randomBytes(32) });
    // The image elsewhere is listed because the keystore names its path (under an id that is not its own).
    await st.keystore!.reserve(randomBytes(16), 'x', elsewhere, randomBytes(32), false);
    const byPath = new Map((await st.list()).map((d) => [d.path, d]));
    expect(byPath.get(st.imagePath('p'))).toMatchObject({ name: 'p', key: 'keystore', problem: null });
    expect(byPath.get(st.imagePath('q'))).toMatchObject({ name: 'q', key: 'missing' });
    expect(byPath.get(elsewhere)).toMatchObject({ name: null, key: 'missing' });
    // The name key has no path: it names no image of its own.
    expect(byPath.size).toBe(3);
  });

  it('describes each image from its file: size, allocated bytes, times, format, and what is wrong with it', async () => {
    const masterKey = randomBytes(32);
    const st = new Storage({ dataDir: dir, masterKey });
    for (const name of ['whole', 'short']) await st.detach(await st.attach(name, 1));
    truncateSync(st.imagePath('short'), imageFileSize(256) - 1);
    writeFileSync(st.imagePath('garbage'), Buffer.alloc(5000, 0x41));
    writeFileSync(st.imagePath('tiny'), 'WVBLOCK');
    const old = format1Image(st.imagePath('old'), masterKey, 'old', 256);
    const byName = new Map((await st.list()).map((d) => [d.name, d]));
    const s = statSync(st.imagePath('whole'));
    expect(byName.get('whole')).toEqual({
      name: 'whole', path: st.imagePath('whole'), sizeBytes: 1 << 20, allocatedBytes: s.blocks * 512,
      created: s.birthtimeMs > 0 ? s.birthtime.toISOString() : null, modified: s.mtime.toISOString(),
      imageId: expect.stringMatching(/^[0-9a-f]{32}$/), format: 2, key: 'storage-key', inUse: null, problem: null,
    });
    expect(s.blocks).toBeGreaterThan(0);
    expect(byName.get('short')).toMatchObject({ format: 2, problem: `truncated (${imageFileSize(256) - 1} bytes, expected ${imageFileSize(256)})` });
    expect(byName.get('garbage')).toMatchObject({ format: null, sizeBytes: null, problem: 'the file is not a wasmvisor block image' });
    expect(byName.get('tiny')).toMatchObject({ format: null, problem: 'the image is shorter than its header' });
    // A whole format-1 image is listed as it is (its size is its own layout's, not format 2's).
    expect(old).not.toBe(imageFileSize(256));
    expect(byName.get('old')).toMatchObject({ format: 1, sizeBytes: 1 << 20, problem: null });
  });

  it('does not take another image’s key, filed under the same name and place, for this image’s', async () => {
    // An image p made elsewhere (its key is in another keystore), copied into a data directory whose
    // keystore holds the key of an earlier image p, at the same place, under that image's id.
    const elsewhere = new Storage({ dataDir: path.join(dir, 'elsewhere') });
    await elsewhere.detach(await elsewhere.attach('p', 1));
    const st = new Storage({ dataDir: path.join(dir, 'here') });
    const earlier = randomBytes(16);
    await st.keystore!.reserve(earlier, 'p', st.imagePath('p'), randomBytes(32), true);
    await st.keystore!.commit(earlier);
    mkdirSync(path.dirname(st.imagePath('p')), { recursive: true });
    writeFileSync(st.imagePath('p'), readFileSync(elsewhere.imagePath('p')));
    expect(await st.list()).toEqual([expect.objectContaining({ name: 'p', key: 'missing', problem: 'no key for it in the keystore' })]);
  });

  it('leaves out a key still pending for an image that never appeared (a create that died first)', async () => {
    const st = new Storage({ dataDir: dir });
    await st.keystore!.reserve(randomBytes(16), 'p', st.imagePath('p'), randomBytes(32), true);
    expect(await st.list()).toEqual([]);
  });

  it('names no holder when the lock in an image’s place cannot be read (a symlink is never followed)', async () => {
    const st = new Storage({ dataDir: dir });
    await st.detach(await st.attach('p', 1));
    writeFileSync(path.join(dir, 'elsewhere'), 'x');
    symlinkSync(path.join(dir, 'elsewhere'), `${st.imagePath('p')}.lock`);
    expect(await st.list()).toEqual([expect.objectContaining({ name: 'p', inUse: null })]);
  });

  it('an images folder that is not a folder is ERR_STORAGE, with the cause', async () => {
    writeFileSync(path.join(dir, 'images'), 'not a folder');
    const refused = await new Storage({ dataDir: dir }).list().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageError);
    expect((refused as Error).cause).toMatchObject({ code: 'ENOTDIR' });
  });
});
