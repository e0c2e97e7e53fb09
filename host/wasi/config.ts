import { closeSync, constants, openSync, statSync } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import { VFS_ENTRY_HEAP_BYTES, type SeedEntry } from './vfs.ts';

/**
 * How a preopen gives the guest a host folder:
 * - `ro` (the default): the folder itself, read lazily; nothing under it can change (EROFS);
 * - `rw`: the folder itself, read and written in place, never anything outside it;
 * - `copy`: a private in-memory copy made when the partition is created; the folder is never
 *   touched again (changes stay in the partition and are gone when it ends).
 */
export type PreopenMode = 'ro' | 'rw' | 'copy';

/** A preopen: a directory the guest sees at `guestPath`. */
export interface PreopenSpec {
  /** Where the guest sees it, e.g. `/sandbox` or `.`. */
  guestPath: string;
  /** A host folder to give the guest (see `mode`). Without it: an empty in-memory directory. */
  hostPath?: string;
  /** How the host folder is given: `'ro'` (default), `'rw'` or `'copy'`. Only with `hostPath`. */
  mode?: PreopenMode;
  /** For an in-memory directory (no `hostPath`, or mode `'copy'`): the guest may not change it (EROFS). Default false. */
  readonly?: boolean;
}

/** Per-partition file-system limits (all preopens together). */
export interface WasiQuotas {
  /**
   * Bytes the guest may hold or add: file contents, symlink targets and names, across in-memory
   * preopens (a `copy` seed included) and what it adds to `rw` host folders (net: growth charges,
   * shrinking or removing refunds). Default 16 MiB, at most 2^40.
   */
  maxBytes?: number;
  /** Entries the guest may hold or add: files, directories, symlinks and hard links (each name counts). Default 4096. */
  maxInodes?: number;
  /** Open fds at once, stdio and preopens included. Default 128. */
  maxFds?: number;
  /** Longest path a call may pass, bytes. Default 4096. */
  maxPathBytes?: number;
}

/** `wasi` in a partition spec: enables WASI preview1 (`wasi_snapshot_preview1` imports). */
export interface WasiSpec {
  /** argv, argv[0] included. Default: [partition name, ...spec.args]. */
  args?: string[];
  /** Environment, as an object or `KEY=VALUE` strings. Default empty. */
  env?: Record<string, string> | string[];
  preopens?: PreopenSpec[];
  /** fd 0: `'console'` (the console device's input stream; default), `'none'` (EOF), or fixed bytes. */
  stdin?: 'console' | 'none' | string | Uint8Array;
  quotas?: WasiQuotas;
}

/** A preopen as the worker gets it: a tree to build in memory, or a host folder's fd (opened by the root). */
export type ResolvedPreopen =
  | { guestPath: string; kind: 'virtual'; readonly: boolean; entries: SeedEntry[] }
  | { guestPath: string; kind: 'host'; mode: 'ro' | 'rw'; fd: number };

export interface ResolvedWasi {
  args: string[];
  env: string[];
  preopens: ResolvedPreopen[];
  stdin: { kind: 'console' } | { kind: 'none' } | { kind: 'bytes'; bytes: Uint8Array };
  quotas: Required<WasiQuotas>;
}

export const WASI_QUOTA_DEFAULTS: Required<WasiQuotas> = {
  maxBytes: 16 * 1024 * 1024,
  maxInodes: 4096,
  maxFds: 128,
  maxPathBytes: 4096,
};

/** Accepted ranges of the quotas (the CLI's --wasi-quota checks the same). */
export const WASI_QUOTA_RANGES: Record<keyof WasiQuotas, [number, number]> = {
  maxBytes: [0, 2 ** 40],
  maxInodes: [1, 1 << 20],
  maxFds: [3, 1 << 16],
  maxPathBytes: [16, 1 << 16],
};

