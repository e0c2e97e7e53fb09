/**
 * `wasmvisor cert create --name <cn> [--config dir] [--out dir] [--days n]`: issues a client
 * certificate from the host's local CA (made by `serve --tls-self-signed`) for mutual TLS. The
 * principal is `cert:<cn>`; give it a role with an assignment in `<config>/rbac.json`.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../errors.ts';
import { adopt, loadMgmt } from './mgmt-loader.ts';
import { intOption, usage } from './mgmt-args.ts';
import { quoted } from '../escape.ts';

export const CERT_USAGE = '  wasmvisor cert create --name <cn> [--config <dir>] [--out <dir>] [--days <n>]';

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
  const mgmt = await loadMgmt();
  const config = new mgmt.ConfigDir(values.config ?? 'wasmvisor-host');
  const { cert, key } = await mgmt.issueClientCert(config.tlsDir, values.name, intOption(values.days, 'days', 1, 3650) ?? 365);
  const out = values.out ?? '.';
  const base = path.join(out, values.name.replace(/ /g, '_'));
  writeFileSync(`${base}.key`, key, { mode: 0o600, flag: 'wx' });
  writeFileSync(`${base}.crt`, cert, { mode: 0o644 });
  process.stdout.write(`${base}.crt\n${base}.key\n`);
  process.stderr.write(`principal cert:${values.name}: assign it a role in ${config.path('rbac.json')}, e.g. {"assignments":[{"principal":"cert:${values.name}","role":"Reader","scope":"/"}]}\n`);
  return 0;
}
