/**
 * `--data-dir` names where a command keeps or reads state; given where nothing uses it, it is
 * refused (ERR_INVALID_ARGUMENT, exit 2) naming what would use it, never silently ignored — as a
 * flag that configures a device the partition is not granted is (README, "Command line"). It was
 * ignored: `run --data-dir d hello.wasm` ran, keeping nothing in d, and `audit show <dir>
 * --data-dir d` read <dir>. Where something uses it (a disk, the audit log, the host key of
 * --attest or of the attestation device), it is taken as before. Through the real CLI.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { guest } from '../helpers.ts';
import { cli } from './harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-data-dir-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const unused = (command: 'run' | 'call'): string =>
  `ERR_INVALID_ARGUMENT: --data-dir is where ${command} keeps disks, the audit log and the host key, and this ${command} keeps none of them (no --disk or block device, no --audit or --policy, no ${command === 'run' ? '--attest or ' : ''}attestation device): drop --data-dir, or add what should use it; see wasmvisor ${command} --help\n`;

describe('--data-dir where nothing uses it is refused, not ignored', () => {
  it('run and call that keep nothing there: refused, and the folder is not made', async () => {
    const dir = path.join(tmp, 'never');
    expect(await cli(['run', '--data-dir', dir, guest('hello')], { cwd: tmp })).toMatchObject({ code: 2, stdout: '', stderr: unused('run') });
    expect(await cli(['call', '--data-dir', dir, '--input', 'x', guest('transform'), 'upper'], { cwd: tmp })).toMatchObject({ code: 2, stdout: '', stderr: unused('call') });
    // --json: the refusal is in the report too.
    const json = await cli(['call', '--json', '--data-dir', dir, '--input', 'x', guest('transform'), 'upper'], { cwd: tmp });
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ command: 'call', state: 'not-run', exitStatus: 2, error: { code: 'ERR_INVALID_ARGUMENT' } });
    expect(existsSync(dir)).toBe(false);
  });

  it('run with what keeps state there takes it: --audit, --attest, the attestation device', async () => {
    for (const [name, extra] of [['audit', ['--audit']], ['attest', ['--attest', path.join(tmp, 'r.json')]], ['device', ['--devices', 'console,attestation']]] as const) {
      const dir = path.join(tmp, name);
      const r = await cli(['run', '--data-dir', dir, ...extra, guest('hello')], { cwd: tmp });
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(existsSync(dir), name).toBe(true);
    }
  });

  it('audit show <dir> and audit verify <dir> --key-dir: --data-dir names nothing more and is refused', async () => {
    const log = path.join(tmp, 'log');
    const keys = path.join(tmp, 'keys');
    mkdirSync(log);
    mkdirSync(keys);
    expect(await cli(['audit', 'show', log, '--data-dir', tmp], { cwd: tmp })).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'ERR_INVALID_ARGUMENT: --data-dir is not used when <dir> is given: drop it, or name the log through it; see wasmvisor audit show --help\n',
    });
    expect(await cli(['audit', 'verify', log, '--key-dir', keys, '--data-dir', tmp], { cwd: tmp })).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'ERR_INVALID_ARGUMENT: --data-dir is not used when <dir> and --key-dir are given: drop it, or name one of them through it; see wasmvisor audit verify --help\n',
    });
    // With <dir> alone, --data-dir still names the keys: taken.
    expect((await cli(['audit', 'verify', log, '--data-dir', tmp, '--allow-empty'], { cwd: tmp })).code).toBe(0);
  });
});

describe('a --data-dir a command only reads must be there', () => {
  it('disks and delete refuse a missing one (a misspelt one read as empty: "no disks", "nothing to delete", exit 0); an existing empty one is read', async () => {
    const missing = path.join(tmp, 'typo');
    expect(await cli(['disks', '--data-dir', missing], { cwd: tmp })).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: --data-dir: there is no directory at ${missing}; see wasmvisor disks --help\n` });
    expect(await cli(['delete', '--data-dir', missing, 'x'], { cwd: tmp })).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: --data-dir: there is no directory at ${missing}; see wasmvisor delete --help\n` });
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, '');
    expect((await cli(['disks', '--data-dir', file], { cwd: tmp })).stderr).toBe(`ERR_INVALID_ARGUMENT: --data-dir: there is no directory at ${file}; see wasmvisor disks --help\n`);
    expect(existsSync(missing)).toBe(false);
    const empty = path.join(tmp, 'empty-data');
    mkdirSync(empty);
    expect(await cli(['disks', '--data-dir', empty], { cwd: tmp })).toMatchObject({ code: 0, stdout: `no disks in ${empty}\n` });
    expect(await cli(['delete', '--data-dir', empty, 'x'], { cwd: tmp })).toMatchObject({ code: 0, stdout: `x has no disk in ${empty}; nothing to delete\n` });
  });
});
