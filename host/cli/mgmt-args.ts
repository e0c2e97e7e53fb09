/**
 * Argument helpers of the management commands (serve, token, cert and the remote client).
 * intOption and usage repeat the two private helpers of main.ts, on purpose for now: main.ts is
 * being split into one file per subcommand (the `usage` work), which gives them one home; then
 * these go.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.ts';
import { quoted } from '../escape.ts';

export function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`--${name} must be a whole number, got ${quoted(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`--${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

/** Runs an argument parser, turning its complaint into ERR_INVALID_ARGUMENT (one line: the first). */
export function usage<T>(parser: () => T): T {
  try {
    return parser();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new InvalidArgumentError(message.split('\n')[0]!);
  }
}

/** Reads a small text file given on the command line (a token, a certificate), naming the option on failure. */
export function readOptionFile(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new InvalidArgumentError(`--${option} ${quoted(file)}: ${(error as Error).message}`);
  }
}
