import { constants as fsConstants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, ModuleInvalidError } from '../errors.ts';
import { quoted } from '../escape.ts';

/** Default module size cap: 16 MiB, far above any guest we ship, far below a memory problem. */
export const DEFAULT_MAX_MODULE_BYTES = 16 * 1024 * 1024;

/** Where a module comes from: bytes in memory, or a file path (string or `file:` URL). */
export type ModuleSource = Uint8Array | ArrayBuffer | string | URL;

/**
 * Reads a module into a fresh, private Uint8Array of at most `maxBytes` bytes.
 *
 * Invariants:
 * - The result is a copy the caller does not hold: what is measured is what runs, even if
 *   the caller mutates its buffer afterwards.
 * - Never allocates or reads more than `maxBytes + 1` bytes, whatever the source claims:
 *   a file is stat'ed and refused over the cap before its content is read, only regular
 *   files are read (a FIFO or /dev/zero would block or never end), and a file whose size
 *   changes while it is read is refused rather than half-measured.
 * - Failures are ModuleInvalidError naming the path (or "bytes"), the size and the cap, or
 *   the OS reason; a bad `maxBytes` or source type is InvalidArgumentError.
 */
export async function readModuleSource(source: ModuleSource, maxBytes: number = DEFAULT_MAX_MODULE_BYTES): Promise<Uint8Array> {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new InvalidArgumentError(`maxModuleBytes must be a non-negative integer, got ${quoted(maxBytes)}`);
  }
  if (source instanceof Uint8Array) return copyBytes(source, maxBytes);
  if (source instanceof ArrayBuffer) return copyBytes(new Uint8Array(source), maxBytes);
  if (typeof source === 'string') return readFile(source, maxBytes);
  if (source instanceof URL) {
    if (source.protocol !== 'file:') throw new InvalidArgumentError(`module URL must be a file: URL, got ${source.href}`);
    return readFile(fileURLToPath(source), maxBytes);
  }
  throw new InvalidArgumentError('module source must be a Uint8Array, an ArrayBuffer, a path or a file: URL');
}

/**
 * The caller's own bytes, not copied, when `source` is in memory and within `maxBytes`; null
 * otherwise (a file, an oversized or a wrong source: `readModuleSource` says what is wrong).
 * Only for a look that ends before the caller can run again (a hash, synchronously): anything
 * kept or handed on must come from `readModuleSource`, a copy.
 */
export function peekModuleBytes(source: ModuleSource, maxBytes: number): Uint8Array | null {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) return null;
  const bytes = source instanceof Uint8Array ? source : source instanceof ArrayBuffer ? new Uint8Array(source) : null;
  return bytes !== null && bytes.byteLength <= maxBytes ? bytes : null;
}

function copyBytes(src: Uint8Array, maxBytes: number): Uint8Array {
  if (src.byteLength > maxBytes) throw tooLarge('module bytes', src.byteLength, maxBytes);
  // Explicit allocate-and-set: Buffer#slice would return a view, not a copy.
  const copy = new Uint8Array(src.byteLength);
  copy.set(src);
  return copy;
}

function tooLarge(what: string, size: number, maxBytes: number): ModuleInvalidError {
  return new ModuleInvalidError(`${what} is ${size} bytes, over the module size cap of ${maxBytes} bytes`);
}

function unreadable(path: string, error: unknown): ModuleInvalidError {
  const reason = error instanceof Error ? error.message : String(error);
  return new ModuleInvalidError(`cannot read module file ${path}: ${reason}`, { cause: error });
}

async function readFile(path: string, maxBytes: number): Promise<Uint8Array> {
  // Stat by path first: refuses oversized and non-regular files without opening them
  // (opening a FIFO for reading blocks until a writer appears).
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new ModuleInvalidError(`module path ${path} is not a regular file`);
    size = info.size;
  } catch (error) {
    if (error instanceof ModuleInvalidError) throw error;
    throw unreadable(path, error);
  }
  if (size > maxBytes) throw tooLarge(`module file ${path}`, size, maxBytes);

  let handle: FileHandle | undefined;
  try {
    // O_NONBLOCK: if the path was swapped for a FIFO since the stat, open does not hang.
    handle = await open(path, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0));
    // Re-check on the handle: this is the file we will actually read.
    const info = await handle.stat();
    if (!info.isFile()) throw new ModuleInvalidError(`module path ${path} is not a regular file`);
    if (info.size > maxBytes) throw tooLarge(`module file ${path}`, info.size, maxBytes);
    const buffer = new Uint8Array(info.size);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    // A one-byte probe past the stat'ed size detects a file that grew after the stat.
    const probe = await handle.read(new Uint8Array(1), 0, 1, info.size);
    if (filled !== info.size || probe.bytesRead !== 0) {
      throw new ModuleInvalidError(`module file ${path} changed size while being read (${info.size} bytes at stat time)`);
    }
    return buffer;
  } catch (error) {
    if (error instanceof ModuleInvalidError) throw error;
    throw unreadable(path, error);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
