/**
 * The keystore file is bytes from the disk: every malformed shape is refused with an error naming
 * the file and what is wrong, never half-read into wrong keys (host/storage/keystore.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { budget } from '../helpers.ts';
import { KeyConflictError, Keystore, KeystoreFormatError, MAX_KEYSTORE_ENTRIES } from '../../host/storage/keystore.ts';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-ksformat-'));
  file = path.join(dir, 'keystore');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** One record: kind, flags, name, path, image id, key. */
function record(o: { kind?: number; flags?: number; name?: string; path?: string; id?: Buffer; key?: Buffer; nameLen?: number }): Buffer {
  const name = Buffer.from(o.name ?? 'p');
  const p = Buffer.from(o.path ?? '/x/p.img');
  const r = Buffer.alloc(56 + name.length + p.length);
  r[0] = o.kind ?? 1;
  r[1] = o.flags ?? 0;
  r.writeUInt16LE(o.nameLen ?? name.length, 2);
  r.writeUInt16LE(p.length, 4);
  (o.id ?? randomBytes(16)).copy(r, 8);
  (o.key ?? randomBytes(32)).copy(r, 24);
  name.copy(r, 56);
  p.copy(r, 56 + name.length);
  return r;
}

/** A keystore file: header, records, and a correct checksum (so only the malformation is tested). */
function keystore(records: Buffer[], o: { magic?: string; version?: number; count?: number; trailing?: Buffer } = {}): Buffer {
  const head = Buffer.alloc(16);
  head.write(o.magic ?? 'WVKEYS\0\0', 0, 'latin1');
  head.writeUInt32LE(o.version ?? 2, 8);
  head.writeUInt32LE(o.count ?? records.length, 12);
  const body = Buffer.concat([head, ...records, o.trailing ?? Buffer.alloc(0)]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

const list = () => new Keystore(file).list();

describe('keystore file format', () => {
  it('reads what it writes: image keys, pending flags, names and paths', async () => {
    const ks = new Keystore(file);
    const id = randomBytes(16);
    const key = randomBytes(32);
    await ks.reserve(id, 'web', '/data/images/web.img', key, true);
    expect(await ks.list()).toEqual([{ imageId: id.toString('hex'), name: 'web', path: '/data/images/web.img', pending: true }]);
    await ks.commit(id);
    const found = await ks.find(id);
    expect(found).toMatchObject({ pending: false, name: 'web', path: '/data/images/web.img' });
    expect(found!.key.equals(key)).toBe(true);
    // The bytes on disk are the documented layout.
    const bytes = readFileSync(file);
    expect(bytes.subarray(0, 8).toString('latin1')).toBe('WVKEYS\0\0');
    expect(bytes.readUInt32LE(8)).toBe(2);
    expect(bytes.readUInt32LE(12)).toBe(1);
    expect(bytes.subarray(16 + 24, 16 + 56).equals(key)).toBe(true);
    expect(createHash('sha256').update(bytes.subarray(0, bytes.length - 32)).digest().equals(bytes.subarray(bytes.length - 32))).toBe(true);
    // A record of kind 2 is a format-1 name key; flags carry "pending".
    writeFileSync(file, keystore([record({ kind: 2, name: 'old', path: '' }), record({ flags: 1, name: 'new' })]));
    expect(await list()).toEqual([
      { imageId: null, name: 'old', path: '', pending: false },
      expect.objectContaining({ name: 'new', pending: true }),
    ]);
  });

  it('refuses every malformed file, naming it and the fault', async () => {
    const cases: [Buffer, RegExp][] = [
      [Buffer.from('short'), /no keystore header/],
      [keystore([], { magic: 'WVKEYZ\0\0' }), /no keystore header/],
      [keystore([], { version: 3 }), /format 3; this runtime reads format 2/],
      [keystore([], { count: MAX_KEYSTORE_ENTRIES + 1 }), new RegExp(`claims ${MAX_KEYSTORE_ENTRIES + 1} keys`)],
      [keystore([record({ kind: 9 })]), /record 0 is malformed/],
      [keystore([record({ kind: 0 })]), /record 0 is malformed/],
      [keystore([record({ nameLen: 300 })]), /record 0 is malformed/],
      [keystore([record({})], { count: 2 }), /truncated/],
      [keystore([record({})], { trailing: Buffer.from([0]) }), /trailing bytes/],
      // A name key (kind 2) has no path: it was filed by name alone.
      [keystore([record({ kind: 2, path: '/x/p.img' })]), /record 0 is malformed/],
      // Shorter than a header and a checksum, even with a header's first bytes.
      [keystore([]).subarray(0, 47), /no keystore header/],
      [Buffer.from('WVKEYS\0\0\x02\0', 'latin1'), /no keystore header/],
      [Buffer.from('{"format":"something-else","keys":{}}'), /not a wasmvisor-keystore\/1 file/],
      [Buffer.from('{"format":"wasmvisor-keystore/1","keys":null}'), /not a wasmvisor-keystore\/1 file/],
      [Buffer.from('{ not json'), /neither a binary keystore nor JSON/],
    ];
    for (const [bytes, why] of cases) {
      writeFileSync(file, bytes);
      await expect(list(), String(why)).rejects.toThrow(why);
      await expect(list()).rejects.toThrow(file);
    }
    // A flipped bit anywhere is caught by the checksum.
    const good = keystore([record({}), record({ name: 'q' })]);
    for (const at of [0, 12, 16, 40, 70, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[at]! ^= 0x10;
      writeFileSync(file, bad);
      await expect(list(), `bit flip at ${at}`).rejects.toThrow(/not a usable wasmvisor keystore/);
    }
  });

  it('a format-1 file: 32-byte keys are taken, anything else in it is skipped', async () => {
    const key = randomBytes(32).toString('base64');
    writeFileSync(file, JSON.stringify({ format: 'wasmvisor-keystore/1', keys: { a: key, b: randomBytes(16).toString('base64'), c: 7 } }));
    expect(await list()).toEqual([{ imageId: null, name: 'a', path: '', pending: false }]);
    expect((await new Keystore(file).nameKey('a'))!.toString('base64')).toBe(key);
    expect(await new Keystore(file).nameKey('b')).toBeNull();
  });

  it('a create is refused when the id, a confirmed key of the path, or an applicable name key exists', async () => {
    const ks = new Keystore(file);
    const id = randomBytes(16);
    await ks.reserve(id, 'p', '/d/p.img', randomBytes(32), true);
    // The same id again (pending or not): refused.
    await expect(ks.reserve(id, 'p', '/d/other.img', randomBytes(32), false)).rejects.toThrow(/holds a key for/);
    // Another pending create of the same path replaces the one that never finished.
    const id2 = randomBytes(16);
    expect(await ks.reserve(id2, 'p', '/d/p.img', randomBytes(32), true)).toEqual([id.toString('hex')]);
    await ks.commit(id2);
    await expect(ks.reserve(randomBytes(16), 'p', '/d/p.img', randomBytes(32), true)).rejects.toThrow(/holds a key for \/d\/p.img/);
    // A name key (format 1) blocks a create only where it applies.
    writeFileSync(file, keystore([record({ kind: 2, name: 'n', path: '' })]));
    await expect(ks.reserve(randomBytes(16), 'n', '/d/n.img', randomBytes(32), true)).rejects.toThrow(/partition n/);
    expect(await ks.reserve(randomBytes(16), 'n', '/e/n.img', randomBytes(32), false)).toEqual([]);
  });

  it('refuses a file longer than the most keys it may hold could take, before reading it', async () => {
    // 16-byte head, MAX_KEYSTORE_ENTRIES records of at most 56 + 255 + 4096 bytes, a 32-byte digest.
    const most = 16 + MAX_KEYSTORE_ENTRIES * (56 + 255 + 4096) + 32;
    writeFileSync(file, '');
    truncateSync(file, most + 1); // sparse: nothing is written
    await expect(list()).rejects.toThrow(`it is ${most + 1} bytes long, more than ${most}`);
  });

  it('refuses to file a name or path longer than a record holds, and leaves the file as it was', async () => {
    const ks = new Keystore(file);
    await ks.reserve(randomBytes(16), 'p', '/d/p.img', randomBytes(32), true);
    const before = readFileSync(file);
    await expect(ks.reserve(randomBytes(16), 'n'.repeat(256), '/d/n.img', randomBytes(32), true)).rejects.toThrow(/name or path too long to file/);
    await expect(ks.reserve(randomBytes(16), 'q', `/${'d'.repeat(4096)}.img`, randomBytes(32), true)).rejects.toThrow(/name or path too long to file/);
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it('commit of a key it does not hold, or holds confirmed, changes nothing', async () => {
    const ks = new Keystore(file);
    const id = randomBytes(16);
    await ks.reserve(id, 'p', '/d/p.img', randomBytes(32), true);
    await ks.commit(id);
    const before = readFileSync(file);
    await ks.commit(randomBytes(16));
    await ks.commit(id);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(await list()).toEqual([{ imageId: id.toString('hex'), name: 'p', path: '/d/p.img', pending: false }]);
  });

  it('a format-1 name key is filed under the image it opens, once; other names and known ids are left alone', async () => {
    const nameKey = randomBytes(32);
    writeFileSync(file, keystore([record({ kind: 2, name: 'n', path: '', key: nameKey })]));
    const ks = new Keystore(file);
    const id = randomBytes(16);
    const before = readFileSync(file);
    await ks.adoptNameKey('other', id, '/d/other.img'); // no name key of that name
    expect(readFileSync(file).equals(before)).toBe(true);
    await ks.adoptNameKey('n', id, '/d/n.img');
    expect(await list()).toEqual([{ imageId: id.toString('hex'), name: 'n', path: '/d/n.img', pending: false }]);
    expect((await ks.find(id))!.key.equals(nameKey)).toBe(true);
    // A second name key of the same name for an id already filed: left as it is.
    writeFileSync(file, keystore([record({ kind: 1, name: 'n', path: '/d/n.img', id }), record({ kind: 2, name: 'n', path: '' })]));
    const filed = readFileSync(file);
    await ks.adoptNameKey('n', id, '/d/n.img');
    expect(readFileSync(file).equals(filed)).toBe(true);
  });

  it('takes names and paths up to their limits, empty ones too, and refuses one byte more', async () => {
    const name = 'n'.repeat(255);
    const p = `/${'d'.repeat(4095)}`;
    writeFileSync(file, keystore([record({ name: '', path: '' })]));
    expect(await list()).toEqual([expect.objectContaining({ name: '', path: '' })]);
    writeFileSync(file, keystore([record({ name, path: p })]));
    expect(await list()).toEqual([expect.objectContaining({ name, path: p })]);
    for (const bad of [record({ name: `${name}n` }), record({ path: `${p}d` })]) {
      writeFileSync(file, keystore([bad]));
      await expect(list()).rejects.toThrow('record 0 is malformed');
    }
    // A record claiming more name bytes than the file holds.
    writeFileSync(file, keystore([record({ name: 'n', path: '', nameLen: 10 })]));
    await expect(list()).rejects.toThrow('record 0 is malformed');
    // Filed at the limits, read back the same.
    const ks = new Keystore(file);
    writeFileSync(file, keystore([]));
    await ks.reserve(randomBytes(16), name, p, randomBytes(32), false);
    expect(await list()).toEqual([expect.objectContaining({ name, path: p, pending: true })]);
  });

  it('names the fault of a damaged file and of a format-1 file whose keys are not an object', async () => {
    const good = keystore([record({})]);
    good[20]! ^= 1;
    writeFileSync(file, good);
    await expect(list()).rejects.toThrow(`${file} is not a usable wasmvisor keystore: its checksum does not match (damaged)`);
    writeFileSync(file, JSON.stringify({ format: 'wasmvisor-keystore/1', keys: 'abcd' }));
    await expect(list()).rejects.toThrow('not a wasmvisor-keystore/1 file');
  });

  it('a name key and an image key of one name are never taken for each other', async () => {
    const imageKey = randomBytes(32);
    const nameKey = randomBytes(32);
    const id = randomBytes(16);
    // The image key comes first in the file: a lookup by name must skip it.
    writeFileSync(file, keystore([record({ kind: 1, name: 'n', path: '/d/n.img', key: imageKey }), record({ kind: 2, name: 'n', path: '', key: nameKey })]));
    const ks = new Keystore(file);
    expect((await ks.nameKey('n'))!.equals(nameKey)).toBe(true);
    writeFileSync(file, keystore([record({ kind: 1, name: 'n', path: '/d/n.img', key: imageKey })]));
    expect(await ks.nameKey('n')).toBeNull();
    // Adopting files the name key under the image, and leaves the image key of that name alone.
    writeFileSync(file, keystore([record({ kind: 1, name: 'n', path: '/d/n.img', key: imageKey }), record({ kind: 2, name: 'n', path: '', key: nameKey })]));
    await ks.adoptNameKey('n', id, '/e/n.img');
    expect((await ks.find(id))!.key.equals(nameKey)).toBe(true);
    expect((await list()).map((e) => e.path)).toEqual(['/d/n.img', '/e/n.img']);
  });

  it('a name key blocks a create only for its own name', async () => {
    writeFileSync(file, keystore([record({ kind: 2, name: 'other', path: '' })]));
    const ks = new Keystore(file);
    expect(await ks.reserve(randomBytes(16), 'n', '/d/n.img', randomBytes(32), true)).toEqual([]);
    expect((await list()).map((e) => e.name)).toEqual(['other', 'n']);
  });

  it('the conflict names a format-1 key by its partition, its id as unknown, and is a KeyConflictError', async () => {
    writeFileSync(file, keystore([record({ kind: 2, name: 'n', path: '' })]));
    const refused = await new Keystore(file).reserve(randomBytes(16), 'n', '/d/n.img', randomBytes(32), true).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(KeyConflictError);
    expect((refused as Error).name).toBe('KeyConflictError');
    expect((refused as Error).message).toBe(`${file} holds a key for partition n (image id unknown: from a format-1 keystore, partition n)`);
    writeFileSync(file, Buffer.from('short'));
    const damaged = await list().catch((e: unknown) => e);
    expect(damaged).toBeInstanceOf(KeystoreFormatError);
    expect((damaged as Error).name).toBe('KeystoreFormatError');
    // An update of a damaged file fails with that error too, and changes nothing.
    await expect(new Keystore(file).reserve(randomBytes(16), 'q', '/d/q.img', randomBytes(32), false)).rejects.toBeInstanceOf(KeystoreFormatError);
    expect(readFileSync(file).toString()).toBe('short');
  });

  it('a format-1 file beside a binary keystore is left alone: only one read in place of a missing keystore is taken over', async () => {
    const legacy = path.join(dir, 'keystore.json');
    const old = JSON.stringify({ format: 'wasmvisor-keystore/1', keys: { n: randomBytes(32).toString('base64') } });
    writeFileSync(legacy, old);
    writeFileSync(file, keystore([]));
    const ks = new Keystore(file, legacy);
    await ks.reserve(randomBytes(16), 'q', '/d/q.img', randomBytes(32), false);
    expect(readFileSync(legacy, 'utf8')).toBe(old);
    expect((await list()).map((e) => e.name)).toEqual(['q']);
  });

  it('removes an image’s key by its id wherever it was filed, and a name key only where it applies', async () => {
    const id = randomBytes(16);
    writeFileSync(file, keystore([record({ kind: 1, name: 'n', path: '/d/moved-away.img', id }), record({ kind: 2, name: 'n', path: '' })]));
    const ks = new Keystore(file);
    // The image was moved: its key is found by the id in its header, not by its path.
    expect(await ks.remove(id, '/e/n.img', 'n', false)).toBe(true);
    expect(await list()).toEqual([{ imageId: null, name: 'n', path: '', pending: false }]);
    expect(await ks.remove(null, '/e/n.img', 'n', false)).toBe(false);
    expect(await ks.remove(null, '/d/n.img', 'n', true)).toBe(true);
    expect(await list()).toEqual([]);
  });

  it('removing at a name’s own place takes only that name’s format-1 key, never an image key of the name or another name’s key', async () => {
    const other = randomBytes(16);
    writeFileSync(file, keystore([record({ kind: 1, name: 'n', path: '/e/n.img', id: other }), record({ kind: 2, name: 'n', path: '' }), record({ kind: 2, name: 'q', path: '' })]));
    expect(await new Keystore(file).remove(null, '/d/n.img', 'n', true)).toBe(true);
    expect(await list()).toEqual([
      { imageId: other.toString('hex'), name: 'n', path: '/e/n.img', pending: false },
      { imageId: null, name: 'q', path: '', pending: false },
    ]);
  });

  it(`holds at most ${MAX_KEYSTORE_ENTRIES} keys: one more is refused, one replacing a stale pending key of its path is not`, async () => {
    const full = Array.from({ length: MAX_KEYSTORE_ENTRIES }, (_, i) => record({ name: 'k', path: i === 0 ? '/d/p.img' : `/${i}`, flags: i === 0 ? 1 : 0 }));
    const bytes = keystore(full);
    writeFileSync(file, bytes);
    const ks = new Keystore(file);
    await expect(ks.reserve(randomBytes(16), 'q', '/d/q.img', randomBytes(32), false)).rejects.toThrow(
      `${file} is not a usable wasmvisor keystore: it holds ${MAX_KEYSTORE_ENTRIES} keys, the most it may`,
    );
    expect(readFileSync(file).equals(bytes)).toBe(true);
    // The pending key of /d/p.img is dropped by a new create of that path: still 65,536 keys.
    expect(await ks.reserve(randomBytes(16), 'p', '/d/p.img', randomBytes(32), false)).toHaveLength(1);
    expect(readFileSync(file).readUInt32LE(12)).toBe(MAX_KEYSTORE_ENTRIES);
    // One below the most: one more fits.
    writeFileSync(file, keystore(full.slice(1)));
    expect(await ks.reserve(randomBytes(16), 'q', '/d/q.img', randomBytes(32), false)).toEqual([]);
    expect(readFileSync(file).readUInt32LE(12)).toBe(MAX_KEYSTORE_ENTRIES);
  }, budget(60_000));
});
