/**
 * The host keystore: one random 256-bit key per partition name, in a JSON file readable only by
 * its owner (mode 0600). Used when the embedder gives no master key. A key lives exactly as long
 * as its partition's image: a new image gets a new key, and wiping a partition removes its key,
 * so a scrubbed image is also crypto-erased (its ciphertext can no longer be decrypted even if a
 * copy survived on the medium).
 *
 * Writes are atomic (temporary file, fsync, rename, fsync of the directory) and serialized within
 * the process. There is no cross-process lock: one hypervisor process per data directory.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

const FORMAT = 'wasmvisor-keystore/1';

interface KeystoreFile {
  format: typeof FORMAT;
  /** Partition name -> base64 key. */
  keys: Record<string, string>;
}

export class Keystore {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  /** The partition's key, or null when it has none. */
  get(name: string): Promise<Buffer | null> {
    return this.serial(async () => {
      const k = (await this.load()).keys[name];
      return k === undefined ? null : Buffer.from(k, 'base64');
    });
  }

  /** Makes a fresh random key for the partition, replacing any old one, and returns it. */
  create(name: string): Promise<Buffer> {
    return this.serial(async () => {
      const data = await this.load();
      const key = randomBytes(32);
      data.keys[name] = key.toString('base64');
      await this.save(data);
      return key;
    });
  }

  /** Removes the partition's key. Returns whether there was one. */
  remove(name: string): Promise<boolean> {
    return this.serial(async () => {
      const data = await this.load();
      if (!(name in data.keys)) return false;
      delete data.keys[name];
      await this.save(data);
      return true;
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async load(): Promise<KeystoreFile> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { format: FORMAT, keys: Object.create(null) as Record<string, string> };
      throw error;
    }
    const parsed = JSON.parse(text) as Partial<KeystoreFile>;
    if (parsed.format !== FORMAT || typeof parsed.keys !== 'object' || parsed.keys === null) {
      throw new Error(`${this.file} is not a ${FORMAT} keystore`);
    }
    return { format: FORMAT, keys: Object.assign(Object.create(null) as Record<string, string>, parsed.keys) };
  }

  private async save(data: KeystoreFile): Promise<void> {
    const dir = path.dirname(this.file);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(data, null, 2) + '\n');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(tmp, this.file);
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      throw error;
    }
    await syncDir(dir);
  }
}

/** fsyncs a directory so a created, renamed or removed entry in it is durable. */
export async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Some platforms (Windows) cannot open or fsync a directory; the entry is as durable as the OS makes it.
  } finally {
    await handle?.close();
  }
}
