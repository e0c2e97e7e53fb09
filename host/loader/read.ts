import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, ModuleInvalidError } from '../errors.ts';
import { readRegularFile } from '../files.ts';
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
 * - Never allocates or reads more than `maxBytes + 1` bytes, whatever the source claims: a file
 *   is read by host/files.ts, refused over the cap before its content is read, checked on its
 *   descriptor, and refused when its size changes while it is read rather than half-measured.
 *   Only a regular file is read (a FIFO or /dev/zero would block or never end), unless the
 *   caller is the command line and says `pipes` (`wasmvisor verify <(curl …)`): then a pipe is
 *   read too, up to the same cap.
 * - Failures are ModuleInvalidError naming the path (or "bytes"), the size and the cap, or
 *   the OS reason; a bad `maxBytes` or source type is InvalidArgumentError.
 */
export async function readModuleSource(source: ModuleSource, maxBytes: number = DEFAULT_MAX_MODULE_BYTES, options: { pipes?: boolean } = {}): Promise<Uint8Array> {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new InvalidArgumentError(`maxModuleBytes must be a non-negative integer, got ${quoted(maxBytes)}`);
  }
  if (source instanceof Uint8Array) return copyBytes(source, maxBytes);
  if (source instanceof ArrayBuffer) return copyBytes(new Uint8Array(source), maxBytes);
  if (typeof source === 'string') return readFile(source, maxBytes, options.pipes === true);
  if (source instanceof URL) {
    if (source.protocol !== 'file:') throw new InvalidArgumentError(`module URL must be a file: URL, got ${source.href}`);
    return readFile(fileURLToPath(source), maxBytes, options.pipes === true);
  }
  throw new InvalidArgumentError(`module source must be a Uint8Array, an ArrayBuffer, a path or a file: URL, got ${quoted(source)}`);
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

/** A module file as files.ts reads one (bounded, checked on the descriptor), failures as ERR_MODULE_INVALID. */
async function readFile(path: string, maxBytes: number, pipes: boolean): Promise<Uint8Array> {
  const bytes = await readRegularFile(path, { maxBytes, what: 'module file', pipes, error: (message, cause) => new ModuleInvalidError(message, cause === undefined ? undefined : { cause }) });
  // A plain Uint8Array over the same memory, as bytes given in memory come out (not a Buffer).
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
