/**
 * Token lifecycle against a real server: malformed, wrong length, wrong secret, expired and
 * revoked tokens fail with 401; a revocation (through the API, or by another process writing the
 * store) and an expiry cut an open console stream at once; the comparison is timingSafeEqual.
 * Also: deny assignments override allows, mutual TLS, per-principal rate limits, and token
 * creation cannot escalate.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TokenStore } from '../../host/mgmt/tokens.ts';
import { issueClientCert } from '../../host/mgmt/tls.ts';
import { createBody, startHost, tempDir, type Harness } from './harness.ts';

let h: Harness;
let owner: string;

beforeAll(async () => {
  h = await startHost({
    rbac: {
      assignments: [{ principal: 'cert:alice', role: 'Reader', scope: '/' }],
      denyAssignments: [{ name: 'no-wipe-on-a', principal: 'token:op', permissions: ['disks/wipe'], scope: '/partitions/a' }],
    },
  });
  owner = (await h.token('Owner', '/', 'owner')).token;
  await h.running.host.create(createBody('a', 'echo', { start: true }, { devices: { console: true, block: { sizeMiB: 1 } }, limits: { timeoutMs: 0 } }), 'test');
}, 30_000);

afterAll(async () => {
  await h?.close();
});

async function status(token: string | undefined, path = '/whoami', headers?: Record<string, string>): Promise<{ status: number; code?: string; message?: string }> {
  const r = await h.client(token).request('GET', path);
  void headers;
  const body = r.body.length ? JSON.parse(r.body.toString()) : {};
  return { status: r.status, code: body.error?.code, message: body.error?.message };
}

describe('tokens', () => {
  it('a valid token works; malformed, wrong-length and wrong-secret tokens are 401 with a reason', async () => {
    const { token } = await h.token('Reader', '/', 'reader');
    expect((await status(token)).status).toBe(200);
    for (const bad of ['', 'garbage', token.slice(0, -1), token + 'A', token.replace(/^wvt_/, 'xyz_'), `${token.slice(0, 21)}${'A'.repeat(43)}`, 'wvt_' + 'z'.repeat(16) + '_' + 'A'.repeat(43)]) {
      const s = await status(bad);
      expect(s.status, bad).toBe(401);
      expect(s.code).toBe('ERR_UNAUTHENTICATED');
    }
    expect((await status(token.slice(0, -1))).message).toMatch(/malformed/);
    expect((await status(`${token.slice(0, 21)}${'A'.repeat(43)}`)).message).toMatch(/not valid/);
  });

  it('an oversized or non-Bearer Authorization header is refused without being parsed', async () => {
    for (const header of ['Basic abc', `Bearer ${'a'.repeat(10_000)}`]) {
      const r = await fetchRaw(header);
      expect(r).toContain('401');
    }
  });

  it('compares the digests with crypto.timingSafeEqual, also for an unknown id', () => {
    const store = new TokenStore(tempDir());
    const spy = vi.spyOn(crypto, 'timingSafeEqual');
    try {
      expect(() => store.verify(`wvt_${'0'.repeat(16)}_${'A'.repeat(43)}`)).toThrow(/not valid/);
      expect(spy).toHaveBeenCalledTimes(1);
      const [a, b] = spy.mock.calls[0]!;
      expect((a as Buffer).length).toBe(32);
      expect((b as Buffer).length).toBe(32);
    } finally {
      spy.mockRestore();
    }
  });

  it('the store keeps only the SHA-256 of the secret, in a 0600 file', async () => {
    const { token, id } = await h.token('Reader', '/', 'stored');
    const { readFileSync, statSync } = await import('node:fs');
    const file = `${h.config}/tokens/${id}.json`;
    const text = readFileSync(file, 'utf8');
    const secret = /^wvt_[0-9a-f]{16}_(.{43})$/.exec(token)![1]!;
    expect(text).not.toContain(secret);
    expect(JSON.parse(text).sha256).toBe(crypto.createHash('sha256').update(secret).digest('hex'));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The secret is 256 bits.
    expect(Buffer.from(secret, 'base64url').length).toBe(32);
  });

  it('an expired token is 401 at once', async () => {
    const { token } = await h.token('Reader', '/', 'short', 300);
    expect((await status(token)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 400));
    const s = await status(token);
    expect(s.status).toBe(401);
    expect(s.message).toMatch(/expired/);
  });

  it('a token revoked through the API fails at once, and its open console stream ends', async () => {
    const { token, id } = await h.token('Operator', '/partitions/a', 'streamer');
    const events: [string, unknown][] = [];
    const streaming = h.client(token).stream('/partitions/a/console?tail=0&follow=true', (name, data) => events.push([name, data]));
    await until(() => h.running.server.counters.openStreams > 0);
    await h.client(owner).json('POST', '/partitions/a/console', { lines: ['before revoke'] });
    await until(() => events.some(([n]) => n === 'console'));
    const t0 = performance.now();
    const revoked = await h.client(owner).json<{ revoked: string; revokedAt: string; alreadyRevoked: boolean }>('DELETE', `/tokens/${id}`);
    expect(revoked).toEqual({ revoked: id, revokedAt: expect.any(String), alreadyRevoked: false });
    await streaming;
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(events.at(-1)).toEqual(['end', { code: 'ERR_UNAUTHENTICATED', message: 'the token was revoked' }]);
    expect((await status(token)).status).toBe(401);
    const rec = (await h.records()).filter((r) => r.action === 'token.revoke').at(-1)!;
    expect(rec).toMatchObject({ actor: 'token:owner', target: 'token:streamer', outcome: 'success', reason: `id ${id}`, details: { changed: true } });
    // Again: idempotent, and neither the answer nor the record claims a second revocation.
    expect(await h.client(owner).json('DELETE', `/tokens/${id}`)).toEqual({ ...revoked, alreadyRevoked: true });
    expect((await h.records()).filter((r) => r.action === 'token.revoke').at(-1)).toMatchObject({
      target: 'token:streamer',
      reason: `id ${id}: revoked already at ${revoked.revokedAt}, nothing changed`,
      details: { changed: false },
    });
  });

  it('a token revoked by another process (the CLI writing the store) ends the stream too', async () => {
    const { token, id } = await h.token('Operator', '/partitions/a', 'streamer2');
    const events: [string, unknown][] = [];
    const streaming = h.client(token).stream('/partitions/a/console?tail=0', (name, data) => events.push([name, data]));
    await until(() => h.running.server.streams.size > 0);
    const other = new TokenStore(`${h.config}/tokens`);
    await other.load();
    await other.revoke(id);
    await streaming;
    expect(events.at(-1)?.[0]).toBe('end');
    expect((await status(token)).status).toBe(401);
  });

  it('a stream ends when its token expires', async () => {
    const { token } = await h.token('Operator', '/partitions/a', 'expiring', 1500);
    const events: [string, unknown][] = [];
    await h.client(token).stream('/partitions/a/console?tail=0', (name, data) => events.push([name, data]));
    expect(events.at(-1)).toEqual(['end', { code: 'ERR_UNAUTHENTICATED', message: 'the token expired' }]);
  });

  it('creating a token cannot grant more than the creator holds', async () => {
    const { token } = await h.token('Owner', '/partitions/a', 'scoped-owner');
    // tokens/write is needed at /: a scoped owner may not mint tokens at all.
    expect((await h.client(token).request('POST', '/tokens', { name: 'x', role: 'Reader', scope: '/partitions/a' })).status).toBe(403);
    const minted = await h.client(owner).json<{ token: string }>('POST', '/tokens', { name: 'minted', role: 'Operator', scope: '/partitions/a', expires: '1h' });
    expect((await status(minted.token)).status).toBe(200);
  });
});

describe('deny assignments, mutual TLS and rate limits', () => {
  it('an explicit deny assignment overrides the role that allows, and the audit record names it', async () => {
    const { token } = await h.token('Operator', '/', 'op');
    await h.running.host.stop('a', 'test');
    const r = await h.client(token).request('POST', '/partitions/a/disk/wipe');
    expect(r.status).toBe(403);
    const rec = (await h.records()).filter((x) => x.actor === 'token:op' && x.details?.permission === 'disks/wipe').at(-1)!;
    expect(rec).toMatchObject({ outcome: 'denied', reason: 'deny:no-wipe-on-a@/partitions/a', target: '/partitions/a' });
    // The same role may still do what is not denied.
    expect((await h.client(token).request('POST', '/partitions/a/start')).status).toBe(200);
  });

  it('a client certificate from the host CA authenticates as cert:<CN>; none, or another CA\'s, does not', async () => {
    const { cert, key } = await issueClientCert(`${h.config}/tls`, 'alice');
    const c = h.client(undefined, { cert, key });
    const who = await c.json<{ principal: string }>('GET', '/whoami');
    expect(who.principal).toBe('cert:alice');
    expect((await c.request('GET', '/partitions')).status).toBe(200);
    expect((await c.request('POST', '/partitions/a/stop')).status).toBe(403);
    const otherDir = tempDir();
    const { ensureSelfSigned } = await import('../../host/mgmt/tls.ts');
    await ensureSelfSigned(otherDir);
    const foreign = await issueClientCert(otherDir, 'alice');
    expect((await h.client(undefined, foreign).request('GET', '/whoami')).status).toBe(401);
  });

  it('a principal over its rate limit gets 429 with Retry-After; others are not affected', async () => {
    const small = await startHost({ limits: { ratePerSecond: 5, rateBurst: 5 } });
    try {
      const a = (await small.token('Reader', '/', 'flood')).token;
      const b = (await small.token('Reader', '/', 'calm')).token;
      const statuses: number[] = [];
      let retry: string | undefined;
      for (let i = 0; i < 8; i++) {
        const r = await small.client(a).request('GET', '/whoami');
        statuses.push(r.status);
        retry ??= r.headers['retry-after'] as string | undefined;
      }
      expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      expect(statuses).toContain(429);
      expect(Number(retry)).toBeGreaterThanOrEqual(1);
      expect((await small.client(b).request('GET', '/whoami')).status).toBe(200);
    } finally {
      await small.close();
    }
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A request with a hand-made Authorization header, over TLS, returning the raw status line. */
async function fetchRaw(authorization: string): Promise<string> {
  const tls = await import('node:tls');
  const { readFileSync } = await import('node:fs');
  const url = new URL(h.running.url);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: url.hostname, port: Number(url.port), ca: readFileSync(h.running.caFile!, 'utf8') }, () => {
      s.write(`GET /whoami HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorization}\r\nConnection: close\r\n\r\n`);
    });
    let out = '';
    s.setEncoding('utf8').on('data', (d: string) => (out += d));
    s.on('end', () => resolve(out.split('\r\n')[0]!));
    s.on('error', reject);
  });
}