function quota(value: number | undefined, what: keyof WasiQuotas): number {
  const v = value ?? WASI_QUOTA_DEFAULTS[what];
  const [min, max] = WASI_QUOTA_RANGES[what];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`wasi.quotas.${what} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return v;
}

/**
 * Memory a partition's WASI may take in its worker, for admission and the worker's heap limit:
 * in-memory preopens hold up to 1.5 x the byte quota in file buffers (external to the JS heap,
 * see capacityFor in vfs.ts) and VFS_ENTRY_HEAP_BYTES of heap per entry. Host preopens hold
 * their data on the host's disk.
 */
export function wasiMemory(w: ResolvedWasi | null): { bufferBytes: number; heapBytes: number } {
  if (w === null || !w.preopens.some((p) => p.kind === 'virtual')) return { bufferBytes: 0, heapBytes: 0 };
  return { bufferBytes: Math.ceil(w.quotas.maxBytes * 1.5), heapBytes: w.quotas.maxInodes * VFS_ENTRY_HEAP_BYTES };
}

/**
 * Validates a WASI spec, copies `copy` folders and opens `ro` / `rw` folders (in the root, before
 * the partition starts). Copies follow no host symlink (they are copied as symlinks; special
 * files are skipped) and count against the quotas: over them is ERR_INVALID_ARGUMENT. A host
 * folder is opened as a directory fd that the worker reaches only through; the root closes it
 * with `releaseWasi`.
 */
export async function resolveWasi(spec: WasiSpec, defaultArgs: string[]): Promise<ResolvedWasi> {
  if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError('wasi must be an object');
  const q = spec.quotas ?? {};
  const quotas: Required<WasiQuotas> = {
    maxBytes: quota(q.maxBytes, 'maxBytes'),
    maxInodes: quota(q.maxInodes, 'maxInodes'),
    maxFds: quota(q.maxFds, 'maxFds'),
    maxPathBytes: quota(q.maxPathBytes, 'maxPathBytes'),
  };
  const args = spec.args ?? defaultArgs;
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new InvalidArgumentError('wasi.args must be an array of strings');
  const env = Array.isArray(spec.env) ? spec.env : Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of env) {
    if (typeof e !== 'string' || !/^[^=\0]+=[^\0]*$/.test(e)) throw new InvalidArgumentError(`wasi.env entry ${JSON.stringify(e)} must be KEY=VALUE`);
  }
  let stdin: ResolvedWasi['stdin'];
  const s = spec.stdin ?? 'console';
  if (s === 'console' || s === 'none') stdin = { kind: s };
  else if (typeof s === 'string') stdin = { kind: 'bytes', bytes: new TextEncoder().encode(s) };
  else if (s instanceof Uint8Array) stdin = { kind: 'bytes', bytes: s.slice() };
  else throw new InvalidArgumentError("wasi.stdin must be 'console', 'none', a string or a Uint8Array");

  const budget = { bytes: quotas.maxBytes, inodes: quotas.maxInodes };
  const preopens: ResolvedPreopen[] = [];
  const resolved: ResolvedWasi = { args: [...args], env: [...env], preopens, stdin, quotas };
  try {
    for (const p of spec.preopens ?? []) {
      if (typeof p !== 'object' || p === null || typeof p.guestPath !== 'string' || p.guestPath.length === 0 || p.guestPath.includes('\0')) {
        throw new InvalidArgumentError('each wasi.preopens entry needs a non-empty guestPath');
      }
      const where = `wasi preopen ${p.guestPath}`;
      if (p.mode !== undefined && p.mode !== 'ro' && p.mode !== 'rw' && p.mode !== 'copy') {
        throw new InvalidArgumentError(`${where}: mode must be 'ro', 'rw' or 'copy', got ${JSON.stringify(p.mode)}`);
      }
      if (p.readonly !== undefined && typeof p.readonly !== 'boolean') throw new InvalidArgumentError(`${where}: readonly must be a boolean`);
      if (p.hostPath === undefined) {
        if (p.mode !== undefined && p.mode !== 'copy') throw new InvalidArgumentError(`${where}: mode '${p.mode}' needs a hostPath`);
        if (--budget.inodes < 0) throw new InvalidArgumentError(`wasi preopens need more than ${quotas.maxInodes} entries`);
        preopens.push({ guestPath: p.guestPath, kind: 'virtual', readonly: p.readonly === true, entries: [] });
        continue;
      }
      if (typeof p.hostPath !== 'string' || p.hostPath.length === 0 || p.hostPath.includes('\0')) throw new InvalidArgumentError(`${where}: hostPath must be a non-empty string`);
      // Before modes existed a hostPath meant a writable copy: say so rather than guess.
      if (p.mode === undefined && p.readonly === false) {
        throw new InvalidArgumentError(`${where}: readonly: false needs a mode: 'copy' (a private, writable copy) or 'rw' (writes reach ${p.hostPath})`);
      }
      const mode = p.mode ?? 'ro';
      if (mode === 'rw' && p.readonly === true) throw new InvalidArgumentError(`${where}: mode 'rw' and readonly: true contradict each other`);
      const root = path.resolve(p.hostPath);
      if (mode === 'copy') {
        const st = await lstat(root).catch(() => null);
        if (st === null || !st.isDirectory()) throw new InvalidArgumentError(`${where}: host folder ${p.hostPath} is not a directory`);
        if (--budget.inodes < 0) throw new InvalidArgumentError(`wasi preopens need more than ${quotas.maxInodes} entries`);
        preopens.push({ guestPath: p.guestPath, kind: 'virtual', readonly: p.readonly === true, entries: await copyTree(root, budget, quotas) });
      } else {
        preopens.push({ guestPath: p.guestPath, kind: 'host', mode, fd: openHostFolder(root, where, p.hostPath) });
      }
    }
    if (3 + preopens.length > quotas.maxFds) throw new InvalidArgumentError(`wasi needs ${3 + preopens.length} fds for stdio and preopens; maxFds is ${quotas.maxFds}`);
  } catch (error) {
    releaseWasi(resolved);
    throw error;
  }
  return resolved;
}

/**
 * Opens a host folder for a preopen (following the embedder's own symlinks: the path is theirs).
 * The worker reaches it only as `/proc/self/fd/<fd>`, so that must work here (Linux).
 */
function openHostFolder(root: string, where: string, given: string): number {
  let fd: number;
  try {
    fd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new InvalidArgumentError(`${where}: host folder ${given} ${code === 'ENOTDIR' || code === 'ENOENT' ? 'is not a directory' : `cannot be opened (${code ?? String(error)})`}`);
  }
  try {
    statSync(`/proc/self/fd/${fd}`);
  } catch {
    closeSync(fd);
    throw new InvalidArgumentError(`${where}: host folders in 'ro' or 'rw' mode need Linux's /proc; use mode 'copy' here`);
  }
  return fd;
}

