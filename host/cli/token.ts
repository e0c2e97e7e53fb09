/**
 * `wasmvisor token create|list|revoke [--config dir]`: manages API tokens in a host's config
 * directory (local administration: whoever can write the directory is the host's owner). A
 * running `serve` sees changes at once (it watches the directory). `create` prints the token,
 * and only the token, on stdout, once; the store keeps its SHA-256.
 * With `--host` the same commands go through the API instead (remote.ts).
 */
import { existsSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.ts';
import { adopt, loadMgmt } from './mgmt-loader.ts';
import { failJson } from './common.ts';
import { usage } from './mgmt-args.ts';
import { checkPositionals, needsOption, unknownSubcommand } from './options.ts';
import { escapeText } from '../escape.ts';
import type { TokenInfo } from '../mgmt/tokens.ts';

export const TOKEN_USAGE = `  wasmvisor token create --name <name> --role <role> --scope <scope> [--expires 7d|12h|30m|never] [--config <dir>]
  wasmvisor token list [--json] [--config <dir>]
  wasmvisor token revoke <id> [--config <dir>]

API tokens of the host whose config directory is --config (default ./wasmvisor-host). create
prints the token on stdout, once; --expires defaults to 30d (at most 3650d). list prints a table
(ID NAME ROLE SCOPE STATUS EXPIRES, oldest first, revoked and expired tokens included), or with
--json a JSON array of the tokens (docs/MANAGEMENT.md); never a secret. With --host the same
commands go through a host's API (wasmvisor --help), list printing the same table or array.

Exit status: 0; 2 bad usage (ERR_INVALID_ARGUMENT); 1 no such token (ERR_NOT_FOUND); 74 ERR_STORAGE.`;

/** Where each column of `token list`'s table starts (docs/MANAGEMENT.md): the widths of all but the last. */
export const TOKEN_LIST_WIDTHS = [17, 20, 10, 28, 9] as const;

/**
 * One line of `token list`'s table: each value padded to its column's width, and followed by at
 * least one space however long it is (a 20-character name used to run into its role), so the
 * line always splits on spaces into its six values. No value a store writes holds a space or a
 * control character; one a token file written by hand holds is shown escaped (`\x20`, `\n`), so
 * the line still splits into six and stays one line.
 */
function row(cells: readonly unknown[]): string {
  return (
    cells
      .map((raw, i) => {
        const cell = escapeText(String(raw)).replaceAll(' ', '\\x20');
        return i < TOKEN_LIST_WIDTHS.length ? (cell.length < TOKEN_LIST_WIDTHS[i]! ? cell.padEnd(TOKEN_LIST_WIDTHS[i]!) : `${cell} `) : cell;
      })
      .join('') + '\n'
  );
}

/**
 * What `token list` prints of `list`, locally and through `--host` alike: the table, or with
 * `json` the array itself (docs/MANAGEMENT.md).
 */
export function writeTokenList(list: readonly TokenInfo[], json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(list, null, 2) + '\n');
    return;
  }
  process.stdout.write(row(['ID', 'NAME', 'ROLE', 'SCOPE', 'STATUS', 'EXPIRES']));
  for (const t of list) process.stdout.write(row([t.id, t.name, t.role, t.scope, t.status, t.expiresAt ?? 'never']));
}

/** Whether a management command line asks for `--json` (before any `--`), judged leniently: also for a line that does not parse. */
export function mgmtAsksJson(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--json' || a.startsWith('--json='));
}

export async function tokenCommand(argv: string[]): Promise<number> {
  try {
    return await adopt(() => run(argv));
  } catch (error) {
    // `token list --json` prints a JSON array: any failure of it ends with the error document (common.ts failJson).
    if (argv[0] !== 'list' || !mgmtAsksJson(argv.slice(1))) throw error;
    return failJson('token list', error);
  }
}

export const TOKEN_SUBCOMMANDS = ['create', 'list', 'revoke'] as const;

/** What a token subcommand's parse gives: the union of their options. */
export interface TokenValues {
  config?: string;
  name?: string;
  role?: string;
  scope?: string;
  expires?: string;
  json?: boolean;
}

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  // A usage error or a mistyped --config must leave nothing behind: the subcommand and its
  // options are checked before the directory is touched, and only create makes a config
  // directory that is not there. Each subcommand takes its own options: one of another's is
  // unknown to it, not ignored (`token list --role Owner` listed every token).
  if (sub !== 'create' && sub !== 'list' && sub !== 'revoke') throw unknownSubcommand('token', TOKEN_SUBCOMMANDS, sub);
  const parsed =
    sub === 'create'
      ? usage('token create', { args: rest, allowPositionals: true, strict: true, options: { config: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, scope: { type: 'string' }, expires: { type: 'string' } } }, { help: 'token' })
      : sub === 'list'
        ? usage('token list', { args: rest, allowPositionals: true, strict: true, options: { config: { type: 'string' }, json: { type: 'boolean' } } }, { help: 'token' })
        : usage('token revoke', { args: rest, allowPositionals: true, strict: true, options: { config: { type: 'string' } } }, { help: 'token' });
  const values: TokenValues = parsed.values;
  const positionals = parsed.positionals;
  // The rest of the command line (the arguments, the options create needs, the lifetime) is
  // checked here too, before the directory is looked at or its tokens read.
  checkPositionals(`token ${sub}`, positionals, sub === 'revoke' ? ['id'] : [], sub === 'revoke' ? 1 : 0, 'token');
  if (sub === 'create') for (const k of ['name', 'role', 'scope'] as const) if (values[k] === undefined) throw needsOption('token create', `--${k} <${k}>`, 'token');
  const mgmt = await loadMgmt();
  const lifetimeMs = sub === 'create' ? mgmt.parseLifetime(values.expires ?? '30d') : null;
  const config = new mgmt.ConfigDir(values.config ?? 'wasmvisor-host');
  if (sub !== 'create' && !existsSync(config.root)) throw new InvalidArgumentError(`token ${sub}: there is no host config directory at ${config.root} (--config; wasmvisor serve --config <dir> makes one)`);
  const made = config.ensure();
  try {
    const store = new mgmt.TokenStore(config.tokensDir);
    await store.load((file, why) => process.stderr.write(`wasmvisor: token file ${file} ignored: ${why}\n`));
    switch (sub) {
      case 'create': {
        const rbac = new mgmt.Rbac(await config.readRbac());
        const role = rbac.role(values.role!, '--role');
        const { token, record } = await store.create({
          name: values.name!,
          role: role.name,
          scope: values.scope!,
          lifetimeMs,
          createdBy: `local:${process.env.USER ?? process.getuid?.() ?? 'unknown'}`,
        });
        process.stdout.write(`${token}\n`);
        process.stderr.write(
          `token ${record.id} for token:${record.name}: ${record.role} at ${record.scope}, ${record.expiresAt ? `expires ${record.expiresAt}` : 'does not expire'}.\n` +
            'This is the only time it is shown: keep it in a file only you can read (e.g. umask 077).\n',
        );
        return 0;
      }
      case 'list':
        writeTokenList(store.list(), values.json === true);
        return 0;
      case 'revoke': {
        const r = await store.revoke(positionals[0]!);
        process.stdout.write(`revoked ${r.id} (token:${r.name})\n`);
        return 0;
      }
    }
  } catch (error) {
    // A refused create (no --role, an unknown one, a bad name or scope) removes the folders it made.
    mgmt.removeDirs(made);
    throw error;
  }
}
