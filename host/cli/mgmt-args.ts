/**
 * Argument helpers of the management commands (serve, token, cert, lab and the remote client):
 * node:util's parseArgs, its complaints worded as host/cli/options.ts words its own. The two
 * parsers stay apart because their documented and tested messages differ (host/cli/options.ts
 * serves the guest-running commands from option tables that also make their help):
 * a missing value (`--port needs a value; see …` here, `--timeout needs a value <ms>; see …`
 * there), a flag given a value (`--dashboard takes no value; see …` here, `… takes no value, got
 * "yes"` there), a number (`--port must be a whole number, got "x"` here, `--timeout: expected …`
 * there), the guest hint of an unknown option (the remote run takes guest arguments only after
 * `--`), a subcommand's name beside its help's (`token list: …; see wasmvisor token --help`),
 * the positional counts each command words itself, and help written by hand rather than made
 * from a table. What both follow: a value is taken as given even when it starts with '-'
 * (valuesAsGiven), and an unknown option names the nearest known one.
 */
import { InvalidArgumentError } from '../errors.ts';
import { readRegularFileSync } from '../files.ts';
import { MAX_TLS_FILE_BYTES } from '../limits/sizes.ts';
import { quoted } from '../escape.ts';
import { nearest } from '../schema/check.ts';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { repeated } from './options.ts';

export function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`--${name} must be a whole number, got ${quoted(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`--${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

/**
 * node:util's parseArgs for one management command (`serve`, `token list`, `cert create`, `lab`,
 * a remote command), its complaint turned into ERR_INVALID_ARGUMENT worded as every other
 * command's (host/cli/options.ts): the command, the unknown option and the nearest known one
 * (README, "Command line"), and where its help is. node:util's own advice for an unknown option
 * (put a positional starting with '-' after '--') becomes the guest's hint only for a command
 * that passes arguments after `--` (`positionalHint`, the remote run); elsewhere no positional
 * starts with '-' and it only misleads (`lab --bogus`).
 */
export function usage<T extends ParseArgsConfig & { options: NonNullable<ParseArgsConfig['options']> }>(
  command: string,
  config: T,
  { positionalHint = false, help = command.split(' ')[0]! }: { positionalHint?: boolean; help?: string } = {},
): ReturnType<typeof parseArgs<T>> {
  const see = `; see wasmvisor ${help === '' ? '' : `${help} `}--help`;
  let parsed: ReturnType<typeof parseArgs<T>>;
  let tokens: readonly { kind: string; name?: string; value?: string | undefined }[];
  try {
    const result = parseArgs({ ...config, ...(config.args === undefined ? {} : { args: valuesAsGiven(config.args, config.options) }), tokens: true });
    tokens = result.tokens ?? [];
    parsed = { values: result.values, positionals: result.positionals } as ReturnType<typeof parseArgs<T>>;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const full = error instanceof Error ? error.message : String(error);
    const message = full.split('\n')[0]!;
    // Matched on the whole message: the argument quoted in it may hold a newline.
    const unknown = /^Unknown option '([^']*)'/.exec(full);
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown !== null) {
      const shown = unknown[1]!;
      const near = nearest(shown.replace(/^-+/, ''), Object.keys(config.options));
      const hint = near !== null ? `; did you mean --${near}?` : '';
      const guest = positionalHint ? ' (to pass it to the guest, put it after --)' : '';
      throw new InvalidArgumentError(`${command}: unknown option ${shown}${hint}${guest}${see}`);
    }
    const extra = /^Unexpected argument '([\s\S]*)'\. This command does not take positional arguments/.exec(full);
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && extra !== null) {
      throw new InvalidArgumentError(`${command} takes no arguments, got an extra argument ${quoted(extra[1]!)}${see}`);
    }
    const missing = /^Option '(?:-\w, )?(-{1,2}[^\s']+)(?: <value>)?' argument missing/.exec(message);
    if (missing !== null) throw new InvalidArgumentError(`${missing[1]} needs a value${see}`);
    const flag = /^Option '(?:-\w, )?(-{1,2}[^\s']+)' does not take an argument/.exec(message);
    if (flag !== null) throw new InvalidArgumentError(`${flag[1]} takes no value${see}`);
    throw new InvalidArgumentError(`${command}: ${message}${see}`);
  }
  // An option that takes one value, given twice, is refused (as host/cli/options.ts refuses it),
  // not the first silently dropped: `--port 1 --port 2`. Repeatable ones are `multiple`.
  const seen = new Map<string, string>();
  for (const token of tokens) {
    if (token.kind !== 'option' || token.name === undefined || token.value === undefined || config.options[token.name]?.multiple === true) continue;
    const first = seen.get(token.name);
    if (first !== undefined) throw new InvalidArgumentError(repeated(`--${token.name}`, first, token.value, `wasmvisor${help === '' ? '' : ` ${help}`}`));
    seen.set(token.name, token.value);
  }
  return parsed;
}

/**
 * Joins each option that takes a value to the next argument when that one starts with '-'
 * (`--port -1` → `--port=-1`, `-t -1` → `--tail=-1` when `t` is short for it), up to `--`: a value
 * is taken as given, as every other command takes it (host/cli/options.ts), so `--port -1` is a
 * bad port (`--port must be a whole number, got "-1"`), not node:util's "argument is
 * ambiguous". Anything else is passed on unchanged: an option that already carries `=value`, a
 * flag, an unknown option (parseArgs names it), or a value that does not start with '-' (which
 * parseArgs takes as the value itself).
 */
function valuesAsGiven(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    const long = arg.startsWith('--') ? arg.slice(2) : /^-[^-]$/.test(arg) ? Object.keys(options).find((k) => options[k]!.short === arg[1]) : undefined;
    if (long !== undefined && Object.hasOwn(options, long) && options[long]!.type === 'string' && next !== undefined && next.startsWith('-')) {
      out.push(`--${long}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** Refuses positional arguments a management command does not take, as usage() words it. */
export function noPositionals(command: string, positionals: readonly string[], help = command.split(' ')[0]!): void {
  if (positionals.length > 0) {
    throw new InvalidArgumentError(`${command} takes no arguments, got an extra argument ${quoted(positionals[0]!)}; see wasmvisor ${help === '' ? '' : `${help} `}--help`);
  }
}

/**
 * Largest file each option that names one takes (README, "Remote management"): a token is one
 * line; a certificate, key or CA bundle is PEM, bounded as the daemon bounds its own.
 */
export const OPTION_FILE_BYTES = { 'token-file': 4096, ca: MAX_TLS_FILE_BYTES, cert: MAX_TLS_FILE_BYTES, key: MAX_TLS_FILE_BYTES } as const;

/**
 * Reads a small text file given on the command line (a token, a certificate): a regular file or
 * a pipe (`--token-file /dev/stdin`, `<(pass show token)`), at most its option's bound;
 * ERR_INVALID_ARGUMENT naming the option and the file otherwise.
 */
export function readOptionFile(file: string, option: keyof typeof OPTION_FILE_BYTES): string {
  return readRegularFileSync(file, { maxBytes: OPTION_FILE_BYTES[option], what: `--${option}`, pipes: true }).toString('utf8');
}
