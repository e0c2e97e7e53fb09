/**
 * What the command line promises an outside user, checked as that user meets it (an outside
 * review, session 9): each --help's exit statuses are the ones the CLI exits with (the README's
 * table, host/cli/common.ts), the management and lab commands state their defaults and exit
 * statuses as docs/MANAGEMENT.md and docs/LABS.md do, `cert create` fails with a typed error (never
 * ERR_INTERNAL) and writes where it is told, `token` leaves no directory behind on a mistake, and
 * every `token create` the docs show works as written. (lab's refused option mixes are in test/labs/cli.test.ts.)
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { exitStatus } from '../../host/cli/common.ts';
import { ErrorCodes, type ErrorCode } from '../../host/errors.ts';
import { ensureSelfSigned } from '../../host/mgmt/tls.ts';
import { cli } from './harness.ts';

// Each test spawns a few CLI processes; on a loaded 2-core machine that takes seconds each.
vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-promises-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const COMMANDS = ['run', 'call', 'inspect', 'delete', 'disks', 'demo', 'keygen', 'sign', 'verify', 'attest verify', 'attest key', 'audit verify', 'audit show', 'serve', 'token', 'cert', 'lab'];

/** The (status, code) pairs a help's "Exit status" paragraph states: "124 ERR_LIMIT_CPU", "2 bad usage (ERR_INVALID_ARGUMENT", "125 with ERR_INTEGRITY". */
function statedStatuses(help: string): [number, ErrorCode][] {
  const at = help.indexOf('Exit status');
  if (at < 0) return [];
  const text = help.slice(at).split('\n\n')[0]!.replace(/\s+/g, ' ');
  return [...text.matchAll(/\b(\d+) (?:with |[a-z][a-z ]*\()?(ERR_[A-Z_]+)/g)].map((m) => {
    expect(ErrorCodes, `${m[2]} is an error code`).toContain(m[2]);
    return [Number(m[1]), m[2] as ErrorCode];
  });
}

/** The statuses that lead the clauses (separated by ';') of a help's "Exit status" paragraph: "0 when …; 1 when …; 2 bad usage". */
function listedStatuses(help: string): number[] {
  const at = help.indexOf('Exit status:');
  if (at < 0) return [];
  const text = help.slice(at + 'Exit status:'.length).split('\n\n')[0]!.replace(/\s+/g, ' ');
  return text.split(';').flatMap((clause) => {
    const m = /^\s*(\d+)\b/.exec(clause);
    return m ? [Number(m[1])] : [];
  });
}

describe.concurrent('--help: the exit statuses each command states are the ones it exits with', () => {
  for (const command of COMMANDS) {
    it(command, async () => {
      const r = await cli([...command.split(' '), '--help']);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      const stated = statedStatuses(r.stdout);
      if ((r.stdout.split('Exit status')[1]?.split('\n\n')[0] ?? '').includes('ERR_')) expect(stated.length, `${command} --help states statuses with codes`).toBeGreaterThan(0);
      for (const [status, code] of stated) expect(status, `${command} --help: ${status} ${code}`).toBe(exitStatus(code));
      // Each status is one clause: one that leads two clauses (lab said "1 when …" and "1 a lab …") reads as two meanings.
      const leading = listedStatuses(r.stdout);
      expect(leading, `${command} --help lists each exit status once`).toEqual([...new Set(leading)]);
    });
  }

  it('lab --help lists 0, 1 and 2, each once, with 1 covering both a defence that did not hold and a lab marked coming', async () => {
    const r = await cli(['lab', '--help']);
    expect(listedStatuses(r.stdout)).toEqual([0, 1, 2]);
    expect(statedStatuses(r.stdout)).toEqual([
      [1, 'ERR_NOT_IMPLEMENTED'],
      [2, 'ERR_INVALID_ARGUMENT'],
    ]);
  });

  it('the parser finds what it should (a help text that misstates a status would fail above)', () => {
    expect(statedStatuses('Exit status: 0; 2 bad usage (ERR_INVALID_ARGUMENT); 124 ERR_LIMIT_CPU, 125 with ERR_INTEGRITY')).toEqual([
      [2, 'ERR_INVALID_ARGUMENT'],
      [124, 'ERR_LIMIT_CPU'],
      [125, 'ERR_INTEGRITY'],
    ]);
    expect(statedStatuses('Exit status: a guest exiting with 256 or 0x80000000 gives 0 (ERR_X')).toEqual([]);
    expect(statedStatuses('--sha256 <hex> refuse unless its SHA-256 is this (ERR_INTEGRITY)\n\nExit status: 0')).toEqual([]);
  });
});

describe.concurrent('serve, token, cert and lab --help state the defaults and exit statuses their manuals give', () => {
  const management = readFileSync(new URL('../../docs/MANAGEMENT.md', import.meta.url), 'utf8');
  const labs = readFileSync(new URL('../../docs/LABS.md', import.meta.url), 'utf8');
  // [command, what the help must say, where the manual says it]
  const cases: [string, string[], [string, string][]][] = [
    ['serve', ['--config ./wasmvisor-host', '--bind 127.0.0.1', '--port 8443', 'Exit status'], [[management, '(default `./wasmvisor-host`'], [management, '`--bind` defaults to `127.0.0.1`, `--port` to 8443']]],
    ['token', ['--config (default ./wasmvisor-host)', '--expires defaults to 30d (at most 3650d)', 'Exit status'], [[management, 'at most 3650 days; default 30 days']]],
    ['cert', ['default ./wasmvisor-host', 'default the working directory', '1..3650, default 365', 'Exit status'], [[management, 'default the working directory; valid `--days` days, 1..3650, default 365']]],
    ['lab', ['--port defaults to 0 (a free port)', '--no-compare skips', 'Exit status'], [[labs, 'on a free port (`--port <n>` to choose one)']]],
  ];
  for (const [command, says, manual] of cases) {
    it(command, async () => {
      const r = await cli([command, '--help']);
      expect(r.code).toBe(0);
      const help = r.stdout.replace(/\s+/g, ' ');
      for (const s of says) expect(help, `${command} --help says ${s}`).toContain(s);
      for (const [doc, s] of manual) expect(doc.replace(/\s+/g, ' '), `the manual says ${s}`).toContain(s);
    });
  }
});

describe('cert create', () => {
  it('creates --out when it is missing, never overwrites a key, and a file it cannot write is ERR_STORAGE (74), never ERR_INTERNAL', async () => {
    const config = path.join(tmp, 'host');
    await ensureSelfSigned(path.join(config, 'tls'));
    const out = path.join(tmp, 'certs', 'new');
    const made = await cli(['cert', 'create', '--name', 'alice', '--config', config, '--out', out]);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toBe(`${out}/alice.crt\n${out}/alice.key\n`);
    expect(statSync(`${out}/alice.key`).mode & 0o777).toBe(0o600);
    expect(readFileSync(`${out}/alice.crt`, 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const key = readFileSync(`${out}/alice.key`, 'utf8');

    const again = await cli(['cert', 'create', '--name', 'alice', '--config', config, '--out', out]);
    expect(again).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${out}/alice.key already exists; refusing to overwrite it (remove it, or choose another --out)\n` });
    expect(readFileSync(`${out}/alice.key`, 'utf8')).toBe(key);

    // Only the certificate left from an earlier run: still refused, nothing issued or replaced.
    rmSync(`${out}/alice.key`);
    const crt = readFileSync(`${out}/alice.crt`, 'utf8');
    const half = await cli(['cert', 'create', '--name', 'alice', '--config', config, '--out', out]);
    expect(half).toMatchObject({ code: 2, stderr: `ERR_INVALID_ARGUMENT: ${out}/alice.crt already exists; refusing to overwrite it (remove it, or choose another --out)\n` });
    expect(readFileSync(`${out}/alice.crt`, 'utf8')).toBe(crt);

    const file = path.join(tmp, 'a-file');
    writeFileSync(file, '');
    const blocked = await cli(['cert', 'create', '--name', 'bob', '--config', config, '--out', path.join(file, 'sub')]);
    expect(blocked.code, blocked.stderr).toBe(74);
    expect(blocked.stderr).toMatch(/^ERR_STORAGE: cannot create --out \S+a-file\/sub: /);
  });
});

describe('cert create: the output location before the signing work', () => {
  it('an --out that is a file is refused with exit 2 before the CA is even read; a refused or failed issue leaves no folder behind', async () => {
    const config = path.join(tmp, 'host2');
    await ensureSelfSigned(path.join(config, 'tls'));
    const file = path.join(tmp, 'out-is-a-file');
    writeFileSync(file, 'mine');
    const r = await cli(['cert', 'create', '--name', 'carol', '--config', config, '--out', file]);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: --out ${file} is a file, not a directory\n` });
    expect(readFileSync(file, 'utf8')).toBe('mine');

    // A CA that cannot sign: the refusals about --out come first, so none of them reads it.
    const broken = path.join(tmp, 'broken');
    mkdirSync(path.join(broken, 'tls'), { recursive: true });
    writeFileSync(path.join(broken, 'tls', 'ca.key'), 'not a key');
    writeFileSync(path.join(broken, 'tls', 'ca.crt'), 'not a certificate');
    expect(await cli(['cert', 'create', '--name', 'carol', '--config', broken, '--out', file])).toMatchObject({ code: 2, stderr: `ERR_INVALID_ARGUMENT: --out ${file} is a file, not a directory\n` });
    const taken = path.join(tmp, 'taken');
    mkdirSync(taken);
    writeFileSync(path.join(taken, 'carol.crt'), 'old');
    expect(await cli(['cert', 'create', '--name', 'carol', '--config', broken, '--out', taken])).toMatchObject({ code: 2, stderr: `ERR_INVALID_ARGUMENT: ${taken}/carol.crt already exists; refusing to overwrite it (remove it, or choose another --out)\n` });
    expect(readdirSync(taken)).toEqual(['carol.crt']);

    // --out made for an issue that is then refused (no CA yet; a name the CA will not sign; a CA
    // that cannot sign): the folders made for it are gone again, a folder that was there stays.
    const fresh = path.join(tmp, 'fresh');
    const noCa = await cli(['cert', 'create', '--name', 'carol', '--config', path.join(tmp, 'no-host'), '--out', path.join(fresh, 'a', 'b')]);
    expect(noCa.code, noCa.stderr).toBe(2);
    expect(noCa.stderr).toMatch(/^ERR_INVALID_ARGUMENT: no local CA in /);
    expect(readdirSync(tmp)).not.toContain('fresh');
    const badName = await cli(['cert', 'create', '--name', 'carol*', '--config', config, '--out', path.join(fresh, 'c')]);
    expect(badName.code, badName.stderr).toBe(2);
    expect(badName.stderr).toBe(`ERR_INVALID_ARGUMENT: --name: expected 1-64 letters, digits, '.', '_', '-' or spaces (starting with a letter or digit), got "carol*"\n`);
    expect(readdirSync(tmp)).not.toContain('fresh');
    const cannotSign = await cli(['cert', 'create', '--name', 'carol', '--config', broken, '--out', path.join(taken, 'sub')]);
    // A CA whose files are not a key and a certificate is the config directory's fault: ERR_STORAGE naming it, not ERR_INTERNAL.
    expect(cannotSign.code, cannotSign.stderr).toBe(74);
    expect(cannotSign.stderr.startsWith(`ERR_STORAGE: cannot issue a certificate from the local CA in ${broken}/tls: `)).toBe(true);
    expect(readdirSync(taken)).toEqual(['carol.crt']);
  });
});

describe('token: a usage error or a mistyped --config leaves nothing behind', () => {
  it('token alone or a misspelt subcommand creates no ./wasmvisor-host; list and revoke of a missing config directory are refused, not made', async () => {
    const cwd = mkdtempSync(path.join(tmp, 'cwd-'));
    expect(await cli(['token'], { cwd })).toMatchObject({ code: 2, stderr: 'ERR_INVALID_ARGUMENT: token takes create, list or revoke, got ""; see wasmvisor token --help\n' });
    expect((await cli(['token', 'lsit'], { cwd })).code).toBe(2);
    for (const sub of [['list'], ['revoke', '0123456789abcdef']]) {
      const r = await cli(['token', ...sub, '--config', 'typo'], { cwd });
      expect(r).toMatchObject({ code: 2, stdout: '' });
      expect(r.stderr).toBe(`ERR_INVALID_ARGUMENT: token ${sub[0]}: there is no host config directory at ${path.join(cwd, 'typo')} (--config; wasmvisor serve --config <dir> makes one)\n`);
    }
    expect(readdirSync(cwd)).toEqual([]);
    // create still makes the directory (a host's tokens may be made before its first serve), and list then reads it.
    expect((await cli(['token', 'create', '--name', 'a', '--role', 'Reader', '--scope', '/', '--config', 'made'], { cwd })).code).toBe(0);
    const list = await cli(['token', 'list', '--config', 'made'], { cwd });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ID +NAME.*\n[0-9a-f]{16} a +Reader +\/ +active /);
  });
});

describe('every `wasmvisor token create` the docs show works as written', () => {
  const docs = ['README.md', 'docs/LABS.md', 'docs/MANAGEMENT.md'].map((f) => [f, readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8')] as const);
  const shown = docs.flatMap(([file, text]) => [...text.matchAll(/wasmvisor token create (--[^`|\n]*)/g)].map((m) => [file, m[1]!.replace(/\s+>\s.*$/, '').trim()] as const));

  it('the docs show some', () => expect(shown.length).toBeGreaterThanOrEqual(4));

  for (const [file, args] of shown) {
    it(`${file}: token create ${args}`, async () => {
      // The config directory is the only thing substituted: the one the docs name, or <dir>.
      const config = mkdtempSync(path.join(tmp, 'config-'));
      const words = args.split(/\s+/);
      const at = words.indexOf('--config');
      if (at >= 0) words[at + 1] = config;
      else words.push('--config', config);
      const r = await cli(['token', 'create', ...words]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^wvt_[0-9a-f]{16}_[\w-]{43}\n$/);
    });
  }
});
