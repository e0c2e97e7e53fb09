/**
 * `wasmvisor cert create --name <cn> [--config dir] [--out dir] [--days n]`: issues a client
 * certificate from the host's local CA (made by `serve --tls-self-signed`) for mutual TLS. The
 * principal is `cert:<cn>`; give it a role with an assignment in `<config>/rbac.json`.
 */
import { existsSync, rmdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, StorageError } from '../errors.ts';
import { fileKind, makeDirsSync } from '../files.ts';
import { writeNewFile } from '../security/keys.ts';
import { adopt, loadMgmt } from './mgmt-loader.ts';
import { intOption, usage } from './mgmt-args.ts';
import { badValue, needsOption, unknownSubcommand } from './options.ts';
import { CERT_NAME_PATTERN, MAX_CERT_NAME_LENGTH } from '../schema/patterns.ts';

export const CERT_USAGE = `  wasmvisor cert create --name <cn> [--config <dir>] [--out <dir>] [--days <n>]

A client certificate from the local CA of the host in --config (default ./wasmvisor-host; made by
serve --tls-self-signed): <cn>.crt and <cn>.key (0600) in --out (default the working directory;
created if missing, before anything is issued), valid --days days (1..3650, default 365). The
principal is cert:<cn>.

Exit status: 0; 2 bad usage (ERR_INVALID_ARGUMENT; also no local CA yet, an --out that is a file,
or a <cn>.key or <cn>.crt that already exists: never overwritten); 74 a folder or file that
cannot be written (ERR_STORAGE). A refused or failed run leaves nothing behind.`;

export function certCommand(argv: string[]): Promise<number> {
  return adopt(() => run(argv));
}

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'create') throw unknownSubcommand('cert', ['create'], sub);
  const { values } = usage('cert create', {
    args: rest,
    strict: true,
    options: { config: { type: 'string' }, name: { type: 'string' }, out: { type: 'string' }, days: { type: 'string' } },
  }, { help: 'cert' });
  if (values.name === undefined) throw needsOption('cert create', '--name <cn>', 'cert');
  // Checked here, before --out is looked at or made, and named by its flag (the CA's refusal
  // came after the folder was made, naming a "certificate name").
  if (!new RegExp(CERT_NAME_PATTERN).test(values.name)) throw badValue('--name', `1-${MAX_CERT_NAME_LENGTH} letters, digits, '.', '_', '-' or spaces (starting with a letter or digit)`, values.name);
  // An empty --out (an unset "$OUT") is no folder: the working directory is the default only when --out is not given.
  if (values.out === '') throw badValue('--out', 'a directory', '');
  const days = intOption(values.days, 'days', 1, 3650) ?? 365;
  const mgmt = await loadMgmt();
  const config = new mgmt.ConfigDir(values.config ?? 'wasmvisor-host');
  const out = values.out ?? '.';
  const base = path.join(out, values.name.replace(/ /g, '_'));
  // The output location is checked, and made, before anything is issued: a refusal costs no
  // signing, and a failure after it removes what this command made (nothing else).
  const kind = kindOf(out);
  if (kind !== null && kind !== 'a directory') throw new InvalidArgumentError(`--out ${out} is ${kind}, not a directory`);
  // Neither file is ever replaced (a key in use stays), and nothing is issued when one is there.
  for (const file of [`${base}.key`, `${base}.crt`]) if (existsSync(file)) throw new InvalidArgumentError(`${file} already exists; refusing to overwrite it (remove it, or choose another --out)`);
  let created: string | undefined;
  try {
    created = makeDirsSync(out, 0o700);
  } catch (error) {
    throw new StorageError(`cannot create --out ${out}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const { cert, key } = await mgmt.issueClientCert(config.tlsDir, values.name, days);
    await writeNewFile(`${base}.key`, new TextEncoder().encode(key), 0o600);
    try {
      await writeNewFile(`${base}.crt`, new TextEncoder().encode(cert), 0o644);
    } catch (error) {
      // A key without its certificate is of no use: it was made here, by O_EXCL, so it goes.
      rmSync(`${base}.key`, { force: true });
      throw error;
    }
  } catch (error) {
    if (created !== undefined) removeEmptyFolders(out, created);
    throw error;
  }
  process.stdout.write(`${base}.crt\n${base}.key\n`);
  process.stderr.write(`principal cert:${values.name}: assign it a role in ${config.path('rbac.json')}, e.g. {"assignments":[{"principal":"cert:${values.name}","role":"Reader","scope":"/"}]}\n`);
  return 0;
}

/** What is at `file` (following links), in words; null when nothing is. */
function kindOf(file: string): string | null {
  try {
    return fileKind(statSync(file));
  } catch {
    return null;
  }
}

/**
 * Removes `out` and its parents up to `created` (the first folder mkdir made), each only while
 * it is empty: the folders this command made, and never anything someone put in them meanwhile.
 */
function removeEmptyFolders(out: string, created: string): void {
  const top = path.resolve(created);
  for (let dir = path.resolve(out); dir.startsWith(top); dir = path.dirname(dir)) {
    try {
      rmdirSync(dir);
    } catch {
      return;
    }
    if (dir === top) return;
  }
}
