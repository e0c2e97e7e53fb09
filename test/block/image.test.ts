import { createCipheriv, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HvStatus } from '../../host/abi/codes.ts';
import { BlockImage, dataOffset, deriveImageKeys, META_SIZE, metaOffset, SECTOR_SIZE } from '../../host/storage/image.ts';
import { Storage, type BlockAttachment } from '../../host/storage/storage.ts';
import { format1Header } from './format1.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-image-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function sector(fill: string): Buffer {
  const b = Buffer.alloc(SECTOR_SIZE);
  b.fill(fill);
  return b;
}

function engine(a: BlockAttachment): BlockImage {
  return new BlockImage({ fd: a.fd, sectorCount: a.sectorCount, imageId: a.imageId, dataKey: a.dataKey });
}

/** Opens the image, runs fn on a fresh engine, closes it (a "boot"). */
async function boot<T>(storage: Storage, name: string, fn: (img: BlockImage, a: BlockAttachment) => T): Promise<T> {
  const a = await storage.attach(name, 1);
  const img = engine(a);
  try {
    return fn(img, a);
  } finally {
    img.close();
    await storage.detach(a);
  }
}

function read(img: BlockImage, s: number, count = 1): { status: number; data: Buffer } {
  const data = Buffer.alloc(count * SECTOR_SIZE, 0xee);
  return { status: img.read(s, count, data), data };
}

/** Overwrites bytes of the image file directly (the "attacker with disk access", or a torn write). */
function poke(file: string, at: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes, 0, bytes.length, at);
  closeSync(fd);
}
function peek(file: string, at: number, n: number): Buffer {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(n);
  readSync(fd, b, 0, n, at);
  closeSync(fd);
  return b;
}
/** Slot k of sector s: its metadata entry, then its ciphertext. */
function peekSlot(file: string, s: number, k: number): Buffer {
  return Buffer.concat([peek(file, metaOffset(s, k), META_SIZE), peek(file, dataOffset(s, k), SECTOR_SIZE)]);
}
function pokeSlot(file: string, s: number, k: number, slot: Buffer): void {
  poke(file, metaOffset(s, k), slot.subarray(0, META_SIZE));
  poke(file, dataOffset(s, k), slot.subarray(META_SIZE));
}

