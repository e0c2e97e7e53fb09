/**
 * Argument helpers of the management commands (serve, token, cert, lab and the remote client):
 * node:util's parseArgs, each of its complaints worded as host/cli/options.ts words the same
 * mistake (needsValue, takesNoValue, badValue, choice, givenTwice, checkPositionals,
 * unknownSubcommand, needsOption), so a mistake reads the same whichever command it is made in.
 * The two parsers stay apart for what is not a wording: the management commands' help is
 * written by hand rather than made from a table, and the remote run takes guest arguments only
 * after `--` (its unknown option's hint says so). What both follow: a value is taken as given
 * even when it starts with '-' (valuesAsGiven), an unknown option names the nearest known one,
 * and an option that takes one value is given at most once.
 */
import { InvalidArgumentError } from '../errors.ts';
import { readRegularFileSync } from '../files.ts';
import { MAX_TLS_FILE_BYTES } from '../limits/sizes.ts';
import { nearest } from '../schema/check.ts';
import { Type } from '@sinclair/typebox';
import { checkPositionals, givenTwice, needsValue, numberIn, seeHelp, takesNoValue } from './options.ts';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A whole-number option (`--port`, `--days`, `--tail`): read as options.ts reads `--memory` (numberIn), so it is worded the same. */
export function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  return numberIn(Type.Integer({ minimum: min, maximum: max }))(value, `--${name}`);
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
  let result: ReturnType<typeof parseArgs<T>>;
  let tokens: NonNullable<ReturnType<typeof parseArgs>['tokens']>;
  try {
    const { tokens: all = [], ...parsed } = parseArgs({ ...config, ...(config.args === undefined ? {} : { args: valuesAsGiven(config.args, config.options) }), tokens: true });
    result = parsed as ReturnType<typeof parseArgs<T>>;
    tokens = all;
  } catch (error) {
    const see = seeHelp(help);
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
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && extra !== null) checkPositionals(command, [extra[1]!], [], 0, help);
    const missing = /^Option '(?:-\w, )?(-{1,2}[^\s']+)(?: <value>)?' argument missing/.exec(message);
    if (missing !== null) throw needsValue(missing[1]!, help);
    const flag = /^Option '(?:-\w, )?(-{1,2}[^\s']+)' does not take an argument/.exec(message);
    if (flag !== null) {
      // The value given, as options.ts names it: parseArgs's message does not carry it.
      const long = flag[1]!.startsWith('--') ? flag[1]! : `--${Object.keys(config.options).find((k) => config.options[k]!.short === flag[1]!.slice(1)) ?? ''}`;
      const given = (config.args ?? []).find((a) => a.startsWith(`${long}=`) || a.startsWith(`${flag[1]}=`));
      throw takesNoValue(flag[1]!, given === undefined ? '' : given.slice(given.indexOf('=') + 1), help);
    }
    throw new InvalidArgumentError(`${command}: ${message}${see}`);
  }
  // A single-valued option given twice is refused, as host/cli/options.ts refuses it (parseArgs
  // would keep the last and drop the first without a word); `multiple` ones add up.
  const given = new Map<string, string>();
  for (const token of tokens) {
    if (token.kind !== 'option' || token.value === undefined || config.options[token.name]?.multiple === true) continue;
    const first = given.get(token.name);
    if (first !== undefined) throw givenTwice(`--${token.name}`, first, token.value, help);
    given.set(token.name, token.value);
  }
  return result;
}

/**
 * Joins each option that takes a value to the next argument when that one starts with '-'
 * (`--port -1` → `--port=-1`, `-t -1` → `--tail=-1` when `t` is short for it), up to `--`: a value
 * is taken as given, as every other command takes it (host/cli/options.ts), so `--port -1` is a
 * bad port (`--port: expected an integer from 0 to 65535, got "-1"`), not node:util's "argument is
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
  checkPositionals(command, positionals, [], 0, help);
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
