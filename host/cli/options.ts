/**
 * Option tables and the one parser every subcommand uses. A subcommand declares its options
 * once, as a table (name, value placeholder, help, how the value is checked, what it grants the
 * guest); the help text, the parser and any generated document (e.g. a list of the options that
 * widen a guest's attack surface, from `grants`) all read that same table.
 *
 * Parsing rules (stated in every subcommand's help):
 * - `--name value` and `--name=value`; a value is taken as given, even when it starts with `-`
 *   (`--timeout -1` is a bad timeout, not a missing one).
 * - `--` ends the options: everything after it is positional (for `run`, the guest's arguments).
 * - A command with `rest` (run) stops reading options at its first positional past the fixed
 *   ones: `wasmvisor run tool.wasm a -l b` passes `a -l b` to the guest, as Wasmtime does.
 * - An unknown option is an error that suggests the nearest known one.
 * - An option that takes one value is given at most once (givenTwice); a flag may be repeated
 *   (nothing is lost), and a list option (`--dir`, `--env`, `--wasi-quota`) adds each value.
 *
 * Each mistake on a command line has one wording, here, which both parsers use (this one and
 * mgmt-args.ts's, for the management commands): givenTwice and the functions after it.
 */
import type { TSchema } from '@sinclair/typebox';
import { InvalidArgumentError } from '../errors.ts';
import { explain, expects, nearest } from '../schema/check.ts';
import { NAME } from '../schema/kinds.ts';
import { quoted } from '../escape.ts';
import { statSync } from 'node:fs';
import path from 'node:path';

interface OptionBase {
  /** The one-line help; the table adds the placeholder and the default. */
  help: string;
  /** One letter, for `-x`. */
  short?: string;
  /** What it widens for the guest (a device, host files, an environment), for attack-surface lists. */
  grants?: string;
  /** Shown as `(default …)`. */
  default?: string;
}

export interface FlagOption extends OptionBase {
  kind: 'flag';
}
export interface ValueOption<T> extends OptionBase {
  kind: 'value';
  /** The placeholder in help, e.g. `<ms>`. */
  value: string;
  /** Checks and converts the text; throws InvalidArgumentError naming `flag`. */
  parse: (raw: string, flag: string) => T;
}
export interface ListOption<T> extends OptionBase {
  kind: 'list';
  value: string;
  parse: (raw: string, flag: string) => T;
}
export type OptionSpec = FlagOption | ValueOption<unknown> | ListOption<unknown>;
export type OptionTable = Readonly<Record<string, OptionSpec>>;

export function flag(help: string, extra: Omit<OptionBase, 'help'> = {}): FlagOption {
  return { kind: 'flag', help, ...extra };
}
export function value<T>(placeholder: string, help: string, parse: (raw: string, flag: string) => T, extra: Omit<OptionBase, 'help'> = {}): ValueOption<T> {
  return { kind: 'value', value: placeholder, help, parse, ...extra };
}
export function list<T>(placeholder: string, help: string, parse: (raw: string, flag: string) => T, extra: Omit<OptionBase, 'help'> = {}): ListOption<T> {
  return { kind: 'list', value: placeholder, help, parse, ...extra };
}

/** The text as it is. */
export const text = (raw: string): string => raw;

/** A file: the text as it is, but not empty (no file has that name: open('') is ENOENT, read as storage failing). */
export function filePath(raw: string, name: string): string {
  if (raw === '') throw badValue(name, 'a file', raw);
  return raw;
}

/** A folder: the text as it is, but not empty (which would be the working directory, unsaid). */
export function folder(raw: string, name: string): string {
  if (raw === '') throw badValue(name, 'a directory', raw);
  return raw;
}

/**
 * Text that must not be empty (`--seed`, `audit show --partition`): '' is what an unset "$VAR"
 * gives, and as a seed or a filter it would be taken without a word (a seed of nothing, a filter
 * that matches nothing).
 */
export function nonEmpty(raw: string, name: string): string {
  if (raw === '') throw badValue(name, 'a non-empty value', raw);
  return raw;
}

/**
 * A directory a command only reads, named on the command line (`disks --data-dir`, `delete
 * --data-dir`, `audit verify --key-dir`): it must be there. A misspelt one would otherwise read as
 * an empty one: "no disks", "nothing to delete" (exit 0, the real disk kept), no keys.
 */