describe('block image engine', () => {
  it('reads unwritten sectors as zeros and round-trips writes across boots', async () => {
    const st = new Storage({ dataDir: dir });
    await boot(st, 'p', (img, a) => {
      expect(a.created).toBe(true);
      expect(img.sectorCount).toBe(256);
      const r = read(img, 0, 16);
      expect(r.status).toBe(0);
      expect(r.data.every((x) => x === 0)).toBe(true);
      expect(img.write(3, 2, Buffer.concat([sector('a'), sector('b')]))).toBe(0);
      expect(img.flush()).toBe(0);
    });
    await boot(st, 'p', (img, a) => {
      expect(a.created).toBe(false);
      expect(read(img, 3).data.equals(sector('a'))).toBe(true);
      expect(read(img, 4).data.equals(sector('b'))).toBe(true);
      expect(read(img, 255).data.every((x) => x === 0)).toBe(true);
    });
  });

  it('stores no plaintext: the image file never contains what was written', async () => {
    const st = new Storage({ dataDir: dir });
    const secret = Buffer.from('TOP-SECRET-0123456789');
    const data = Buffer.alloc(SECTOR_SIZE);
    for (let i = 0; i + secret.length <= data.length; i += secret.length) secret.copy(data, i);
    await boot(st, 'p', (img) => {
      for (let s = 0; s < 8; s++) img.write(s, 1, data);
      img.flush();
    });
    const file = st.imagePath('p');
    const bytes = readFileSync(file);
    expect(bytes.includes(secret)).toBe(false);
    expect(bytes.includes(secret.subarray(0, 8))).toBe(false);
    // and a zero plaintext is not stored as zeros either
    await boot(st, 'p', (img) => {
      img.write(9, 1, Buffer.alloc(SECTOR_SIZE));
      img.flush();
    });
    expect(peek(file, dataOffset(9, 0), SECTOR_SIZE).some((x) => x !== 0)).toBe(true);
  });

  it('never overwrites the flushed version before the next flush (double slot)', async () => {
    const st = new Storage({ dataDir: dir });
    const file = st.imagePath('p');
    const gens = () => {
      return [0, 1].map((k) => Number(peek(file, metaOffset(0, k), 8).readBigUInt64LE(0)));
    };
    await boot(st, 'p', (img) => {
      img.write(0, 1, sector('1'));
      img.flush();
      expect(gens()).toEqual([1, 0]);
      img.write(0, 1, sector('2')); // flushed v1 stays in slot A
      expect(gens()).toEqual([1, 2]);
      img.write(0, 1, sector('3')); // still unflushed: rewrites slot B, not A
      expect(gens()).toEqual([1, 3]);
      img.flush();
      img.write(0, 1, sector('4')); // now A is the old one
      expect(gens()).toEqual([4, 3]);
    });
  });

  it('a torn newest slot reads as the previous version, never a mix', async () => {
    const st = new Storage({ dataDir: dir });
    const file = st.imagePath('p');
    await boot(st, 'p', (img) => {
      img.write(5, 1, sector('o'));
      img.flush();
      img.write(5, 1, sector('n'));
    });
    // Simulate a crash part-way through the second write: half of slot B's ciphertext is old bytes.
    poke(file, dataOffset(5, 1) + 2048, randomBytes(2048));
    await boot(st, 'p', (img) => {
      const r = read(img, 5);
      expect(r.status).toBe(0);
      expect(r.data.equals(sector('o'))).toBe(true);
      expect(img.counters.tornRecovered).toBe(1);
      // and the next write goes to the torn slot, keeping 'o' until it is durable
      img.write(5, 1, sector('x'));
      expect(read(img, 5).data.equals(sector('x'))).toBe(true);
    });
  });

  it('a sector with two versions and neither authentic is INTEGRITY, and the read delivers nothing', async () => {
    const st = new Storage({ dataDir: dir });
    const file = st.imagePath('p');
    await boot(st, 'p', (img) => {
      img.write(7, 1, sector('z'));
      img.flush();
      img.write(7, 1, sector('w'));
      img.flush();
    });
    poke(file, dataOffset(7, 0) + 100, Buffer.from([1, 2, 3]));
    poke(file, dataOffset(7, 1) + 100, Buffer.from([1, 2, 3]));
    await boot(st, 'p', (img) => {
      expect(read(img, 7).status).toBe(HvStatus.INTEGRITY);
      expect(img.counters.integrityFailures).toBe(1);
      // a new write replaces the damaged sector
      expect(img.write(7, 1, sector('y'))).toBe(0);
      expect(read(img, 7).data.equals(sector('y'))).toBe(true);
    });
  });

  it('a sector whose only version fails reads as never written (what a torn first write leaves), and is counted', async () => {
    const st = new Storage({ dataDir: dir });
    const file = st.imagePath('p');
    await boot(st, 'p', (img) => {
      img.write(8, 1, sector('z'));
      img.flush();
    });
    poke(file, dataOffset(8, 0) + 100, Buffer.from([1, 2, 3]));
    await boot(st, 'p', (img) => {
      const r = read(img, 8);
      expect(r.status).toBe(0);
      expect(r.data.every((x) => x === 0)).toBe(true);
      expect(img.counters.tornRecovered).toBe(1);
    });
  });

  it('slots moved between sectors never yield the other sector’s data (the sector number is bound in)', async () => {
    const st = new Storage({ dataDir: dir });
    const file = st.imagePath('p');
    await boot(st, 'p', (img) => {
      for (const v of ['1', '2']) {
        img.write(1, 1, sector(v));
        img.write(2, 1, sector(v === '1' ? 'a' : 'b'));
        img.write(3, 1, sector('c'));
        img.flush();
      }
    });
    for (const k of [0, 1]) pokeSlot(file, 2, k, peekSlot(file, 1, k)); // both versions of sector 1 over sector 2
    pokeSlot(file, 4, 0, peekSlot(file, 1, 0)); // one version over never-written sector 4
    await boot(st, 'p', (img) => {
      expect(read(img, 2).status).toBe(HvStatus.INTEGRITY);
      expect(read(img, 1).data.equals(sector('2'))).toBe(true);
      const four = read(img, 4);
      expect(four.status).toBe(0);
      expect(four.data.every((x) => x === 0)).toBe(true);
    });
  });

  it('discard reads as zeros at once and scrubs the old version at the next flush', async () => {
    const st = new Storage({ dataDir: dir });
    const file = st.imagePath('p');
    await boot(st, 'p', (img) => {
      img.write(0, 2, Buffer.concat([sector('a'), sector('b')]));
      img.flush();
      img.write(0, 1, sector('c')); // slot B, unflushed; slot A holds 'a'
      expect(img.discard(0, 2)).toBe(0);
      expect(read(img, 0, 2).data.every((x) => x === 0)).toBe(true);
      img.flush();
      // sector 0: the zero version is in B, A was scrubbed; sector 1: zero version in B, A scrubbed
      for (const s of [0, 1]) {
        expect(peekSlot(file, s, 0).every((x) => x === 0)).toBe(true);
      }
      expect(img.discard(200, 16)).toBe(0); // never-written sectors: nothing to do
    });
    await boot(st, 'p', (img) => {
      expect(read(img, 0, 2).data.every((x) => x === 0)).toBe(true);
    });
  });

  it('refuses an image copied into another partition’s place (ERR_INTEGRITY), with a keystore or a master key', async () => {
    for (const masterKey of [undefined, randomBytes(32)]) {
      const d = mkdtempSync(path.join(dir, 'k'));
      const st = new Storage({ dataDir: d, ...(masterKey ? { masterKey } : {}) });
      await boot(st, 'alice', (img) => {
        img.write(0, 1, sector('s'));
        img.flush();
      });
      await boot(st, 'bob', () => undefined);
      const { copyFileSync } = await import('node:fs');
      copyFileSync(st.imagePath('alice'), st.imagePath('bob'));
      await expect(st.attach('bob', 1)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    }
  });

  it('refuses a tampered header, a wrong size, a missing key and a second attach', async () => {
    const st = new Storage({ dataDir: dir });
    await boot(st, 'p', () => undefined);
    await expect(st.attach('p', 2)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    const a = await st.attach('p', 1);
    await expect(st.attach('p', 1)).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    await expect(st.wipe('p')).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    await st.detach(a);
    poke(st.imagePath('p'), 16, Buffer.from([2])); // sector count
    await expect(st.attach('p', 1)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    poke(st.imagePath('p'), 16, Buffer.from([1]));
    await st.keystore!.remove(a.imageId, st.imagePath('p'), 'p', true);
    await expect(st.attach('p', 1)).rejects.toMatchObject({ code: 'ERR_INTEGRITY', message: expect.stringMatching(/has no key in .*keystore/) });
  });

  it('wipe scrubs and removes the image and its key; the same name then starts empty with a new key', async () => {
    const st = new Storage({ dataDir: dir });
    let oldId: Uint8Array | null = null;
    await boot(st, 'p', (img, a) => {
      img.write(0, 1, sector('q'));
      img.flush();
      oldId = new Uint8Array(a.imageId);
    });
    const oldKey = (await st.keystore!.find(oldId!))!.key;
    expect(oldKey).not.toBeNull();
    const result = await st.wipe('p');
    expect(result).toMatchObject({ removedImage: true, removedKey: true });
    expect(existsSync(st.imagePath('p'))).toBe(false);
    expect(await st.keystore!.find(oldId!)).toBeNull();
    expect(await st.wipe('p')).toMatchObject({ removedImage: false, removedKey: false });
    let newId: Uint8Array | null = null;
    await boot(st, 'p', (img, a) => {
      expect(a.created).toBe(true);
      expect(read(img, 0).data.every((x) => x === 0)).toBe(true);
      newId = new Uint8Array(a.imageId);
    });
    expect(Buffer.from(newId!).equals(Buffer.from(oldId!))).toBe(false);
    expect((await st.keystore!.find(newId!))!.key.equals(oldKey)).toBe(false);
  });
});

describe('format 1 images', () => {
  /** Writes an image as the format-1 engine laid it out: a v1 header, then pairs of [entry 48 | ciphertext] slots. */
  function writeFormat1(file: string, masterKey: Buffer, name: string, sectors: number, versions: { s: number; k: number; gen: number; fill: string; torn?: boolean }[]) {
    const imageId = randomBytes(16);
    const keys = deriveImageKeys(masterKey, imageId, name);
    const h = format1Header(keys.macKey, imageId, name, sectors);
    const body = Buffer.alloc(sectors * 8288);
    for (const v of versions) {
      const at = v.s * 8288 + v.k * 4144;
      body.writeBigUInt64LE(BigInt(v.gen), at);
      const nonce = randomBytes(12);
      nonce.copy(body, at + 8);
      const aad = Buffer.alloc(32);
      imageId.copy(aad, 0);
      aad.writeBigUInt64LE(BigInt(v.s), 16);
      aad.writeBigUInt64LE(BigInt(v.gen), 24);
      const c = createCipheriv('aes-256-gcm', keys.dataKey, nonce);
      c.setAAD(aad);
      Buffer.concat([c.update(sector(v.fill)), c.final()]).copy(body, at + 48);
      c.getAuthTag().copy(body, at + 20);
      if (v.torn) body.fill(0x77, at + 48 + 1000, at + 48 + 3000);
    }
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, Buffer.concat([h, body]));
    return imageId;
  }

  it('is converted to format 2 when opened: every version keeps reading, torn ones fall back', async () => {
    const masterKey = randomBytes(32);
    const st = new Storage({ dataDir: dir, masterKey });
    const file = st.imagePath('old');
    const id = writeFormat1(file, masterKey, 'old', 256, [
      { s: 0, k: 0, gen: 1, fill: 'a' },
      { s: 1, k: 0, gen: 1, fill: 'b' },
      { s: 1, k: 1, gen: 2, fill: 'c' }, // the newer version of sector 1
      { s: 40, k: 1, gen: 5, fill: 'd' }, // another group
      { s: 41, k: 0, gen: 3, fill: 'e' },
      { s: 41, k: 1, gen: 4, fill: 'f', torn: true }, // torn newest: reads as 'e'
      { s: 255, k: 0, gen: 9, fill: 'g' },
    ]);
    expect((await st.list())[0]).toMatchObject({ format: 1, sizeBytes: 1 << 20 });
    await boot(st, 'old', (img, a) => {
      expect(Buffer.from(a.imageId).equals(id)).toBe(true);
      const expect1 = { 0: 'a', 1: 'c', 2: null, 40: 'd', 41: 'e', 255: 'g' } as Record<number, string | null>;
      for (const [s, fill] of Object.entries(expect1)) {
        const r = read(img, Number(s));
        expect(r.status).toBe(0);
        expect(fill === null ? r.data.every((x) => x === 0) : r.data.equals(sector(fill)), `sector ${s}`).toBe(true);
      }
      expect(img.counters.tornRecovered).toBe(1);
      // Writing continues with the slot rule: sector 1's newest (B, gen 2) stays until the next flush.
      expect(img.write(1, 1, sector('h'))).toBe(0);
      expect(peek(file, metaOffset(1, 0), 8).readBigUInt64LE(0)).toBe(3n);
      img.flush();
    });
    expect((await st.list())[0]).toMatchObject({ format: 2, problem: null });
    expect(readdirSync(path.dirname(file))).toEqual(['old.img']);
    await boot(st, 'old', (img) => {
      expect(read(img, 1).data.equals(sector('h'))).toBe(true);
      expect(read(img, 255).data.equals(sector('g'))).toBe(true);
    });
  });
});
