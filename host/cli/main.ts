#!/usr/bin/env node
/**
 * The `wasmvisor` command. Each subcommand lives in its own file with its own option table and
 * help (run.ts, call.ts, inspect.ts, delete.ts, disks.ts, demo.ts, keygen.ts, sign.ts, verify.ts,
 * attest.ts, audit.ts, lab); this file only dispatches. To add a subcommand: a file exporting its
 * CommandSpec and its function, and one row in COMMANDS (a command with subcommands of its own,
 * like `attest verify` and `attest key`, is one `group` row: each subcommand still has its own table).
 * A failed command's verdict is the last stderr line and starts with the stable error code
 * (stderr.ts says why a guest cannot imitate it); exit statuses are listed in common.ts.
 */
import { InvalidArgumentError } from '../errors.ts';
import { nearest } from '../schema/check.ts';
import { call, callCommand } from './call.ts';
import { fail } from './common.ts';
import { stderr } from './stderr.ts';
import { deleteCommand, remove } from './delete.ts';
import { disks, disksCommand } from './disks.ts';
import { demo, demoCommand } from './demo.ts';
import { inspect, inspectCommand } from './inspect.ts';
import { unknownSubcommand, type CommandSpec, type OptionTable } from './options.ts';
import { run, runCommand } from './run.ts';
import { keygen, keygenCommand } from './keygen.ts';
import { sign, signCommand } from './sign.ts';
import { verify, verifyCommand } from './verify.ts';
import { attestKey, attestKeyCommand, attestVerify, attestVerifyCommand } from './attest.ts';
import { auditShow, auditShowCommand, auditVerify, auditVerifyCommand } from './audit.ts';
import { CERT_USAGE, certCommand } from './cert.ts';
import { REMOTE_USAGE, remoteCommand } from './remote.ts';
import { SERVE_USAGE, serveCommand } from './serve.ts';
import { TOKEN_USAGE, tokenCommand } from './token.ts';
import { LAB_USAGE, labCommand } from './lab.ts';
import { VERSION } from './version.ts';
import { quoted } from '../escape.ts';

type Main = (argv: string[]) => Promise<number>;

/**
 * A subcommand: with its option table (`spec`: help and parsing come from it), with its own
 * parser and a usage text (`usage`), printed for `--help`, or a group of subcommands (`group`),
 * each with its own table, chosen by the next word.
 */
type Command = { name: string; summary: string; main: Main } & (
  | { spec: CommandSpec<OptionTable>; usage?: undefined; group?: undefined }
  | { spec?: undefined; usage: string; group?: undefined }
  | { spec?: undefined; usage?: undefined; group: readonly CommandSpec<OptionTable>[] }
);

const table = (spec: CommandSpec<OptionTable>, main: Main): Command => ({ name: spec.name, summary: spec.summary, spec, main });

/** `wasmvisor <name> <sub> ...`: the subcommands' specs are named `<name> <sub>`. */
function group(name: string, summary: string, subs: readonly (readonly [CommandSpec<OptionTable>, Main])[]): Command {
  const words = subs.map(([spec]) => spec.name.slice(name.length + 1));
  return {
    name,
    summary,
    group: subs.map(([spec]) => spec),
    main: async ([sub, ...rest]) => {
      const i = sub === undefined ? -1 : words.indexOf(sub);
      if (i < 0) throw unknownSubcommand(name, words, sub);
      return subs[i]![1](rest);
    },
  };
}

const COMMANDS: readonly Command[] = [
  table(runCommand, run),
  table(callCommand, call),
  table(inspectCommand, inspect),
  table(deleteCommand, remove),
  table(disksCommand, disks),
  table(demoCommand, demo),
  table(keygenCommand, keygen),
  table(signCommand, sign),
  table(verifyCommand, verify),
  group('attest', 'verify an attestation report, or export the host\'s attestation key', [
    [attestVerifyCommand, attestVerify],
    [attestKeyCommand, attestKey],
  ]),
  group('audit', 'verify an audit log, or show its records', [
    [auditVerifyCommand, auditVerify],
    [auditShowCommand, auditShow],
  ]),
  { name: 'serve', summary: 'run a host with the management API (docs/MANAGEMENT.md)', usage: SERVE_USAGE, main: serveCommand },
  { name: 'token', summary: 'create, list and revoke API tokens of a host', usage: TOKEN_USAGE, main: tokenCommand },
  { name: 'cert', summary: 'create a client certificate from a host\'s local CA', usage: CERT_USAGE, main: certCommand },
  { name: 'lab', summary: 'the isolation labs: a dashboard in a browser, or a lab in this terminal (docs/LABS.md)', usage: LAB_USAGE, main: labCommand },
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
  wasmvisor run --policy policy.json --attest report.json signed.wasm
  wasmvisor audit verify .wasmvisor/audit

See docs/MANAGEMENT.md for serve, token, cert and the remote commands.
`;
}

const isHelp = (a: string | undefined): boolean => a === '--help' || a === '-h';

/**
 * `--help` of a command with its own parser: its usage text; of a group (`attest --help`, not
 * `attest verify --help`, which is the subcommand's own): its subcommands' synopses.
 */
function legacyHelp(command: Command, argv: string[]): boolean {
  if (command.usage !== undefined && argv.some(isHelp)) {
    process.stdout.write(`Usage:\n${command.usage}\n`);
    return true;
  }
  if (command.group !== undefined && isHelp(argv[0])) {
    const lines = command.group.flatMap((s) => s.usage.map((u) => `  ${u}`));
    const width = Math.max(...command.group.map((s) => s.name.length)) + 2;
    const subs = command.group.map((s) => `  ${s.name.padEnd(width)}${s.summary}`);
    process.stdout.write(`Usage:\n${lines.join('\n')}\n\nCommands:\n${subs.join('\n')}\n\nSee wasmvisor ${command.group[0]!.name} --help (and the others) for each one's options.\n`);
    return true;
  }
  return false;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined) {
      // The usage first: the verdict is the last line of stderr (stderr.ts).
      stderr.block(`${usage()}\n`);
      stderr.verdict('ERR_INVALID_ARGUMENT', 'no command given');
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
      const args = [...rest.slice(1), '--help']; // `help attest verify`: the subcommand's
      return legacyHelp(command, args) ? 0 : await command.main(args);
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
  // An option before any command is one of the few this level takes (--hlep: --help).
  if (name.startsWith('-') && name !== '-') {
    const shown = name.split('=')[0]!;
    const near = shown.startsWith('--') ? nearest(shown.slice(2), ['help', 'version', 'host', 'token-file', 'fingerprint', 'ca', 'cert', 'key']) : null;
    return new InvalidArgumentError(`unknown option ${shown}${near ? `; did you mean --${near}?` : ''}; see wasmvisor --help`);
  }
  const near = nearest(name, COMMANDS.map((c) => c.name));
  return new InvalidArgumentError(`unknown command ${quoted(name)}${near ? `; did you mean ${near}?` : ''}; see wasmvisor --help`);
}

process.exitCode = await main(process.argv.slice(2));
