/**
 * Reading a file the host was pointed at (a policy, a key, a token, a config or manifest file, a
 * signature): bounded, and never blocked by what the path turns out to be.
 *
 * - Opened with O_NONBLOCK (and O_NOCTTY): a FIFO put where a file was expected opens at once
 *   instead of waiting for a writer forever, then is refused as not a regular file.
 * - Checked on the open descriptor (fstat), so what is judged is what is read: a path swapped
 *   between a stat and the read cannot slip a FIFO, a device or a directory past the check.
 * - Never reads more than its stat'ed size (at most `maxBytes`) and one byte: a file over the
 *   bound is refused before it is read, one that grows or shrinks while it is read is refused
 *   (/dev/zero behind a symlink is a device, refused before). The bytes of a regular file are a
 *   buffer of exactly its size (the one byte past it goes to a probe), so they can be
 *   transferred to a worker whole.
 * - Every failure is a typed error naming the file (ERR_INVALID_ARGUMENT unless the caller gives
 *   its own), with the OS error as its cause; `isMissingFile` tells a file that does not exist.
 * - `pipes: true` (only for a file a user names on the command line, where `--token-file
 *   /dev/stdin` or `<(cmd)` is legitimate) also reads a FIFO: a path that is one is opened without
 *   O_NONBLOCK, which waits for its writer as `cat` would (opening it non-blocking first and again
 *   could miss a writer that came and went in between, then wait for ever), checked on the
 *   descriptor to be that FIFO, and read up to `maxBytes` (one byte more is refused, so `yes |` is
 *   never read whole). Devices, directories and sockets are refused as ever.
 */
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { lstat, mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, WasmvisorError } from './errors.ts';

const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

export interface ReadFileOptions {
  /** Largest file accepted, bytes. */
  maxBytes: number;
  /** What the file is, for messages: `policy file`, `key file`, `token file`. */
  what: string;
  /** Refuse a symbolic link at the path itself (ELOOP), rather than follow it. */
  noFollow?: boolean;
  /** Also read a pipe (a FIFO), waiting for its writer: for files named on the command line only (see the file comment). */
  pipes?: boolean;
  /** The error to throw (default ERR_INVALID_ARGUMENT). */
  error?: (message: string, cause?: unknown) => WasmvisorError;
  /** The error for a file or pipe over `maxBytes`, when it is not `error`'s (an attestation report's: ERR_INTEGRITY). */
  tooLarge?: (message: string) => WasmvisorError;
}

/**
 * `mkdir -p`: makes `dir` and its missing parents (each with `mode`), and returns the first folder
 * it made (undefined when `dir` was there), as node:fs's `recursive` mode does. Not that mode:
 * on Node 20 it never returns (a busy loop: `mkdirSync('/proc/x', { recursive: true })`) when a
 * parent exists but mkdir in it fails with ENOENT, as under /proc, so `--data-dir /proc/x` or
 * `cert create --out /proc/x` hung the command. Here each level is made once: the first error
 * other than EEXIST (another process made it meanwhile) is thrown, naming the folder.
 */
