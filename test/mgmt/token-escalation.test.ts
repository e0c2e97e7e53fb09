/**
 * POST /tokens may not mint a token stronger than its caller (docs/MANAGEMENT.md), counting
 * everything the new token will hold, not only its own role at its own scope: the token's
 * principal is `token:<name>`, so it also holds what rbac.json assigns to that name, and it is
 * bound by none of the deny assignments that name its caller.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, type Harness } from './harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHost({
    rbac: {
      roles: [{ name: 'Minter', permissions: ['tokens/*', 'partitions/read', 'metrics/read', 'policy/read'] }],
      assignments: [
        { principal: 'token:admin', role: 'Owner', scope: '/' },
        { principal: 'token:db-ops', role: 'Operator', scope: '/partitions/db' },
      ],
      denyAssignments: [
        { name: 'owner2-keeps-db-disk', principal: 'token:owner2', permissions: ['disks/wipe'], scope: '/partitions/db' },
        { name: 'nobody-wipes-vault', principal: '*', permissions: ['disks/wipe'], scope: '/partitions/vault' },
      ],
    },
  });
}, 30_000);

afterAll(async () => {
  await h?.close();
});

async function mint(caller: string, body: Record<string, unknown>): Promise<{ status: number; error?: { code: string; message: string }; token?: string }> {
  const r = await h.client(caller).request('POST', '/tokens', body);
  const answer = JSON.parse(r.body.toString()) as { error?: { code: string; message: string }; token?: string };
  return { status: r.status, ...answer };
}

describe('POST /tokens cannot escalate', () => {
  it("a name rbac.json assigns a stronger role to is refused: the new token would hold that role too", async () => {
    const { token: minter } = await h.token('Minter', '/', 'minter');
    const r = await mint(minter, { name: 'admin', role: 'Reader', scope: '/', expires: '1h' });
    expect(r.status).toBe(403);
    expect(r.error?.code).toBe('ERR_ACCESS_DENIED');
    expect(r.error?.message).toMatch(/^token:minter may not grant Reader at \/ as token:admin: rbac\.json assigns token:admin Owner at \/, and token:minter does not hold .*policy\/write.* there$/);
    // The same role under a name rbac.json says nothing about is fine: Minter holds all of Reader.
    expect((await mint(minter, { name: 'plain', role: 'Reader', scope: '/', expires: '1h' })).status).toBe(201);
    // An Owner at / holds all of Operator at /partitions/db: it may mint db-ops.
    const { token: owner } = await h.token('Owner', '/', 'owner');
    expect((await mint(owner, { name: 'db-ops', role: 'Reader', scope: '/', expires: '1h' })).status).toBe(201);
  });

  it('a caller bound by a deny assignment cannot mint a token free of it', async () => {
    const { token: owner2 } = await h.token('Owner', '/', 'owner2');
    for (const [scope, role] of [['/', 'Owner'], ['/', 'Operator'], ['/partitions/db', 'Operator'], ['/segments/lan', 'Operator']] as const) {
      const r = await mint(owner2, { name: 'escape', role, scope, expires: '1h' });
      expect([scope, role, r.status, r.error?.code]).toEqual([scope, role, 403, 'ERR_ACCESS_DENIED']);
      expect(r.error?.message).toContain('token:owner2 is denied disks/wipe at /partitions/db (deny owner2-keeps-db-disk), which the token would hold');
    }
    // Roles without the denied permission, or scopes that do not reach the denied one, are fine.
    expect((await mint(owner2, { name: 'reader', role: 'Reader', scope: '/', expires: '1h' })).status).toBe(201);
    expect((await mint(owner2, { name: 'web-op', role: 'Operator', scope: '/partitions/web', expires: '1h' })).status).toBe(201);
    // A deny for every principal binds the new token as well: nothing escapes it.
    const { token: owner } = await h.token('Owner', '/', 'owner');
    expect((await mint(owner, { name: 'op', role: 'Operator', scope: '/', expires: '1h' })).status).toBe(201);
  });

  it('the refusal is one denied api.authorize record naming the reason', async () => {
    const recs = (await h.records()).filter((r) => r.action === 'api.authorize' && r.actor === 'token:minter' && r.outcome === 'denied' && r.details?.permission === 'grant Reader');
    expect(recs.at(-1)?.reason).toMatch(/rbac\.json assigns token:admin Owner at \//);
  });
});

describe('POST /tokens lifetimes', () => {
  it('at most 3650 days, at the edge and one past it; a refusal names the body field, not the CLI flag', async () => {
    const { token: owner } = await h.token('Owner', '/', 'owner');
    for (const expires of ['3650d', '87600h', '5256000m']) expect((await mint(owner, { name: 'long', role: 'Reader', scope: '/', expires })).status, expires).toBe(201);
    for (const expires of ['3651d', '87601h', '5256001m']) {
      const r = await mint(owner, { name: 'long', role: 'Reader', scope: '/', expires });
      expect([expires, r.status, r.error]).toEqual([expires, 400, { code: 'ERR_INVALID_ARGUMENT', message: `body.expires ${expires} is longer than the most a token may live (3650d)` }]);
    }
  });
});
