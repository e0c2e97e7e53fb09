/**
 * `--json` on every failure path: a command whose --json prints one document on stdout (inspect,
 * disks, audit show, token list, the remote ps, audit and token list) prints the error as a JSON
 * document there too, `{"command","error":{"code","message"},"exitStatus"}` (the fields run's and
 * call's reports carry), with the same verdict on stderr and the same exit status as without
 * --json, a bad command line included. `inspect --json --memory x` printed nothing on stdout.
 * Without --json, nothing on stdout. Through the real CLI.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { guest } from '../helpers.ts';
import { cli } from './harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-json-fail-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A remote client that reaches nothing (port 1 refuses at once). */
const tokenFile = path.join(tmp, 'token');
writeFileSync(tokenFile, `wvt_${'0'.repeat(16)}_${'A'.repeat(43)}\n`);
const remote = ['--host', 'https://127.0.0.1:1', '--token-file', tokenFile, '--fingerprint', 'AA'.repeat(32)];

const failures: [string, string[], string, number, RegExp][] = [
  // A bad command line: every kind of mistake, with --json before or after it.
  ['inspect', ['inspect', '--json', '--memory', 'x', guest('hello')], 'ERR_INVALID_ARGUMENT', 2, /^--memory: expected an integer from 1 to 65536, got "x"$/],
  ['inspect', ['inspect', '--bogus', '--json', guest('hello')], 'ERR_INVALID_ARGUMENT', 2, /^inspect: unknown option --bogus; see wasmvisor inspect --help$/],
  ['inspect', ['inspect', '--json'], 'ERR_INVALID_ARGUMENT', 2, /^inspect needs <guest\.wasm \| app\.json>; see wasmvisor inspect --help$/],
  ['inspect', ['inspect', '--json', guest('hello'), 'extra'], 'ERR_INVALID_ARGUMENT', 2, /^inspect takes <guest\.wasm \| app\.json>, got an extra argument "extra"/],
  ['inspect', ['inspect', '--json', '--json=yes', guest('hello')], 'ERR_INVALID_ARGUMENT', 2, /^--json takes no value, got "yes"/],
  ['inspect', ['inspect', '--json', '--signature', 's.sig', guest('hello')], 'ERR_INVALID_ARGUMENT', 2, /^--signature goes with --policy <file>/],
  // Past the command line: a module that cannot be read.
  ['inspect', ['inspect', '--json', path.join(tmp, 'missing.wasm')], 'ERR_MODULE_INVALID', 125, /missing\.wasm/],
  ['disks', ['disks', '--json', '--data-dir', ''], 'ERR_INVALID_ARGUMENT', 2, /^--data-dir: expected a directory, got ""$/],
  ['disks', ['disks', '--json', 'extra'], 'ERR_INVALID_ARGUMENT', 2, /^disks takes no arguments, got an extra argument "extra"/],
  ['audit show', ['audit', 'show', '--json', path.join(tmp, 'nowhere')], 'ERR_INVALID_ARGUMENT', 2, /^audit show: there is no audit log directory at /],
  ['audit show', ['audit', 'show', '--json', '--outcome', 'won'], 'ERR_INVALID_ARGUMENT', 2, /^--outcome: expected success, denied or failure, got "won"$/],
  ['token list', ['token', 'list', '--json', '--config', path.join(tmp, 'no-host')], 'ERR_INVALID_ARGUMENT', 2, /^token list: there is no host config directory at /],
  ['token list', ['token', 'list', '--json', '--bogus'], 'ERR_INVALID_ARGUMENT', 2, /^token list: unknown option --bogus/],
  ['ps', [...remote, 'ps', '--json', '--bogus'], 'ERR_INVALID_ARGUMENT', 2, /^ps: unknown option --bogus/],
  ['ps', [...remote, 'ps', '--json'], 'ERR_CONNECTION', 69, /127\.0\.0\.1:1/],
  ['audit', [...remote, 'audit', '--json', '--limit', '5'], 'ERR_CONNECTION', 69, /127\.0\.0\.1:1/],
  ['token list', [...remote, 'token', 'list', '--json'], 'ERR_CONNECTION', 69, /127\.0\.0\.1:1/],
];

describe.concurrent('--json: every failure prints the error document on stdout', () => {
  for (const [command, args, code, status, message] of failures) {
    it(args.map((a) => (a.length > 40 ? '…' : a)).join(' '), async () => {
      const r = await cli(args, { cwd: tmp });
      expect(r.code, r.stderr).toBe(status);
      expect(r.stdout.endsWith('\n')).toBe(true);
      const doc = JSON.parse(r.stdout) as { command: string; error: { code: string; message: string }; exitStatus: number };
      expect(doc).toEqual({ command, error: { code, message: expect.stringMatching(message) }, exitStatus: status });
      // The verdict as without --json: the last line of stderr, the same message.
      expect(r.stderr.endsWith(`${code}: ${doc.error.message.replaceAll('\n', '\\n')}\n`)).toBe(true);
      // Without --json: the same verdict and status, nothing on stdout.
      const plain = await cli(args.filter((a) => a !== '--json'), { cwd: tmp });
      if (args.includes('--json=yes')) return;
      expect(plain).toMatchObject({ code: status, stdout: '' });
    });
  }

  it('inspect --json: a document with command and error (null when admitted, the refusal when not)', async () => {
    const admitted = await cli(['inspect', '--json', guest('hello')]);
    expect(admitted.code).toBe(0);
    expect(JSON.parse(admitted.stdout)).toMatchObject({ command: 'inspect', error: null, exitStatus: 0, verdict: { admitted: true } });
    const pinned = await cli(['inspect', '--json', '--sha256', '0'.repeat(64), guest('hello')]);
    expect(pinned.code).toBe(125);
    expect(JSON.parse(pinned.stdout)).toMatchObject({ command: 'inspect', error: { code: 'ERR_INTEGRITY' }, exitStatus: 125, verdict: { admitted: false, code: 'ERR_INTEGRITY' } });
  });
});
