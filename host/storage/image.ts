/**
 * The on-disk format of a partition's block device image, and the synchronous engine that reads
 * and writes it. Used by the block device front-end in the partition's worker (host/devices/block.ts),
 * by the root when it creates or checks an image (host/storage/storage.ts), and by tests.
 * docs/STORAGE.md explains the format and argues its crash consistency; this comment is the summary.
 *
 * Layout (all integers little-endian):
 *
 *   [0, 4096)                 header: magic, format version, sector size, sector count, slot size,
 *                             image id (16 random bytes), HMAC-SHA256 over all of that and the
 *                             partition's name (with a key derived from the partition's key)
 *   4096 + s * PAIR_SIZE      sector s: two slots, A then B, each SLOT_SIZE bytes:
 *     slot = [ gen u64 | nonce 12 | tag 16 | reserved 12 (zero) | ciphertext 4096 ]
 *
 * Every stored sector version is sealed with AES-256-GCM under the partition's data key, with a
 * fresh random nonce and AAD = image id | sector | gen. A slot whose gen is 0 is empty; a sector
 * whose slots are both empty reads as zeros (the file is sparse, so unwritten sectors cost nothing).
 *
 * Invariants:
 * - A read returns the newest slot (highest gen) that authenticates. A torn slot (a write cut
 *   short by a crash) fails authentication, so the sector reads as its previous version: never a
 *   mix of old and new bytes.
 * - The slot holding the newest *flushed* version of a sector is never written until a later
 *   flush has made a newer version durable: the first write to a sector after a flush goes to the
 *   other slot, and further writes before the next flush go to that same slot again.
 * - Whatever is on the file when the engine opens it is made durable first (fsync), so the newest
 *   authentic version of a sector found on disk may be treated as flushed.
 * - Nothing here trusts the file: gens, nonces and tags are only believed when the tag verifies.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomFillSync, timingSafeEqual } from 'node:crypto';
import { fsyncSync, readSync, writeSync } from 'node:fs';
import { HvStatus } from '../abi/codes.ts';

/** Bytes per sector, as the guest sees it. */
export const SECTOR_SIZE = 4096;
/** The header occupies the first HEADER_SIZE bytes of an image. */
export const HEADER_SIZE = 4096;
/** Per-slot metadata in front of the ciphertext: gen (8), nonce (12), tag (16), reserved (12). */
export const SLOT_META = 48;
export const SLOT_SIZE = SLOT_META + SECTOR_SIZE;
export const PAIR_SIZE = 2 * SLOT_SIZE;
/** Format version written in the header. */
export const FORMAT_VERSION = 1;
/** Largest image: 4 GiB of sectors (the per-sector state kept in memory is 10 bytes a sector). */
export const MAX_SECTORS = (4096 * 1024 * 1024) / SECTOR_SIZE;

const MAGIC = Buffer.from('WVBLOCK\0', 'latin1');
const GEN_AT = 0;
const NONCE_AT = 8;
const TAG_AT = 20;
const NONCE_LEN = 12;
const TAG_LEN = 16;
const NONCE_POOL = 256;
/** Most sectors read with one system call (a full BLOCK_READ). */
const MAX_BATCH = 16;
const HEADER_MAC_AT = 48;
const HEADER_SIGNED_LEN = 48;

/** File size of an image with `sectorCount` sectors (the file is sparse: this is not disk usage). */
export function imageFileSize(sectorCount: number): number {
  return HEADER_SIZE + sectorCount * PAIR_SIZE;
}

/** Keys of one image: the AES-256-GCM data key and the header MAC key. */
export interface ImageKeys {
  dataKey: Buffer;
  macKey: Buffer;
}

/**
 * Derives an image's keys from the partition key (a 32-byte key from the keystore, or the
 * embedder's master key), the image id and the partition's name. Binding the name means an image
 * copied to another partition's place fails its header check even under a shared master key, and
 * binding the image id means a new image under the same name never shares keys with an old one.
 */
export function deriveImageKeys(partitionKey: Uint8Array, imageId: Uint8Array, name: string): ImageKeys {
  const info = (what: string) => Buffer.from(`wasmvisor block v1 ${what}\0${name}`, 'utf8');
  return {
    dataKey: Buffer.from(hkdfSync('sha256', partitionKey, imageId, info('data'), 32)),
    macKey: Buffer.from(hkdfSync('sha256', partitionKey, imageId, info('header'), 32)),
  };
}

/** Why an image was refused when opened. */
export type ImageProblem = 'not-an-image' | 'unsupported' | 'wrong-key' | 'truncated';

