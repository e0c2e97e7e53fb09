/**
 * The block storage back-end, in the root partition: where images live, which key opens each,
 * creating and checking images before a partition runs, and wiping them. The guest never names a
 * path: an image's place is chosen here from the partition's name (or by the embedder's spec).
 *
 *   <dataDir>/images/<name>.img     one sparse image per partition (docs/STORAGE.md)
 *   <dataDir>/keystore.json         per-partition keys, when no master key is given
 *
 * The front-end (host/devices/block.ts) runs in the partition's worker and is handed an open file
 * descriptor, the geometry and the data key; it never sees the directory, the keystore or a name.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, InvalidStateError, IntegrityError, StorageError, WasmvisorError } from '../errors.ts';
import {
  deriveImageKeys,
  encodeHeader,
  HEADER_SIZE,
  ImageError,
  imageFileSize,
  peekHeader,
  SECTOR_SIZE,
  verifyHeader,
} from './image.ts';
import { Keystore, syncDir } from './keystore.ts';

export interface StorageOptions {
  /** Directory for images and the keystore. Created (mode 0700) when a block device is first granted. */
  dataDir: string;
  /** A 32-byte master key: image keys derive from it, and no keystore file is used. */
  masterKey?: Uint8Array;
  /** Where the keystore lives when there is no master key. Default `<dataDir>/keystore.json`. */
  keystorePath?: string;
}

/** An open image, ready to hand to a partition's worker. */
export interface BlockAttachment {
  path: string;
  handle: FileHandle;
  fd: number;
  sectorCount: number;
  imageId: Buffer;
  dataKey: Buffer;
  /** True when this attach created the image (it reads as zeros). */
  created: boolean;
}

/** What `wipe` found and removed. */
export interface WipeResult {
  path: string;
  removedImage: boolean;
  removedKey: boolean;
}

const SCRUB_CHUNK = 1 << 20;

export class Storage {
  readonly dataDir: string;
  readonly keystore: Keystore | null;
  private readonly masterKey: Buffer | null;
  private readonly inUse = new Set<string>();
  /** Per-image queue: an attach and a wipe of the same file never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(options: StorageOptions) {
    this.dataDir = path.resolve(options.dataDir);
    if (options.masterKey !== undefined) {
      if (!(options.masterKey instanceof Uint8Array) || options.masterKey.length !== 32) {
        throw new InvalidArgumentError('storageKey must be 32 bytes (a Uint8Array or Buffer)');
      }
      this.masterKey = Buffer.from(options.masterKey);
      this.keystore = null;
    } else {
      this.masterKey = null;
      this.keystore = new Keystore(path.resolve(options.keystorePath ?? path.join(this.dataDir, 'keystore.json')));
    }
  }

  /** The image file of a partition: the embedder's `path` if given, else `<dataDir>/images/<name>.img`. */
  imagePath(name: string, override?: string): string {
    return override !== undefined ? path.resolve(this.dataDir, override) : path.join(this.dataDir, 'images', `${name}.img`);
  }

  /**
   * Opens the partition's image, creating it (sparse, zero-filled, with a fresh image id and key)
   * when it does not exist. An existing image must authenticate under this partition's key and name
   * (else ERR_INTEGRITY) and have the requested size (else ERR_INVALID_ARGUMENT).
   */
  attach(name: string, sizeMiB: number, override?: string): Promise<BlockAttachment> {
    const file = this.imagePath(name, override);
    return this.locked(file, () => this.attachUnlocked(name, file, sizeMiB));
  }

