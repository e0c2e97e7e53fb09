/**
 * `wasmvisor cert create --name <cn> [--config dir] [--out dir] [--days n]`: issues a client
 * certificate from the host's local CA (made by `serve --tls-self-signed`) for mutual TLS. The
 * principal is `cert:<cn>`; give it a role with an assignment in `<config>/rbac.json`.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { InvalidArgumentError, StorageError } from '../errors.ts';
import { writeNewFile } from '../security/keys.ts';
import { adopt, loadMgmt } from './mgmt-loader.ts';
import { intOption, usage } from './mgmt-args.ts';
import { quoted } from '../escape.ts';

export const CERT_USAGE = `  wasmvisor cert create --name <cn> [--config <dir>] [--out <dir>] [--days <n>]

A client certificate from the local CA of the host in --config (default ./wasmvisor-host; made by
serve --tls-self-signed): <cn>.crt and <cn>.key (0600) in --out (default the working directory;
created if missing), valid --days days (1..3650, default 365). The principal is cert:<cn>.

Exit status: 0; 2 bad usage (ERR_INVALID_ARGUMENT; also no local CA yet, or a file that already
exists: never overwritten); 74 a file that cannot be written (ERR_STORAGE).`;

export function certCommand(argv: string[]): Promise<number> {
  return adopt(() => run(argv));
}

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = usage(() =>
    parseArgs({ args: rest, strict: true, options: { config: { type: 'string' }, name: { type: 'string' }, out: { type: 'string' }, days: { type: 'string' } } }),
  );
  if (sub !== 'create') throw new InvalidArgumentError(`cert: unknown subcommand ${quoted(sub ?? '')} (create)`);
  if (values.name === undefined) throw new InvalidArgumentError('cert create needs --name');
  const days = intOption(values.days, 'days', 1, 3650) ?? 365;
  const mgmt = await loadMgmt();
  const config = new mgmt.ConfigDir(values.config ?? 'wasmvisor-host');
  const out = values.out ?? '.';
  const base = path.join(out, values.name.replace(/ /g, '_'));
  // Neither file is ever replaced (a key in use stays), and nothing is issued when one is there.
  for (const file of [`${base}.key`, `${base}.crt`]) if (existsSync(file)) throw new InvalidArgumentError(`${file} already exists; refusing to overwrite it (remove it, or choose another --out)`);
  const { cert, key } = await mgmt.issueClientCert(config.tlsDir, values.name, days);
  try {
    mkdirSync(out, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new StorageError(`cannot create --out ${out}: ${(error as Error).message}`, { cause: error });
  }
  await writeNewFile(`${base}.key`, new TextEncoder().encode(key), 0o600);
  await writeNewFile(`${base}.crt`, new TextEncoder().encode(cert), 0o644);
  process.stdout.write(`${base}.crt\n${base}.key\n`);
  process.stderr.write(`principal cert:${values.name}: assign it a role in ${config.path('rbac.json')}, e.g. {"assignments":[{"principal":"cert:${values.name}","role":"Reader","scope":"/"}]}\n`);
  return 0;
}
