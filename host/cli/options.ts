/**
 * Command-line parsing shared by the subcommands: node:util parseArgs, with its complaints turned
 * into ERR_INVALID_ARGUMENT (one line: the first).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidArgumentError } from '../errors.ts';

/** Runs an argument parser, turning its complaint into ERR_INVALID_ARGUMENT (one line: the first). */
export function usage<T>(parser: () => T): T {
  try {
    return parser();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new InvalidArgumentError(message.split('\n')[0]!);
  }
}

/** Strict parseArgs with positionals, errors as ERR_INVALID_ARGUMENT. */
export function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  return usage(() => parseArgs({ args: argv, allowPositionals: true, strict: true, options }));
}