  private async attachUnlocked(name: string, file: string, sizeMiB: number): Promise<BlockAttachment> {
    if (this.inUse.has(file)) throw new InvalidStateError(`the image ${file} is already attached to a live partition`);
    this.inUse.add(file);
    try {
      return await this.openOrCreate(name, file, sizeMiB * ((1024 * 1024) / SECTOR_SIZE));
    } catch (error) {
      this.inUse.delete(file);
      if (error instanceof WasmvisorError) throw error;
      throw new StorageError(`cannot open the block image of ${name} at ${file}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Flushes (fsync) and closes an attachment and drops its key. Idempotent. The flush makes
   * writes the guest did not flush itself durable when the host shuts down in good order.
   */
  async detach(attachment: BlockAttachment): Promise<void> {
    attachment.dataKey.fill(0);
    if (this.inUse.delete(attachment.path)) {
      await attachment.handle.sync().catch(() => undefined);
      await attachment.handle.close().catch(() => undefined);
    }
  }

  /**
   * Scrubs (overwrites with zeros, fsync) and removes a partition's image, and removes its key from
   * the keystore. Refused while the image is attached. Idempotent: a missing image is not an error.
   */
  wipe(name: string, override?: string): Promise<WipeResult> {
    const file = this.imagePath(name, override);
    return this.locked(file, () => this.wipeUnlocked(name, file));
  }

  private locked<T>(file: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(file) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const settled = next.catch(() => undefined);
    this.locks.set(file, settled);
    void settled.then(() => {
      if (this.locks.get(file) === settled) this.locks.delete(file);
    });
    return next;
  }

  private async wipeUnlocked(name: string, file: string): Promise<WipeResult> {
    if (this.inUse.has(file)) throw new InvalidStateError(`the image of ${name} is attached to a live partition; destroy it first`);
    try {
      const removedImage = await scrubAndRemove(file);
      const removedKey = this.keystore ? await this.keystore.remove(name) : false;
      return { path: file, removedImage, removedKey };
    } catch (error) {
      if (error instanceof WasmvisorError) throw error;
      throw new StorageError(`cannot wipe the block image of ${name} at ${file}: ${(error as Error).message}`, { cause: error });
    }
  }

  private async openOrCreate(name: string, file: string, sectorCount: number): Promise<BlockAttachment> {
    let handle: FileHandle;
    try {
      handle = await open(file, constants.O_RDWR);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      return this.create(name, file, sectorCount);
    }
    try {
      const header = Buffer.alloc(HEADER_SIZE);
      const { bytesRead } = await handle.read(header, 0, HEADER_SIZE, 0);
      if (bytesRead < HEADER_SIZE) throw new ImageError('truncated', 'the image is shorter than its header');
      const { imageId } = peekHeader(header);
      const partitionKey = this.masterKey ?? (await this.keystore!.get(name));
      if (partitionKey === null) {
        throw new IntegrityError(`the block image of ${name} at ${file} has no key in ${this.keystore!.file}; it cannot be opened (wipe it to start over)`);
      }
      const keys = deriveImageKeys(partitionKey, imageId, name);
      let checked;
      try {
        checked = verifyHeader(header, keys.macKey, name);
      } finally {
        keys.macKey.fill(0);
      }
      if (checked.sectorCount !== sectorCount) {
        keys.dataKey.fill(0);
        throw new InvalidArgumentError(
          `the block image of ${name} holds ${checked.sectorCount * SECTOR_SIZE / 1048576} MiB, the spec asks for ${sectorCount * SECTOR_SIZE / 1048576} MiB (images are not resized; wipe it to start over)`,
        );
      }
      const size = (await handle.stat()).size;
      if (size < imageFileSize(sectorCount)) {
        keys.dataKey.fill(0);
        throw new IntegrityError(`the block image of ${name} at ${file} is truncated (${size} bytes, expected ${imageFileSize(sectorCount)})`);
      }
      return { path: file, handle, fd: handle.fd, sectorCount, imageId, dataKey: keys.dataKey, created: false };
    } catch (error) {
      await handle.close().catch(() => undefined);
      if (error instanceof ImageError) {
        const Err = error.problem === 'wrong-key' || error.problem === 'truncated' || error.problem === 'not-an-image' ? IntegrityError : StorageError;
        throw new Err(`the block image of ${name} at ${file} was refused: ${error.message}`);
      }
      throw error;
    }
  }

  private async create(name: string, file: string, sectorCount: number): Promise<BlockAttachment> {
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    // A fresh key for a fresh image: nothing encrypted under an earlier image of this name can be read with it.
    const partitionKey = this.masterKey ?? (await this.keystore!.create(name));
    const imageId = randomBytes(16);
    const keys = deriveImageKeys(partitionKey, imageId, name);
    const handle = await open(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await handle.write(encodeHeader(sectorCount, imageId, keys.macKey, name), 0, HEADER_SIZE, 0);
      keys.macKey.fill(0);
      await handle.truncate(imageFileSize(sectorCount)); // sparse: unwritten sectors cost no space and read as zeros
      await handle.sync();
      await syncDir(path.dirname(file));
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(file).catch(() => undefined);
      throw error;
    }
    return { path: file, handle, fd: handle.fd, sectorCount, imageId, dataKey: keys.dataKey, created: true };
  }
}

/** Overwrites every non-zero byte range of `file` with zeros, syncs, and unlinks it. False if it did not exist. */
async function scrubAndRemove(file: string): Promise<boolean> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDWR);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  try {
    const size = (await stat(file)).size;
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
  } finally {
    await handle.close();
  }
  await unlink(file);
  await syncDir(path.dirname(file));
  return true;
}
