import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import type { SeedEntry } from './vfs.ts';

/** A preopen: a virtual directory the guest sees at `guestPath`, optionally seeded from a host folder. */
export interface PreopenSpec {
  /** Where the guest sees it, e.g. `/sandbox` or `.`. */
  guestPath: string;
  /** A host folder whose contents are *copied* into the virtual directory when the partition is created. Never written. */
  hostPath?: string;
  /** The guest may not change anything under this preopen (EROFS). Default false. */
  readonly?: boolean;
}

/** Per-partition file-system limits. */
export interface WasiQuotas {
  /** Bytes of file contents and symlink targets across all preopens. Default 16 MiB. */
  maxBytes?: number;
  /** Files, directories and symlinks across all preopens. Default 4096. */
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
  /** fd 0: `'console'` (the console device's line input; default), `'none'` (EOF), or fixed bytes. */
  stdin?: 'console' | 'none' | string | Uint8Array;
  quotas?: WasiQuotas;
}

export interface ResolvedWasi {
  args: string[];
  env: string[];
  preopens: { guestPath: string; readonly: boolean; entries: SeedEntry[] }[];
  stdin: { kind: 'console' } | { kind: 'none' } | { kind: 'bytes'; bytes: Uint8Array };
  quotas: Required<WasiQuotas>;
}

export const WASI_QUOTA_DEFAULTS: Required<WasiQuotas> = {
  maxBytes: 16 * 1024 * 1024,
  maxInodes: 4096,
  maxFds: 128,
  maxPathBytes: 4096,
};

function quota(value: number | undefined, fallback: number, what: string, min: number, max: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`wasi.quotas.${what} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return v;
}

/**
 * Validates a WASI spec and copies the seed folders (in the root, before the partition starts).
 * Host symlinks are copied as virtual symlinks, never followed on the host; special files are
 * skipped. Seeding counts against the quotas and fails with ERR_INVALID_ARGUMENT when over.
 */
export async function resolveWasi(spec: WasiSpec, defaultArgs: string[]): Promise<ResolvedWasi> {
  if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError('wasi must be an object');
  const q = spec.quotas ?? {};
  const quotas: Required<WasiQuotas> = {
    maxBytes: quota(q.maxBytes, WASI_QUOTA_DEFAULTS.maxBytes, 'maxBytes', 0, 1 << 30),
    maxInodes: quota(q.maxInodes, WASI_QUOTA_DEFAULTS.maxInodes, 'maxInodes', 1, 1 << 20),
    maxFds: quota(q.maxFds, WASI_QUOTA_DEFAULTS.maxFds, 'maxFds', 3, 1 << 16),
    maxPathBytes: quota(q.maxPathBytes, WASI_QUOTA_DEFAULTS.maxPathBytes, 'maxPathBytes', 16, 1 << 16),
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
  // Uint8Array.from copies (a Buffer's slice() would be a view of the embedder's memory).
  else if (s instanceof Uint8Array) stdin = { kind: 'bytes', bytes: Uint8Array.from(s) };
  else throw new InvalidArgumentError("wasi.stdin must be 'console', 'none', a string or a Uint8Array");

  const budget = { bytes: quotas.maxBytes, inodes: quotas.maxInodes };
  const preopens: ResolvedWasi['preopens'] = [];
  for (const p of spec.preopens ?? []) {
    if (typeof p !== 'object' || p === null || typeof p.guestPath !== 'string' || p.guestPath.length === 0 || p.guestPath.includes('\0')) {
      throw new InvalidArgumentError('each wasi.preopens entry needs a non-empty guestPath');
    }
    if (--budget.inodes < 0) throw new InvalidArgumentError(`wasi preopens need more than ${quotas.maxInodes} inodes`);
    const entries: SeedEntry[] = [];
    if (p.hostPath !== undefined) {
      const root = path.resolve(p.hostPath);
      const st = await lstat(root).catch(() => null);
      if (st === null || !st.isDirectory()) throw new InvalidArgumentError(`wasi preopen ${p.guestPath}: host folder ${p.hostPath} is not a directory`);
      await copyTree(root, '', entries, budget, quotas);
    }
    preopens.push({ guestPath: p.guestPath, readonly: p.readonly === true, entries });
  }
  if (3 + preopens.length > quotas.maxFds) throw new InvalidArgumentError(`wasi needs ${3 + preopens.length} fds for stdio and preopens; maxFds is ${quotas.maxFds}`);
  return { args: [...args], env: [...env], preopens, stdin, quotas };
}

async function copyTree(hostDir: string, rel: string, out: SeedEntry[], budget: { bytes: number; inodes: number }, quotas: Required<WasiQuotas>): Promise<void> {
  const names = (await readdir(hostDir)).sort();
  for (const name of names) {
    const host = path.join(hostDir, name);
    const guest = rel === '' ? name : `${rel}/${name}`;
    const st = await lstat(host);
    const over = (): never => {
      throw new InvalidArgumentError(`seeding ${guest} from ${host} exceeds the WASI quota (${quotas.maxBytes} bytes, ${quotas.maxInodes} inodes)`);
    };
    if (!st.isDirectory() && !st.isFile() && !st.isSymbolicLink()) continue;
    if (--budget.inodes < 0) over();
    if (st.isDirectory()) {
      out.push({ path: guest, kind: 'dir' });
      await copyTree(host, guest, out, budget, quotas);
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
