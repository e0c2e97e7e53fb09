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
 *     slot = [ gen u64 | nonce 12 | tag 16 | key epoch u64 | reserved 4 (zero) | ciphertext 4096 ]
 *
 * Every stored sector version is sealed with AES-256-GCM under a key of the image, with a fresh
 * random nonce and AAD = image id | sector | gen. The key is chosen by the slot's key epoch: epoch 0
 * is the image's data key itself (images written before epochs existed), any other epoch e is
 * HKDF(data key, image id, "wasmvisor block epoch" | e). Each engine seals under a fresh random
 * epoch, and moves to another one after `sealsPerKey` sealings, so no key ever seals more than
 * 2^30 sectors: far inside the 2^32 random-nonce bound of NIST SP 800-38D.
 * A slot whose gen is 0 is empty; a sector whose slots are both empty reads as zeros (the file is
 * sparse, so unwritten sectors cost nothing).
 *
 * Invariants:
 * - A read returns the newest slot (highest gen) that authenticates. A torn slot (a write cut
 *   short by a crash) fails authentication, so the sector reads as its previous version: never a
 *   mix of old and new bytes. A known slot that stops authenticating falls back the same way.
 * - The slot holding the newest *flushed* version of a sector is never written until a later
 *   flush has made a newer version durable: the first write to a sector after a flush goes to the
 *   other slot, and further writes before the next flush go to that same slot again.
 * - Whatever is on the file when the engine opens it is made durable first (fsync), so the newest
 *   authentic version of a sector found on disk may be treated as flushed.
 * - A write or fsync that fails is sticky: the engine no longer knows what reached the disk, so
 *   every later write, discard and flush fails with IO_ERROR until the image is opened again
 *   (which learns each sector from disk). A failed slot write never becomes a sector's newest.
 * - Nothing here trusts the file: gens, epochs, nonces and tags are only believed when the tag
 *   verifies, and a new gen is always one more than the newest *verified* one.
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomFillSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { fsyncSync, readSync, writeSync } from 'node:fs';
import { HvStatus } from '../abi/codes.ts';
import { secretCopy } from './secret.ts';

/** Bytes per sector, as the guest sees it. */
export const SECTOR_SIZE = 4096;
/** The header occupies the first HEADER_SIZE bytes of an image. */
export const HEADER_SIZE = 4096;
/** Per-slot metadata in front of the ciphertext: gen (8), nonce (12), tag (16), key epoch (8), reserved (4). */
export const SLOT_META = 48;
export const SLOT_SIZE = SLOT_META + SECTOR_SIZE;
export const PAIR_SIZE = 2 * SLOT_SIZE;
/** Format version written in new headers. Format 1 (before key epochs) is read and written too: its slots are epoch 0. */
export const FORMAT_VERSION = 2;
/** Largest image: 4 GiB of sectors (the per-sector state kept in memory is 10 bytes a sector). */
export const MAX_SECTORS = (4096 * 1024 * 1024) / SECTOR_SIZE;
/**
 * Sealings under one key before the engine moves to a fresh key epoch. Random 96-bit GCM nonces
 * stay unique with probability 1 - 2^-33 up to 2^32 sealings per key (NIST SP 800-38D 8.3); at
 * 2^30 the collision probability is below 2^-37.
 */
export const SEALS_PER_KEY = 2 ** 30;

const MAGIC = Buffer.from('WVBLOCK\0', 'latin1');
export const GEN_AT = 0;
export const NONCE_AT = 8;
export const TAG_AT = 20;
export const EPOCH_AT = 36;
const RESERVED_AT = 44;
const NONCE_LEN = 12;
const TAG_LEN = 16;
const NONCE_POOL = 256;
/** Most sectors read with one system call (a full BLOCK_READ). */
const MAX_BATCH = 16;
const HEADER_MAC_AT = 48;
const HEADER_SIGNED_LEN = 48;
/** Keys of older epochs kept for reading; each costs one HKDF (a few µs) to derive again. */
const MAX_EPOCH_KEYS = 32;
const EPOCH_INFO = 'wasmvisor block epoch ';
const TWO_32 = 0x1_0000_0000;
const GCM_OPTIONS = { authTagLength: TAG_LEN } as const;

