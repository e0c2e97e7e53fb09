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

/**
 * Text from outside (a report's partition names, an audit record's reason) as it may be printed to
 * a terminal: control characters, including escape sequences, are shown escaped.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Strict parseArgs with positionals, errors as ERR_INVALID_ARGUMENT. */
export function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  return usage(() => parseArgs({ args: argv, allowPositionals: true, strict: true, options }));
}
