/**
 * The on-disk format of a partition's block device image, and the synchronous engine that reads
 * and writes it. Used by the block device front-end in the partition's worker (host/devices/block.ts),
 * by the root when it creates, converts or checks an image (host/storage/storage.ts), and by tests.
 * docs/STORAGE.md explains the format and argues its crash consistency; this comment is the summary.
 *
 * Layout (format 2; all integers little-endian):
 *
 *   [0, 4096)                 header: magic, format version, sector size, sector count, metadata
 *                             entry size, group size, image id (16 random bytes), HMAC-SHA256 over
 *                             all of that and the partition's name (with a key derived from the
 *                             partition's key)
 *   4096 + g * GROUP_BYTES    group g: sectors 32g .. 32g + 31, each with two slots, A (k = 0) and B (k = 1)
 *     [0, 4096)                 metadata page: entry (k, i) at (32k + i) * 64 =
 *                                 [ gen u64 | nonce 12 | tag 16 | key epoch u64 | reserved 20 (zero) ]
 *     4096 + (32k + i) * 4096   ciphertext of slot k of sector 32g + i (page-aligned)
 *
 * So ciphertext is read and written in whole, aligned pages (no read-modify-write in the kernel),
 * and a run of consecutive sectors whose versions sit in the same slot letter is one pread or one
 * pwrite of ciphertext plus one of metadata. Format 1 (slots of metadata and ciphertext side by
 * side, pairs of 4144-byte slots per sector) is converted by the root when it opens such an image
 * (storage.ts); its versions keep their keys and tags, since neither depends on where they lie.
 *
 * Every stored sector version is sealed with AES-256-GCM under a key of the image, with a fresh
 * random nonce and AAD = image id | sector | gen. The key is chosen by the entry's key epoch: epoch 0
 * is the image's data key itself (versions written by format 1), any other epoch e is
 * HKDF(data key, image id, "wasmvisor block epoch " | e). Each engine seals under a fresh random
 * epoch, and moves to another one after `sealsPerKey` sealings, so no key ever seals more than
 * 2^30 sectors: far inside the 2^32 random-nonce bound of NIST SP 800-38D.
 * An entry whose gen is 0 is an empty slot; a sector whose slots are both empty reads as zeros (the
 * file is sparse, so unwritten sectors cost nothing).
 *
 * Invariants:
 * - A read returns the newest slot (highest gen) that authenticates. A torn slot (a write cut
 *   short by a crash, in its ciphertext, its entry or both) fails authentication, so the sector
 *   reads as its previous version: never a mix of old and new bytes. A known slot that stops
 *   authenticating falls back the same way.
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
/** Bytes of one slot's metadata entry: gen (8), nonce (12), tag (16), key epoch (8), reserved (20). */
export const META_SIZE = 64;
/** Sectors per group: their 64 entries fill one metadata page. */
export const GROUP_SECTORS = 32;
const META_PAGE = 4096;
/** Bytes of one group: its metadata page, then the ciphertext of its A slots, then of its B slots. */
export const GROUP_BYTES = META_PAGE + 2 * GROUP_SECTORS * SECTOR_SIZE;
/** Format version written in new headers. Format 1 is converted to it when an image is opened. */
export const FORMAT_VERSION = 2;
/** Largest image: 4 GiB of sectors (the per-sector state kept in memory is 10 bytes a sector). */
export const MAX_SECTORS = (4096 * 1024 * 1024) / SECTOR_SIZE;
/**
 * Sealings under one key before the engine moves to a fresh key epoch. Random 96-bit GCM nonces
 * stay unique with probability 1 - 2^-33 up to 2^32 sealings per key (NIST SP 800-38D 8.3); at
 * 2^30 the collision probability is below 2^-37.
 */
export const SEALS_PER_KEY = 2 ** 30;

/** Offsets of the fields in a metadata entry. */
export const GEN_AT = 0;
export const NONCE_AT = 8;
export const TAG_AT = 20;
export const EPOCH_AT = 36;
const RESERVED_AT = 44;