export function makeDirsSync(dir: string, mode: number): string | undefined {
  const missing: string[] = [];
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const there = lookUp(missing, at, () => statSync(at));
    if (there) break;
  }
  let first: string | undefined;
  for (let i = missing.length - 1; i >= 0; i--) {
    try {
      mkdirSync(missing[i]!, { mode });
      first ??= missing[i];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  return first;
}

/** makeDirsSync without blocking the event loop. */
export async function makeDirs(dir: string, mode: number): Promise<string | undefined> {
  const missing: string[] = [];
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    let error: unknown = null;
    await stat(at).catch((e: unknown) => (error = e));
    if (lookUp(missing, at, () => { if (error !== null) throw error; })) break;
  }
  let first: string | undefined;
  for (let i = missing.length - 1; i >= 0; i--) {
    try {
      await mkdir(missing[i]!, { mode });
      first ??= missing[i];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  return first;
}

/**
 * One step up of makeDirs: true when the walk stops at `at`. A folder that is there stops it; one
 * that is missing is to be made (and its parent looked at, unless it is the root); one that
 * cannot be looked at (ENOTDIR, EACCES) is to be made too, so that mkdir says what is wrong.
 */
function lookUp(missing: string[], at: string, look: () => void): boolean {
  try {
    look();
    return true;
  } catch (error) {
    missing.push(at);
    return (error as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(at) === at;
  }
}

/** A path that names a descriptor (`<(cmd)` is /dev/fd/63, `/dev/stdin`, /proc/self/fd/0): it says nothing of what is read through it. */
export function namesDescriptor(file: string): boolean {
  return /^\/(?:dev\/(?:stdin|fd\/\d+)|proc\/(?:self|\d+)\/fd\/\d+)$/.test(file);
}

function invalid(message: string, cause?: unknown): WasmvisorError {
  const error = new InvalidArgumentError(message);
  if (cause !== undefined) Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true });
  return error;
}

function flags(o: ReadFileOptions): number {
  return o.noFollow ? READ_FLAGS | (constants.O_NOFOLLOW ?? 0) : READ_FLAGS;
}

/** Whether to open as a pipe: `pipes` and the path is a FIFO now (judged again on the descriptor). */
function opensAsPipe(path: Stats | null, o: ReadFileOptions): boolean {
  return o.pipes === true && path !== null && path.isFIFO();
}

/** The flags to open with: blocking for a pipe (its open and reads wait for the writer). */
function openFlags(asPipe: boolean, o: ReadFileOptions): number {
  return asPipe ? flags(o) & ~(constants.O_NONBLOCK ?? 0) : flags(o);
}

/** Whether `error` (from readRegularFile/Sync) says the file does not exist. */
export function isMissingFile(error: unknown): boolean {
  return error instanceof WasmvisorError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** What `st` is, in words ("a directory", "a FIFO", …), for messages that name a file. */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** `path`: the path's own stat when opened as a pipe (the descriptor must be that FIFO), else null. */
function checkStat(file: string, st: Stats, path: Stats | null, o: ReadFileOptions): void {
  const fail = o.error ?? invalid;
  if (path !== null) {
    if (!st.isFIFO() || st.dev !== path.dev || st.ino !== path.ino) throw fail(`${o.what} ${file} changed while it was opened`);
    return;
  }
  if (!st.isFile()) throw fail(`${o.what} ${file} is ${fileKind(st)}${o.pipes ? ', not a regular file or a pipe' : ', not a regular file'}`);
  if (st.size > o.maxBytes) throw (o.tooLarge ?? fail)(`${o.what} ${file} is ${st.size} bytes, over the ${o.maxBytes}-byte limit`);
}

/** Any failure as the caller's typed error naming the file (ours pass through). */
function typed(file: string, error: unknown, o: ReadFileOptions): WasmvisorError {
  if (error instanceof WasmvisorError) return error;
  return (o.error ?? invalid)(`cannot read ${o.what} ${file}: ${error instanceof Error ? error.message : String(error)}`, error);
}

/** Where the read past a regular file's stat'ed size goes: its content is never looked at, only whether a byte came. */
const PROBE = Buffer.alloc(1);

/**
 * One read of a file, the loop both readers share: each read goes to `target` at `at`, for
 * `room` bytes; `took(n)` counts them and says when the file has ended. A regular file is read
 * into a buffer of its stat'ed size, then one byte more into PROBE (a file that grew is seen,
 * never read further; one that shrank ends early and is refused); a pipe into a buffer that grows
 * up to `maxBytes` and one byte more (more than the bound is refused).
 */
class Reading {
  private buffer: Buffer;
  private filled = 0;
  private readonly pipe: boolean;
  private readonly limit: number;

  constructor(
    private readonly file: string,
    st: Stats,
    private readonly o: ReadFileOptions,
  ) {
    this.pipe = st.isFIFO();
    this.limit = this.pipe ? o.maxBytes + 1 : st.size;
    this.buffer = Buffer.alloc(this.pipe ? Math.min(this.limit, 65536) : this.limit);
  }

  /** Where the next read goes: the buffer, or a regular file read to its size, the probe. */
  get target(): Buffer {
    return this.filled < this.buffer.length ? this.buffer : PROBE;
  }

  get at(): number {
    return this.filled < this.buffer.length ? this.filled : 0;
  }

  get room(): number {
    return this.filled < this.buffer.length ? this.buffer.length - this.filled : 1;
  }

  /** Counts `n` bytes read; true once the file has ended (a read of 0). */
  took(n: number): boolean {
    if (n === 0) {
      if (!this.pipe && this.filled !== this.limit) throw this.changed();
      return true;
    }
    if (!this.pipe && this.filled === this.limit) throw this.changed();
    this.filled += n;
    if (this.pipe && this.filled === this.limit) {
      throw (this.o.tooLarge ?? this.o.error ?? invalid)(`${this.o.what} ${this.file} gave more than ${this.o.maxBytes} bytes, over the ${this.o.maxBytes}-byte limit`);
    }
    if (this.pipe && this.filled === this.buffer.length) {
      const bigger = Buffer.alloc(Math.min(this.limit, this.buffer.length * 2));
      this.buffer.copy(bigger, 0, 0, this.filled);
      this.buffer = bigger;
    }
    return false;
  }

  private changed(): WasmvisorError {
    return (this.o.error ?? invalid)(`${this.o.what} ${this.file} changed size while it was read`);
  }

  /** What was read: a regular file's whole buffer (exactly its size), a pipe's filled part. */
  bytes(): Buffer {
    return this.filled === this.buffer.length ? this.buffer : this.buffer.subarray(0, this.filled);
  }
}

/** The path's stat when `pipes` may make it a pipe: null for no, or when it cannot be stat'ed (the open says why). */
function pathStatSync(file: string, o: ReadFileOptions): Stats | null {
  if (o.pipes !== true) return null;
  try {
    return (o.noFollow ? lstatSync : statSync)(file);
  } catch {
    return null;
  }
}

async function pathStat(file: string, o: ReadFileOptions): Promise<Stats | null> {
  if (o.pipes !== true) return null;
  return (o.noFollow ? lstat : stat)(file).catch(() => null);
}

/** Reads a regular file (or with `pipes`, a FIFO) of at most `maxBytes` (see the file comment). */
export function readRegularFileSync(file: string, o: ReadFileOptions): Buffer {
  let fd = -1;
  try {
    const path = pathStatSync(file, o);
    const asPipe = opensAsPipe(path, o);
    fd = openSync(file, openFlags(asPipe, o));
    const st = fstatSync(fd);
    checkStat(file, st, asPipe ? path : null, o);
    const r = new Reading(file, st, o);
    while (!r.took(readSync(fd, r.target, r.at, r.room, null)));
    return r.bytes();
  } catch (error) {
    throw typed(file, error, o);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Reads a regular file (or with `pipes`, a FIFO) of at most `maxBytes` without blocking the event loop (see the file comment). */
export async function readRegularFile(file: string, o: ReadFileOptions): Promise<Buffer> {
  let handle: FileHandle | null = null;
  try {
    const path = await pathStat(file, o);
    const asPipe = opensAsPipe(path, o);
    handle = await open(file, openFlags(asPipe, o));
    const st = await handle.stat();
    checkStat(file, st, asPipe ? path : null, o);
    const r = new Reading(file, st, o);
    while (!r.took((await handle.read(r.target, r.at, r.room, null)).bytesRead));
    return r.bytes();
  } catch (error) {
    throw typed(file, error, o);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
