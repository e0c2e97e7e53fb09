#!/usr/bin/env node
/**
 * The `wasmvisor` command. Each subcommand lives in its own file with its own option table and
 * help (run.ts, call.ts, inspect.ts, delete.ts, disks.ts, demo.ts); this file only dispatches. To add a
 * subcommand: a file exporting its CommandSpec and its function, and one row in COMMANDS.
 * Error lines start with the stable error code; exit statuses are listed in common.ts.
 */
import { InvalidArgumentError } from '../errors.ts';
import { nearest } from '../schema/check.ts';
import { call, callCommand } from './call.ts';
import { fail } from './common.ts';
import { deleteCommand, remove } from './delete.ts';
import { disks, disksCommand } from './disks.ts';
import { demo, demoCommand } from './demo.ts';
import { inspect, inspectCommand } from './inspect.ts';
import type { CommandSpec, OptionTable } from './options.ts';
import { run, runCommand } from './run.ts';
import { CERT_USAGE, certCommand } from './cert.ts';
import { REMOTE_USAGE, remoteCommand } from './remote.ts';
import { SERVE_USAGE, serveCommand } from './serve.ts';
import { TOKEN_USAGE, tokenCommand } from './token.ts';
import { VERSION } from './version.ts';

/**
 * A subcommand: with its option table (`spec`: help and parsing come from it), or with its own
 * parser and a usage text (`usage`), printed for `--help`.
 */
type Command = { name: string; summary: string; main: (argv: string[]) => Promise<number> } & (
  | { spec: CommandSpec<OptionTable>; usage?: undefined }
  | { spec?: undefined; usage: string }
);

const table = (spec: CommandSpec<OptionTable>, main: Command['main']): Command => ({ name: spec.name, summary: spec.summary, spec, main });

const COMMANDS: readonly Command[] = [
  table(runCommand, run),
  table(callCommand, call),
  table(inspectCommand, inspect),
  table(deleteCommand, remove),
  table(disksCommand, disks),
  table(demoCommand, demo),
  { name: 'serve', summary: 'run a host with the management API (docs/MANAGEMENT.md)', usage: SERVE_USAGE, main: serveCommand },
  { name: 'token', summary: 'create, list and revoke API tokens of a host', usage: TOKEN_USAGE, main: tokenCommand },
  { name: 'cert', summary: 'create a client certificate from a host\'s local CA', usage: CERT_USAGE, main: certCommand },
];

/** The remote client's form: `wasmvisor --host <url> ... <command>`. */
const REMOTE = /^--(host|token-file|fingerprint|ca|cert|key)(=|$)/;

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return `Usage:
  wasmvisor <command> [options] ...
  wasmvisor <command> --help      the command's options
${REMOTE_USAGE}
  wasmvisor --help | --version

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}

Examples:
  wasmvisor run hello.wasm a b               run a guest with arguments a b
  wasmvisor run --dir ./data::/data cat.wasm /data/x.txt
  wasmvisor run app.json                     run what a manifest describes
  wasmvisor call --input '# Hi' plugin.wasm render
  wasmvisor inspect --json guest.wasm

See docs/MANAGEMENT.md for serve, token, cert and the remote commands.
`;
}

/** `--help` of a command with its own parser: its usage text. */
function legacyHelp(command: Command, argv: string[]): boolean {
  if (command.usage === undefined || !argv.some((a) => a === '--help' || a === '-h')) return false;
  process.stdout.write(`Usage:\n${command.usage}\n`);
  return true;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined) {
      process.stderr.write(`ERR_INVALID_ARGUMENT: no command given\n${usage()}`);
      return 2;
    }
    if (name === '--version' || name === '-v') {
      process.stdout.write(`wasmvisor ${VERSION}\n`);
      return 0;
    }
    if (REMOTE.test(name)) return await remoteCommand(argv);
    if (name === '--help' || name === '-h' || name === 'help') {
      const topic = name === 'help' ? rest[0] : undefined;
      const command = COMMANDS.find((c) => c.name === topic);
      if (topic !== undefined && command === undefined) throw unknownCommand(topic);
      if (command === undefined) {
        process.stdout.write(usage());
        return 0;
      }
      return legacyHelp(command, ['--help']) ? 0 : await command.main(['--help']);
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (command === undefined) throw unknownCommand(name);
    if (legacyHelp(command, rest)) return 0;
    return await command.main(rest);
  } catch (error) {
    return fail(error);
  }
}

function unknownCommand(name: string): InvalidArgumentError {
  const near = nearest(name, COMMANDS.map((c) => c.name));
  return new InvalidArgumentError(`unknown command ${JSON.stringify(name)}${near ? `; did you mean ${near}?` : ''}; see wasmvisor --help`);
}

process.exitCode = await main(process.argv.slice(2));
