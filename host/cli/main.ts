#!/usr/bin/env node
/**
 * The `wasmvisor` command. Each subcommand lives in its own file with its own option table and
 * help (run.ts, call.ts, inspect.ts, delete.ts, demo.ts); this file only dispatches. To add a
 * subcommand: a file exporting its CommandSpec and its function, and one row in COMMANDS.
 * Error lines start with the stable error code; exit statuses are listed in common.ts.
 */
import { InvalidArgumentError } from '../errors.ts';
import { nearest } from '../schema/check.ts';
import { call, callCommand } from './call.ts';
import { fail } from './common.ts';
import { deleteCommand, remove } from './delete.ts';
import { demo, demoCommand } from './demo.ts';
import { inspect, inspectCommand } from './inspect.ts';
import type { CommandSpec, OptionTable } from './options.ts';
import { run, runCommand } from './run.ts';
import { VERSION } from './version.ts';

interface Command {
  spec: CommandSpec<OptionTable>;
  main: (argv: string[]) => Promise<number>;
}

const COMMANDS: readonly Command[] = [
  { spec: runCommand, main: run },
  { spec: callCommand, main: call },
  { spec: inspectCommand, main: inspect },
  { spec: deleteCommand, main: remove },
  { spec: demoCommand, main: demo },
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.spec.name.length)) + 2;
  return `Usage:
  wasmvisor <command> [options] ...
  wasmvisor <command> --help      the command's options
  wasmvisor --help | --version

Commands:
${COMMANDS.map((c) => `  ${c.spec.name.padEnd(width)}${c.spec.summary}`).join('\n')}

Examples:
  wasmvisor run hello.wasm a b               run a guest with arguments a b
  wasmvisor run --dir ./data::/data cat.wasm /data/x.txt
  wasmvisor run app.json                     run what a manifest describes
  wasmvisor call --input '# Hi' plugin.wasm render
  wasmvisor inspect --json guest.wasm
`;
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
    if (name === '--help' || name === '-h' || name === 'help') {
      const topic = name === 'help' ? rest[0] : undefined;
      const command = COMMANDS.find((c) => c.spec.name === topic);
      if (topic !== undefined && command === undefined) throw unknownCommand(topic);
      return command !== undefined ? command.main(['--help']) : (process.stdout.write(usage()), 0);
    }
    const command = COMMANDS.find((c) => c.spec.name === name);
    if (command === undefined) throw unknownCommand(name);
    return await command.main(rest);
  } catch (error) {
    return fail(error);
  }
}

function unknownCommand(name: string): InvalidArgumentError {
  const near = nearest(name, COMMANDS.map((c) => c.spec.name));
  return new InvalidArgumentError(`unknown command ${JSON.stringify(name)}${near ? `; did you mean ${near}?` : ''}; see wasmvisor --help`);
}

process.exitCode = await main(process.argv.slice(2));