export function existingDirectory(flag: string, dir: string, help: string): string {
  const abs = path.resolve(dir);
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch {
    // missing or unreadable: said below
  }
  if (!isDir) throw new InvalidArgumentError(`${flag}: there is no directory at ${abs}${seeHelp(help)}`);
  return abs;
}

/** A number checked against a schema (the spec's own), so the CLI and the library accept the same range. */
export function numberIn(schema: TSchema): (raw: string, flag: string) => number {
  return (raw, name) => {
    const n = /^[-+]?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$/i.test(raw.trim()) ? Number(raw) : /^[-+]?Infinity$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (Number.isNaN(n) || explain(schema, n).length > 0) throw badValue(name, expects(schema), raw);
    return n;
  };
}

/** A string checked against a schema (a name, a SHA-256). */
export function stringIn(schema: TSchema): (raw: string, flag: string) => string {
  return (raw, name) => {
    if (explain(schema, raw).length > 0) throw badValue(name, expects(schema), raw);
    return raw;
  };
}

export type Values<T extends OptionTable> = {
  [K in keyof T]?: T[K] extends FlagOption ? true : T[K] extends ValueOption<infer V> ? V : T[K] extends ListOption<infer V> ? V[] : never;
};

export interface CommandSpec<T extends OptionTable> {
  name: string;
  /** One line, for `wasmvisor --help`. */
  summary: string;
  /** The synopsis lines after `Usage:`. */
  usage: string[];
  options: T;
  /** Fixed positionals (e.g. module, export). */
  positionals: { names: string[]; min: number };
  /** After the fixed positionals, the rest of the line goes to the guest (run). */
  rest?: string;
  /** Paragraphs printed after the options. */
  notes?: string;
}

export interface Parsed<T extends OptionTable> {
  values: Values<T>;
  positionals: string[];
  rest: string[];
  help: boolean;
}

/** Parses `argv` by the command's table. `--help`/`-h` is every command's. */
export function parse<T extends OptionTable>(command: CommandSpec<T>, argv: readonly string[]): Parsed<T> {
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  const rest: string[] = [];
  const fixed = command.positionals.names.length;
  const byShort = new Map(Object.entries(command.options).flatMap(([k, o]) => (o.short ? [[o.short, k] as const] : [])));
  let help = false;
  let i = 0;
  // The text each single-valued option was given, to refuse it a second time.
  const given = new Map<string, string>();
  const take = (name: string, spec: OptionSpec, inline: string | undefined, shown: string): void => {
    if (spec.kind === 'flag') {
      if (inline !== undefined) throw takesNoValue(shown, inline, command.name);
      values[name] = true;
      return;
    }
    let raw = inline;
    if (raw === undefined) {
      if (i >= argv.length) throw needsValue(shown, command.name);
      raw = argv[i++]!;
    }
    if (spec.kind === 'value' && given.has(name)) throw givenTwice(`--${name}`, given.get(name)!, raw, command.name);
    const parsed = spec.parse(raw, shown);
    if (spec.kind === 'list') ((values[name] ??= []) as unknown[]).push(parsed);
    else {
      values[name] = parsed;
      given.set(name, raw);
    }
  };
  while (i < argv.length) {
    const arg = argv[i++]!;
    // `-` (stdin) and negative numbers are values, not options.
    const optionLike = arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg);
    if (command.rest !== undefined && fixed > 0 && positionals.length >= fixed && !optionLike) {
      // The first argument past the module: it and everything after it are the guest's.
      rest.push(arg, ...argv.slice(i));
      break;
    }
    if (arg === '--') {
      const after = argv.slice(i);
      if (command.rest !== undefined) {
        const need = Math.max(0, fixed - positionals.length);
        positionals.push(...after.slice(0, need));
        rest.push(...after.slice(need));
      } else {
        positionals.push(...after);
      }
      break;
    }
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const spec = command.options[name];
      if (spec === undefined) throw unknownOption(command, `--${name}`);
      take(name, spec, eq < 0 ? undefined : arg.slice(eq + 1), `--${name}`);
      continue;
    }
    if (optionLike) {
      const name = byShort.get(arg.slice(1, 2));
      if (name === undefined || command.options[name] === undefined) throw unknownOption(command, arg);
      take(name, command.options[name]!, arg.length > 2 ? arg.slice(2).replace(/^=/, '') : undefined, arg.slice(0, 2));
      continue;
    }
    positionals.push(arg);
  }
  if (!help) checkPositionals(command.name, positionals, command.positionals.names, command.positionals.min);
  return { values: values as Values<T>, positionals, rest, help };
}