/** Format 1's layout, for converting such images: pairs of slots [meta 48 | ciphertext 4096] per sector. */
export const FORMAT1 = { SLOT_META: 48, SLOT_SIZE: 4144, PAIR_SIZE: 8288 } as const;

// Stryker disable next-line StringLiteral: equivalent where not killed: the magic is ASCII, the same bytes in UTF-8 (what '' selects) as in Latin-1
const MAGIC = Buffer.from('WVBLOCK\0', 'latin1');
const NONCE_LEN = 12;
const TAG_LEN = 16;
const NONCE_POOL = 256;
/** Most sectors one request moves (a full BLOCK_READ). */
const MAX_BATCH = 16;
const HEADER_MAC_AT = 48;
const HEADER_SIGNED_LEN = 48;
/** Keys of older epochs kept for reading; each costs one HKDF (a few µs) to derive again. */
const MAX_EPOCH_KEYS = 32;
/** Metadata pages kept in memory (2 MiB, the entries of 16384 sectors = 64 MiB of disk). */
const MAX_META_PAGES = 512;
const EPOCH_INFO = 'wasmvisor block epoch ';
const TWO_32 = 0x1_0000_0000;
const GCM_OPTIONS = { authTagLength: TAG_LEN } as const;

/** File size of a format-2 image with `sectorCount` sectors (the file is sparse: this is not disk usage). */
export function imageFileSize(sectorCount: number): number {
  return HEADER_SIZE + Math.ceil(sectorCount / GROUP_SECTORS) * GROUP_BYTES;
}

/** File offset of the metadata entry of slot k of sector s. */
export function metaOffset(s: number, k: number): number {
  return HEADER_SIZE + Math.floor(s / GROUP_SECTORS) * GROUP_BYTES + (k * GROUP_SECTORS + (s % GROUP_SECTORS)) * META_SIZE;
}

/** File offset of the ciphertext of slot k of sector s. */
export function dataOffset(s: number, k: number): number {
  return HEADER_SIZE + Math.floor(s / GROUP_SECTORS) * GROUP_BYTES + META_PAGE + (k * GROUP_SECTORS + (s % GROUP_SECTORS)) * SECTOR_SIZE;
}

/** Where slot k of sector s's entry sits in its group's metadata page. */
function entryAt(s: number, k: number): number {
  return (k * GROUP_SECTORS + (s % GROUP_SECTORS)) * META_SIZE;
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
  const info = (what: string) =>
    Buffer.from(
      `wasmvisor block v1 ${what}\0${name}`,
      // Stryker disable next-line StringLiteral: equivalent: '' selects the default encoding of Buffer.from, which is UTF-8
      'utf8',
    );
  return {
    dataKey: Buffer.from(hkdfSync('sha256', partitionKey, imageId, info('data'), 32)),
    macKey: Buffer.from(hkdfSync('sha256', partitionKey, imageId, info('header'), 32)),
  };
}

/** The key of epoch `epoch` (8 bytes, not all zero) of an image: HKDF(data key, image id, info | epoch). */
export function deriveEpochKey(dataKey: Uint8Array, imageId: Uint8Array, epoch: Uint8Array): Buffer {
  // Stryker disable next-line StringLiteral: equivalent: EPOCH_INFO is ASCII, the same bytes in UTF-8 (what '' selects) as in Latin-1
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
  /** 1 (to be converted) or 2. */
  format: number;
  sectorCount: number;
  /** On its own ArrayBuffer: it crosses to the partition's worker. */
  imageId: Uint8Array;
}

/** Builds the 4096-byte header of a format-2 image. */
export function encodeHeader(sectorCount: number, imageId: Uint8Array, macKey: Uint8Array, name: string): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(FORMAT_VERSION, 8);
  h.writeUInt32LE(SECTOR_SIZE, 12);
  h.writeUInt32LE(sectorCount, 16); // < 2^21 (MAX_SECTORS): the high word stays 0
  h.writeUInt32LE(META_SIZE, 24);
  h.writeUInt32LE(GROUP_SECTORS, 28);
  h.set(imageId.subarray(0, 16), 32);
  headerMac(h, macKey, name).copy(h, HEADER_MAC_AT);
  return h;
}

