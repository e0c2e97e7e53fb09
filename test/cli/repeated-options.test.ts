/**
 * An option that takes one value, given twice, is refused naming it (ERR_INVALID_ARGUMENT, exit
 * 2), never last-wins: which of two values was meant is the user's to say, and keeping one drops
 * the other without a word (README, "Command line"). Both parsers: the option tables of the
 * guest-running and security commands (host/cli/options.ts), every one of their single-valued
 * options; and the management commands' parseArgs (host/cli/mgmt-args.ts) and the remote
 * client's options before its command, through the real CLI. A flag may be repeated (nothing is
 * lost) and a list option (`--dir`, `--env`, `--wasi-quota`, `serve --tls-name`) adds up.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { attestKeyCommand, attestVerifyCommand } from '../../host/cli/attest.ts';
import { auditShowCommand, auditVerifyCommand } from '../../host/cli/audit.ts';
import { callCommand } from '../../host/cli/call.ts';
import { deleteCommand } from '../../host/cli/delete.ts';
import { demoCommand } from '../../host/cli/demo.ts';
import { disksCommand } from '../../host/cli/disks.ts';
import { inspectCommand } from '../../host/cli/inspect.ts';
import { keygenCommand } from '../../host/cli/keygen.ts';
import { parse, type CommandSpec, type OptionTable } from '../../host/cli/options.ts';
import { runCommand } from '../../host/cli/run.ts';
import { signCommand } from '../../host/cli/sign.ts';
import { verifyCommand } from '../../host/cli/verify.ts';
import { cli } from './harness.ts';

const TABLES: CommandSpec<OptionTable>[] = [
  runCommand, callCommand, inspectCommand, deleteCommand, disksCommand, demoCommand, keygenCommand, signCommand, verifyCommand,
  attestVerifyCommand, attestKeyCommand, auditVerifyCommand, auditShowCommand,
] as CommandSpec<OptionTable>[];

/** Values one of which each option of the tables takes (the option's own parser says which). */
const CANDIDATES = ['1', '2', 'a', 'b', 'console', 'dedicated', 'shared', 'thread', 'process', '0'.repeat(64), '1'.repeat(64), 'bytes=1M', 'fds=8', 'K=V', 'K=W', 'x::/x', 'y::/y', '00'.repeat(8), '11'.repeat(8), 'success', 'denied'];

/** Two values the option's parser takes (the same one twice when only one does). */
function twoValues(parseValue: (raw: string, flag: string) => unknown): [string, string] {
  const ok = CANDIDATES.filter((c) => {
    try {
      parseValue(c, '--x');
      return true;
    } catch {
      return false;
    }
  });
  if (ok.length === 0) throw new Error('no candidate value parses');
  return [ok[0]!, ok[1] ?? ok[0]!];
}

const positionals = (command: CommandSpec<OptionTable>): string[] => command.positionals.names.slice(0, command.positionals.min).map((_, i) => `p${i}`);

describe('a single-valued option given twice', () => {
  for (const command of TABLES) {
    it(`${command.name}: each one is refused naming it and both values; flags repeat, lists add up`, () => {
      let checked = 0;
      for (const [name, spec] of Object.entries(command.options)) {
        if (spec.kind === 'flag') {
          expect(parse(command, [`--${name}`, `--${name}`, ...positionals(command)]).values[name], name).toBe(true);
          continue;
        }
        const [a, b] = twoValues(spec.parse);
        for (const argv of [[`--${name}`, a, `--${name}`, b], [`--${name}=${a}`, `--${name}=${b}`]]) {
          const run = () => parse(command, [...argv, ...positionals(command)]);
          if (spec.kind === 'list') {
            expect(run().values[name], name).toHaveLength(2);
          } else {
            expect(run, `${command.name} ${argv.join(' ')}`).toThrow(
              expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: `--${name} is given twice ("${a}" and "${b}"); give it once; see wasmvisor ${command.name} --help` }),
            );
            checked++;
          }
        }
      }
      expect(checked > 0).toBe(Object.values(command.options).some((o) => o.kind === 'value'));
    });
  }

  it('run: given once each, as before; the same value twice is refused too (a rule, not a guess)', () => {
    expect(parse(runCommand, ['--timeout', '5', '--memory', '2', 'g.wasm']).values).toMatchObject({ timeout: 5, memory: 2 });
    expect(() => parse(runCommand, ['--timeout', '5', '--timeout', '5', 'g.wasm'])).toThrow('--timeout is given twice ("5" and "5"); give it once; see wasmvisor run --help');
  });
});

describe('a management option given twice (through the CLI)', () => {
  const tokenFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'wv-twice-')), 'token');
  writeFileSync(tokenFile, `wvt_${'0'.repeat(16)}_${'A'.repeat(43)}\n`);
  it.concurrent.each([
    [['serve', '--port', '1', '--port=2'], 'ERR_INVALID_ARGUMENT: --port is given twice ("1" and "2"); give it once; see wasmvisor serve --help\n'],
    [['token', 'create', '--name', 'a', '--role', 'Reader', '--name', 'b', '--scope', '/'], 'ERR_INVALID_ARGUMENT: --name is given twice ("a" and "b"); give it once; see wasmvisor token --help\n'],
    [['cert', 'create', '--name', 'alice', '--days', '1', '--days', '-2'], 'ERR_INVALID_ARGUMENT: --days is given twice ("1" and "-2"); give it once; see wasmvisor cert --help\n'],
    [['lab', '--port', '0', '--port', '0'], 'ERR_INVALID_ARGUMENT: --port is given twice ("0" and "0"); give it once; see wasmvisor lab --help\n'],
    [['--host', 'https://127.0.0.1:1', '--token-file', tokenFile, '--fingerprint', '00'.repeat(32), 'logs', '--tail', '1', '--tail', '2', 'x'], 'ERR_INVALID_ARGUMENT: --tail is given twice ("1" and "2"); give it once; see wasmvisor --help\n'],
    [['--host', 'https://127.0.0.1:1', '--host', 'https://127.0.0.1:2', '--token-file', tokenFile, 'ps'], 'ERR_INVALID_ARGUMENT: --host is given twice ("https://127.0.0.1:1" and "https://127.0.0.1:2"); give it once; see wasmvisor --help\n'],
  ])('%j', async (argv, stderr) => {
    expect(await cli(argv)).toMatchObject({ code: 2, stdout: '', stderr });
  });

  it('serve --tls-name, a list, still adds up (refused here for what it names, not for the repetition)', async () => {
    const r = await cli(['serve', '--tls-name', 'a.example', '--tls-name', 'b.example', '--port', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('ERR_INVALID_ARGUMENT: --port: expected an integer from 0 to 65535, got "x"\n');
  });
});
