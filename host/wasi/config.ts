import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import type { SeedEntry } from './vfs.ts';
import type { WasiQuotas, WasiSpec } from '../schema/wasi.ts';

export type { PreopenSpec, WasiQuotas, WasiSpec } from '../schema/wasi.ts';

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

/**
 * Validates a WASI spec and copies the seed folders (in the root, before the partition starts).
 * Host symlinks are copied as virtual symlinks, never followed on the host; special files are
 * skipped. Seeding counts against the quotas and fails with ERR_INVALID_ARGUMENT when over.
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
  const env = Array.isArray(spec.env) ? spec.env : Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of env) {
    // The schema checks KEY=VALUE strings; an object's keys are checked here, once joined.
    if (!/^[^=\0]+=[^\0]*$/.test(e)) throw new InvalidArgumentError(`wasi.env: ${JSON.stringify(e.slice(0, e.indexOf('=') + 1))} is not a valid KEY= (no '=' or NUL in a key)`);
  }
  const s = spec.stdin ?? 'console';
  const stdin: ResolvedWasi['stdin'] =
    s === 'console' || s === 'none' ? { kind: s } : { kind: 'bytes', bytes: typeof s === 'string' ? new TextEncoder().encode(s) : s.slice() };

  const budget = { bytes: quotas.maxBytes, inodes: quotas.maxInodes };
  const preopens: ResolvedWasi['preopens'] = [];
  for (const p of spec.preopens ?? []) {
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