/**
 * Whether `argv` gives `--json` as one of the command's options (not as an option's value, nor
 * as a guest's argument), judged leniently as `parse` reads a command line: for one that did not
 * parse, so that the refusal still comes with the report --json promises. An unknown option is
 * taken for a flag.
 */
export function asksJson<T extends OptionTable>(command: CommandSpec<T>, argv: readonly string[]): boolean {
  if (command.options['json']?.kind !== 'flag') return false;
  const fixed = command.positionals.names.length;
  const byShort = new Map(Object.entries(command.options).flatMap(([k, o]) => (o.short ? [[o.short, o] as const] : [])));
  let positionals = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const optionLike = arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg);
    if (arg === '--' || (command.rest !== undefined && fixed > 0 && positionals >= fixed && !optionLike)) return false;
    if (arg === '--json' || arg.startsWith('--json=')) return true;
    if (arg.startsWith('--')) {
      if (!arg.includes('=') && (command.options[arg.slice(2)]?.kind ?? 'flag') !== 'flag') i++;
    } else if (optionLike) {
      if (arg.length === 2 && (byShort.get(arg.slice(1))?.kind ?? 'flag') !== 'flag') i++;
    } else positionals++;
  }
  return false;
}

/** Parses `argv`; on `--help` prints the command's help and returns null (exit status 0). */
export function parseOrHelp<T extends OptionTable>(command: CommandSpec<T>, argv: readonly string[]): Parsed<T> | null {
  const parsed = parse(command, argv);
  if (!parsed.help) return parsed;
  process.stdout.write(helpText(command));
  return null;
}

/**
 * A single-valued option given a second time: refused, never last-wins, as a `--wasi-quota`
 * name given twice is. Which of two values was meant is the user's to say; keeping one would
 * drop the other without a word. Worded the same by mgmt-args.ts for the management commands.
 */
export function givenTwice(flag: string, first: string, second: string, help: string): InvalidArgumentError {
  return new InvalidArgumentError(`${flag} is given twice (${quoted(first)} and ${quoted(second)}); give it once${seeHelp(help)}`);
}

/** Where a command's help is: `; see wasmvisor <help> --help` (`help` '' for the top level's). */
export function seeHelp(help: string): string {
  return `; see wasmvisor ${help === '' ? '' : `${help} `}--help`;
}

/** `--timeout` at the end of the line: `--timeout needs a value; see wasmvisor run --help`. */
export function needsValue(flag: string, help: string): InvalidArgumentError {
  return new InvalidArgumentError(`${flag} needs a value${seeHelp(help)}`);
}

/** `--stats=yes`: `--stats takes no value, got "yes"; see wasmvisor run --help`. */
export function takesNoValue(flag: string, given: string, help: string): InvalidArgumentError {
  return new InvalidArgumentError(`${flag} takes no value, got ${quoted(given)}${seeHelp(help)}`);
}

/** A value its option does not take: `--port: expected an integer from 0 to 65535, got "-1"`. */
export function badValue(flag: string, expected: string, raw: string): InvalidArgumentError {
  return new InvalidArgumentError(`${flag}: expected ${expected}, got ${quoted(raw)}`);
}