/** File size of an image with `sectorCount` sectors (the file is sparse: this is not disk usage). */
export function imageFileSize(sectorCount: number): number {
  return HEADER_SIZE + sectorCount * PAIR_SIZE;
}

/** Keys of one image: the AES-256-GCM data key (the root of its key epochs) and the header MAC key. */
export interface ImageKeys {
  dataKey: Buffer;
  macKey: Buffer;
}

/**
 * Derives an image's keys from the partition key (a 32-byte key from the keystore, or the
 * embedder's master key), the image id and the partition's name. Binding the name means an image
 * copied to another partition's place fails its header check even under a shared master key, and
 * binding the image id means a new image under the same name never shares keys with an old one.
 * The results live on their own ArrayBuffers (see secret.ts); the caller zeroes them.
 */
export function deriveImageKeys(partitionKey: Uint8Array, imageId: Uint8Array, name: string): ImageKeys {
  const info = (what: string) => Buffer.from(`wasmvisor block v1 ${what}\0${name}`, 'utf8');
  return {
    dataKey: Buffer.from(hkdfSync('sha256', partitionKey, imageId, info('data'), 32)),
    macKey: Buffer.from(hkdfSync('sha256', partitionKey, imageId, info('header'), 32)),
  };
}

/** The key of epoch `epoch` (8 bytes, not all zero) of an image: HKDF(data key, image id, info | epoch). */
export function deriveEpochKey(dataKey: Uint8Array, imageId: Uint8Array, epoch: Uint8Array): Buffer {
  const info = Buffer.concat([Buffer.from(EPOCH_INFO, 'latin1'), epoch]);
  return Buffer.from(hkdfSync('sha256', dataKey, imageId, info, 32));
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
  format: number;
  sectorCount: number;
  /** On its own ArrayBuffer: it crosses to the partition's worker. */
  imageId: Uint8Array;
}

/** Builds the 4096-byte header of a new image. */
export function encodeHeader(sectorCount: number, imageId: Uint8Array, macKey: Uint8Array, name: string): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(FORMAT_VERSION, 8);
  h.writeUInt32LE(SECTOR_SIZE, 12);
  h.writeUInt32LE(sectorCount, 16); // < 2^20 (MAX_SECTORS): the high word stays 0
  h.writeUInt32LE(SLOT_SIZE, 24);
  h.set(imageId.subarray(0, 16), 32);
  headerMac(h, macKey, name).copy(h, HEADER_MAC_AT);
  return h;
}

function headerMac(h: Buffer, macKey: Uint8Array, name: string): Buffer {
  return createHmac('sha256', macKey).update(h.subarray(0, HEADER_SIGNED_LEN)).update(Buffer.from(name, 'utf8')).digest();
}

/** Reads the unauthenticated part of a header (to find the image id the keys derive from). */
export function peekHeader(h: Uint8Array): ImageHeader {
  if (h.length < HEADER_SIZE) throw new ImageError('truncated', 'the image is shorter than its header');
  const b = Buffer.from(h.buffer, h.byteOffset, h.length);
  if (!b.subarray(0, 8).equals(MAGIC)) throw new ImageError('not-an-image', 'the file is not a wasmvisor block image');
  const format = b.readUInt32LE(8);
  if ((format !== 1 && format !== FORMAT_VERSION) || b.readUInt32LE(12) !== SECTOR_SIZE || b.readUInt32LE(24) !== SLOT_SIZE) {
    throw new ImageError(
      'unsupported',
      `the image has format ${format}, sector size ${b.readUInt32LE(12)}; this runtime reads formats 1 and ${FORMAT_VERSION}, sector size ${SECTOR_SIZE}`,
    );
  }
  const high = b.readUInt32LE(20);
  const count = b.readUInt32LE(16);
  if (high !== 0 || count < 1 || count > MAX_SECTORS) throw new ImageError('unsupported', `the image claims ${high * TWO_32 + count} sectors`);
  return { format, sectorCount: count, imageId: new Uint8Array(b.subarray(32, 48)) };
}

