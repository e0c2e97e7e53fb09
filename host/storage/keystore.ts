/**
 * The host keystore: one random 256-bit key per block image, used when the embedder gives no
 * master key. A key is filed under its image's random id (from the image header), with the
 * partition name and the image's path beside it, so:
 * - two images of one name (another path, another data directory sharing this keystore) never
 *   share or replace each other's key, and a create never overwrites an existing key;
 * - an image whose key exists but whose file is missing (a volume not mounted at boot) is an
 *   error, never a silent new disk that would crypto-erase the real one;
 * - wiping an image removes exactly its key.
 *
 * Updates are atomic across processes: each one reads, changes and rewrites the file under a lock
 * file (lock.ts), writes a uniquely named temporary file (O_CREAT | O_EXCL | O_NOFOLLOW, 0600),
 * fsyncs it, renames it over the keystore and fsyncs the directory; a temporary file is removed on
 * any failure, and those of writers that died are removed under the lock. Reads need no lock
 * (a rename replaces the file atomically). The keystore itself is never followed through a symlink.
 *
 * The file is binary, so that keys are never JavaScript strings (which cannot be zeroed): every
 * key is read into its own buffer (secret.ts) and zeroed when done, and so is the file's image.
 *
 *   magic "WVKEYS\0\0" | version u32 (2) | count u32 | count records | SHA-256 of all before
 *   record: kind u8 (1 image, 2 name: from a format-1 keystore, path length 0) | flags u8 (1 pending) |
 *           name length u16 | path length u16 | reserved u16 | image id 16 | key 32 | name | path
 *
 * A "pending" key belongs to an image being created: it is written before the image appears and
 * confirmed after, so a crash in between leaves either a complete image with its key or a pending
 * key without an image, which the next create of that path drops.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { makeDirs } from '../files.ts';
import path from 'node:path';
import { alive, FileLock } from './lock.ts';
import { secretBuffer, secretCopy } from './secret.ts';

const MAGIC = Buffer.from('WVKEYS\0\0', 'latin1');
const VERSION = 2;
const HEAD = 16;
const RECORD_FIXED = 56;
const DIGEST = 32;
/** Most keys in one keystore. */
export const MAX_KEYSTORE_ENTRIES = 65_536;
const MAX_NAME_BYTES = 255;
const MAX_PATH_BYTES = 4096;
const MAX_FILE_BYTES = HEAD + MAX_KEYSTORE_ENTRIES * (RECORD_FIXED + MAX_NAME_BYTES + MAX_PATH_BYTES) + DIGEST;
/** How long an update waits for another process's update (each holds the lock for milliseconds). */
const LOCK_WAIT_MS = 15_000;
/** Never through a symlink, never waiting on a FIFO (it opens at once, then is refused: not a regular file). */
const NOFOLLOW = (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

const KIND_IMAGE = 1;
const KIND_NAME = 2;
const FLAG_PENDING = 1;

/** A keystore entry without its key (for listings and messages). */
export interface KeyInfo {
  /** The image id (hex), or null for a name key from a format-1 keystore. */
  imageId: string | null;
  name: string;
  /** The image's absolute path when the key was made ('' for a format-1 name key). */
  path: string;
  pending: boolean;
}

interface Entry extends KeyInfo {
  key: Buffer;
}

/** A create that would replace or hide a key that belongs to an existing image. */
export class KeyConflictError extends Error {
  constructor(
    readonly file: string,
    readonly entry: KeyInfo,
  ) {
    super(`${file} holds a key for ${entry.path || `partition ${entry.name}`} (image id ${entry.imageId ?? 'unknown: from a format-1 keystore'}, partition ${entry.name})`);
    this.name = 'KeyConflictError';
  }
}

/** The keystore file is not one (or is damaged). */
export class KeystoreFormatError extends Error {
  constructor(file: string, why: string) {
    super(`${file} is not a usable wasmvisor keystore: ${why}`);
    this.name = 'KeystoreFormatError';
  }
}

export class Keystore {
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * @param file the keystore
   * @param legacyFile a format-1 JSON keystore to take over when `file` does not exist yet (the old default place)
   */
  constructor(
    readonly file: string,
    private readonly legacyFile: string | null = null,
  ) {}

  /** The key of image `imageId` (a copy the caller zeroes) and whether its creation is still pending; null if none. */
  async find(imageId: Uint8Array): Promise<{ key: Buffer; pending: boolean; name: string; path: string } | null> {
    const id = hex(imageId);
    return this.read((entries) => {
      const e = entries.find((x) => x.imageId === id);
      return e ? { key: secretCopy(e.key), pending: e.pending, name: e.name, path: e.path } : null;
    });
  }

  /** A format-1 name key for `name` (a copy), or null. */
  async nameKey(name: string): Promise<Buffer | null> {
    return this.read((entries) => {
      const e = entries.find((x) => x.imageId === null && x.name === name);
      return e ? secretCopy(e.key) : null;
    });
  }

  /** Every entry, without keys. */
  async list(): Promise<KeyInfo[]> {
    return this.read((entries) => entries.map(({ imageId, name, path: p, pending }) => ({ imageId, name, path: p, pending })));
  }

  /**
   * Files a new image's key as pending. Refused (KeyConflictError) when a confirmed key exists for
   * that path, or a format-1 name key for `name` when `nameKeyApplies`: then the image that key
   * opens is missing, and a new one must not hide it. Pending keys of earlier creates of the path
   * that never finished are dropped; their image ids are returned (to remove their temporary files).
   */
  reserve(imageId: Uint8Array, name: string, file: string, key: Uint8Array, nameKeyApplies: boolean): Promise<string[]> {
    const id = hex(imageId);
    return this.update((entries) => {
      const conflict = entries.find(
        (e) => (e.path === file && !e.pending) || e.imageId === id || (nameKeyApplies && e.imageId === null && e.name === name),
      );
      if (conflict) throw new KeyConflictError(this.file, conflict);
      // Only image keys have a path (a name key's is empty: parse refuses one with a path).
      const stale = entries.filter((e) => e.path === file && e.pending);
      if (entries.length - stale.length >= MAX_KEYSTORE_ENTRIES) throw new KeystoreFormatError(this.file, `it holds ${MAX_KEYSTORE_ENTRIES} keys, the most it may`);
      const kept = entries.filter((e) => !stale.includes(e));
      kept.push({ imageId: id, name, path: file, pending: true, key: secretCopy(key) });
      return { entries: kept, result: stale.map((e) => e.imageId!) };
    });
  }

  /** Confirms a pending key (its image exists now). */
  commit(imageId: Uint8Array): Promise<void> {
    const id = hex(imageId);
    return this.update((entries) => {
      const e = entries.find((x) => x.imageId === id);
      if (!e || !e.pending) return { entries: null, result: undefined };
      e.pending = false;
      return { entries, result: undefined };
    });
  }

  /** Files a format-1 name key under the image it opens (the image's header verified with it). */
  adoptNameKey(name: string, imageId: Uint8Array, file: string): Promise<void> {
    const id = hex(imageId);
    return this.update((entries) => {
      const e = entries.find((x) => x.imageId === null && x.name === name);
      if (!e || entries.some((x) => x.imageId === id)) return { entries: null, result: undefined };
      e.imageId = id;
      e.path = file;
      return { entries, result: undefined };
    });
  }

  /**
   * Removes the key of image `imageId` (when known), every key of `name` filed for `file`, and the
   * format-1 name key of `name` when `nameKeyApplies`. Returns whether anything was removed. A key
   * another partition filed for the same path stays: its image may come back (a volume mounted
   * later, a backup restored), and only a wipe of that partition's name may drop it.
   */
  async remove(imageId: Uint8Array | null, file: string, name: string, nameKeyApplies: boolean): Promise<boolean> {
    const id = imageId ? hex(imageId) : null;
    const drop = (e: KeyInfo) => (id !== null && e.imageId === id) || (e.path === file && e.name === name) || (nameKeyApplies && e.imageId === null && e.name === name);
    // Nothing to remove (often: no keystore at all): no lock, no file created.
    if (!(await this.list()).some(drop)) return false;
    return this.update((entries) => {
      const kept = entries.filter((e) => !drop(e));
      if (kept.length === entries.length) return { entries: null, result: false };
      return { entries: kept, result: true };
    });
  }

  /** Runs fn on the current entries (no lock: the file is replaced atomically); every key is zeroed after. */
  private read<T>(fn: (entries: Entry[]) => T): Promise<T> {
    return this.serial(async () => {
      const entries = await this.load();
      try {
        return fn(entries);
      } finally {
        for (const e of entries) e.key.fill(0);
      }
    });
  }

  /**
   * One read-change-write under the cross-process lock. fn returns the new entries (null: no
   * change) and a result. Every key buffer is zeroed afterwards.
   */
  private update<T>(fn: (entries: Entry[]) => { entries: Entry[] | null; result: T }): Promise<T> {
    return this.serial(async () => {
      const dir = path.dirname(this.file);
      await makeDirs(dir, 0o700);
      const lock = await FileLock.acquire(`${this.file}.lock`, 'keystore update', LOCK_WAIT_MS);
      let all: Entry[] = [];
      try {
        await this.removeDeadTemps();
        const { entries, legacy } = await this.loadWithSource();
        all = entries;
        const change = fn(entries);
        if (change.entries !== null) {
          all = [...entries, ...change.entries];
          await this.save(change.entries);
          if (legacy) await unlink(this.legacyFile!).catch(() => undefined);
        }
        return change.result;
      } finally {
        for (const e of all) e.key.fill(0);
        await lock.release();
      }
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async load(): Promise<Entry[]> {
    return (await this.loadWithSource()).entries;
  }

  /** The entries, and whether they came from the format-1 file (to be removed once saved here). */
  private async loadWithSource(): Promise<{ entries: Entry[]; legacy: boolean }> {
    const bytes = await readSecretFile(this.file);
    if (bytes !== null) {
      try {
        return { entries: parse(this.file, bytes), legacy: false };
      } finally {
        bytes.fill(0);
      }
    }
    // Stryker disable next-line BooleanLiteral: equivalent: with no format-1 file, removing it after a save is a no-op (the unlink's failure is ignored)
    if (this.legacyFile === null) return { entries: [], legacy: false };
    const old = await readSecretFile(this.legacyFile);
    // Stryker disable next-line BooleanLiteral: equivalent, as above: the format-1 file does not exist
    if (old === null) return { entries: [], legacy: false };
    try {
      return { entries: parse(this.legacyFile, old), legacy: true };
    } finally {
      old.fill(0);
    }
  }

  private async save(entries: Entry[]): Promise<void> {
    const dir = path.dirname(this.file);
    const bytes = encode(entries);
    const tmp = `${this.file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    // Stryker disable next-line BooleanLiteral: equivalent: before the open the temporary file does not exist (its name is unique), and removing it is a no-op
    let created = false;
    try {
      const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, 0o600);
      created = true;
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.file);
      // Stryker disable next-line BooleanLiteral: equivalent: after the rename the temporary name is gone, and removing it is a no-op
      created = false;
    } finally {
      bytes.fill(0);
      // Never leave a copy of the keys behind: a failed write, sync or rename removes the temporary file.
      // Stryker disable next-line ConditionalExpression: equivalent, as above: removing a temporary file that does not exist is a no-op
      if (created) await unlink(tmp).catch(() => undefined);
    }
    await syncDir(dir);
  }

  /** Removes temporary files of writers that died mid-update (they hold keys). Called under the lock. */
  private async removeDeadTemps(): Promise<void> {
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const m = /^(.*)\.(\d+)\.[0-9a-f]{12}\.tmp$/.exec(n);
      if (!m || m[1] !== base) continue;
      const pid = Number(m[2]);
      // Our own temporaries exist only inside save(), which never runs concurrently with this.
      if (pid === process.pid || !alive(pid, '')) await unlink(path.join(dir, n)).catch(() => undefined);
    }
  }
}

/** Reads a whole file (never through a symlink) into a buffer of its own; null when it does not exist. */
async function readSecretFile(file: string): Promise<Buffer | null> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new KeystoreFormatError(file, 'it is not a regular file');
    const size = st.size;
    if (size > MAX_FILE_BYTES) throw new KeystoreFormatError(file, `it is ${size} bytes long, more than ${MAX_FILE_BYTES}`);
    const buf = secretBuffer(size);
    let done = 0;
    // A regular file is read whole by one read (the keystore is at most MAX_FILE_BYTES), and it is never
    // shortened in place (it is replaced by a rename): the loop's bounds for short reads are not reachable.
    // Stryker disable next-line EqualityOperator: equivalent: one more read at the end returns 0 bytes and stops the loop
    while (done < size) {
      // Stryker disable next-line ArithmeticOperator: equivalent: the first read asks for size bytes either way and gets them all
      const { bytesRead } = await handle.read(buf, done, size - done, done);
      // Stryker disable next-line ConditionalExpression: equivalent: a read returns 0 only at the end of a file that shrank while read
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf.subarray(0, done);
  } finally {
    await handle.close();
  }
}

function parse(file: string, bytes: Buffer): Entry[] {
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent: the first byte of an empty file is undefined, not '{'
  if (bytes.length > 0 && bytes[0] === 0x7b /* '{' */) return parseFormat1(file, bytes);
  const bad = (why: string) => new KeystoreFormatError(file, why);
  if (bytes.length < HEAD + DIGEST || !bytes.subarray(0, 8).equals(MAGIC)) throw bad('no keystore header');
  if (bytes.readUInt32LE(8) !== VERSION) throw bad(`format ${bytes.readUInt32LE(8)}; this runtime reads format ${VERSION}`);
  const body = bytes.subarray(0, bytes.length - DIGEST);
  if (!createHash('sha256').update(body).digest().equals(bytes.subarray(bytes.length - DIGEST))) throw bad('its checksum does not match (damaged)');
  const count = bytes.readUInt32LE(12);
  if (count > MAX_KEYSTORE_ENTRIES) throw bad(`it claims ${count} keys`);
  const entries: Entry[] = [];
  let at = HEAD;
  for (let i = 0; i < count; i++) {
    if (at + RECORD_FIXED > body.length) throw bad('truncated');
    const kind = body[at]!;
    const flags = body[at + 1]!;
    const nameLen = body.readUInt16LE(at + 2);
    const pathLen = body.readUInt16LE(at + 4);
    const end = at + RECORD_FIXED + nameLen + pathLen;
    // A name key (format 1) has no path: it was filed by name alone.
    if ((kind !== KIND_IMAGE && kind !== KIND_NAME) || (kind === KIND_NAME && pathLen !== 0) || nameLen > MAX_NAME_BYTES || pathLen > MAX_PATH_BYTES || end > body.length) {
      throw bad(`record ${i} is malformed`);
    }
    entries.push({
      imageId: kind === KIND_IMAGE ? body.toString('hex', at + 8, at + 24) : null,
      pending: (flags & FLAG_PENDING) !== 0,
      key: secretCopy(body.subarray(at + 24, at + 56)),
      name: body.toString('utf8', at + RECORD_FIXED, at + RECORD_FIXED + nameLen),
      path: body.toString('utf8', at + RECORD_FIXED + nameLen, end),
    });
    at = end;
  }
  if (at !== body.length) throw bad('trailing bytes');
  return entries;
}

/** The format-1 keystore (JSON, name -> base64 key), read once to be taken over. */
function parseFormat1(file: string, bytes: Buffer): Entry[] {
  let parsed: { format?: unknown; keys?: unknown };
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as typeof parsed;
  } catch {
    throw new KeystoreFormatError(file, 'it is neither a binary keystore nor JSON');
  }
  if (parsed.format !== 'wasmvisor-keystore/1' || typeof parsed.keys !== 'object' || parsed.keys === null) {
    throw new KeystoreFormatError(file, 'not a wasmvisor-keystore/1 file');
  }
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(parsed.keys as Record<string, unknown>)) {
    if (typeof value !== 'string') continue;
    const raw = Buffer.from(value, 'base64');
    if (raw.length === 32) entries.push({ imageId: null, name, path: '', pending: false, key: secretCopy(raw) });
    raw.fill(0);
  }
  return entries;
}

function encode(entries: Entry[]): Buffer {
  // Stryker disable next-line StringLiteral: equivalent: an empty encoding is UTF-8, the default
  const names = entries.map((e) => Buffer.from(e.name, 'utf8'));
  // Stryker disable next-line StringLiteral: equivalent, as above
  const paths = entries.map((e) => Buffer.from(e.path, 'utf8'));
  let size = HEAD + DIGEST;
  entries.forEach((_, i) => (size += RECORD_FIXED + names[i]!.length + paths[i]!.length));
  const out = secretBuffer(size);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(VERSION, 8);
  out.writeUInt32LE(entries.length, 12);
  let at = HEAD;
  entries.forEach((e, i) => {
    const name = names[i]!;
    const p = paths[i]!;
    if (name.length > MAX_NAME_BYTES || p.length > MAX_PATH_BYTES) throw new RangeError(`keystore entry ${e.name} has a name or path too long to file`);
    out[at] = e.imageId === null ? KIND_NAME : KIND_IMAGE;
    out[at + 1] = e.pending ? FLAG_PENDING : 0;
    out.writeUInt16LE(name.length, at + 2);
    out.writeUInt16LE(p.length, at + 4);
    if (e.imageId !== null) out.write(e.imageId, at + 8, 16, 'hex');
    e.key.copy(out, at + 24, 0, 32);
    name.copy(out, at + RECORD_FIXED);
    p.copy(out, at + RECORD_FIXED + name.length);
    at += RECORD_FIXED + name.length + p.length;
  });
  createHash('sha256').update(out.subarray(0, at)).digest().copy(out, at);
  return out;
}

function hex(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
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
