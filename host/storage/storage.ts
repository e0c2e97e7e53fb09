/**
 * The block storage back-end, in the root partition: where images live, which key opens each,
 * creating and checking images before a partition runs, listing and wiping them. The guest never
 * names a path: an image's place is chosen here from the partition's name (or by the embedder's spec).
 *
 *   <dataDir>/images/<name>.img        one sparse image per partition (docs/STORAGE.md)
 *   <dataDir>/images/<name>.img.lock   while a partition (of any process) has it attached
 *   <dataDir>/keystore                 one key per image, when no master key is given (keystore.ts)
 *
 * Safe with several Hypervisors, in one process or several, on one data directory: an image is
 * attached by one partition at a time (lock.ts; a second attach is refused naming the holder),
 * and keystore updates are atomic across processes. A new image appears complete or not at all
 * (built under a temporary name, then linked into place), and its key is filed before it appears,
 * so no successful create leaves an image without its key.
 *
 * The front-end (host/devices/block.ts) runs in the partition's worker and is handed an open file
 * descriptor, the geometry, the image id and the image's data key (never the partition key or the
 * master key); it never sees the directory, the keystore or a name. See blockInit().
 */
import { randomFillSync } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, readdir, rename, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, InvalidStateError, IntegrityError, StorageError, WasmvisorError } from '../errors.ts';
import { makeDirs } from '../files.ts';
import {
  dataOffset,
  deriveImageKeys,
  encodeHeader,
  FORMAT1,
  GROUP_SECTORS,
  HEADER_SIZE,
  ImageError,
  imageFileSize,
  META_SIZE,
  metaOffset,
  peekHeader,
  readGen,
  SECTOR_SIZE,
  verifyHeader,
  type ImageHeader,
} from './image.ts';
import { KeyConflictError, Keystore, syncDir, type KeyInfo } from './keystore.ts';
import { describeHolder, FileLock, LockedError, lockHolder, type LockHolder } from './lock.ts';
import { secretBuffer, secretCopy } from './secret.ts';

export interface StorageOptions {
  /** Directory for images and the keystore. Created (mode 0700) when a block device is first granted. */
  dataDir: string;
  /** A 32-byte master key: image keys derive from it, and no keystore file is used. */
  masterKey?: Uint8Array;
  /** Where the keystore lives when there is no master key. Default `<dataDir>/keystore`. */
  keystorePath?: string;
  /**
   * Told of key creations, wipes and warnings, after they happen: the place to audit them
   * (docs/STORAGE.md). Exceptions it throws are ignored.
   */
  onEvent?: (event: StorageEvent) => void;
  /** Replaces fs.statfs when checking free space (tests). */
  statfs?: (dir: string) => Promise<{ bavail: number; bsize: number }>;
}

/** What the storage back-end reports. */
export type StorageEvent =
  | { kind: 'key-created'; name: string; path: string; imageId: string }
  | { kind: 'wiped'; name: string; path: string; removedImage: boolean; removedKey: boolean }
  /** A wipe refused (ERR_INTEGRITY, ERR_INVALID_STATE) or failed: nothing of that image was removed. */
  | { kind: 'wipe-failed'; name: string; path: string; code: string; message: string }
  | {
      kind: 'overcommit';
      message: string;
      /** The directory whose file system is short of space. */
      dir: string;
      /** Bytes the attached images on that file system may still take as their guests write. */
      growableBytes: number;
      freeBytes: number;
    };

/** An open image, ready to hand to a partition's worker. */
export interface BlockAttachment {
  path: string;
  handle: FileHandle;
  fd: number;
  sectorCount: number;
  /** On its own ArrayBuffer (it crosses to the worker). */
  imageId: Uint8Array;
  /** The image's data key, on its own ArrayBuffer; zeroed at detach. */
  dataKey: Buffer;
  /** True when this attach created the image (it reads as zeros). */
  created: boolean;
}

/** What crosses to the partition's worker for its block device: nothing else of the attachment. */
export interface BlockWorkerInit {
  fd: number;
  /** `fd` was opened with O_DSYNC (a partition process's image: it may not fsync). */
  durableWrites?: boolean;
  sectorCount: number;
  imageId: Uint8Array;
  dataKey: Uint8Array;
}

/**
 * What crosses to the worker for an attachment: the fd, the geometry and fresh copies of the image
 * id and data key, each on its own exactly-sized ArrayBuffer (so cloning them copies nothing else).
 * The caller zeroes `dataKey` once the worker has its copy.
 */
export function blockInit(attachment: BlockAttachment): BlockWorkerInit {
  return {
    fd: attachment.fd,
    sectorCount: attachment.sectorCount,
    imageId: new Uint8Array(attachment.imageId),
    dataKey: new Uint8Array(attachment.dataKey),
  };
}

/** What `wipe` found and removed. */
export interface WipeResult {
  /** The image scrubbed (the first, when several were), else the place looked at. */
  path: string;
  removedImage: boolean;
  removedKey: boolean;
  /**
   * Every image file scrubbed and removed: at most the one path given; for a name, also its images
   * at other paths (`devices.block.path`) that the keystore files under the name.
   */
  images: string[];
}

