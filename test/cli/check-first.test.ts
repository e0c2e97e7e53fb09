/**
 * A command checks its whole command line before it reads a file, waits on stdin, opens a
 * directory or reaches a host: a mistake on the line is named as itself (ERR_INVALID_ARGUMENT,
 * exit 2), never behind a file that cannot be read, a terminal that waits for input, or a host
 * that cannot be reached. Each case gives what would fail first if it were read or reached (a
 * token file that is not there, stdin left open, a module that is not there, a config directory
 * that is not there), so the verdict shows which came first. Through the real CLI process.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { guest } from '../helpers.ts';
import { cli, type CliOptions } from './harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-check-first-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const missing = path.join(tmp, 'no-such-file');
const tokenFile = path.join(tmp, 'token');
writeFileSync(tokenFile, `wvt_${'0'.repeat(16)}_${'A'.repeat(43)}\n`);
const PIN = 'AA'.repeat(32);
/** A client whose token file is not there: reading it would be the verdict. */
const unread = ['--host', 'https://127.0.0.1:1', '--token-file', missing, '--fingerprint', PIN];
/** A client whose files are fine but whose host is not there: reaching it would be ERR_CONNECTION (69). */
const unreached = ['--host', 'https://127.0.0.1:1', '--token-file', tokenFile, '--fingerprint', PIN];
/** stdin left open, as an idle terminal: a command that read it first would wait (and be killed). */
const idle: CliOptions = { keepStdinOpen: true, killAfterMs: 20_000 };