export class ImageError extends Error {
  constructor(
    readonly problem: ImageProblem,
    message: string,
  ) {
    super(message);
    this.name = 'ImageError';
  }
}

/** The checked contents of an image header. */
export interface ImageHeader {
  sectorCount: number;
  imageId: Buffer;
}

/** Builds the 4096-byte header of a new image. */
export function encodeHeader(sectorCount: number, imageId: Uint8Array, macKey: Uint8Array, name: string): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(FORMAT_VERSION, 8);
  h.writeUInt32LE(SECTOR_SIZE, 12);
  h.writeBigUInt64LE(BigInt(sectorCount), 16);
  h.writeUInt32LE(SLOT_SIZE, 24);
  Buffer.from(imageId).copy(h, 32, 0, 16);
  headerMac(h, macKey, name).copy(h, HEADER_MAC_AT);
  return h;
}

function headerMac(h: Buffer, macKey: Uint8Array, name: string): Buffer {
  return createHmac('sha256', macKey).update(h.subarray(0, HEADER_SIGNED_LEN)).update(Buffer.from(name, 'utf8')).digest();
}

/** Reads the unauthenticated part of a header (to find the image id the keys derive from). */
export function peekHeader(h: Buffer): ImageHeader {
  if (h.length < HEADER_SIZE) throw new ImageError('truncated', 'the image is shorter than its header');
  if (!h.subarray(0, 8).equals(MAGIC)) throw new ImageError('not-an-image', 'the file is not a wasmvisor block image');
  const version = h.readUInt32LE(8);
  if (version !== FORMAT_VERSION || h.readUInt32LE(12) !== SECTOR_SIZE || h.readUInt32LE(24) !== SLOT_SIZE) {
    throw new ImageError('unsupported', `the image has format ${version}, sector size ${h.readUInt32LE(12)}; this runtime reads format ${FORMAT_VERSION}, sector size ${SECTOR_SIZE}`);
  }
  const count = h.readBigUInt64LE(16);
  if (count < 1n || count > BigInt(MAX_SECTORS)) throw new ImageError('unsupported', `the image claims ${count} sectors`);
  return { sectorCount: Number(count), imageId: Buffer.from(h.subarray(32, 48)) };
}

/** Checks a header's MAC; throws ImageError('wrong-key') when the key or name does not match. */
export function verifyHeader(h: Buffer, macKey: Uint8Array, name: string): ImageHeader {
  const header = peekHeader(h);
  const expected = headerMac(h, macKey, name);
  if (!timingSafeEqual(expected, h.subarray(HEADER_MAC_AT, HEADER_MAC_AT + 32))) {
    throw new ImageError('wrong-key', 'the image header does not authenticate: it belongs to another partition, another key, or was altered');
  }
  return header;
}

/** Counters the engine keeps; the device copies them into the partition's stats. */
export interface ImageCounters {
  /** Sectors whose newest slot failed authentication while an older one verified (torn writes, or a rolled-back slot). */
  tornRecovered: number;
  /** Sectors that had no slot that authenticates although one was written. */
  integrityFailures: number;
}

const STATE_UNKNOWN = -1;
const STATE_EMPTY = 0;
// 1: slot A is newest, 2: slot B is newest.

const DIRTY_WRITTEN = 1;
const DIRTY_DISCARDED = 2;

/**
 * The three file operations the engine uses. The default works on a file descriptor; tests plug
 * in a simulated disk with a volatile write cache to check the crash argument under power loss.
 */
export interface BlockIo {
  /** Fills all of buf from `position`; bytes past the end of the file read as zeros. */
  pread(buf: Buffer, position: number): void;
  /** Writes all of buf at `position` (may be torn by a crash). */
  pwrite(buf: Buffer, position: number): void;
  /** Returns once every completed pwrite is on stable storage. */
  fsync(): void;
}

/**
 * BlockIo over an open file descriptor, with synchronous system calls. `durableWrites`: the
 * descriptor was opened with O_DSYNC, so each write is on stable storage when it returns and
 * fsync has nothing left to do (a partition process may not call fsync: Node's permission model
 * disables it; host/scheduler/process.ts opens its image so).
 */
export function fdIo(fd: number, durableWrites = false): BlockIo {
  return {
    pread(buf, position) {
      let done = 0;
      while (done < buf.length) {
        const n = readSync(fd, buf, done, buf.length - done, position + done);
        if (n === 0) {
          // Past the end of a file that should be sized already: the rest reads as zeros (sparse).
          buf.fill(0, done);
          return;
        }
        done += n;
      }
    },
    pwrite(buf, position) {
      let done = 0;
      while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, position + done);
    },
    fsync() {
      if (!durableWrites) fsyncSync(fd);
    },
  };
}