/** `a, b or c`. */
export function oneOf(words: readonly string[]): string {
  return words.length <= 1 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

/** A value that must be one of `words`: `--outcome: expected success, denied or failure, got "x"`. */
export function choice<T extends string>(words: readonly T[]): (raw: string, flag: string) => T {
  return (raw, flag) => {
    if (!(words as readonly string[]).includes(raw)) throw badValue(flag, oneOf(words), raw);
    return raw as T;
  };
}

/** A required option not given: `attest verify needs --key <file>; see wasmvisor attest verify --help`. */
export function needsOption(command: string, option: string, help: string): InvalidArgumentError {
  return new InvalidArgumentError(`${command} needs ${option}${seeHelp(help)}`);
}

/**
 * The name of a partition named after its file (the remote run's module; a manifest without a
 * name, read by the library): the file's base name without `ext`. One that is no partition name
 * is refused by needsName, before anything is read or sent.
 */
export function nameFromFile(command: string, file: string, ext: string, help: string): string {
  const base = path.basename(file);
  const name = base.toLowerCase().endsWith(ext) ? base.slice(0, base.length - ext.length) : base;
  if (!NAME.test(name)) throw needsName(command, name, help);
  return name;
}

/**
 * A partition named after its file, whose file name is no partition name: `run needs --name
 * <name> (the file name "my app" is not a valid partition name); see wasmvisor --help`; for a
 * manifest that names none, `(manifest my app.json names none, and its file name "my app" is …)`.
 */
export function needsName(command: string, base: string, help: string, manifest?: string): InvalidArgumentError {
  const why = `${manifest !== undefined ? `manifest ${manifest} names none, and its ` : 'the '}file name ${quoted(base)} is not a valid partition name`;
  return needsOption(command, `--name <name> (${why})`, help);
}

/**
 * A subcommand that is not one of the group's (none given: ""): `token takes create, list or
 * revoke, got "lst"; did you mean list?; see wasmvisor token --help`.
 */
export function unknownSubcommand(group: string, words: readonly string[], got: string | undefined, help = group): InvalidArgumentError {
  const near = got === undefined || got === '' ? null : nearest(got, words);
  return new InvalidArgumentError(`${group} takes ${oneOf(words)}, got ${quoted(got ?? '')}${near ? `; did you mean ${near}?` : ''}${seeHelp(help)}`);
}

/**
 * The positional arguments of a command, counted and checked as every command words it: too
 * few (`call needs <export>; see …`), too many (`logs takes <name>, got an extra argument "b";
 * see …`), or an empty one, which names nothing (an unset "$MODULE": '' as a path is the working
 * directory or ENOENT): `inspect: expected <guest.wasm | app.json>, got ""; see …`.
 */
export function checkPositionals(command: string, positionals: readonly string[], names: readonly string[], min: number, help = command): void {
  if (positionals.length < min) throw new InvalidArgumentError(`${command} needs ${names.slice(positionals.length, min).map((n) => `<${n}>`).join(' ')}${seeHelp(help)}`);
  if (positionals.length > names.length) {
    throw new InvalidArgumentError(`${command} takes ${names.length === 0 ? 'no arguments' : names.map((n, i) => (i < min ? `<${n}>` : `[<${n}>]`)).join(' ')}, got an extra argument ${quoted(positionals[names.length]!)}${seeHelp(help)}`);
  }
  const empty = positionals.indexOf('');
  if (empty >= 0) throw new InvalidArgumentError(`${command}: expected <${names[empty]}>, got ""${seeHelp(help)}`);
}

function unknownOption(command: CommandSpec<OptionTable>, shown: string): InvalidArgumentError {
  const known = Object.keys(command.options);
  const near = nearest(shown.replace(/^-+/, ''), known);
  const hint = near !== null ? `; did you mean --${near}?` : '';
  const guest = command.rest !== undefined ? ` (to pass it to the guest, put it after the module or after --)` : '';
  return new InvalidArgumentError(`${command.name}: unknown option ${shown}${hint}${guest}; see wasmvisor ${command.name} --help`);
}

/** The help text of a command, from its table. */
export function helpText<T extends OptionTable>(command: CommandSpec<T>): string {
  const rows: [string, string][] = Object.entries(command.options).map(([name, o]) => {
    const left = `${o.short ? `-${o.short}, ` : ''}--${name}${o.kind === 'flag' ? '' : ` ${o.value}`}${o.kind === 'list' ? ' ...' : ''}`;
    return [left, `${o.help}${o.default !== undefined ? ` (default ${o.default})` : ''}`];
  });
  rows.push(['-h, --help', 'print this help']);
  const width = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  const wrap = (s: string): string[] => {
    const out: string[] = [];
    let line = '';
    for (const word of s.split(' ')) {
      if (line !== '' && line.length + 1 + word.length > 100 - width) {
        out.push(line);
        line = word;
      } else line = line === '' ? word : `${line} ${word}`;
    }
    out.push(line);
    return out;
  };
  const lines = rows.flatMap(([l, r]) => {
    const [first, ...more] = wrap(r);
    const head = l.length + 2 > width ? [`  ${l}`, `  ${''.padEnd(width)}${first}`] : [`  ${l.padEnd(width)}${first}`];
    return [...head, ...more.map((m) => `  ${''.padEnd(width)}${m}`)];
  });
  return [
    `Usage:\n${command.usage.map((u) => `  ${u}`).join('\n')}`,
    `${command.summary[0]!.toUpperCase()}${command.summary.slice(1)}.`,
    `Options:\n${lines.join('\n')}`,
    ...(command.notes ? [command.notes.trim()] : []),
  ].join('\n\n') + '\n';
}
