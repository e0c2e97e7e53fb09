/**
 * Files of the daemon's config directory that are not what the daemon wrote: a FIFO, a
 * directory, a device behind a symlink where a declaration, a module, the RBAC file or the lock
 * should be. Each is refused by name (ERR_STORAGE), never waited on: a FIFO opened for reading
 * waits for a writer, and `serve` read these at start-up, so it never came up.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigDir } from '../../host/mgmt/config.ts';
import { createBody, startHost, tempDir, type Harness } from './harness.ts';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

describe('config directory files that are not regular files', () => {
  it('a declaration or a module that is a FIFO or a device: serve comes up, the partition is not restored, and the record names the file', async () => {
    const config = tempDir();
    h = await startHost({ config });
    await h.running.host.create(createBody('kept', 'limits', {}, { kind: 'reactor' }), 'test');
    await h.running.host.create(createBody('piped', 'hello'), 'test');
    await h.close();
    h = null;
    // A FIFO in place of one declaration, a device in place of the other's module.
    const declaration = path.join(config, 'partitions', 'piped.json');
    unlinkSync(declaration);
    execFileSync('mkfifo', [declaration]);
    const kept = JSON.parse(readFileSync(path.join(config, 'partitions', 'kept.json'), 'utf8')) as { moduleSha256: string };
    const module = path.join(config, 'modules', `${kept.moduleSha256}.wasm`);
    unlinkSync(module);
    symlinkSync('/dev/zero', module);
    h = await startHost({ config });
    const records = await h.records();
    const restore = (name: string) => records.find((r) => r.action === 'partition.restore' && r.target === `/partitions/${name}`);
    expect(restore('piped')).toMatchObject({ outcome: 'failure', reason: expect.stringMatching(/^ERR_STORAGE: config file \S+piped\.json is a FIFO, not a regular file$/) });
    expect(restore('kept')).toMatchObject({ outcome: 'failure', reason: expect.stringMatching(/^ERR_STORAGE: module file \S+\.wasm is a device, not a regular file$/) });
    expect(h.running.host.list().find((p) => p.name === 'kept')).toMatchObject({ state: 'refused', error: { code: 'ERR_STORAGE' } });
  }, 60_000);

  it('an RBAC file that is a FIFO or a directory is ERR_STORAGE naming it; the directory stays usable', async () => {
    const config = tempDir();
    const rbac = path.join(config, 'rbac.json');
    execFileSync('mkfifo', [rbac]);
    await expect(startHost({ config })).rejects.toMatchObject({ code: 'ERR_STORAGE', message: expect.stringMatching(/config file \S+rbac\.json is a FIFO, not a regular file/) });
    unlinkSync(rbac);
    mkdirSync(rbac);
    await expect(startHost({ config })).rejects.toMatchObject({ code: 'ERR_STORAGE', message: expect.stringMatching(/config file \S+rbac\.json is a directory, not a regular file/) });
    rmSync(rbac, { recursive: true });
    h = await startHost({ config });
    expect(readdirSync(config)).toContain('serve.lock');
  }, 60_000);

  it('an RBAC or policy file with a key given twice in one object is ERR_INVALID_ARGUMENT naming it (JSON.parse would keep the last)', async () => {
    const config = tempDir();
    const rbac = path.join(config, 'rbac.json');
    writeFileSync(rbac, '{"assignments": [{"principal": "ci", "role": "Reader", "scope": "/partitions/a", "role": "Owner"}]}');
    await expect(startHost({ config })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: `${rbac}: assignments[0]: key "role" is given twice` });
    writeFileSync(rbac, '{"assignments": [{"principal": "ci", "role": "Reader", "scope": "/partitions/a"}]}');
    expect(await new ConfigDir(config).readRbac()).toEqual({ assignments: [{ principal: 'ci', role: 'Reader', scope: '/partitions/a' }] });
    const policy = path.join(config, 'policy.json');
    writeFileSync(policy, '{"version": 1, "defaultGrants": {"memoryPages": 16, "memoryPages": 65536}}');
    await expect(new ConfigDir(config).readPolicy()).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: `${policy}: defaultGrants: key "memoryPages" is given twice` });
    writeFileSync(policy, '{"version": 1, "defaultGrants": {"memoryPages": 16}}');
    expect(await new ConfigDir(config).readPolicy()).toEqual({ version: 1, defaultGrants: { memoryPages: 16 } });
  });

  it('a lock that is a FIFO is ERR_STORAGE naming it, not a wait', () => {
    const config = tempDir();
    execFileSync('mkfifo', [path.join(config, 'serve.lock')]);
    const dir = new ConfigDir(config);
    expect(() => dir.lock()).toThrow(expect.objectContaining({ code: 'ERR_STORAGE', message: expect.stringMatching(/lock file \S+serve\.lock is a FIFO, not a regular file/) }));
  });
});

describe('config directory modes', () => {
  it('folders are 0700 and files 0600, but for the public certificates and key (0644), as MANAGEMENT.md says', async () => {
    const config = tempDir();
    h = await startHost({ config });
    const owner = (await h.token('Owner', '/', 'owner')).token;
    const c = h.client(owner);
    await c.json('POST', '/partitions', createBody('disk', 'counter', { start: true }, { devices: { block: { sizeMiB: 1 } } }));
    await c.json('PUT', '/policy', { policy: { version: 1, defaultGrants: {} } });
    await c.json('GET', `/attestation?nonce=${'ab'.repeat(8)}`);
    await h.close();
    h = null;
    const PUBLIC = new Set(['tls/ca.crt', 'tls/server.crt', 'data/keys/host.pub']);
    const seen: [string, string][] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        const rel = path.relative(config, p);
        const mode = (statSync(p).mode & 0o777).toString(8);
        seen.push([rel, mode]);
        if (e.isDirectory()) walk(p);
      }
    };
    walk(config);
    expect(seen.map(([f]) => f)).toEqual(expect.arrayContaining(['partitions/disk.json', 'policy.json', 'data/images/disk.img', 'data/keystore', ...PUBLIC]));
    const wrong = seen.filter(([f, m]) => m !== (statSync(path.join(config, f)).isDirectory() ? '700' : PUBLIC.has(f) ? '644' : '600'));
    expect(wrong).toEqual([]);
    expect((statSync(config).mode & 0o777).toString(8)).toBe('700');
  });
});