export interface BlockImageOptions {
  /** An open file descriptor (read/write) of an image whose header was checked. Not closed here. */
  fd: number;
  /** Replaces the file operations on `fd` (tests: a simulated disk). */
  io?: BlockIo;
  /** `fd` was opened with O_DSYNC: every write is durable when it returns (see fdIo). */
  durableWrites?: boolean;
  /**
   * fsync the image before first use. Default true, and it must be: see the constructor. Only the
   * power-loss test turns it off, to show that its simulated disk catches the resulting loss.
   */
  syncOnOpen?: boolean;
  sectorCount: number;
  imageId: Uint8Array;
  dataKey: Uint8Array;
}

/**
 * Reads and writes sectors of an open image with synchronous file I/O. Single-threaded by
 * design: one instance per partition, in the partition's worker. Methods return an HvStatus
 * (0 = success); file-system errors propagate as exceptions for the caller to map to IO_ERROR.
 */
export class BlockImage {
  readonly sectorCount: number;
  readonly counters: ImageCounters = { tornRecovered: 0, integrityFailures: 0 };
  private readonly io: BlockIo;
  private readonly imageId: Buffer;
  private readonly key: Buffer;
  /** Newest valid slot per sector (see STATE_*), learned on first touch. */
  private readonly state: Int8Array;
  /** Generation of the newest valid version per sector. */
  private readonly gen: Float64Array;
  /** Written or discarded since the last flush (see DIRTY_*). */
  private readonly dirty: Uint8Array;
  private dirtyList: number[] = [];
  private readonly pair = Buffer.alloc(PAIR_SIZE);
  private readonly slot = Buffer.alloc(SLOT_SIZE);
  private readonly aad = Buffer.alloc(32);
  private readonly zeros = Buffer.alloc(SECTOR_SIZE);
  private readonly zeroSlot = Buffer.alloc(SLOT_SIZE);
  private readonly batch = Buffer.alloc(MAX_BATCH * PAIR_SIZE);
  /** Random nonces drawn from the CSPRNG in bulk (one call per NONCE_POOL writes instead of one per write). */
  private readonly nonces = Buffer.alloc(NONCE_LEN * NONCE_POOL);
  private noncesUsed = NONCE_POOL;
  private closed = false;

  constructor(options: BlockImageOptions) {
    if (!Number.isInteger(options.sectorCount) || options.sectorCount < 1 || options.sectorCount > MAX_SECTORS) {
      throw new RangeError(`sector count ${options.sectorCount} is out of range`);
    }
    this.io = options.io ?? fdIo(options.fd, options.durableWrites === true);
    this.sectorCount = options.sectorCount;
    this.imageId = Buffer.from(options.imageId);
    this.key = Buffer.from(options.dataKey);
    this.state = new Int8Array(this.sectorCount).fill(STATE_UNKNOWN);
    this.gen = new Float64Array(this.sectorCount);
    this.dirty = new Uint8Array(this.sectorCount);
    // After a crash, versions written but never flushed may still sit in the page cache. This
    // engine treats the newest authentic version it finds as flushed (its next write of that
    // sector goes to the other slot, over the older version), so make that true before any write:
    // otherwise a power cut could lose the unsynced newest version and tear the older, flushed one.
    if (options.syncOnOpen !== false) this.io.fsync();
  }

  /** Reads `count` sectors from `sector` into out[offset, offset + count * SECTOR_SIZE). */
  read(sector: number, count: number, out: Uint8Array, offset = 0): number {
    this.assertOpen();
    // Several sectors: one read of their pairs (contiguous on disk) instead of one per sector.
    let batch: Buffer | null = null;
    if (count > 1 && count <= MAX_BATCH) {
      for (let i = 0; i < count && batch === null; i++) {
        if (this.state[sector + i] !== STATE_EMPTY) {
          batch = this.batch.subarray(0, count * PAIR_SIZE);
          this.preadAll(batch, this.pairOffset(sector));
        }
      }
    }
    try {
      for (let i = 0; i < count; i++) {
        const status = this.readSector(sector + i, out, offset + i * SECTOR_SIZE, batch, i * PAIR_SIZE);
        if (status !== HvStatus.SUCCESS) return status;
      }
      return HvStatus.SUCCESS;
    } finally {
      batch?.fill(0);
    }
  }