const refused = (verdict: string) => ({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${verdict}\n` });

describe.concurrent('the remote client: the command line, then the files, then the host', () => {
  const cases: [string, string[], string][] = [
    // The command's own options were parsed after --token-file was read: its ENOENT was the verdict.
    ['an unknown option of the command', [...unread, 'ps', '--bogus'], 'ps: unknown option --bogus; see wasmvisor --help'],
    ['a bad value of the command', [...unread, 'run', 'g.wasm', '--name', 'web', '--restart', 'bogus'], '--restart: expected never, on-failure or always, got "bogus"'],
    ['a missing argument', [...unread, 'logs'], 'logs needs <name>; see wasmvisor --help'],
    ['a missing required option', [...unread, 'attest'], 'attest needs --nonce <hex>; see wasmvisor --help'],
    ['--input and --input-file both', [...unread, 'call', 'web', 'f', '--input', 'a', '--input-file', 'b'], '--input and --input-file: give one of them, not both'],
    // The client's own options, checked by the client before any of its files is read.
    ['--host that is not a URL', ['--host', 'notaurl', '--token-file', missing, '--fingerprint', PIN, 'ps'], '--host "notaurl" is not a URL (e.g. https://127.0.0.1:8443)'],
    ['a fingerprint that is none', ['--host', 'https://127.0.0.1:1', '--token-file', missing, '--fingerprint', 'zz', 'ps'], 'fingerprint "zz" is not a SHA-256 fingerprint (64 hex digits, colons optional)'],
    ['no way to verify the host', ['--host', 'https://127.0.0.1:1', '--token-file', missing, 'ps'], "give --fingerprint <sha256> or --ca <file> so the host's certificate can be verified"],
    // --ca and the client certificate are files too.
    ['an unknown option, with --ca and --cert not there', ['--host', 'https://127.0.0.1:1', '--token-file', tokenFile, '--ca', missing, '--cert', missing, '--key', missing, 'whoami', '-x'], 'whoami: unknown option -x; see wasmvisor --help'],
  ];
  for (const [what, args, verdict] of cases) {
    it(what, async () => {
      expect(await cli(args, { cwd: tmp })).toMatchObject(refused(verdict));
    });
  }

  it('a line that is right goes on to read the files: the token file not there is then the verdict', async () => {
    const r = await cli([...unread, 'ps'], { cwd: tmp });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: cannot read --token-file .*no-such-file: ENOENT/);
  });

  it('call: a bad --timeout is named before stdin is read (it waited for stdin to end)', async () => {
    expect(await cli([...unreached, 'call', 'web', 'upper', '--timeout', '0'], { cwd: tmp, ...idle })).toMatchObject(refused('--timeout: expected an integer from 1 to 600000, got "0"'));
    // A right --timeout, at its bound, goes on to read stdin and then to reach the host.
    const r = await cli([...unreached, 'call', 'web', 'upper', '--timeout', '600000'], { cwd: tmp, input: 'x' });
    expect(r.code, r.stderr).toBe(69);
  });
});

describe.concurrent("the remote run's default name: the module's file name, when it is a partition name", () => {
  it('a file name that is no partition name is refused naming --name, before the token or the module is read', async () => {
    for (const file of ['my app.wasm', path.join(tmp, '.hidden.wasm'), `${'a'.repeat(65)}.wasm`]) {
      const base = path.basename(file).replace(/\.wasm$/, '');
      expect(await cli([...unread, 'run', file], { cwd: tmp }), file).toMatchObject(refused(`run needs --name <name> (the file name "${base}" is not a valid partition name); see wasmvisor --help`));
    }
  });

  it('a file name that is one (64 characters, the longest) is taken: the command goes on to read the module', async () => {
    const file = path.join(tmp, `${'a'.repeat(64)}.wasm`);
    const r = await cli([...unreached, 'run', file], { cwd: tmp });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: cannot read module file .*a{64}\.wasm: ENOENT/);
    // --name makes the file's name irrelevant.
    const named = await cli([...unreached, 'run', path.join(tmp, 'my app.wasm'), '--name', 'web'], { cwd: tmp });
    expect(named.stderr).toMatch(/^ERR_INVALID_ARGUMENT: cannot read module file .*my app\.wasm: ENOENT/);
  });

  it("the local run names a manifest's partition the same way, and refuses the same way", async () => {
    const file = path.join(tmp, 'my app.json');
    writeFileSync(file, JSON.stringify({ module: guest('hello') }));
    for (const command of ['run', 'call']) {
      const args = command === 'run' ? [command, file] : [command, file, 'f'];
      expect(await cli(args, { cwd: tmp, ...idle }), command).toMatchObject(
        refused(`${command} needs --name <name> (manifest ${file} names none, and its file name "my app" is not a valid partition name); see wasmvisor ${command} --help`),
      );
    }
  });
});

describe.concurrent('local commands: the command line before the files, stdin and the config directory', () => {
  it('--signature without --policy is named before the manifest is read', async () => {
    for (const command of ['run', 'call']) {
      const args = command === 'run' ? [command, '--signature', 's.sig', `${missing}.json`] : [command, '--signature', 's.sig', `${missing}.json`, 'f'];
      expect(await cli(args, { cwd: tmp }), command).toMatchObject(refused("--signature goes with --policy <file>: a detached signature is checked against the policy's publisher keys"));
    }
  });

  it('call: a flag for a device not granted is named before stdin is read (it waited for stdin to end)', async () => {
    expect(await cli(['call', '--seed', 'x', guest('transform'), 'upper'], { cwd: tmp, ...idle })).toMatchObject(
      refused('--seed configures the entropy device, which is not granted to call by default (no devices): add entropy to --devices, or drop --seed'),
    );
    // With the device granted, the same line reads stdin and calls.
    const r = await cli(['call', '--devices', 'entropy', '--seed', 'x', guest('transform'), 'upper'], { cwd: tmp, input: 'abc' });
    expect(r.code, r.stderr).toBe(0);
  });

  it('token: the arguments and the options create needs are named before the config directory is looked at', async () => {
    const config = path.join(tmp, 'no-host');
    expect(await cli(['token', 'list', '--config', config, 'extra'], { cwd: tmp })).toMatchObject(refused('token list takes no arguments, got an extra argument "extra"; see wasmvisor token --help'));
    expect(await cli(['token', 'revoke', '--config', config], { cwd: tmp })).toMatchObject(refused('token revoke needs <id>; see wasmvisor token --help'));
    expect(await cli(['token', 'create', '--config', config, '--name', 'a', '--role', 'Owner'], { cwd: tmp })).toMatchObject(refused('token create needs --scope <scope>; see wasmvisor token --help'));
    expect(await cli(['token', 'create', '--config', config, '--name', 'a', '--role', 'Owner', '--scope', '/', '--expires', 'soon'], { cwd: tmp })).toMatchObject(refused('--expires "soon": expected a duration like 7d, 12h, 30m, 90s, or never'));
    // None of them made the directory (create makes one only once its line is right).
    expect(existsSync(config)).toBe(false);
  });
});