/** One persistent disk, as `listStorage` reports it (read from headers and file metadata; no key is used). */
export interface DiskInfo {
  /** The partition name (from the keystore, else the file name); null when unknown. */
  name: string | null;
  path: string;
  /** Capacity the guest sees, bytes (null when the header cannot be read). */
  sizeBytes: number | null;
  /** Space the sparse file takes on disk. */
  allocatedBytes: number;
  /** ISO times (the file's birth time where the platform records it, else null). */
  created: string | null;
  modified: string | null;
  /** The image's random id (hex). */
  imageId: string | null;
  format: number | null;
  /** 'keystore': its key is in the keystore; 'storage-key': keys derive from the master key; 'missing': no key found. */
  key: 'keystore' | 'storage-key' | 'missing';
  /** The process that has it attached now, or null. */
  inUse: LockHolder | null;
  /** Why it cannot be used as it is, or null. */
  problem: string | null;
}

const SCRUB_CHUNK = 1 << 20;

/**
 * The files attached as block images by any Storage of this process, by `dev:ino`, with whose
 * they are: a wipe reaching one through another path (a hard link, a symlinked directory, a
 * second Hypervisor on another data directory) is refused, not a live disk scrubbed. Another
 * process's attachments are known by their lock (`<image>.lock`), at the path that process used.
 */
const attachedFiles = new Map<string, string>();

/** Errors of a lock that could not be released after what it guarded was done (releaseAfter). */
const releaseFailures = new WeakSet<object>();

/**
 * Releases `lock` once `done` (what it guarded, finished) happened. A failure (the lock file
 * unreadable: EACCES, EIO) is ERR_STORAGE naming the lock file and saying that `done` was done, so
 * a caller does not take a finished wipe or detach for one that failed.
 */
async function releaseAfter(lock: FileLock, done: string): Promise<void> {
  try {
    await lock.release();
  } catch (error) {
    const failure = new StorageError(
      `${done}, but cannot release its lock ${lock.file}: ${(error as Error).message}; remove that file once no partition has the image attached`,
      { cause: error },
    );
    releaseFailures.add(failure);
    throw failure;
  }
}

function fileKey(s: { dev: bigint; ino: bigint }): string {
  return `${s.dev}:${s.ino}`;
}

/** Where a partition's image lives unless its spec names a path: `<dataDir>/images/<name>.img`. */
export function defaultImagePath(dataDir: string, name: string): string {
  return path.join(dataDir, 'images', `${name}.img`);
}

/**
 * Opening a file already in an image's place: never through a symlink, and never waiting (a FIFO
 * there opens at once, and is then refused as not a regular file; O_NONBLOCK changes nothing for one).
 */