  /** Writes `count` sectors from data[offset, ...). Each sector is atomic on its own; the request as a whole is not. */
  write(sector: number, count: number, data: Uint8Array, offset = 0): number {
    this.assertOpen();
    for (let i = 0; i < count; i++) {
      this.writeSector(sector + i, data.subarray(offset + i * SECTOR_SIZE, offset + (i + 1) * SECTOR_SIZE), DIRTY_WRITTEN);
    }
    return HvStatus.SUCCESS;
  }

  /**
   * Makes `count` sectors read as zeros. Written as a new (encrypted) zero version, so a discard is
   * exactly as crash-safe as a write; the older version's slot is zeroed at the next flush, once the
   * zero version is durable.
   */
  discard(sector: number, count: number): number {
    this.assertOpen();
    for (let i = 0; i < count; i++) {
      const s = sector + i;
      this.learn(s);
      if (this.state[s] === STATE_EMPTY && this.dirty[s] === 0) continue; // already zeros on disk
      this.writeSector(s, this.zeros, DIRTY_DISCARDED);
    }
    return HvStatus.SUCCESS;
  }

  /**
   * fsync: every write that returned before this call is durable when it returns. Then the stale
   * slots of discarded sectors are zeroed (safe: their zero version is now durable) and synced.
   */
  flush(): number {
    this.assertOpen();
    this.io.fsync();
    let scrubbed = 0;
    for (const s of this.dirtyList) {
      if (this.dirty[s] === DIRTY_DISCARDED) {
        const stale = this.state[s] === 1 ? 1 : 0; // the slot that is not the newest
        this.pwriteAll(this.zeroSlot, this.slotOffset(s, stale));
        scrubbed++;
      }
      this.dirty[s] = 0;
    }
    this.dirtyList = [];
    if (scrubbed > 0) this.io.fsync();
    return HvStatus.SUCCESS;
  }

