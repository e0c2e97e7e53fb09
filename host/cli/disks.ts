/**
 * `wasmvisor disks`: the persistent disks of a data directory, as a table or as JSON. Reads image
 * headers and file metadata only (hv.listStorage()); no key is used, so it needs neither the
 * master key nor the keystore's secrets, and it works while partitions of another process run.
 */
import { Hypervisor } from '../hypervisor.ts';
import type { DiskInfo } from '../storage/storage.ts';
import { jsonOnFailure, printable } from './common.ts';
import { existingDirectory, flag, parseOrHelp, folder, value, type CommandSpec, type OptionTable } from './options.ts';

export const disksCommand = {
  name: 'disks',
  summary: 'list the persistent disks of a data directory (uses no key)',
  usage: ['wasmvisor disks [options]'],
  options: {
    'data-dir': value('<dir>', 'where disks and their keystore live', folder, { default: './.wasmvisor' }),
    json: flag('print { dataDir, disks: [...] } (the fields of hv.listStorage()) instead of the table; a failure prints {"command","error":{"code","message"},"exitStatus"}'),
  },
  positionals: { names: [], min: 0 },
} satisfies CommandSpec<OptionTable>;

export function disks(argv: string[]): Promise<number> {
  return jsonOnFailure(disksCommand, argv, () => listDisks(argv));
}

async function listDisks(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(disksCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  if (values['data-dir'] !== undefined) existingDirectory('--data-dir', values['data-dir'], 'disks');
  const hv = new Hypervisor(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {});
  try {
    const list = await hv.listStorage();
    process.stdout.write(values.json ? JSON.stringify({ dataDir: hv.dataDir, disks: list }, null, 2) + '\n' : formatDisks(hv.dataDir, list));
    return 0;
  } finally {
    await hv.close();
  }
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
