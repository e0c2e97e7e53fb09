/**
 * `GET /whoami` shows every role assignment that applies to the caller (rbac.json's that name it
 * or `*`, then its credential's own) and the deny assignments that apply to it, for a token and
 * for a client certificate alike; what it shows is what the RBAC decisions then apply.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueClientCert } from '../../host/mgmt/tls.ts';
import { startHost, type Harness } from './harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHost({
    rbac: {
      assignments: [
        { principal: 'token:ci', role: 'Reader', scope: '/' },
        { principal: '*', role: 'Auditor', scope: '/partitions/pub' },
        { principal: 'cert:bob', role: 'Operator', scope: '/segments/lan' },
      ],
      denyAssignments: [
        { name: 'no-wipe-db', principal: 'token:ci', permissions: ['disks/wipe'], scope: '/partitions/db' },
        { principal: '*', permissions: ['policy/write'], scope: '/' },
        { principal: 'cert:carol', permissions: ['*'], scope: '/' },
      ],
    },
  });
}, 30_000);

afterAll(async () => {
  await h?.close();
});

describe('GET /whoami', () => {
  it("a token: rbac.json's assignments that name it or *, then the token's own, and the denies that apply", async () => {
    const { token } = await h.token('Operator', '/partitions/web', 'ci');
    const who = await h.client(token).json<Record<string, unknown>>('GET', '/whoami');
    expect(who).toMatchObject({ principal: 'token:ci', kind: 'token', expiresAt: expect.any(String) });
    expect(who['assignments']).toEqual([
      { principal: 'token:ci', role: 'Reader', scope: '/', source: 'rbac.json' },
      { principal: '*', role: 'Auditor', scope: '/partitions/pub', source: 'rbac.json' },
      { principal: 'token:ci', role: 'Operator', scope: '/partitions/web', source: 'credential' },
    ]);
    expect(who['denyAssignments']).toEqual([
      { name: 'no-wipe-db', principal: 'token:ci', permissions: ['disks/wipe'], scope: '/partitions/db' },
      { name: 'deny-1', principal: '*', permissions: ['policy/write'], scope: '/' },
    ]);
    // What it shows is what applies: Reader at / from rbac.json reads every partition list.
    expect((await h.client(token).request('GET', '/partitions')).status).toBe(200);
  });

  it('a client certificate: the assignments rbac.json gives it (it carries none of its own), and none that name someone else', async () => {
    const bob = await issueClientCert(`${h.config}/tls`, 'bob');
    const who = await h.client(undefined, bob).json<Record<string, unknown>>('GET', '/whoami');
    expect(who).toMatchObject({ principal: 'cert:bob', kind: 'cert', expiresAt: null });
    expect(who['assignments']).toEqual([
      { principal: '*', role: 'Auditor', scope: '/partitions/pub', source: 'rbac.json' },
      { principal: 'cert:bob', role: 'Operator', scope: '/segments/lan', source: 'rbac.json' },
    ]);
    expect(who['denyAssignments']).toEqual([{ name: 'deny-1', principal: '*', permissions: ['policy/write'], scope: '/' }]);
    // A certificate nobody assigned anything: only what applies to everyone.
    const dave = await issueClientCert(`${h.config}/tls`, 'dave');
    const none = await h.client(undefined, dave).json<Record<string, unknown>>('GET', '/whoami');
    expect([none['assignments'], none['denyAssignments']]).toEqual([
      [{ principal: '*', role: 'Auditor', scope: '/partitions/pub', source: 'rbac.json' }],
      [{ name: 'deny-1', principal: '*', permissions: ['policy/write'], scope: '/' }],
    ]);
  });
});