function headerMac(h: Buffer, macKey: Uint8Array, name: string): Buffer {
  // Stryker disable next-line StringLiteral: equivalent where not killed: '' selects the default encoding of Buffer.from, UTF-8 (this mutant timed out in two runs under load and was counted as a kill)
  return createHmac('sha256', macKey).update(h.subarray(0, HEADER_SIGNED_LEN)).update(Buffer.from(name, 'utf8')).digest();
}

/** Reads the unauthenticated part of a header (to find the image id the keys derive from). */
export function peekHeader(h: Uint8Array): ImageHeader {
  if (h.length < HEADER_SIZE) throw new ImageError('truncated', 'the image is shorter than its header');
  const b = Buffer.from(h.buffer, h.byteOffset, h.length);
  if (!b.subarray(0, 8).equals(MAGIC)) throw new ImageError('not-an-image', 'the file is not a wasmvisor block image');
  const format = b.readUInt32LE(8);
  const layout = format === 1 ? [FORMAT1.SLOT_SIZE, 0] : [META_SIZE, GROUP_SECTORS];
  if ((format !== 1 && format !== FORMAT_VERSION) || b.readUInt32LE(12) !== SECTOR_SIZE || b.readUInt32LE(24) !== layout[0] || b.readUInt32LE(28) !== layout[1]) {
    throw new ImageError(
      'unsupported',
      `the image has format ${format}, sector size ${b.readUInt32LE(12)}, layout ${b.readUInt32LE(24)}/${b.readUInt32LE(28)}; ` +
        `this runtime reads format 1 (layout ${FORMAT1.SLOT_SIZE}/0) and format ${FORMAT_VERSION} (layout ${META_SIZE}/${GROUP_SECTORS}), sector size ${SECTOR_SIZE}`,
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

/**
 * BlockIo over an open file descriptor, with synchronous system calls (short transfers are
 * continued). `durableWrites`: the descriptor was opened with O_DSYNC, so each write is on stable
 * storage when it returns and fsync has nothing left to do (a partition process may not call
 * fsync: Node's permission model disables it; host/scheduler/process.ts opens its image so).
 */
export function fdIo(fd: number, ops: FileOps = nodeFileOps, durableWrites = false): BlockIo {
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
      if (!durableWrites) ops.fsyncSync(fd);
    },
  };
}

export interface BlockImageOptions {
  /** An open file descriptor (read/write) of a format-2 image whose header was checked. Not closed here. */
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
  // Stryker disable next-line ArrayDeclaration: equivalent: a bogus first entry is no sector number: dirty[it] is undefined (not DISCARDED), and setting it to 0 changes no sector
  private dirtyList: number[] = [];
  /** Metadata pages by group, least recently used first: what is on disk, including every entry written here. */
  private readonly metaPages = new Map<number, Buffer>();
  /** The most recently used entry of metaPages (null: none, or it was dropped). */
  // Stryker disable next-line UnaryOperator: equivalent: the shortcut also needs lastPage, null until a page is read (which sets lastGroup)
  private lastGroup = -1;
  private lastPage: Buffer | null = null;
  /** Ciphertext of one slot, read or about to be written. */
  private readonly one = Buffer.alloc(SECTOR_SIZE);
  /** Ciphertext of a run of A slots and of B slots (a multi-sector request; a write uses runA). */
  private readonly runA = Buffer.alloc(MAX_BATCH * SECTOR_SIZE);
  private readonly runB = Buffer.alloc(MAX_BATCH * SECTOR_SIZE);
  /** The slot each sector of a readGroup() is read from, and the first and last sector read from A and from B. */
  private readonly slots = new Int8Array(GROUP_SECTORS);
  private readonly first = new Int32Array(2);
  private readonly last = new Int32Array(2);
  private readonly aad = Buffer.alloc(32);
  /** The nonce and tag of the version being opened or sealed (Node copies them; zeroed at close). */
  private readonly iv = Buffer.alloc(NONCE_LEN);
  private readonly tag = Buffer.alloc(TAG_LEN);
  private readonly zeros = Buffer.alloc(SECTOR_SIZE);
  private readonly zeroEntry = Buffer.alloc(META_SIZE);
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

  constructor(options: BlockImageOptions) {
    if (!Number.isInteger(options.sectorCount) || options.sectorCount < 1 || options.sectorCount > MAX_SECTORS) {
      throw new RangeError(`sector count ${options.sectorCount} is out of range`);
    }
    const seals = options.sealsPerKey ?? SEALS_PER_KEY;
    if (!Number.isInteger(seals) || seals < 1 || seals > SEALS_PER_KEY) throw new RangeError(`sealsPerKey ${seals} is out of range`);
    this.sealsPerKey = seals;
    this.io = options.io ?? fdIo(options.fd, nodeFileOps, options.durableWrites === true);
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

  /**
   * Reads `count` sectors from `sector` into out[offset, offset + count * SECTOR_SIZE). Within one
   * group, the ciphertext of the sectors whose newest version sits in slot A is one pread, and of
   * those in slot B another (the span between them included): at most two per group, whatever
   * mix of slot letters earlier writes left.
   */
  read(sector: number, count: number, out: Uint8Array, offset = 0): number {
    this.assertOpen();
    try {
      for (let i = 0; i < count; ) {
        const s = sector + i;
        const n = Math.min(count - i, GROUP_SECTORS - (s % GROUP_SECTORS), MAX_BATCH);
        const status = this.readGroup(s, n, out, offset + i * SECTOR_SIZE);
        if (status !== HvStatus.SUCCESS) return status;
        i += n;
      }
      return HvStatus.SUCCESS;
    } catch {
      // A failed read changes nothing on disk: reported, not sticky.
      this.counters.ioErrors++;
      return HvStatus.IO_ERROR;
    }
  }

  /** Reads n (at most MAX_BATCH) sectors from s, all in one group, into out[offset...]. */
  private readGroup(s: number, n: number, out: Uint8Array, offset: number): number {
    const { slots, first, last } = this;
    first[0] = first[1] = n;
    last[0] = last[1] = -1;
    for (let j = 0; j < n; j++) {
      const k = this.candidate(s + j);
      slots[j] = k;
      // Stryker disable next-line ConditionalExpression: equivalent: first[-1] reads undefined (not > j), and writing last[-1] is ignored (a typed array)
      if (k < 0) continue;
      // Stryker disable next-line EqualityOperator: equivalent: first[k] is n or an earlier j, never j itself
      if (first[k]! > j) first[k] = j;
      last[k] = j;
    }
    for (let k = 0; k < 2; k++) {
      if (last[k]! < 0) continue;
      const buf = (k === 0 ? this.runA : this.runB).subarray(0, (last[k]! - first[k]! + 1) * SECTOR_SIZE);
      this.io.pread(buf, dataOffset(s + first[k]!, k));
    }
    for (let j = 0; j < n; j++) {
      const k = slots[j]!;
      const at = offset + j * SECTOR_SIZE;
      if (k < 0) {
        out.fill(0, at, at + SECTOR_SIZE);
        continue;
      }
      const status = this.deliver(s + j, k, k === 0 ? this.runA : this.runB, (j - first[k]!) * SECTOR_SIZE, out, at);
      if (status !== HvStatus.SUCCESS) return status;
    }
    return HvStatus.SUCCESS;
  }

  /** Writes `count` sectors from data[offset, ...). Each sector is atomic on its own; the request as a whole is not. */
  write(sector: number, count: number, data: Uint8Array, offset = 0): number {
    this.assertOpen();
    if (this.failure !== null) return HvStatus.IO_ERROR;
    return this.writeRun(sector, count, data, offset, DIRTY_WRITTEN);
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
      // Stryker disable next-line ConditionalExpression: equivalent today: a sector recorded empty is never dirty (a write makes it known, forget() clears dirty); kept so that a later change cannot skip a needed zero version
      if (this.state[s] === STATE_EMPTY && this.dirty[s] === 0) continue; // already zeros on disk
      const status = this.writeRun(s, 1, this.zeros, 0, DIRTY_DISCARDED);
      if (status !== HvStatus.SUCCESS) return status;
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
    // Stryker disable next-line ArrayDeclaration: equivalent: as for dirtyList's first value, a bogus entry is no sector number and changes no sector
    this.dirtyList = [];
    let scrubbed = 0;
    for (const s of list) {
      if (this.dirty[s] === DIRTY_DISCARDED) {
        const stale = this.state[s] === 1 ? 1 : 0; // the slot that is not the newest
        const scrub = () => {
          this.metaPage(s).fill(0, entryAt(s, stale), entryAt(s, stale) + META_SIZE);
          this.io.pwrite(this.zeroEntry, metaOffset(s, stale));
          this.io.pwrite(this.zeros, dataOffset(s, stale));
        };
        if (!this.guard(scrub, 'write')) {
          this.forget(s);
          return HvStatus.IO_ERROR;
        }
        scrubbed++;
      }
      this.dirty[s] = 0;
    }
    if (scrubbed > 0 && !this.guard(() => this.io.fsync(), 'fsync')) return HvStatus.IO_ERROR;
    return HvStatus.SUCCESS;
  }

  /** Drops the key material. The fd belongs to the caller. Idempotent. */
  close(): void {
    // Stryker disable next-line ConditionalExpression: equivalent: closing again zeroes zeros and clears what is empty
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
    this.iv.fill(0);
    this.tag.fill(0);
    this.metaPages.clear();
    this.lastPage = null;
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

  /** The metadata page of sector s's group, read on first use (and again after it was dropped). */
  private metaPage(s: number): Buffer {
    const g = Math.floor(s / GROUP_SECTORS);
    // The pages of one request are asked for several times in a row (choosing the slot, opening
    // or sealing, recording): the most recently used page needs no reordering.
    // Stryker disable next-line ConditionalExpression: equivalent: without the shortcut the same page comes from the map (speed only)
    if (g === this.lastGroup && this.lastPage !== null) return this.lastPage;
    let page = this.metaPages.get(g);
    if (page !== undefined) {
      this.metaPages.delete(g); // most recently used goes last
    } else {
      if (this.metaPages.size >= MAX_META_PAGES) this.metaPages.delete(this.metaPages.keys().next().value as number);
      page = Buffer.alloc(META_PAGE);
      this.lastPage = null; // a failed read below must not leave a stale shortcut
      this.io.pread(page, HEADER_SIZE + g * GROUP_BYTES);
    }
    this.metaPages.set(g, page);
    this.lastGroup = g;
    this.lastPage = page;
    return page;
  }

  private setAad(s: number, gen: number): void {
    const aad = this.aad;
    putU32(aad, 16, s); // bytes 20..23 stay 0: s < MAX_SECTORS < 2^32
    putU32(aad, 24, gen >>> 0);
    putU32(aad, 28, Math.floor(gen / TWO_32));
  }

  /** The key that opens an entry, by its epoch: 0 is the data key itself (format-1 versions). */
  private keyFor(meta: Buffer, m: number): KeyObject {
    const lo = meta.readUInt32LE(m + EPOCH_AT);
    const hi = meta.readUInt32LE(m + EPOCH_AT + 4);
    if ((lo | hi) === 0) return (this.legacyKey ??= engineKey(secretCopy(this.dataKey))).obj;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent where not killed: the shortcut is for speed (a miss derives the same key again), and with no epoch key yet epochLo and epochHi are 0, which lo | hi is not here (the mutants that return the wrong key are killed by test/block/image-edges, and lost from the score by this mark)
    if (this.epochKey !== null && lo === this.epochLo && hi === this.epochHi) return this.epochKey.obj;
    const id = (BigInt(hi) << 32n) | BigInt(lo);
    let key = this.epochKeys.get(id);
    if (key !== undefined) {
      this.epochKeys.delete(id); // most recently used goes last
    } else {
      key = engineKey(deriveEpochKey(this.dataKey, this.imageId, meta.subarray(m + EPOCH_AT, m + EPOCH_AT + 8)));
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

  /**
   * Opens the version of sector s described by entry meta[m...] with ciphertext data[d...] (into
   * out[offset...] when given); false if it does not authenticate.
   */
  private open(s: number, meta: Buffer, m: number, data: Buffer, d: number, out: Uint8Array | null, offset: number): boolean {
    const gen = readGen(meta, m);
    // A defence only: candidate() and learn() never open an empty entry (gen 0, or too large to be exact).
    // Stryker disable next-line ConditionalExpression,BooleanLiteral: equivalent: no version is sealed with gen 0 (gens count from 1), so the tag would refuse it below; and no caller reaches this return
    if (gen === 0) return false;
    if (!reservedZero(meta, m)) return false;
    this.setAad(s, gen);
    // Nonce and tag go through fixed scratch buffers (Node copies both): no views per sector.
    const { iv, tag } = this;
    // Stryker disable next-line EqualityOperator: equivalent: one more byte (i <= NONCE_LEN) is written past iv's end, which a Buffer ignores
    for (let i = 0; i < NONCE_LEN; i++) iv[i] = meta[m + NONCE_AT + i]!;
    // Stryker disable next-line EqualityOperator: equivalent: as above, past tag's end
    for (let i = 0; i < TAG_LEN; i++) tag[i] = meta[m + TAG_AT + i]!;
    try {
      const dec = createDecipheriv('aes-256-gcm', this.keyFor(meta, m), iv, GCM_OPTIONS);
      dec.setAAD(this.aad);
      dec.setAuthTag(tag);
      const plain = dec.update(data.subarray(d, d + SECTOR_SIZE));
      try {
        dec.final(); // throws when the tag does not verify
        if (out !== null) out.set(plain, offset);
      } finally {
        plain.fill(0);
      }
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The slot a read of sector s should try first: its known newest, or (first touch) the one with
   * the higher gen in its entry; -1 when the sector has no version (it is recorded as empty).
   */
  private candidate(s: number): number {
    const state = this.state[s]!;
    if (state !== STATE_UNKNOWN) return state - 1;
    const page = this.metaPage(s);
    const genA = readGen(page, entryAt(s, 0));
    const genB = readGen(page, entryAt(s, 1));
    if (genA === 0 && genB === 0) {
      this.state[s] = STATE_EMPTY;
      this.gen[s] = 0;
      return -1;
    }
    // Stryker disable next-line EqualityOperator: equivalent: two entries with the same gen (only a copied slot) open to the same plaintext, and a B that fails falls back to learn(), which tries A
    return genB > genA ? 1 : 0;
  }

  /** Opens sector s's slot k, whose ciphertext is at buf[at...], into out; falls back as learn() does when it fails. */
  private deliver(s: number, k: number, buf: Buffer, at: number, out: Uint8Array, offset: number): number {
    const known = this.state[s] !== STATE_UNKNOWN;
    const page = this.metaPage(s);
    if (this.open(s, page, entryAt(s, k), buf, at, out, offset)) {
      // Stryker disable next-line BooleanLiteral,ConditionalExpression,BlockStatement: equivalent: recording the slot saves relearning it; left unknown, the sector is learned again from the same entries at its next touch
      if (!known) {
        this.state[s] = k + 1;
        this.gen[s] = readGen(page, entryAt(s, k));
      }
      return HvStatus.SUCCESS;
    }
    if (known) {
      // It verified before (or we wrote it): the file changed under us. Learn the sector again
      // from both slots, so an intact older version is used rather than nothing. Relearning
      // treats what it finds as flushed, so make that true first (as on open); if that fsync
      // fails, the image fails and no later write can rely on it.
      this.counters.integrityFailures++;
      this.forget(s);
      this.guard(() => this.io.fsync(), 'fsync');
    }
    return this.learn(s, out, offset);
  }

  /** Drops what is known about sector s: its next touch reads its entries and slots again. */
  private forget(s: number): void {
    this.state[s] = STATE_UNKNOWN;
    this.gen[s] = 0;
    // A sector whose state is relearned holds no unflushed version of ours any more; and a
    // pending scrub of a discarded sector's stale slot must not hit what is now its newest.
    this.dirty[s] = 0;
    this.metaPages.delete(Math.floor(s / GROUP_SECTORS));
    this.lastPage = null;
  }

  /**
   * First touch of a sector: reads its entries and the slots they describe, picks the newest that
   * authenticates, records it. With `out`, also delivers its plaintext (zeros for an empty sector).
   */
  private learn(s: number, out: Uint8Array | null = null, offset = 0): number {
    if (this.state[s] !== STATE_UNKNOWN) return HvStatus.SUCCESS;
    const page = this.metaPage(s);
    const genA = readGen(page, entryAt(s, 0));
    const genB = readGen(page, entryAt(s, 1));
    // Stryker disable next-line EqualityOperator: equivalent: as in candidate(), two entries with the same gen open to the same plaintext, and the other is tried next
    const first = genB > genA ? 1 : 0;
    let tried = 0;
    // Stryker disable next-line EqualityOperator: equivalent: a third round tries the second slot again, which failed already (the same outcome, one read more)
    for (let n = 0; n < 2; n++) {
      const k = n === 0 ? first : 1 - first;
      const g = k === 0 ? genA : genB;
      if (g === 0) continue;
      tried++;
      this.io.pread(this.one, dataOffset(s, k));
      if (this.open(s, page, entryAt(s, k), this.one, 0, out, offset)) {
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
   * Seals `count` sectors from data[offset...] and writes them: for each run of consecutive
   * sectors of one group whose new versions go to the same slot letter, one pwrite of their
   * ciphertext and one of their entries. State changes only for runs whose writes returned.
   */
  private writeRun(sector: number, count: number, data: Uint8Array, offset: number, kind: number): number {
    for (let i = 0; i < count; i++) {
      const s = sector + i;
      // INTEGRITY leaves it unknown: the write replaces it.
      // Stryker disable next-line ConditionalExpression: equivalent where not killed: learn() of a known sector returns at once (the test here only saves a closure per sector)
      if (this.state[s] === STATE_UNKNOWN && !this.guard(() => this.learn(s), 'read')) return HvStatus.IO_ERROR;
    }
    for (let i = 0; i < count; ) {
      const s = sector + i;
      const k = this.target(s);
      let n = 1;
      while (i + n < count && n < MAX_BATCH && (s + n) % GROUP_SECTORS !== 0 && this.target(s + n) === k) n++;
      const page = this.metaPage(s);
      // Stryker disable next-line ConditionalExpression: equivalent: a one-sector run sealed into runA instead of one is the same bytes (the choice saves a view)
      const ct = n === 1 ? this.one : this.runA.subarray(0, n * SECTOR_SIZE);
      for (let j = 0; j < n; j++) {
        const at = offset + (i + j) * SECTOR_SIZE;
        this.seal(s + j, this.gen[s + j]! + 1, data.subarray(at, at + SECTOR_SIZE), page, entryAt(s + j, k), ct, j * SECTOR_SIZE);
      }
      // Ciphertext, then entries: whatever part of either a crash keeps, the tag decides.
      const written = this.guard(() => {
        this.io.pwrite(ct, dataOffset(s, k));
        this.io.pwrite(page.subarray(entryAt(s, k), entryAt(s, k) + n * META_SIZE), metaOffset(s, k));
      }, 'write');
      if (!written) {
        // Those slots now hold an unknown mix, and the cached entries are not what is on disk. If
        // a slot held our unflushed version, that is gone too; the flushed version in the other
        // slot is intact. Relearned from disk on the next touch.
        // Stryker disable next-line EqualityOperator: equivalent: forgetting one sector more only has it relearned from the file, and the image has failed: no write or flush relies on what it knew
        for (let j = 0; j < n; j++) this.forget(s + j);
        return HvStatus.IO_ERROR;
      }
      for (let j = 0; j < n; j++) {
        const t = s + j;
        this.state[t] = k + 1;
        this.gen[t] = this.gen[t]! + 1;
        if (this.dirty[t] === 0) this.dirtyList.push(t);
        // A discard followed by a write before the flush still needs the stale-slot scrub.
        if (this.dirty[t] !== DIRTY_DISCARDED) this.dirty[t] = kind;
      }
      i += n;
    }
    return HvStatus.SUCCESS;
  }

  /** The slot a new version of (known) sector s goes to: the rule that keeps its flushed version intact. */
  private target(s: number): number {
    const state = this.state[s]!;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent where not killed: a sector that is empty or unknown is never dirty (a write makes its state > 0, forget() clears dirty)
    if (state > 0 && this.dirty[s] !== 0) return state - 1; // not flushed yet: overwrite our own unflushed version, keep the flushed one
    if (state > 0) return 2 - state; // the other slot: the newest flushed version stays intact until the next flush
    return 0;
  }

  /** Seals version `gen` of sector s: its entry into meta[m...], its ciphertext into ct[c...]. */
  private seal(s: number, gen: number, plain: Uint8Array, meta: Buffer, m: number, ct: Buffer, c: number): void {
    if (this.sealsLeft === 0) this.rotate();
    this.sealsLeft--;
    meta.fill(0, m, m + META_SIZE); // reserved bytes zero, whatever the page held
    // Stryker disable next-line ArithmeticOperator: equivalent: GEN_AT is 0
    putU32(meta, m + GEN_AT, gen >>> 0);
    // Stryker disable next-line ArithmeticOperator: equivalent where not killed: GEN_AT is 0 (m - GEN_AT + 4 is m + GEN_AT + 4)
    putU32(meta, m + GEN_AT + 4, Math.floor(gen / TWO_32));
    this.nextNonce(meta, m + NONCE_AT);
    this.epoch.copy(meta, m + EPOCH_AT);
    this.setAad(s, gen);
    const iv = this.iv;
    // Stryker disable next-line EqualityOperator: equivalent: one more byte (i <= NONCE_LEN) is written past iv's end, which a Buffer ignores
    for (let i = 0; i < NONCE_LEN; i++) iv[i] = meta[m + NONCE_AT + i]!;
    const cipher = createCipheriv('aes-256-gcm', this.epochKey!.obj, iv, GCM_OPTIONS);
    cipher.setAAD(this.aad);
    const sealed = cipher.update(plain);
    ct.set(sealed, c);
    cipher.final();
    meta.set(cipher.getAuthTag(), m + TAG_AT);
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

/** Whether an entry's reserved bytes are all zero (a JavaScript loop: cheaper than a native compare of 20 bytes). */
function reservedZero(meta: Buffer, m: number): boolean {
  let any = 0;
  for (let i = m + RESERVED_AT, end = m + META_SIZE; i < end; i++) any |= meta[i]!;
  return any === 0;
}

/** Writes a u32 (little-endian) without Node's argument checks: the hot path's own offsets are in range. */
function putU32(b: Buffer, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

/** An entry's gen, or 0 when it is empty or too large to be exact (such an entry never verifies: gens are counted from 1). */
export function readGen(buf: Buffer, at: number): number {
  // Stryker disable next-line ArithmeticOperator: equivalent where not killed: GEN_AT is 0
  const hi = buf.readUInt32LE(at + GEN_AT + 4);
  if (hi >= 0x20_0000) return 0;
  // Stryker disable next-line ArithmeticOperator: equivalent where not killed: GEN_AT is 0
  return hi * TWO_32 + buf.readUInt32LE(at + GEN_AT);
}