/** Checks a header's MAC; throws ImageError('wrong-key') when the key or name does not match. */
export function verifyHeader(h: Uint8Array, macKey: Uint8Array, name: string): ImageHeader {
  const header = peekHeader(h);
  const b = Buffer.from(h.buffer, h.byteOffset, h.length);
  const expected = headerMac(b, macKey, name);
  if (!timingSafeEqual(expected, b.subarray(HEADER_MAC_AT, HEADER_MAC_AT + 32))) {
    throw new ImageError('wrong-key', 'the image header does not authenticate: it belongs to another partition, another key, or was altered');
  }
  return header;
}

/** Counters the engine keeps; the device copies them into the partition's stats. */
export interface ImageCounters {
  /** Sectors whose newest slot failed authentication while an older one verified (torn writes, or a rolled-back slot). */
  tornRecovered: number;
  /** Sectors that had no slot that authenticates although one was written, or whose known slot stopped authenticating. */
  integrityFailures: number;
  /** File operations that failed (reads, writes, fsyncs). */
  ioErrors: number;
}

/**
 * A key as the engine holds it: the bytes (zeroed when dropped) and a KeyObject made from them once,
 * so a cipher per sector does not copy and check the key again. Node keeps a KeyObject's bytes in
 * memory it cleanses (OPENSSL_clear_free) when the object is collected.
 */
interface EngineKey {
  raw: Buffer;
  obj: KeyObject;
}

