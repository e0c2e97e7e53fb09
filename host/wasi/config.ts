import { closeSync, constants, openSync, statSync } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import { readRegularFile } from '../files.ts';
import { WasiQuotasSchema, checkWasiBlocks, type WasiQuotas, type WasiSpec } from '../schema/wasi.ts';
import { VFS_ENTRY_HEAP_BYTES, type SeedEntry } from './vfs.ts';
import { quoted } from '../escape.ts';

/**
 * The spec types come from the schema (host/schema/wasi.ts), which checks every field's type and
 * range; this file resolves a checked spec: defaults, the rules that join fields, and the host
 * side of the preopens (copying a `copy` folder, opening an `ro` / `rw` one).
 */
export type { PreopenMode, PreopenSpec, WasiQuotas, WasiSpec } from '../schema/wasi.ts';

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

/** The schema of each quota (its range), for the CLI's --wasi-quota. */
export const WASI_QUOTA_SCHEMAS = WasiQuotasSchema.properties;

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
  const q = spec.quotas ?? {};
  const quotas: Required<WasiQuotas> = {
    maxBytes: q.maxBytes ?? WASI_QUOTA_DEFAULTS.maxBytes,
    maxInodes: q.maxInodes ?? WASI_QUOTA_DEFAULTS.maxInodes,
    maxFds: q.maxFds ?? WASI_QUOTA_DEFAULTS.maxFds,
    maxPathBytes: q.maxPathBytes ?? WASI_QUOTA_DEFAULTS.maxPathBytes,
  };
  const args = spec.args ?? defaultArgs;
  // Checked here as well as by the schema: an embedder may call this without it. An object's key
  // is checked on its own: joined, a key holding '=' ({"A=B": "1"}) would read as A with the value B=1.
  const env = Array.isArray(spec.env)
    ? spec.env.map((e) => {
        if (!/^[^=\0]+=[^\0]*$/.test(e)) throw new InvalidArgumentError(`wasi.env: ${quoted(e, 64)} is not KEY=VALUE (a key of at least one character without '=' or NUL, a value without NUL)`);
        return e;
      })
    : Object.entries(spec.env ?? {}).map(([k, v]) => {
        if (!/^[^=\0]+$/.test(k)) throw new InvalidArgumentError(`wasi.env: the key ${quoted(k, 64)} is not a variable name (at least one character, no '=' or NUL)`);
        if (v.includes('\0')) throw new InvalidArgumentError(`wasi.env: the value of ${quoted(k, 64)} holds a NUL character`);
        return `${k}=${v}`;
      });
  checkWasiBlocks({ args, env });
  const s = spec.stdin ?? 'console';
  // Uint8Array.from copies (a Buffer's slice() would be a view of the embedder's memory).
  const stdin: ResolvedWasi['stdin'] =
    s === 'console' || s === 'none' ? { kind: s } : { kind: 'bytes', bytes: typeof s === 'string' ? new TextEncoder().encode(s) : Uint8Array.from(s) };

  // One guest path, one preopen: a second at the same path (`/d`, `/d/`) would hide the first
  // from the guest (wasi-libc picks one), a folder granted and never reachable. Before anything is opened.
  const guestPaths = new Map<string, number>();
  for (const [i, p] of (spec.preopens ?? []).entries()) {
    const key = path.posix.normalize(p.guestPath).replace(/(.)\/+$/, '$1');
    const first = guestPaths.get(key);
    if (first !== undefined) throw new InvalidArgumentError(`wasi preopen ${p.guestPath}: given twice (preopens ${first} and ${i}): one would hide the other from the guest`);
    guestPaths.set(key, i);
  }
  const budget = { bytes: quotas.maxBytes, inodes: quotas.maxInodes };
  const preopens: ResolvedPreopen[] = [];
  const resolved: ResolvedWasi = { args: [...args], env: [...env], preopens, stdin, quotas };
  try {
    for (const p of spec.preopens ?? []) {
      // Types and ranges are the schema's; what joins fields is checked here.
      const where = `wasi preopen ${p.guestPath}`;
      if (p.hostPath === undefined) {
        if (p.mode !== undefined && p.mode !== 'copy') throw new InvalidArgumentError(`${where}: mode '${p.mode}' needs a hostPath`);
        if (--budget.inodes < 0) throw new InvalidArgumentError(`wasi preopens need more than ${quotas.maxInodes} entries`);
        preopens.push({ guestPath: p.guestPath, kind: 'virtual', readonly: p.readonly === true, entries: [] });
        continue;
      }
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
        preopens.push({ guestPath: p.guestPath, kind: 'virtual', readonly: p.readonly === true, entries: await copyTree(root, budget, quotas, where) });
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
async function copyTree(root: string, budget: { bytes: number; inodes: number }, quotas: Required<WasiQuotas>, where: string): Promise<SeedEntry[]> {
  const out: SeedEntry[] = [];
  const pending: { host: string; rel: string }[] = [{ host: root, rel: '' }];
  // What the OS refuses (permission denied, a path too long, an entry gone meanwhile) names the path.
  const io = <T>(host: string, op: Promise<T>): Promise<T> =>
    op.catch((error: unknown) => {
      throw new InvalidArgumentError(`${where}: cannot copy ${host}: ${error instanceof Error ? error.message : String(error)}`);
    });
  for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
    const names = (await io(next.host, readdir(next.host))).sort();
    for (const name of names) {
      const host = path.join(next.host, name);
      const guest = next.rel === '' ? name : `${next.rel}/${name}`;
      const st = await io(host, lstat(host));
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
        // Read as it was judged: a regular file (not a FIFO or a symlink swapped in since the
        // lstat: it could point out of the folder), no larger than the size charged.
        const data = await readRegularFile(host, { maxBytes: st.size, what: `${where}: file`, noFollow: true });
        out.push({ path: guest, kind: 'file', data: new Uint8Array(data.buffer, data.byteOffset, data.length) });
      } else {
        const target = await io(host, readlink(host));
        if ((budget.bytes -= Buffer.byteLength(target)) < 0) over();
        out.push({ path: guest, kind: 'symlink', target });
      }
    }
  }
  return out;
}
