/**
 * `token revoke` of an id that names no token answers the same locally and through --host:
 * ERR_NOT_FOUND (exit 1, README's exit statuses) with the same message, whether the id is
 * malformed (`nope`) or well-formed and unknown; the API answers it 404 (docs/MANAGEMENT.md: "no
 * such partition, token or route"). The remote one used to be 400 ERR_INVALID_ARGUMENT (exit 2) for
 * a malformed id, refused by a path pattern before the store was asked.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cli } from './harness.ts';
import { startHost, type Harness } from '../mgmt/harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-token-revoke-'));
let h: Harness;
let remote: string[];

beforeAll(async () => {
  h = await startHost({ config: path.join(tmp, 'host') });
  const tokenFile = path.join(tmp, 'owner.token');
  writeFileSync(tokenFile, (await h.token('Owner', '/', 'owner', null)).token);
  remote = ['--host', h.running.url, '--token-file', tokenFile, '--ca', h.running.caFile!];
}, 30_000);
afterAll(async () => {
  await h?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('token revoke of an unknown id: local and remote agree', () => {
  for (const id of ['nope', '0123456789abcdef', 'ABCDEF0123456789', 'x'.repeat(100)]) {
    it(`${id.length > 20 ? `${id.length} x` : id}: ERR_NOT_FOUND, exit 1, both ways`, async () => {
      const local = await cli(['token', 'revoke', id, '--config', h.config]);
      expect(local).toMatchObject({ code: 1, stdout: '' });
      expect(local.stderr).toMatch(new RegExp(`^ERR_NOT_FOUND: no token with id "${id.slice(0, 80)}"(… \\(\\d+ more characters\\))?\n$`));
      const through = await cli([...remote, 'token', 'revoke', id]);
      expect(through).toMatchObject({ code: 1, stdout: '', stderr: local.stderr });
    });
  }

  it('the API answers 404 ERR_NOT_FOUND for a malformed id, after authorization', async () => {
    const owner = (await h.token('Owner', '/', 'owner2', null)).token;
    const r = await h.client(owner).request('DELETE', '/tokens/nope');
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body.toString())).toEqual({ error: { code: 'ERR_NOT_FOUND', message: 'no token with id "nope"' } });
    // A caller without tokens/write learns nothing about ids: it is denied first.
    const reader = (await h.token('Reader', '/', 'reader', null)).token;
    expect((await h.client(reader).request('DELETE', '/tokens/nope')).status).toBe(403);
  });

  it('a real id is still revoked through --host', async () => {
    const { id } = await h.token('Reader', '/', 'victim', null);
    expect(await cli([...remote, 'token', 'revoke', id])).toMatchObject({ code: 0, stderr: '' });
    expect(h.running.tokens.list().find((t) => t.id === id)?.status).toBe('revoked');
  });
});
