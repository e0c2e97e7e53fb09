/**
 * Argument helpers of the management commands (serve, token, cert and the remote client).
 * intOption and usage repeat the two private helpers of main.ts, on purpose for now: main.ts is
 * being split into one file per subcommand (the `usage` work), which gives them one home; then
 * these go.
 */
import { InvalidArgumentError } from '../errors.ts';
import { readRegularFileSync } from '../files.ts';
import { MAX_TLS_FILE_BYTES } from '../limits/sizes.ts';
import { quoted } from '../escape.ts';

export function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`--${name} must be a whole number, got ${quoted(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`--${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

/**
 * Runs an argument parser, turning its complaint into ERR_INVALID_ARGUMENT (one line: the first).
 * node:util's advice for an unknown option (put a positional starting with '-' after '--') is
 * kept only for a command that passes arguments after `--` (`positionalHint`, the remote run);
 * elsewhere no positional starts with '-' and it only misleads (`lab --bogus`).
 */
export function usage<T>(parser: () => T, { positionalHint = false }: { positionalHint?: boolean } = {}): T {
  try {
    return parser();
  } catch (error) {
    const first = (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
    throw new InvalidArgumentError(positionalHint ? first : first.replace(/\. To specify a positional argument starting with a '-'.*$/, ''));
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