const NOFOLLOW = (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

export class Storage {
  readonly dataDir: string;
  readonly keystore: Keystore | null;
  private readonly masterKey: Buffer | null;
  private readonly onEvent: ((event: StorageEvent) => void) | null;
  private readonly statfs: (dir: string) => Promise<{ bavail: number; bsize: number }>;
  /** Images this Storage has attached, by path, with their cross-process locks and `dev:ino` (attachedFiles). */
  private readonly attached = new Map<string, { attachment: BlockAttachment; lock: FileLock; file: string }>();
  /** Per-image queue: an attach and a wipe of the same file never interleave within this process. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(options: StorageOptions) {
    this.dataDir = path.resolve(options.dataDir);
    this.onEvent = options.onEvent ?? null;
    this.statfs = options.statfs ?? statfs;
    if (options.masterKey !== undefined) {
      if (!(options.masterKey instanceof Uint8Array) || options.masterKey.length !== 32) {
        throw new InvalidArgumentError('storageKey must be 32 bytes (a Uint8Array or Buffer)');
      }
      this.masterKey = secretCopy(options.masterKey);
      this.keystore = null;
    } else {
      this.masterKey = null;
      this.keystore =
        options.keystorePath !== undefined
          ? new Keystore(path.resolve(options.keystorePath))
          : new Keystore(path.join(this.dataDir, 'keystore'), path.join(this.dataDir, 'keystore.json'));
    }
  }

  /** The image file of a partition: the embedder's `path` if given, else `<dataDir>/images/<name>.img`. */
  imagePath(name: string, override?: string): string {
    return override !== undefined ? path.resolve(this.dataDir, override) : this.defaultPath(name);
  }

  private defaultPath(name: string): string {
    return defaultImagePath(this.dataDir, name);
  }

  /**
   * Opens the partition's image, creating it (sparse, zero-filled, with a fresh image id and key)
   * when it does not exist. An existing image must authenticate under this partition's key and name
   * (else ERR_INTEGRITY) and have the requested size (else ERR_INVALID_ARGUMENT); one attached
   * elsewhere is ERR_INVALID_STATE, naming the holder; a missing image whose key exists is ERR_STORAGE.
   */
  attach(name: string, sizeMiB: number, override?: string): Promise<BlockAttachment> {
    const file = this.imagePath(name, override);
    return this.queued(file, () => this.attachQueued(name, file, sizeMiB));
  }

  /**
   * Flushes (fsync), closes an attachment, drops its key and releases its lock. Idempotent. The
   * flush makes writes the guest did not flush itself durable when the host shuts down in good order.
   */
  async detach(attachment: BlockAttachment): Promise<void> {
    attachment.dataKey.fill(0);
    const held = this.attached.get(attachment.path);
    if (held?.attachment !== attachment) return;
    this.attached.delete(attachment.path);
    attachedFiles.delete(held.file);
    await attachment.handle.sync().catch(() => undefined);
    await attachment.handle.close().catch(() => undefined);
    await releaseAfter(held.lock, `detached the block image at ${attachment.path} (flushed and closed)`);
  }

  /**
   * Scrubs (overwrites with zeros, fsync) and removes a partition's image at one place (`override`,
   * as a spec's `devices.block.path`, else the default place), and removes its key from the
   * keystore. Only an image of this name is scrubbed: a file that is not a Wasmvisor block image,
   * or is another partition's (its key filed under another name, or its header not authenticating
   * under the master key for this name), is refused with ERR_INTEGRITY and left untouched, keys
   * included; one attached to a live partition (here or in another process) is ERR_INVALID_STATE.
   * Idempotent: a missing image is not an error, and wiping one removes a key left for it.
   */
  wipe(name: string, override?: string): Promise<WipeResult> {
    // Closed with its hypervisor: a wipe now could not be audited (the log is closed too).
    this.assertOpen();
    const file = this.imagePath(name, override);
    return this.queued(file, () => this.wipeQueued(name, file)).then(
      (r) => ({ ...r, images: r.removedImage ? [file] : [] }),
      (error: unknown) => {
        // The wipe itself was done and its 'wiped' event told: only its lock is left behind.
        if (releaseFailures.has(error as object)) throw error;
        this.emit({ kind: 'wipe-failed', name, path: file, code: error instanceof WasmvisorError ? error.code : 'ERR_INTERNAL', message: (error as Error).message });
        throw error;
      },
    );
  }

  /**
   * Wipes every image of a name: the one at the default place and, with a keystore, every one it
   * files under the name at another path (a spec's `devices.block.path`, which the keystore
   * remembers; with a master key nothing records them, so only the default place is found). Each
   * is wiped as `wipe` wipes one, in turn; a refusal stops there (what was wiped stays wiped).
   */
  async wipeName(name: string): Promise<WipeResult> {
    this.assertOpen();
    const first = this.defaultPath(name);
    const elsewhere = new Set<string>();
    if (this.keystore) {
      let keys: KeyInfo[];
      try {
        keys = await this.keystore.list();
      } catch (error) {
        throw new StorageError(`cannot wipe the block images of ${name}: ${(error as Error).message}`, { cause: error });
      }
      for (const k of keys) if (k.name === name && k.path !== '' && path.resolve(k.path) !== first) elsewhere.add(path.resolve(k.path));
    }
    // An image elsewhere whose directory is missing may be on a volume not mounted now: its key is
    // all that can open it when the volume is back, so a wipe by name does not drop it unasked
    // (as attach refuses a missing image whose key exists, ERR_STORAGE). Its path says it.
    for (const file of elsewhere) {
      // Stryker disable next-line ArrowFunction: equivalent: undefined is as false as false here
      if (!(await stat(path.dirname(file)).then(() => true, () => false))) {
        throw new StorageError(
          `cannot wipe the block image of ${name} at ${file}: its directory is missing (a volume not mounted?) and ${this.keystore!.file} holds its key; ` +
            `mount it and wipe again, or wipe that image by its path (hv.wipeStorage(name, { path })) to drop the key`,
        );
      }
    }
    const results: WipeResult[] = [];
    for (const file of [first, ...elsewhere]) results.push(await this.wipe(name, file));
    const images = results.flatMap((r) => r.images);
    return {
      path: images[0] ?? results.find((r) => r.removedKey)?.path ?? first,
      removedImage: images.length > 0,
      removedKey: results.some((r) => r.removedKey),
      images,
    };
  }

  /**
   * When the keystore files the key of `imageId` for another path, and an image of that id is
   * there, `file` is a copy of it: that path. Otherwise null (the key is this file's, or a moved
   * image's whose old path holds nothing of that id).
   */
  private async copyOf(imageId: Uint8Array, file: string): Promise<string | null> {
    if (!this.keystore) return null;
    const id = Buffer.from(imageId).toString('hex');
    const entry = (await this.keystore.list().catch(() => [])).find((k) => k.imageId === id);
    if (entry === undefined || entry.path === '' || path.resolve(entry.path) === path.resolve(file)) return null;
    const there = await readImageId(entry.path);
    return there !== null && Buffer.from(there).toString('hex') === id ? entry.path : null;
  }

  /** Lists the images in `<dataDir>/images` and those the keystore knows elsewhere, without using any key. */
  async list(): Promise<DiskInfo[]> {
    const byPath = new Map<string, DiskInfo>();
    const known: KeyInfo[] = this.keystore ? await this.keystore.list().catch(() => []) : [];
    const imagesDir = path.join(this.dataDir, 'images');
    // Stryker disable next-line ArrayDeclaration: equivalent: a path that names no file and no key is skipped (describeImage finds nothing there)
    const files: string[] = [];
    try {
      for (const n of await readdir(imagesDir)) if (n.endsWith('.img')) files.push(path.join(imagesDir, n));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new StorageError(`cannot list ${imagesDir}: ${(error as Error).message}`, { cause: error });
    }
    for (const k of known) if (k.path !== '' && !files.includes(k.path)) files.push(k.path);
    for (const file of files.sort()) {
      const info = await describeImage(file);
      if (info === null) {
        const k = known.find((x) => x.path === file && !x.pending);
        if (k) byPath.set(file, { ...emptyInfo(file, k.name), imageId: k.imageId, key: 'keystore', problem: 'the image is missing; its key is in the keystore' });
        continue;
      }
      const entry = info.imageId ? known.find((x) => x.imageId === info.imageId) : undefined;
      const fileName = path.basename(file, '.img');
      const nameKey = known.find((x) => x.imageId === null && x.name === fileName && file === this.defaultPath(fileName));
      info.name = entry?.name ?? (path.dirname(file) === imagesDir ? fileName : null);
      info.key = this.masterKey ? 'storage-key' : entry || nameKey ? 'keystore' : 'missing';
      if (info.key === 'missing' && info.problem === null) info.problem = 'no key for it in the keystore';
      if (entry !== undefined && info.problem === null && entry.path !== '' && path.resolve(entry.path) !== path.resolve(file) && files.includes(entry.path)) {
        const original = await describeImage(entry.path);
        if (original?.imageId === info.imageId) info.problem = `a copy of ${entry.path}, whose key the keystore holds (deleting the copy leaves that key)`;
      }
      info.inUse = await lockHolder(`${file}.lock`).catch(() => null);
      byPath.set(file, info);
    }
    return [...byPath.values()];
  }

  /** Zeroes the master key; later attaches are refused. Idempotent. */
  close(): void {
    this.closed = true;
    this.masterKey?.fill(0);
  }

  private assertOpen(): void {
    if (this.closed) throw new InvalidStateError('the storage of this hypervisor is closed');
  }

  private queued<T>(file: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(file) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.queues.set(file, settled);
    void settled.then(() => {
      if (this.queues.get(file) === settled) this.queues.delete(file);
    });
    return next;
  }

  /** Takes the image's cross-process lock (making its directory when `create`), or refuses naming who holds it. */
  private async lockImage(name: string, file: string, doing: string, create: boolean): Promise<FileLock> {
    try {
      if (create) {
        await makeDirs(this.dataDir, 0o700);
        await makeDirs(path.dirname(file), 0o700);
      }
      return await FileLock.acquire(`${file}.lock`, `partition ${name}`);
    } catch (error) {
      if (error instanceof LockedError) {
        throw new InvalidStateError(`cannot ${doing} the block image of ${name} at ${file}: it is attached to a live partition of ${describeHolder(error.holder)}`);
      }
      throw new StorageError(`cannot ${doing} the block image of ${name} at ${file}: ${(error as Error).message}`, { cause: error });
    }
  }

  private async attachQueued(name: string, file: string, sizeMiB: number): Promise<BlockAttachment> {
    const lock = await this.lockImage(name, file, 'open', true);
    let attachment: BlockAttachment;
    try {
      attachment = await this.openOrCreate(name, file, sizeMiB * ((1024 * 1024) / SECTOR_SIZE));
    } catch (error) {
      // The attach's own failure is what the caller is told, not a lock release failing after it.
      await lock.release().catch(() => undefined);
      if (error instanceof WasmvisorError) throw error;
      throw new StorageError(`cannot open the block image of ${name} at ${file}: ${(error as Error).message}`, { cause: error });
    }
    let id: string;
    try {
      // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent below 2^53: a number dev and ino print as the bigint's digits (bigint for file systems whose inode numbers are larger)
      id = fileKey(await attachment.handle.stat({ bigint: true }));
      // The same file under another path (a hard link, a symlinked directory) has another lock:
      // two partitions writing one image would corrupt it, so this process refuses the second.
      const live = attachedFiles.get(id);
      if (live !== undefined) throw new InvalidStateError(`cannot open the block image of ${name} at ${file}: it is the image of live ${live}`);
    } catch (error) {
      attachment.dataKey.fill(0);
      await attachment.handle.close().catch(() => undefined);
      await lock.release().catch(() => undefined);
      if (error instanceof WasmvisorError) throw error;
      throw new StorageError(`cannot open the block image of ${name} at ${file}: ${(error as Error).message}`, { cause: error });
    }
    this.attached.set(file, { attachment, lock, file: id });
    attachedFiles.set(id, `partition ${name} (attached at ${file})`);
    await this.checkSpace(file).catch(() => undefined);
    return attachment;
  }

  private async wipeQueued(name: string, file: string): Promise<Omit<WipeResult, 'images'>> {
    // No directory, no image: only a key can be left to remove (wiping creates nothing).
    // Stryker disable next-line ArrowFunction: equivalent: undefined is as false as false here
    const dirExists = await stat(path.dirname(file)).then(() => true, () => false);
    const lock = dirExists ? await this.lockImage(name, file, 'wipe', false) : null;
    let result: Omit<WipeResult, 'images'>;
    try {
      let keyId: Uint8Array | null = null;
      let removedImage = false;
      // Checked and scrubbed through one descriptor: what was judged the name's is what is zeroed.
      const own = await this.openOwnImage(name, file);
      if (own !== null) {
        const { handle, imageId } = own;
        try {
          // A copy of another image (`cp kv.img kv2.img`, a backup given as devices.block.path) holds
          // that image's id: the key filed under it is the other image's, and removing it would make
          // that image unreadable for ever. Its key goes only with the file the keystore filed it for.
          keyId = (await this.copyOf(imageId, file)) !== null ? null : imageId;
          await scrub(handle);
        } finally {
          await handle.close();
        }
        await unlink(file);
        await syncDir(path.dirname(file));
        removedImage = true;
      }
      await removeTemporaries(file);
      const removedKey = this.keystore ? await this.keystore.remove(keyId, file, name, file === this.defaultPath(name)) : false;
      this.emit({ kind: 'wiped', name, path: file, removedImage, removedKey });
      result = { path: file, removedImage, removedKey };
    } catch (error) {
      // The wipe's own failure is what the caller is told, not a lock release failing after it.
      await lock?.release().catch(() => undefined);
      // Stryker disable next-line ConditionalExpression: equivalent today: nothing in this try throws a WasmvisorError (kept so that one added later is not re-wrapped)
      if (error instanceof WasmvisorError) throw error;
      throw new StorageError(`cannot wipe the block image of ${name} at ${file}: ${(error as Error).message}`, { cause: error });
    }
    if (lock !== null) {
      const done = `${result.removedImage ? 'the image scrubbed and removed' : 'no image there'}${result.removedKey ? ', its key removed' : ''}`;
      await releaseAfter(lock, `wiped the block image of ${name} at ${file} (${done})`);
    }
    return result;
  }

  /**
   * Opens the file at `file` for a wipe of `name`'s image, or null when there is none. What
   * identifies an image as the name's: its header (the magic, and the image id the keys are filed
   * under) and then its key: the keystore's entry for that id is filed under `name` (or, from a
   * format-1 keystore, the name's key authenticates the header), or the master key derived for
   * `name` authenticates it. Also scrubbed: a copy of another partition's image whose original is
   * still where the keystore files its key (deleting the copy loses nothing), and an image whose id
   * has no key in this keystore (nothing in it can be read any more: the "wipe it to start over" of
   * an image whose key is gone). Anything else is refused and left untouched: not a regular file,
   * not a Wasmvisor image, another partition's image (ERR_INTEGRITY), or the file a live partition
   * of this process has attached, reached by another path (ERR_INVALID_STATE).
   */
  private async openOwnImage(name: string, file: string): Promise<{ handle: FileHandle; imageId: Uint8Array } | null> {
    const refuse = (why: string): IntegrityError =>
      new IntegrityError(`refusing to wipe ${file} as the block image of ${name}: ${why}; it was left untouched`);
    let handle: FileHandle;
    try {
      handle = await open(file, constants.O_RDWR | NOFOLLOW);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      // A symbolic link is refused as attach refuses one (ERR_STORAGE from the caller: O_NOFOLLOW's ELOOP).
      if (code === 'EISDIR' || code === 'ENXIO') throw refuse('it is not a regular file');
      throw error;
    }
    try {
      // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent below 2^53, as in attachQueued
      const st = await handle.stat({ bigint: true });
      if (!st.isFile()) throw refuse('it is not a regular file');
      const live = attachedFiles.get(fileKey(st));
      if (live !== undefined) throw new InvalidStateError(`refusing to wipe ${file} as the block image of ${name}: it is the image of live ${live}`);
      let header: Buffer;
      let imageId: Uint8Array;
      try {
        ({ header, imageId } = await readHeader(handle));
      } catch (error) {
        if (!(error instanceof ImageError)) throw error;
        if (error.problem === 'unsupported') throw refuse(`it is a Wasmvisor image this runtime does not read (${error.message})`);
        throw refuse(`it is not a Wasmvisor block image (${error.problem === 'truncated' ? 'shorter than an image header' : 'it does not start with the image magic'})`);
      }
      const id = Buffer.from(imageId).toString('hex');
      if (this.masterKey) {
        if (!authenticates(header, this.masterKey, imageId, name)) throw refuse(`its header (image id ${id}) does not authenticate as ${name}'s under the storage key: it is another partition's image, or altered`);
      } else {
        const entry = await this.keystore!.find(imageId);
        if (entry !== null) {
          entry.key.fill(0);
          // Another partition's image: scrubbed only when it is a copy whose original is still
          // where its key is filed (`cp kv.img kv2.img`): then nothing is lost, and the key stays.
          if (entry.name !== name && (await this.copyOf(imageId, file)) === null) {
            throw refuse(`it is the block image of partition ${entry.name} (image id ${id}, its key filed under ${entry.name} in ${this.keystore!.file}); wipe it as ${entry.name}'s`);
          }
        } else {
          // From a format-1 keystore, keys are filed by name: the one that authenticates the header names its owner.
          for (const k of await this.keystore!.list()) {
            // Stryker disable next-line ConditionalExpression: equivalent: nameKey finds format-1 keys only, so a keyed entry's turn tries its name's format-1 key (the same answer as that key's own turn) or none
            if (k.imageId !== null) continue;
            const key = await this.keystore!.nameKey(k.name);
            const opens = key !== null && authenticates(header, key, imageId, k.name);
            key?.fill(0);
            // The first key that opens it names its owner: no other name's key can (the header's MAC binds the name).
            if (opens) {
              if (k.name !== name) throw refuse(`it is the block image of partition ${k.name} (image id ${id}, its format-1 key filed under ${k.name} in ${this.keystore!.file}); wipe it as ${k.name}'s`);
              break;
            }
          }
        }
      }
      return { handle, imageId };
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  private async openOrCreate(name: string, file: string, sectorCount: number): Promise<BlockAttachment> {
    let handle: FileHandle;
    try {
      handle = await open(file, constants.O_RDWR | NOFOLLOW);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return this.create(name, file, sectorCount);
    }
    let dataKey: Buffer | null = null;
    let macKey: Buffer | null = null;
    try {
      if (!(await handle.stat()).isFile()) throw new ImageError('not-an-image', 'it is not a regular file');
      const header = Buffer.alloc(HEADER_SIZE);
      const { bytesRead } = await handle.read(header, 0, HEADER_SIZE, 0);
      if (bytesRead < HEADER_SIZE) throw new ImageError('truncated', 'the image is shorter than its header');
      const { imageId } = peekHeader(header);
      const found = await this.partitionKey(name, file, imageId);
      let checked: ImageHeader;
      try {
        ({ dataKey, macKey } = deriveImageKeys(found.key, imageId, name));
        checked = verifyHeader(header, macKey, name);
      } finally {
        found.key.fill(0);
      }
      if (checked.sectorCount !== sectorCount) {
        throw new InvalidArgumentError(
          `the block image of ${name} holds ${(checked.sectorCount * SECTOR_SIZE) / 1048576} MiB, the spec asks for ${(sectorCount * SECTOR_SIZE) / 1048576} MiB (images are not resized; wipe it to start over)`,
        );
      }
      const size = (await handle.stat()).size;
      const expected = checked.format === 1 ? HEADER_SIZE + sectorCount * FORMAT1.PAIR_SIZE : imageFileSize(sectorCount);
      if (size < expected) {
        throw new IntegrityError(`the block image of ${name} at ${file} is truncated (${size} bytes, expected ${expected})`);
      }
      if (checked.format === 1) handle = await convertFormat1(handle, file, sectorCount, imageId, macKey, name);
      // The image exists and authenticates: a key still marked pending (a create that crashed
      // after the image appeared) is confirmed; a format-1 name key is filed under this image.
      // Stryker disable next-line LogicalOperator: equivalent: committing a key that is not pending changes nothing (and there is no keystore only with a master key, whose source is never 'pending')
      if (this.keystore && found.source === 'pending') await this.keystore.commit(imageId);
      // Stryker disable next-line LogicalOperator: equivalent: adopting changes nothing when no name key of this name is left, or the image's id is filed already
      if (this.keystore && found.source === 'name') await this.keystore.adoptNameKey(name, imageId, file);
      return { path: file, handle, fd: handle.fd, sectorCount, imageId, dataKey, created: false };
    } catch (error) {
      dataKey?.fill(0);
      await handle.close().catch(() => undefined);
      if (error instanceof ImageError) {
        const Err = error.problem === 'wrong-key' || error.problem === 'truncated' || error.problem === 'not-an-image' ? IntegrityError : StorageError;
        throw new Err(`the block image of ${name} at ${file} was refused: ${error.message}`);
      }
      throw error;
    } finally {
      macKey?.fill(0);
    }
  }

  /** The key an existing image's keys derive from (a copy the caller zeroes): the master key, or its keystore entry. */
  private async partitionKey(
    name: string,
    file: string,
    imageId: Uint8Array,
  ): Promise<{ key: Buffer; source: 'master' | 'image' | 'pending' | 'name' }> {
    this.assertOpen();
    // Stryker disable next-line StringLiteral: equivalent: the source is only ever compared with 'pending' and 'name'
    if (this.masterKey) return { key: secretCopy(this.masterKey), source: 'master' };
    const ks = this.keystore!;
    const entry = await ks.find(imageId);
    if (entry) return { key: entry.key, source: entry.pending ? 'pending' : 'image' };
    // A format-1 keystore filed keys by name (for whatever path the partition's image had); the
    // header MAC, checked next, tells whether this image is the one that key made.
    const named = await ks.nameKey(name);
    if (named) return { key: named, source: 'name' };
    throw new IntegrityError(
      `the block image of ${name} at ${file} (image id ${Buffer.from(imageId).toString('hex')}) has no key in ${ks.file}; it cannot be opened (wipe it to start over)`,
    );
  }

  private async create(name: string, file: string, sectorCount: number): Promise<BlockAttachment> {
    this.assertOpen();
    // A fresh id and, without a master key, a fresh key: nothing encrypted under an earlier image
    // of this name can be read with them.
    const imageId = new Uint8Array(16);
    randomFillSync(imageId);
    const idHex = Buffer.from(imageId).toString('hex');
    const partitionKey = this.masterKey ?? randomFillSync(secretBuffer(32));
    const keys = deriveImageKeys(partitionKey, imageId, name);
    const temp = `${file}.${idHex}.new`;
    let handle: FileHandle | null = null;
    let reserved = false;
    let linked = false;
    try {
      if (this.keystore) {
        let stale: string[];
        try {
          stale = await this.keystore.reserve(imageId, name, file, partitionKey, file === this.defaultPath(name));
        } catch (error) {
          if (!(error instanceof KeyConflictError)) throw error;
          throw new StorageError(
            `the block image of ${name} at ${file} is missing, but ${error.message}. Restore the image (is the volume it lives on mounted?), ` +
              // The key's owner is the one to wipe: a wipe of another name leaves that key (keystore.remove).
              `or wipe it (wasmvisor delete ${error.entry.name}, hv.wipeStorage) to drop that key and start over`,
          );
        }
        reserved = true;
        for (const id of stale) await unlink(`${file}.${id}.new`).catch(() => undefined);
        this.emit({ kind: 'key-created', name, path: file, imageId: idHex });
      }
      // Built under a temporary name and linked into place: an image is complete or absent.
      handle = await open(temp, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, 0o600);
      await handle.write(encodeHeader(sectorCount, imageId, keys.macKey, name), 0, HEADER_SIZE, 0);
      await handle.truncate(imageFileSize(sectorCount)); // sparse: unwritten sectors cost no space and read as zeros
      await handle.sync();
      await link(temp, file); // EEXIST if a file appeared meanwhile: never replaced
      linked = true;
      await unlink(temp);
      await syncDir(path.dirname(file));
      if (this.keystore) await this.keystore.commit(imageId);
      return { path: file, handle, fd: handle.fd, sectorCount, imageId, dataKey: keys.dataKey, created: true };
    } catch (error) {
      keys.dataKey.fill(0);
      await handle?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      // Before the image appeared its key is useless: removed. After, the key stays with the image.
      if (reserved && !linked) await this.keystore!.remove(imageId, file, name, false).catch(() => undefined);
      throw error;
    } finally {
      keys.macKey.fill(0);
      if (partitionKey !== this.masterKey) partitionKey.fill(0);
    }
  }

  /**
   * Warns when the images attached here on one file system may grow (as guests write to their
   * sparse images) by more than it has free: a guest that fills its disk then sees IO_ERROR, and
   * so does every other partition writing new blocks on that file system (their flushed data is
   * safe: see docs/STORAGE.md). Counts only this process's images.
   */
  private async checkSpace(file: string): Promise<void> {
    const dev = (await stat(file)).dev;
    let growable = 0;
    for (const { attachment } of this.attached.values()) {
      const s = await attachment.handle.stat();
      if (s.dev !== dev) continue;
      growable += Math.max(0, imageFileSize(attachment.sectorCount) - s.blocks * 512);
    }
    const fs = await this.statfs(path.dirname(file));
    const free = fs.bavail * fs.bsize;
    if (growable <= free) return;
    const mib = (n: number) => `${Math.round(n / 1048576)} MiB`;
    this.emit({
      kind: 'overcommit',
      dir: path.dirname(file),
      growableBytes: growable,
      freeBytes: free,
      message:
        `the block images attached in ${path.dirname(file)} can grow by ${mib(growable)} more, but its file system has ${mib(free)} free: ` +
        `a guest that fills its disk will see HV_STATUS_IO_ERROR on writes (flushed data stays safe)`,
    });
  }

  private emit(event: StorageEvent): void {
    try {
      // Stryker disable next-line OptionalChaining: equivalent: without an observer the call throws a TypeError, which the catch below swallows as it would an observer's failure
      this.onEvent?.(event);
    } catch {
      // An observer's failure never undoes or fails a storage operation.
    }
  }
}

/** Header facts and file metadata of one image, or null when the file does not exist. */
async function describeImage(file: string): Promise<DiskInfo | null> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    return { ...emptyInfo(file, null), problem: `cannot open it: ${(error as Error).message}` };
  }
  try {
    const s = await handle.stat();
    const info = emptyInfo(file, null);
    info.allocatedBytes = s.blocks * 512;
    info.created = s.birthtimeMs > 0 ? s.birthtime.toISOString() : null;
    info.modified = s.mtime.toISOString();
    if (!s.isFile()) {
      info.problem = 'it is not a regular file';
      return info;
    }
    const header = Buffer.alloc(HEADER_SIZE);
    const { bytesRead } = await handle.read(header, 0, HEADER_SIZE, 0);
    try {
      const h = peekHeader(header.subarray(0, bytesRead));
      info.sizeBytes = h.sectorCount * SECTOR_SIZE;
      info.imageId = Buffer.from(h.imageId).toString('hex');
      info.format = h.format;
      const expected = h.format === 1 ? HEADER_SIZE + h.sectorCount * FORMAT1.PAIR_SIZE : imageFileSize(h.sectorCount);
      if (s.size < expected) info.problem = `truncated (${s.size} bytes, expected ${expected})`;
    } catch (error) {
      info.problem = (error as Error).message;
    }
    return info;
  } finally {
    await handle.close();
  }
}

function emptyInfo(file: string, name: string | null): DiskInfo {
  return { name, path: file, sizeBytes: null, allocatedBytes: 0, created: null, modified: null, imageId: null, format: null, key: 'missing', inUse: null, problem: null };
}

/**
 * Rewrites a format-1 image (pairs of [entry 48 | ciphertext 4096] slots per sector) in format 2
 * (image.ts), and returns a handle on the new file; the old handle is closed. Versions move
 * unchanged: their keys, nonces, tags and AAD do not depend on where they lie. Built under a
 * temporary name and renamed over the old file, so a crash leaves one whole image or the other.
 */
async function convertFormat1(old: FileHandle, file: string, sectorCount: number, imageId: Uint8Array, macKey: Uint8Array, name: string): Promise<FileHandle> {
  const temp = `${file}.${Buffer.from(imageId).toString('hex')}.new`;
  await unlink(temp).catch(() => undefined); // left by a conversion that died
  const out = await open(temp, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, 0o600);
  try {
    await out.write(encodeHeader(sectorCount, imageId, macKey, name), 0, HEADER_SIZE, 0);
    await out.truncate(imageFileSize(sectorCount));
    const pairs = Buffer.alloc(GROUP_SECTORS * FORMAT1.PAIR_SIZE);
    const page = Buffer.alloc(SECTOR_SIZE);
    for (let first = 0; first < sectorCount; first += GROUP_SECTORS) {
      const n = Math.min(GROUP_SECTORS, sectorCount - first);
      const want = n * FORMAT1.PAIR_SIZE;
      let got = 0;
      while (got < want) {
        const { bytesRead } = await old.read(pairs, got, want - got, HEADER_SIZE + first * FORMAT1.PAIR_SIZE + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      pairs.fill(0, got, want);
      page.fill(0);
      let any = false;
      for (let i = 0; i < n; i++) {
        for (const k of [0, 1]) {
          const at = i * FORMAT1.PAIR_SIZE + k * FORMAT1.SLOT_SIZE;
          if (readGen(pairs, at) === 0) continue;
          pairs.copy(page, (k * GROUP_SECTORS + i) * META_SIZE, at, at + FORMAT1.SLOT_META);
          await out.write(pairs, at + FORMAT1.SLOT_META, SECTOR_SIZE, dataOffset(first + i, k));
          any = true;
        }
      }
      if (any) await out.write(page, 0, SECTOR_SIZE, metaOffset(first, 0));
    }
    await out.sync();
    await rename(temp, file);
    await syncDir(path.dirname(file));
  } catch (error) {
    await out.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await old.close().catch(() => undefined);
  return out;
}

/** The image id in a file's header, or null when there is no readable header. */
async function readImageId(file: string): Promise<Uint8Array | null> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | NOFOLLOW);
  } catch {
    return null;
  }
  try {
    if (!(await handle.stat()).isFile()) return null;
    const header = Buffer.alloc(HEADER_SIZE);
    const { bytesRead } = await handle.read(header, 0, HEADER_SIZE, 0);
    return peekHeader(header.subarray(0, bytesRead)).imageId;
    // Stryker disable next-line BlockStatement: equivalent: undefined (no return) is treated as no image id, as null is
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

/** Removes images left half-built by creates that died (`<file>.<id>.new`). */
async function removeTemporaries(file: string): Promise<void> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(`${base}.`) && /^[0-9a-f]{32}\.new$/.test(n.slice(base.length + 1))) await unlink(path.join(dir, n)).catch(() => undefined);
}

/** The header of an open image and its image id (ImageError when it is not one this runtime reads). */
async function readHeader(handle: FileHandle): Promise<{ header: Buffer; imageId: Uint8Array }> {
  const header = Buffer.alloc(HEADER_SIZE);
  const { bytesRead } = await handle.read(header, 0, HEADER_SIZE, 0);
  return { header, imageId: peekHeader(header.subarray(0, bytesRead)).imageId };
}

/** Whether `header` authenticates under `key` for image `imageId` of partition `name`. */
function authenticates(header: Buffer, key: Uint8Array, imageId: Uint8Array, name: string): boolean {
  const { dataKey, macKey } = deriveImageKeys(key, imageId, name);
  dataKey.fill(0);
  try {
    verifyHeader(header, macKey, name);
  } catch {
    return false;
  } finally {
    macKey.fill(0);
  }
  return true;
}

/** Overwrites every non-zero byte range of the open file with zeros, and syncs. */
async function scrub(handle: FileHandle): Promise<void> {
  {
    const size = (await handle.stat()).size;
    const buf = Buffer.alloc(SCRUB_CHUNK);
    const zeros = Buffer.alloc(SCRUB_CHUNK);
    for (let at = 0; at < size; at += SCRUB_CHUNK) {
      const { bytesRead } = await handle.read(buf, 0, SCRUB_CHUNK, at);
      // Reading first keeps holes holes: zeros written over a hole would allocate the whole image.
      if (bytesRead > 0 && !buf.subarray(0, bytesRead).equals(zeros.subarray(0, bytesRead))) {
        await handle.write(zeros, 0, bytesRead, at);
      }
    }
    await handle.sync();
  }
}