function engineKey(raw: Buffer): EngineKey {
  return { raw, obj: createSecretKey(raw) };
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

/** The system calls fdIo makes; tests replace them to fail at chosen moments. */
export interface FileOps {
  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  fsyncSync(fd: number): void;
}

const nodeFileOps: FileOps = { readSync, writeSync, fsyncSync };

/** BlockIo over an open file descriptor, with synchronous system calls (short transfers are continued). */
export function fdIo(fd: number, ops: FileOps = nodeFileOps): BlockIo {
  return {
    pread(buf, position) {
      let done = 0;
      while (done < buf.length) {
        const n = ops.readSync(fd, buf, done, buf.length - done, position + done);
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
      while (done < buf.length) {
        const n = ops.writeSync(fd, buf, done, buf.length - done, position + done);
        if (n <= 0) throw new Error(`write at ${position + done} made no progress`);
        done += n;
      }
    },
    fsync() {
      ops.fsyncSync(fd);
    },
  };
}

export interface BlockImageOptions {
  /** An open file descriptor (read/write) of an image whose header was checked. Not closed here. */
  fd: number;
  /** Replaces the file operations on `fd` (tests: a simulated disk). */
  io?: BlockIo;
  /**
   * fsync the image before first use. Default true, and it must be: see the constructor. Only the
   * power-loss test turns it off, to show that its simulated disk catches the resulting loss.
   */
  syncOnOpen?: boolean;
  sectorCount: number;
  imageId: Uint8Array;
  /** The image's data key. Copied: the caller zeroes its own. */
  dataKey: Uint8Array;
  /** Sealings under one key epoch before the next (default SEALS_PER_KEY; tests lower it). */
  sealsPerKey?: number;
}

/**
 * Reads and writes sectors of an open image with synchronous file I/O. Single-threaded by
 * design: one instance per partition, in the partition's worker. Methods return an HvStatus
 * (0 = success); a failing file operation is IO_ERROR (and, for a write or fsync, sticky).
 */
export class BlockImage {
  readonly sectorCount: number;
  readonly counters: ImageCounters = { tornRecovered: 0, integrityFailures: 0, ioErrors: 0 };
  private readonly io: BlockIo;
  private readonly imageId: Buffer;
  private readonly dataKey: Buffer;
  /** Newest valid slot per sector (see STATE_*), learned on first touch. */
  private readonly state: Int8Array;
  /** Generation of the newest verified version per sector (0: none). */
  private readonly gen: Float64Array;
  /** Written or discarded since the last flush (see DIRTY_*). */
  private readonly dirty: Uint8Array;
  private dirtyList: number[] = [];
  private readonly pair = Buffer.alloc(PAIR_SIZE);
  /** Where a slot read from disk lands. */
  private readonly slot = Buffer.alloc(SLOT_SIZE);
  /** Where a slot is sealed before it is written: only writeSector writes it, so its reserved bytes stay zero. */
  private readonly sealed = Buffer.alloc(SLOT_SIZE);
  private readonly sealedNonce = this.sealed.subarray(NONCE_AT, NONCE_AT + NONCE_LEN);
  private readonly aad = Buffer.alloc(32);
  private readonly zeros = Buffer.alloc(SECTOR_SIZE);
  private readonly zeroSlot = Buffer.alloc(SLOT_SIZE);
  private readonly batch = Buffer.alloc(MAX_BATCH * PAIR_SIZE);
  /** Random nonces drawn from the CSPRNG in bulk (one call per NONCE_POOL writes instead of one per write). */
  private readonly nonces = Buffer.alloc(NONCE_LEN * NONCE_POOL);
  private noncesUsed = NONCE_POOL;
  private readonly sealsPerKey: number;
  /** The epoch new versions are sealed under: its id (8 bytes, never all zero), key and remaining sealings. */
  private readonly epoch = Buffer.alloc(8);
  private epochLo = 0;
  private epochHi = 0;
  private epochKey: EngineKey | null = null;
  /** The data key as a cipher key (epoch 0: format-1 versions), made on first use. */
  private legacyKey: EngineKey | null = null;
  private sealsLeft = 0;
  /** Keys of other epochs met while reading (or left behind by a rotation), least recently used first. */
  private readonly epochKeys = new Map<bigint, EngineKey>();
  /** Why writes are refused (a write or fsync failed), or null. */
  private failure: string | null = null;
  private closed = false;
  /** The last sector a write learned, to tell a sequential run (see learnAhead). */
  private lastLearned = -2;

  constructor(options: BlockImageOptions) {
    if (!Number.isInteger(options.sectorCount) || options.sectorCount < 1 || options.sectorCount > MAX_SECTORS) {
      throw new RangeError(`sector count ${options.sectorCount} is out of range`);
    }
    const seals = options.sealsPerKey ?? SEALS_PER_KEY;
    if (!Number.isInteger(seals) || seals < 1 || seals > SEALS_PER_KEY) throw new RangeError(`sealsPerKey ${seals} is out of range`);
    this.sealsPerKey = seals;
    this.io = options.io ?? fdIo(options.fd);
    this.sectorCount = options.sectorCount;
    this.imageId = secretCopy(options.imageId);
    this.imageId.copy(this.aad, 0, 0, 16);
    this.dataKey = secretCopy(options.dataKey);
    this.state = new Int8Array(this.sectorCount).fill(STATE_UNKNOWN);
    this.gen = new Float64Array(this.sectorCount);
    this.dirty = new Uint8Array(this.sectorCount);
    // After a crash, versions written but never flushed may still sit in the page cache. This
    // engine treats the newest authentic version it finds as flushed (its next write of that
    // sector goes to the other slot, over the older version), so make that true before any write:
    // otherwise a power cut could lose the unsynced newest version and tear the older, flushed one.
    // If that fsync fails, nothing found may be treated as flushed: the image opens read-only.
    if (options.syncOnOpen !== false) this.guard(() => this.io.fsync(), 'fsync on open');
  }

  /** Why writes, discards and flushes are refused, or null while the image is healthy. */
  get failed(): string | null {
    return this.failure;
  }

  /**
   * Refuses every later write, discard and flush (IO_ERROR). The device calls it when an earlier
   * engine on the same attachment (a reactor's previous instance) failed.
   */
  fail(reason: string): void {
    this.failure ??= reason;
  }

  /** Reads `count` sectors from `sector` into out[offset, offset + count * SECTOR_SIZE). */
  read(sector: number, count: number, out: Uint8Array, offset = 0): number {
    this.assertOpen();
    try {
      // Several sectors: one read of their pairs (contiguous on disk) instead of one per sector.
      let batch: Buffer | null = null;
      if (count > 1 && count <= MAX_BATCH) {
        for (let i = 0; i < count; i++) {
          if (this.state[sector + i] !== STATE_EMPTY) {
            batch = this.batch.subarray(0, count * PAIR_SIZE);
            this.io.pread(batch, this.pairOffset(sector));
            break;
          }
        }
      }
      for (let i = 0; i < count; i++) {
        const status = this.readSector(sector + i, out, offset + i * SECTOR_SIZE, batch, i * PAIR_SIZE);
        if (status !== HvStatus.SUCCESS) return status;
      }
      return HvStatus.SUCCESS;
    } catch {
      // A failed read changes nothing on disk: reported, not sticky.
      this.counters.ioErrors++;
      return HvStatus.IO_ERROR;
    }
  }

  /** Writes `count` sectors from data[offset, ...). Each sector is atomic on its own; the request as a whole is not. */
  write(sector: number, count: number, data: Uint8Array, offset = 0): number {
    this.assertOpen();
    if (this.failure !== null) return HvStatus.IO_ERROR;
    if (!this.guard(() => this.learnAhead(sector, count), 'read')) return HvStatus.IO_ERROR;
    for (let i = 0; i < count; i++) {
      const at = offset + i * SECTOR_SIZE;
      if (!this.writeSector(sector + i, data.subarray(at, at + SECTOR_SIZE), DIRTY_WRITTEN)) return HvStatus.IO_ERROR;
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
    if (this.failure !== null) return HvStatus.IO_ERROR;
    for (let i = 0; i < count; i++) {
      const s = sector + i;
      if (!this.guard(() => this.learn(s), 'read')) return HvStatus.IO_ERROR;
      if (this.state[s] === STATE_EMPTY && this.dirty[s] === 0) continue; // already zeros on disk
      if (!this.writeSector(s, this.zeros, DIRTY_DISCARDED)) return HvStatus.IO_ERROR;
    }
    return HvStatus.SUCCESS;
  }

  /**
   * fsync: every write that returned before this call is durable when it returns. Then the stale
   * slots of discarded sectors are zeroed (safe: their zero version is now durable) and synced.
   * A failed fsync is never retried into a success: Linux reports a writeback error once and may
   * have dropped the data, so the image stays failed until it is opened again.
   */
  flush(): number {
    this.assertOpen();
    if (this.failure !== null) return HvStatus.IO_ERROR;
    if (!this.guard(() => this.io.fsync(), 'fsync')) return HvStatus.IO_ERROR;
    const list = this.dirtyList;
    this.dirtyList = [];
    let scrubbed = 0;
    for (const s of list) {
      if (this.dirty[s] === DIRTY_DISCARDED) {
        const stale = this.state[s] === 1 ? 1 : 0; // the slot that is not the newest
        if (!this.guard(() => this.io.pwrite(this.zeroSlot, this.slotOffset(s, stale)), 'write')) return HvStatus.IO_ERROR;
        scrubbed++;
      }
      this.dirty[s] = 0;
    }
    if (scrubbed > 0 && !this.guard(() => this.io.fsync(), 'fsync')) return HvStatus.IO_ERROR;
    return HvStatus.SUCCESS;
  }

  /** Drops the key material. The fd belongs to the caller. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dataKey.fill(0);
    this.legacyKey?.raw.fill(0);
    this.legacyKey = null;
    this.epochKey?.raw.fill(0);
    this.epochKey = null;
    for (const key of this.epochKeys.values()) key.raw.fill(0);
    this.epochKeys.clear();
    this.nonces.fill(0);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('block image is closed');
  }

  /** Runs a file operation; a failure is counted and, for writes and fsyncs, makes the image fail. */
  private guard(op: () => void, what: 'read' | 'write' | 'fsync' | 'fsync on open'): boolean {
    try {
      op();
      return true;
    } catch (error) {
      this.counters.ioErrors++;
      if (what !== 'read') this.fail(`${what} failed: ${(error as Error).message}`);
      return false;
    }
  }

  private pairOffset(s: number): number {
    return HEADER_SIZE + s * PAIR_SIZE;
  }

  private slotOffset(s: number, slot: number): number {
    return this.pairOffset(s) + slot * SLOT_SIZE;
  }

  private setAad(s: number, gen: number): void {
    const aad = this.aad;
    putU32(aad, 16, s); // bytes 20..23 stay 0: s < MAX_SECTORS < 2^32
    putU32(aad, 24, gen >>> 0);
    putU32(aad, 28, Math.floor(gen / TWO_32));
  }

  /** The key that opens a slot, by its epoch: 0 is the data key itself (format-1 versions). */
  private keyFor(buf: Buffer, at: number): KeyObject {
    const lo = buf.readUInt32LE(at + EPOCH_AT);
    const hi = buf.readUInt32LE(at + EPOCH_AT + 4);
    if ((lo | hi) === 0) return (this.legacyKey ??= engineKey(secretCopy(this.dataKey))).obj;
    if (this.epochKey !== null && lo === this.epochLo && hi === this.epochHi) return this.epochKey.obj;
    const id = (BigInt(hi) << 32n) | BigInt(lo);
    let key = this.epochKeys.get(id);
    if (key !== undefined) {
      this.epochKeys.delete(id); // most recently used goes last
    } else {
      key = engineKey(deriveEpochKey(this.dataKey, this.imageId, buf.subarray(at + EPOCH_AT, at + EPOCH_AT + 8)));
      this.evictEpochKeys();
    }
    this.epochKeys.set(id, key);
    return key.obj;
  }

  private evictEpochKeys(): void {
    while (this.epochKeys.size >= MAX_EPOCH_KEYS) {
      const [oldest, key] = this.epochKeys.entries().next().value as [bigint, EngineKey];
      key.raw.fill(0);
      this.epochKeys.delete(oldest);
    }
  }

  /** Moves sealing to a fresh random epoch (the previous key stays readable from the cache). */
  private rotate(): void {
    if (this.epochKey !== null) {
      this.evictEpochKeys();
      this.epochKeys.set((BigInt(this.epochHi) << 32n) | BigInt(this.epochLo), this.epochKey);
    }
    do randomFillSync(this.epoch);
    while (this.epoch.readUInt32LE(0) === 0 && this.epoch.readUInt32LE(4) === 0);
    this.epochLo = this.epoch.readUInt32LE(0);
    this.epochHi = this.epoch.readUInt32LE(4);
    this.epochKey = engineKey(deriveEpochKey(this.dataKey, this.imageId, this.epoch));
    this.sealsLeft = this.sealsPerKey;
  }

  /** Opens slot `buf[at, at + SLOT_SIZE)` of sector s (into out[offset...] when given); false if it does not authenticate. */
  private open(s: number, buf: Buffer, at: number, out: Uint8Array | null, offset: number): boolean {
    const gen = readGen(buf, at);
    if (gen === 0 || buf.readUInt32LE(at + RESERVED_AT) !== 0) return false;
    this.setAad(s, gen);
    try {
      const d = createDecipheriv('aes-256-gcm', this.keyFor(buf, at), buf.subarray(at + NONCE_AT, at + NONCE_AT + NONCE_LEN), GCM_OPTIONS);
      d.setAAD(this.aad);
      d.setAuthTag(buf.subarray(at + TAG_AT, at + TAG_AT + TAG_LEN));
      const plain = d.update(buf.subarray(at + SLOT_META, at + SLOT_SIZE));
      try {
        d.final(); // throws when the tag does not verify
        if (out !== null) out.set(plain, offset);
      } finally {
        plain.fill(0);
      }
      return true;
    } catch {
      return false;
    }
  }

  /** One sector; `batch[at, at + PAIR_SIZE)`, when given, already holds its pair as on disk. */
  private readSector(s: number, out: Uint8Array, offset: number, batch: Buffer | null, at: number): number {
    const state = this.state[s]!;
    if (state === STATE_EMPTY) {
      out.fill(0, offset, offset + SECTOR_SIZE);
      return HvStatus.SUCCESS;
    }
    if (state > 0) {
      let ok: boolean;
      if (batch !== null) {
        ok = this.open(s, batch, at + (state - 1) * SLOT_SIZE, out, offset);
      } else {
        this.io.pread(this.slot, this.slotOffset(s, state - 1));
        ok = this.open(s, this.slot, 0, out, offset);
      }
      if (ok) return HvStatus.SUCCESS;
      // It verified before (or we wrote it): the file changed under us. Learn the sector again
      // from both slots, so an intact older version is used rather than nothing. Relearning
      // treats what it finds as flushed, so make that true first (as on open); if that fsync
      // fails, the image fails and no later write can rely on it.
      this.counters.integrityFailures++;
      this.forget(s);
      this.guard(() => this.io.fsync(), 'fsync');
      batch = null;
    }
    return this.learn(s, out, offset, batch, at);
  }

  /** Drops what is known about sector s: its next touch reads both slots again. */
  private forget(s: number): void {
    this.state[s] = STATE_UNKNOWN;
    this.gen[s] = 0;
    // A sector whose state is relearned holds no unflushed version of ours any more; and a
    // pending scrub of a discarded sector's stale slot must not hit what is now its newest.
    this.dirty[s] = 0;
  }

  /**
   * First touch of a sector: reads both slots, picks the newest that authenticates, records it.
   * With `out`, also delivers its plaintext (zeros for an empty sector).
   */
  private learn(s: number, out: Uint8Array | null = null, offset = 0, batch: Buffer | null = null, at = 0): number {
    if (this.state[s] !== STATE_UNKNOWN) return HvStatus.SUCCESS;
    let pair: Buffer = this.pair;
    let base = 0;
    if (batch !== null) {
      pair = batch;
      base = at;
    } else {
      this.io.pread(pair, this.pairOffset(s));
    }
    const genA = readGen(pair, base);
    const genB = readGen(pair, base + SLOT_SIZE);
    const first = genB > genA ? 1 : 0;
    let tried = 0;
    for (let n = 0; n < 2; n++) {
      const k = n === 0 ? first : 1 - first;
      const g = k === 0 ? genA : genB;
      if (g === 0) continue;
      tried++;
      if (this.open(s, pair, base + k * SLOT_SIZE, out, offset)) {
        if (tried > 1) this.counters.tornRecovered++;
        this.state[s] = k + 1;
        this.gen[s] = g;
        return HvStatus.SUCCESS;
      }
    }
    if (out !== null) out.fill(0, offset, offset + SECTOR_SIZE);
    // Gens of slots that did not authenticate are never believed: the next version is numbered
    // from verified ones only (here: none), so a planted gen cannot make the sector unwritable.
    this.gen[s] = 0;
    if (tried < 2) {
      // No slot, or one that fails beside an empty one: the sector's previous version is "never
      // written". That is what a crash during a sector's first write leaves, so it reads as zeros.
      if (tried === 1) this.counters.tornRecovered++;
      this.state[s] = STATE_EMPTY;
      return HvStatus.SUCCESS;
    }
    // Two versions and neither authenticates: no crash does that (the slot holding the last
    // flushed version is never written before a newer one is durable). Left unknown: a write may
    // still replace it.
    this.counters.integrityFailures++;
    return HvStatus.INTEGRITY;
  }

  /**
   * Before a write: learns the sectors of [sector, sector + count) not known yet with one read of
   * their pairs instead of one each. A single-sector write that continues a sequential run reads
   * ahead up to MAX_BATCH sectors and records those that are empty (no slot written: nothing to
   * verify), so writing a fresh disk front to back costs one read per MAX_BATCH sectors.
   */
  private learnAhead(sector: number, count: number): void {
    if (this.state[sector] !== STATE_UNKNOWN && count === 1) return;
    let n = count;
    if (count === 1 && sector === this.lastLearned + 1) {
      while (n < MAX_BATCH && sector + n < this.sectorCount && this.state[sector + n] === STATE_UNKNOWN) n++;
    }
    this.lastLearned = sector + count - 1;
    if (n === 1) return; // writeSector learns it
    const batch = this.batch.subarray(0, n * PAIR_SIZE);
    this.io.pread(batch, this.pairOffset(sector));
    for (let i = 0; i < n; i++) {
      const s = sector + i;
      if (this.state[s] !== STATE_UNKNOWN) continue;
      if (i < count) this.learn(s, null, 0, batch, i * PAIR_SIZE);
      else if (readGen(batch, i * PAIR_SIZE) === 0 && readGen(batch, i * PAIR_SIZE + SLOT_SIZE) === 0) this.state[s] = STATE_EMPTY;
    }
  }

  /** Seals and writes one version of sector s; false (and the image failed) when the file operation fails. */
  private writeSector(s: number, plain: Uint8Array, dirtyKind: number): boolean {
    if (!this.guard(() => this.learn(s), 'read')) return false; // INTEGRITY leaves state unknown; the write below replaces it
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
    if (this.sealsLeft === 0) this.rotate();
    this.sealsLeft--;
    const slot = this.sealed;
    putU32(slot, GEN_AT, gen >>> 0);
    putU32(slot, GEN_AT + 4, Math.floor(gen / TWO_32));
    this.nextNonce(slot, NONCE_AT);
    this.epoch.copy(slot, EPOCH_AT); // the reserved bytes after it are never set in this buffer
    this.setAad(s, gen);
    const c = createCipheriv('aes-256-gcm', this.epochKey!.obj, this.sealedNonce, GCM_OPTIONS);
    c.setAAD(this.aad);
    const ct = c.update(plain);
    c.final();
    ct.copy(slot, SLOT_META);
    c.getAuthTag().copy(slot, TAG_AT);
    // One write for metadata and ciphertext: whatever part of it a crash keeps, the tag decides.
    if (!this.guard(() => this.io.pwrite(slot, this.slotOffset(s, target)), 'write')) {
      // The target slot now holds an unknown mix. If it held our unflushed version, that is gone
      // too; the flushed version in the other slot is intact. Relearned from disk on next touch.
      this.forget(s);
      return false;
    }
    this.state[s] = target + 1;
    this.gen[s] = gen;
    if (this.dirty[s] === 0) this.dirtyList.push(s);
    // A discard followed by a write before the flush still needs the stale-slot scrub.
    if (this.dirty[s] !== DIRTY_DISCARDED) this.dirty[s] = dirtyKind;
    return true;
  }

  /** Puts a fresh random 96-bit nonce at out[at...]. Each pool byte is used once and zeroed after use. */
  private nextNonce(out: Buffer, at: number): void {
    if (this.noncesUsed === NONCE_POOL) {
      randomFillSync(this.nonces);
      this.noncesUsed = 0;
    }
    const from = this.noncesUsed++ * NONCE_LEN;
    this.nonces.copy(out, at, from, from + NONCE_LEN);
    this.nonces.fill(0, from, from + NONCE_LEN);
  }
}

/** Writes a u32 (little-endian) without Node's argument checks: the hot path's own offsets are in range. */
function putU32(b: Buffer, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

/** A slot's gen, or 0 when it is empty or too large to be exact (such a slot never verifies: gens are counted from 1). */
function readGen(buf: Buffer, at: number): number {
  const hi = buf.readUInt32LE(at + GEN_AT + 4);
  if (hi >= 0x20_0000) return 0;
  return hi * TWO_32 + buf.readUInt32LE(at + GEN_AT);
}
