/**
 * Argument helpers of the management commands (serve, token, cert and the remote client).
 * intOption repeats main.ts's private helper, on purpose for now: main.ts is being split into
 * one file per subcommand (the `usage` work), which gives it one home; then it goes. `usage` lives
 * in options.ts already.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.ts';

export function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`--${name} must be a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`--${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

/** Runs an argument parser, turning its complaint into ERR_INVALID_ARGUMENT: now in options.ts, shared by every subcommand. */
export { usage } from './options.ts';

/** Reads a small text file given on the command line (a token, a certificate), naming the option on failure. */
export function readOptionFile(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new InvalidArgumentError(`--${option} ${JSON.stringify(file)}: ${(error as Error).message}`);
  }
}
