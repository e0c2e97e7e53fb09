/**
 * What Storage refuses, and how: a storage key of the wrong shape, a file in an image's place that
 * is too short to hold a header or is no image at all, an images folder that cannot be read, and an
 * image path that cannot be opened. Each is a typed error (or, in a listing, a problem named for
 * that image), never a crash and never an image made over someone's file.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, InvalidArgumentError, StorageError } from '../../host/errors.ts';
import { HEADER_SIZE } from '../../host/storage/image.ts';
import { Storage } from '../../host/storage/storage.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-refuse-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const imagePath = (name: string) => path.join(dir, 'images', `${name}.img`);
function plant(name: string, bytes: Uint8Array): void {
  mkdirSync(path.join(dir, 'images'), { recursive: true });
  writeFileSync(imagePath(name), bytes);
}

describe('Storage refuses', () => {
  it('a storage key that is not 32 bytes', () => {
    for (const key of [new Uint8Array(31), new Uint8Array(33), 'k'.repeat(32) as unknown as Uint8Array]) {
      expect(() => new Storage({ dataDir: dir, masterKey: key })).toThrow(new InvalidArgumentError('storageKey must be 32 bytes (a Uint8Array or Buffer)'));
    }
    expect(() => new Storage({ dataDir: dir, masterKey: new Uint8Array(32) })).not.toThrow();
  });

  it('a file shorter than a header in an image’s place, as an integrity error, and leaves it as it was', async () => {
    const st = new Storage({ dataDir: dir, masterKey: new Uint8Array(32).fill(7) });
    plant('short', new Uint8Array(HEADER_SIZE - 1).fill(0x41));
    const err = await st.attach('short', 1).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(`the block image of short at ${imagePath('short')} was refused: the image is shorter than its header`);
    expect(readFileSync(imagePath('short'))).toEqual(Buffer.alloc(HEADER_SIZE - 1, 0x41));
  });

  it('a file of a header’s size that is no image, as an integrity error', async () => {
    const st = new Storage({ dataDir: dir, masterKey: new Uint8Array(32).fill(7) });
    plant('other', new Uint8Array(HEADER_SIZE).fill(0x42));
    const err = await st.attach('other', 1).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(`the block image of other at ${imagePath('other')} was refused: the file is not a wasmvisor block image`);
  });

  it('to list an images folder it cannot read, as a storage error naming it', async () => {
    writeFileSync(path.join(dir, 'images'), 'a file where the folder should be');
    const err = await new Storage({ dataDir: dir }).list().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(new RegExp(`^cannot list ${path.join(dir, 'images').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ENOTDIR`));
  });

  it('to follow a link in an image’s place: the listing names what is wrong with that image', async () => {
    mkdirSync(path.join(dir, 'images'));
    writeFileSync(path.join(dir, 'target'), 'x');
    symlinkSync(path.join(dir, 'target'), imagePath('linked'));
    const list = await new Storage({ dataDir: dir }).list();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ path: imagePath('linked'), name: 'linked' });
    expect(list[0]!.problem).toMatch(/^cannot open it: ELOOP/);
  });

  it('a FIFO in an image’s or the keystore’s place: refused by name at once, listed with its problem, never waited on', async () => {
    mkdirSync(path.join(dir, 'images'));
    execFileSync('mkfifo', [imagePath('piped')]);
    const st = new Storage({ dataDir: dir, masterKey: new Uint8Array(32).fill(7) });
    // Listing opens each image to read its header: a FIFO opened for reading waited for a writer.
    const list = await st.list();
    expect(list.find((d) => d.name === 'piped')?.problem).toBe('it is not a regular file');
    const err = await st.attach('piped', 1).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(`the block image of piped at ${imagePath('piped')} was refused: it is not a regular file`);
    // The keystore (a random-key host keeps its image keys there): a FIFO is not waited on either.
    execFileSync('mkfifo', [path.join(dir, 'keystore')]);
    const keyed = new Storage({ dataDir: dir });
    const refused = await keyed.attach('fresh', 1).then(() => null, (e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_STORAGE', message: expect.stringContaining('keystore is not a usable wasmvisor keystore: it is not a regular file') });
  }, 20_000);
});
