/**
 * A `serve` that fails to start leaves nothing behind (docs/MANAGEMENT.md, "The config
 * directory"): TLS files named on the command line are read before the config directory is
 * made, so a missing one is ERR_INVALID_ARGUMENT (exit 2) with no folder made; a failure after the
 * directory was made (the port taken) removes the folders that start made; a directory that was
 * there keeps what it had, and its lock is free again. `serve --tls-cert missing` used to leave
 * its new `--config` folder (partitions/, modules/, tokens/, tls/, data/) behind; so did a
 * `token create` refused for its arguments.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { serve } from '../../host/mgmt/serve.ts';
import { cli } from '../cli/harness.ts';
import { startHost, tempDir } from './harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = tempDir('wv-serve-failure-');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A loopback port that is taken until `release()`. */
async function takenPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, release: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('a serve that fails leaves nothing behind', () => {
  it('missing TLS files: ERR_INVALID_ARGUMENT naming the file, exit 2, and no config folder (nor its missing parents)', async () => {
    const config = path.join(tmp, 'fresh', 'a', 'host');
    const missing = path.join(tmp, 'no-such.crt');
    for (const tls of [
      ['--tls-cert', missing, '--tls-key', missing],
      ['--tls-self-signed', '--client-ca', missing],
    ]) {
      const r = await cli(['serve', '--config', config, '--port', '0', ...tls], { cwd: os.tmpdir() });
      expect(r).toMatchObject({ code: 2, stdout: '' });
      expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: .*no-such\.crt/m);
      expect(existsSync(path.join(tmp, 'fresh')), tls.join(' ')).toBe(false);
    }
  });

  it('a failure after the folder was made (the port taken): the folders start made are removed', async () => {
    const { port, release } = await takenPort();
    try {
      const config = path.join(tmp, 'busy', 'host');
      await expect(serve({ config, port, tlsSelfSigned: true, log: () => {} })).rejects.toThrow();
      expect(existsSync(path.join(tmp, 'busy'))).toBe(false);
    } finally {
      await release();
    }
  });

  it('a directory that was there keeps what it had, loses only the folders start made, and its lock is free again', async () => {
    const { port, release } = await takenPort();
    const config = path.join(tmp, 'kept');
    mkdirSync(path.join(config, 'tokens'), { recursive: true });
    writeFileSync(path.join(config, 'rbac.json'), '{}');
    try {
      await expect(serve({ config, port, log: () => {} })).rejects.toThrow();
      expect(readdirSync(config).sort()).toEqual(['rbac.json', 'tokens']);
    } finally {
      await release();
    }
    const h = await startHost({ config });
    await h.close();
  });

  it('a serve refused by the lock of a running one leaves that one’s new folder alone', async () => {
    const config = path.join(tmp, 'held', 'host');
    const h = await startHost({ config });
    try {
      // Another process (this one's own pid in the lock counts as stale).
      const r = await cli(['serve', '--config', config, '--port', '0'], { cwd: os.tmpdir() });
      expect(r).toMatchObject({ code: 1, stdout: '' });
      expect(r.stderr).toMatch(/^ERR_INVALID_STATE: another wasmvisor serve \(pid \d+\) is using /m);
      expect(existsSync(path.join(config, 'serve.lock'))).toBe(true);
      expect((await h.client().request('GET', '/health')).status).toBe(200);
    } finally {
      await h.close();
    }
    // Started and stopped normally: the folder stays (it is the host's).
    expect(readdirSync(config)).toContain('partitions');
  });
});

describe('a refused token create leaves nothing behind either', () => {
  for (const [what, args] of [
    ['no --role', ['--name', 'ci', '--scope', '/']],
    ['an unknown role', ['--name', 'ci', '--role', 'Nope', '--scope', '/']],
    ['a bad scope', ['--name', 'ci', '--role', 'Reader', '--scope', 'nowhere']],
  ] as const) {
    it(`${what}: ERR_INVALID_ARGUMENT, exit 2, no config folder`, async () => {
      const root = path.join(tmp, `token-${what.replaceAll(' ', '-')}`);
      const r = await cli(['token', 'create', '--config', path.join(root, 'host'), ...args], { cwd: os.tmpdir() });
      expect(r).toMatchObject({ code: 2, stdout: '' });
      expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: /);
      expect(existsSync(root)).toBe(false);
    });
  }

  it('a create that succeeds keeps its folder and token', async () => {
    const config = path.join(tmp, 'token-ok', 'host');
    const r = await cli(['token', 'create', '--config', config, '--name', 'ci', '--role', 'Reader', '--scope', '/'], { cwd: os.tmpdir() });
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(path.join(config, 'tokens'))).toHaveLength(1);
  });
});
