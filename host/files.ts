/**
 * Reading a file the host was pointed at (a policy, a key, a token, a config or manifest file, a
 * signature): bounded, and never blocked by what the path turns out to be.
 *
 * - Opened with O_NONBLOCK (and O_NOCTTY): a FIFO put where a file was expected opens at once
 *   instead of waiting for a writer forever, then is refused as not a regular file.
 * - Checked on the open descriptor (fstat), so what is judged is what is read: a path swapped
 *   between a stat and the read cannot slip a FIFO, a device or a directory past the check.
 * - Never reads more than its stat'ed size (at most `maxBytes`) and one byte: a file over the
 *   bound is refused before it is read, one that grows while it is read is refused when it does
 *   (/dev/zero behind a symlink is a device, refused before).
 * - Every failure is a typed error naming the file (ERR_INVALID_ARGUMENT unless the caller gives
 *   its own), with the OS error as its cause; `isMissingFile` tells a file that does not exist.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { InvalidArgumentError, WasmvisorError } from './errors.ts';

const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

export interface ReadFileOptions {
  /** Largest file accepted, bytes. */
  maxBytes: number;
  /** What the file is, for messages: `policy file`, `key file`, `token file`. */
  what: string;
  /** Refuse a symbolic link at the path itself (ELOOP), rather than follow it. */
  noFollow?: boolean;
  /** The error to throw (default ERR_INVALID_ARGUMENT). */
  error?: (message: string, cause?: unknown) => WasmvisorError;
}

function invalid(message: string, cause?: unknown): WasmvisorError {
  const error = new InvalidArgumentError(message);
  if (cause !== undefined) Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true });
  return error;
}

function flags(o: ReadFileOptions): number {
  return o.noFollow ? READ_FLAGS | (constants.O_NOFOLLOW ?? 0) : READ_FLAGS;
}

/** Whether `error` (from readRegularFile/Sync) says the file does not exist. */
export function isMissingFile(error: unknown): boolean {
  return error instanceof WasmvisorError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function kind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function checkStat(file: string, st: Stats, o: ReadFileOptions): void {
  const fail = o.error ?? invalid;
  if (!st.isFile()) throw fail(`${o.what} ${file} is ${kind(st)}, not a regular file`);
  if (st.size > o.maxBytes) throw fail(`${o.what} ${file} is ${st.size} bytes, over the ${o.maxBytes}-byte limit`);
}

function unreadable(file: string, error: unknown, o: ReadFileOptions): WasmvisorError {
  return (o.error ?? invalid)(`cannot read ${o.what} ${file}: ${error instanceof Error ? error.message : String(error)}`, error);
}

/** A file that grew past its stat'ed size while read: refused rather than read piecemeal. */
function grew(file: string, o: ReadFileOptions): WasmvisorError {
  return (o.error ?? invalid)(`${o.what} ${file} changed size while it was read`);
}

/** Reads a regular file of at most `maxBytes` (see the file comment). */
export function readRegularFileSync(file: string, o: ReadFileOptions): Buffer {
  let fd: number;
  try {
    fd = openSync(file, flags(o));
  } catch (error) {
    throw unreadable(file, error, o);
  }
  try {
    const st = fstatSync(fd);
    checkStat(file, st, o);
    // The stat'ed size and one byte more: a file that grew is seen, and never read further.
    const buffer = Buffer.alloc(st.size + 1);
    let filled = 0;
    for (;;) {
      const n = readSync(fd, buffer, filled, buffer.length - filled, null);
      if (n === 0) break;
      filled += n;
      if (filled === buffer.length) throw grew(file, o);
    }
    return buffer.subarray(0, filled);
  } catch (error) {
    if (error instanceof WasmvisorError) throw error;
    throw unreadable(file, error, o);
  } finally {
    closeSync(fd);
  }
}

/** Reads a regular file of at most `maxBytes` without blocking the event loop (see the file comment). */
export async function readRegularFile(file: string, o: ReadFileOptions): Promise<Buffer> {
  let handle: FileHandle;
  try {
    handle = await open(file, flags(o));
  } catch (error) {
    throw unreadable(file, error, o);
  }
  try {
    const st = await handle.stat();
    checkStat(file, st, o);
    const buffer = Buffer.alloc(st.size + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled === buffer.length) throw grew(file, o);
    }
    return buffer.subarray(0, filled);
  } catch (error) {
    if (error instanceof WasmvisorError) throw error;
    throw unreadable(file, error, o);
  } finally {
    await handle.close().catch(() => undefined);
  }
}
