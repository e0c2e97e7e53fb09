/**
 * Folders the commands and the library make (a data directory, a config directory, `cert create
 * --out`, the keystore's and the audit log's folders) are made by host/files.ts's makeDirs, not by
 * node:fs's `recursive` mode: on Node 20 that never returns when mkdir in an existing parent fails
 * with ENOENT, as under /proc, so `--data-dir /proc/x` hung `run` at full CPU, deaf to SIGTERM.
 * Now each is the documented ERR_STORAGE (exit 74) naming the folder, at once.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { makeDirs, makeDirsSync } from '../../host/files.ts';
import { guest } from '../helpers.ts';
import { cli } from './harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-make-dirs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A folder under /proc that cannot be made: mkdir there fails with ENOENT while /proc exists. */
const PROC = `/proc/wasmvisor-no-such-${process.pid}`;

describe('makeDirs and makeDirsSync', () => {
  for (const [name, make] of [
    ['makeDirsSync', async (d: string, m: number) => makeDirsSync(d, m)],
    ['makeDirs', makeDirs],
  ] as const) {
    it(`${name}: makes the missing folders with the mode, returns the first it made, undefined when all were there`, async () => {
      const dir = path.join(tmp, name, 'a', 'b', 'c');
      mkdirSync(path.join(tmp, name));
      expect(await make(dir, 0o700)).toBe(path.join(tmp, name, 'a'));
      for (const d of ['a', 'a/b', 'a/b/c']) expect(statSync(path.join(tmp, name, d)).mode & 0o777).toBe(0o700);
      expect(await make(dir, 0o700)).toBeUndefined();
      expect(await make(`${dir}/`, 0o700)).toBeUndefined();
    });

    it(`${name}: throws what mkdir says, at once: ENOENT under /proc, ENOTDIR under a file`, async () => {
      await expect(make(`${PROC}/x`, 0o700)).rejects.toMatchObject({ code: 'ENOENT' });
      const file = path.join(tmp, `${name}-file`);
      writeFileSync(file, '');
      await expect(make(path.join(file, 'sub'), 0o700)).rejects.toMatchObject({ code: 'ENOTDIR' });
      expect(existsSync(PROC)).toBe(false);
    });
  }
});

describe('a folder that cannot be made is ERR_STORAGE (74), not a hang', () => {
  const counter = guest('counter');
  const hello = guest('hello');
  for (const args of [
    ['run', '--disk', '1', '--data-dir', PROC, counter],
    ['run', '--audit', '--data-dir', PROC, hello],
    ['attest', 'key', '--data-dir', PROC],
    ['token', 'create', '--config', PROC, '--name', 'a', '--role', 'Owner', '--scope', '/'],
    ['cert', 'create', '--name', 'alice', '--out', PROC],
  ]) {
    it(args.filter((a) => a !== counter && a !== hello).map((a) => (a === PROC ? '/proc/<missing>' : a)).join(' '), async () => {
      const argv = [...args];
      if (args[0] === 'cert') {
        // cert create needs a local CA first; without one it stops (exit 2) before --out: give it one.
        const config = path.join(tmp, 'host');
        if (!existsSync(path.join(config, 'tls', 'ca.crt'))) {
          const { ensureSelfSigned } = await import('../../host/mgmt/tls.ts');
          await ensureSelfSigned(path.join(config, 'tls'), []);
        }
        argv.push('--config', config);
      }
      const r = await cli(argv, { cwd: tmp, killAfterMs: 30_000 });
      expect(r.signal, 'killed by the safety timeout: the command hung').toBeNull();
      expect(r.code, r.stderr).toBe(74);
      expect(r.stderr).toMatch(new RegExp(`^ERR_STORAGE: .*ENOENT: no such file or directory, mkdir '${PROC}'\\n$`, 'm'));
    });
  }
});

describe('no recursive mkdir is left in the runtime', () => {
  it('host/ makes folders only through makeDirs / makeDirsSync (a lab still called mkdirSync(…, { recursive: true }))', () => {
    const root = fileURLToPath(new URL('../../host/', import.meta.url));
    const offenders: string[] = [];
    for (const file of readdirSync(root, { recursive: true, encoding: 'utf8' })) {
      if (!/\.(?:ts|mts|js|mjs)$/.test(file)) continue;
      // Comments may name the call (files.ts says why it is not used); code may not.
      const code = readFileSync(path.join(root, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      // The call's whole statement (its arguments may hold calls of their own: path.join(a, b)).
      for (const m of code.matchAll(/\bmkdir(?:Sync)?\s*\(([^;]*)/g)) if (/\brecursive\b/.test(m[1]!)) offenders.push(`${file}: ${m[0].replace(/\s+/g, ' ')}`);
    }
    expect(offenders).toEqual([]);
  });
});