  /** Drops the key material. The fd belongs to the caller. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.key.fill(0);
    this.pair.fill(0);
    this.slot.fill(0);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('block image is closed');
  }

  private pairOffset(s: number): number {
    return HEADER_SIZE + s * PAIR_SIZE;
  }

  private slotOffset(s: number, slot: number): number {
    return this.pairOffset(s) + slot * SLOT_SIZE;
  }

  private setAad(s: number, gen: number): void {
    this.imageId.copy(this.aad, 0, 0, 16);
    this.aad.writeBigUInt64LE(BigInt(s), 16);
    this.aad.writeBigUInt64LE(BigInt(gen), 24);
  }

  /** Opens slot `buf[at, at + SLOT_SIZE)` of sector s into out[offset...]; false if it does not authenticate. */
  private open(s: number, buf: Buffer, at: number, out: Uint8Array, offset: number): boolean {
    const gen = Number(buf.readBigUInt64LE(at + GEN_AT));
    if (!Number.isSafeInteger(gen) || gen === 0) return false;
    for (let i = at + SLOT_META - 12; i < at + SLOT_META; i++) if (buf[i] !== 0) return false;
    this.setAad(s, gen);
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, buf.subarray(at + NONCE_AT, at + NONCE_AT + NONCE_LEN), { authTagLength: TAG_LEN });
      d.setAAD(this.aad);
      d.setAuthTag(buf.subarray(at + TAG_AT, at + TAG_AT + TAG_LEN));
      const plain = d.update(buf.subarray(at + SLOT_META, at + SLOT_SIZE));
      d.final(); // throws when the tag does not verify
      out.set(plain, offset);
      plain.fill(0);
      return true;
    } catch {
      return false;
    }
  }

  /** One sector; `batch[at, at + PAIR_SIZE)`, when given, already holds its pair as on disk. */
  private readSector(s: number, out: Uint8Array, offset: number, batch: Buffer | null = null, at = 0): number {
    const state = this.state[s]!;
    if (state === STATE_EMPTY) {
      out.fill(0, offset, offset + SECTOR_SIZE);
      return HvStatus.SUCCESS;
    }
    if (state > 0) {
      // Known newest slot: it verified before (or we wrote it); failing now means the file changed under us.
      let ok: boolean;
      if (batch) {
        ok = this.open(s, batch, at + (state - 1) * SLOT_SIZE, out, offset);
      } else {
        this.preadAll(this.slot, this.slotOffset(s, state - 1));
        ok = this.open(s, this.slot, 0, out, offset);
      }
      if (ok) return HvStatus.SUCCESS;
      this.counters.integrityFailures++;
      out.fill(0, offset, offset + SECTOR_SIZE);
      return HvStatus.INTEGRITY;
    }
    return this.learn(s, out, offset, batch, at);
  }

  /**
   * First touch of a sector: reads both slots, picks the newest that authenticates, records it.
   * With `out`, also delivers its plaintext (zeros for an empty sector).
   */
  private learn(s: number, out?: Uint8Array, offset = 0, batch: Buffer | null = null, at = 0): number {
    if (this.state[s] !== STATE_UNKNOWN) return HvStatus.SUCCESS;
    let pair: Buffer = this.pair;
    if (batch) {
      pair = batch.subarray(at, at + PAIR_SIZE);
    } else {
      this.preadAll(pair, this.pairOffset(s));
    }
    const genA = Number(pair.readBigUInt64LE(GEN_AT));
    const genB = Number(pair.readBigUInt64LE(SLOT_SIZE + GEN_AT));
    const order = genB > genA ? [1, 0] : [0, 1];
    const sink = out ?? this.slot;
    const sinkAt = out ? offset : 0;
    let tried = 0;
    for (const k of order) {
      const g = k === 0 ? genA : genB;
      if (g === 0) continue;
      tried++;
      if (this.open(s, pair, k * SLOT_SIZE, sink, sinkAt)) {
        if (tried > 1) this.counters.tornRecovered++;
        this.state[s] = k + 1;
        this.gen[s] = g;
        if (!out) this.slot.fill(0);
        return HvStatus.SUCCESS;
      }
    }
    if (out) out.fill(0, offset, offset + SECTOR_SIZE);
    // Gens of slots that did not authenticate are untrusted; they only keep the next write's gen above them.
    const g = Math.min(Math.max(Number.isSafeInteger(genA) ? genA : 0, Number.isSafeInteger(genB) ? genB : 0), Number.MAX_SAFE_INTEGER - 1);
    if (tried < 2) {
      // No slot, or one that fails beside an empty one: the sector's previous version is "never
      // written". That is what a crash during a sector's first write leaves, so it reads as zeros.
      if (tried === 1) this.counters.tornRecovered++;
      this.state[s] = STATE_EMPTY;
      this.gen[s] = g;
      return HvStatus.SUCCESS;
    }
    // Two versions and neither authenticates: no crash does that (the slot holding the last
    // flushed version is never written before a newer one is durable). Left unknown: a write may
    // still replace it.
    this.counters.integrityFailures++;
    this.gen[s] = g;
    return HvStatus.INTEGRITY;
  }

  private writeSector(s: number, plain: Uint8Array, dirtyKind: number): void {
    this.learn(s); // an INTEGRITY failure leaves state unknown; the write below replaces it
    const state = this.state[s]!;
    let target: number;
    if (state > 0 && this.dirty[s] !== 0) {
      target = state - 1; // not flushed yet: overwrite our own unflushed version, keep the flushed one
    } else if (state > 0) {
      target = 2 - state; // the other slot: the newest flushed version stays intact until the next flush
    } else {
      target = 0;
    }
    const gen = this.gen[s]! + 1;
    const slot = this.slot;
    slot.fill(0, 0, SLOT_META);
    slot.writeBigUInt64LE(BigInt(gen), GEN_AT);
    this.nextNonce().copy(slot, NONCE_AT);
    this.setAad(s, gen);
    const c = createCipheriv('aes-256-gcm', this.key, slot.subarray(NONCE_AT, NONCE_AT + NONCE_LEN), { authTagLength: TAG_LEN });
    c.setAAD(this.aad);
    const ct = c.update(plain);
    c.final();
    ct.copy(slot, SLOT_META);
    c.getAuthTag().copy(slot, TAG_AT);
    // One write for metadata and ciphertext: whatever part of it a crash keeps, the tag decides.
    this.pwriteAll(slot, this.slotOffset(s, target));
    this.state[s] = target + 1;
    this.gen[s] = gen;
    if (this.dirty[s] === 0) this.dirtyList.push(s);
    // A discard followed by a write before the flush still needs the stale-slot scrub.
    if (this.dirty[s] !== DIRTY_DISCARDED) this.dirty[s] = dirtyKind;
  }

  /** A fresh random 96-bit nonce. Each pool byte is used once and zeroed after use. */
  private nextNonce(): Buffer {
    if (this.noncesUsed === NONCE_POOL) {
      randomFillSync(this.nonces);
      this.noncesUsed = 0;
    }
    const at = this.noncesUsed++ * NONCE_LEN;
    const nonce = Buffer.from(this.nonces.subarray(at, at + NONCE_LEN));
    this.nonces.fill(0, at, at + NONCE_LEN);
    return nonce;
  }

  private preadAll(buf: Buffer, position: number): void {
    this.io.pread(buf, position);
  }

  private pwriteAll(buf: Buffer, position: number): void {
    this.io.pwrite(buf, position);
  }
}