/** Closes what the root opened for a partition's WASI (its host folders' fds). Idempotent. */
export function releaseWasi(w: ResolvedWasi | null): void {
  if (w === null) return;
  for (const p of w.preopens) {
    if (p.kind !== 'host' || p.fd < 0) continue;
    try {
      closeSync(p.fd);
    } catch {
      // already closed
    }
    (p as { fd: number }).fd = -1;
  }
}

/**
 * Reads a host folder for a `copy` preopen: directories, files and symlinks (as symlinks), parents
 * before children. Iterative: the folder's depth may be anything (a guest may have built it).
 */
async function copyTree(root: string, budget: { bytes: number; inodes: number }, quotas: Required<WasiQuotas>): Promise<SeedEntry[]> {
  const out: SeedEntry[] = [];
  const pending: { host: string; rel: string }[] = [{ host: root, rel: '' }];
  for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
    const names = (await readdir(next.host)).sort();
    for (const name of names) {
      const host = path.join(next.host, name);
      const guest = next.rel === '' ? name : `${next.rel}/${name}`;
      const st = await lstat(host);
      if (!st.isDirectory() && !st.isFile() && !st.isSymbolicLink()) continue;
      const over = (): never => {
        throw new InvalidArgumentError(
          `copying ${guest} from ${host} exceeds the WASI quota (${quotas.maxBytes} bytes, ${quotas.maxInodes} entries): ` +
            `raise wasi.quotas (CLI: --wasi-quota bytes=…,inodes=…), or give the folder in place (mode 'ro' or 'rw')`,
        );
      };
      if (--budget.inodes < 0) over();
      if ((budget.bytes -= Buffer.byteLength(name)) < 0) over();
      if (st.isDirectory()) {
        out.push({ path: guest, kind: 'dir' });
        pending.push({ host, rel: guest });
      } else if (st.isFile()) {
        if ((budget.bytes -= st.size) < 0) over();
        const data = await readFile(host);
        out.push({ path: guest, kind: 'file', data: new Uint8Array(data.buffer, data.byteOffset, data.length) });
      } else {
        const target = await readlink(host);
        if ((budget.bytes -= Buffer.byteLength(target)) < 0) over();
        out.push({ path: guest, kind: 'symlink', target });
      }
    }
  }
  return out;
}
