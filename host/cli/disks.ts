/**
 * `wasmvisor disks`: the persistent disks of a data directory, as a table or as JSON. Reads image
 * headers and file metadata only (hv.listStorage()); no key is used, so it needs neither the
 * master key nor the keystore's secrets, and it works while partitions of another process run.
 */
import type { DiskInfo } from '../storage/storage.ts';

/** Control characters (and backslash) in a file or partition name, shown as escapes on a terminal. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\\\x00-\x1f\x7f-\x9f]/g, (c) => (c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

function bytes(n: number | null): string {
  if (n === null) return '?';
  if (n >= 1 << 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

function time(iso: string | null): string {
  return iso === null ? '?' : iso.slice(0, 19).replace('T', ' ');
}

function status(d: DiskInfo): string {
  if (d.problem !== null) return d.problem;
  if (d.inUse !== null) return `in use by process ${d.inUse.pid} on ${d.inUse.host}`;
  return 'ok';
}

/** The table `wasmvisor disks` prints: one line per disk, times in UTC. */
export function formatDisks(dataDir: string, disks: DiskInfo[]): string {
  if (disks.length === 0) return `no disks in ${printable(dataDir)}\n`;
  const rows = [
    ['NAME', 'SIZE', 'ON DISK', 'CREATED (UTC)', 'MODIFIED (UTC)', 'KEY', 'STATUS', 'PATH'],
    ...disks.map((d) => [printable(d.name ?? '?'), bytes(d.sizeBytes), bytes(d.allocatedBytes), time(d.created), time(d.modified), d.key, printable(status(d)), printable(d.path)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
