/**
 * The RBAC matrix over a real server (TLS on loopback): every endpoint × every built-in role ×
 * in-scope and out-of-scope target → the expected status, and the audit record of each decision
 * (principal, permission, scope, outcome, deciding rule). The expected permissions of each role
 * are written out here by hand, independently of host/mgmt/rbac.ts.
 */
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonSchemas } from '../../host/schema/index.ts';
import { createBody, startHost, type Harness } from './harness.ts';

const ROLE_PERMISSIONS: Record<string, string[]> = {
  Owner: ['partitions/read', 'partitions/write', 'partitions/start', 'partitions/console', 'partitions/call', 'disks/wipe', 'metrics/read', 'policy/read', 'policy/write', 'audit/read', 'attestation/read', 'tokens/read', 'tokens/write'],
  Operator: ['partitions/read', 'partitions/write', 'partitions/start', 'partitions/console', 'partitions/call', 'disks/wipe', 'metrics/read', 'policy/read', 'attestation/read'],
  Auditor: ['audit/read', 'attestation/read', 'policy/read', 'partitions/read', 'metrics/read', 'tokens/read'],
  Reader: ['partitions/read', 'metrics/read', 'policy/read'],
};
const ROLES = Object.keys(ROLE_PERMISSIONS);

const SEGMENT = { a: 'blue', b: 'red' } as Record<string, string>;

let h: Harness;
/** role → { root: token at /, scoped: token at /partitions/a } */
const tokens: Record<string, { root: string; scoped: string }> = {};
let owner: string;

function spec(name: string) {
  return createBody(name, 'transform', { start: true }, {
    kind: 'reactor',
    devices: { console: true, block: { sizeMiB: 1 }, net: { segment: SEGMENT[name] } },
  });
}

async function ensure(name: string, state: 'running' | 'stopped' | 'absent'): Promise<void> {
  const host = h.running.host;
  const exists = host.list().some((p) => p.name === name);
  if (state === 'absent') {
    if (exists) await host.destroy(name, { wipe: true }, 'test');
    return;
  }
  if (!exists) await host.create(spec(name), 'test');
  const running = host.get(name).partition?.state === 'running';
  if (state === 'running' && !running) await host.start(name, 'test');
  if (state === 'stopped' && running) await host.stop(name, 'test');
}

interface Row {
  name: string;
  permission: string;
  /** 'partition': target is /partitions/<t>; 'root': scope / */
  kind: 'partition' | 'root';
  method: string;
  path: (t: string) => string;
  body?: (t: string) => unknown;
  ok: number;
  setup?: (t: string) => Promise<void>;
}

const rows: Row[] = [
  { name: 'get partition', permission: 'partitions/read', kind: 'partition', method: 'GET', path: (t) => `/partitions/${t}`, ok: 200, setup: (t) => ensure(t, 'running') },
  { name: 'partition metrics', permission: 'metrics/read', kind: 'partition', method: 'GET', path: (t) => `/partitions/${t}/metrics`, ok: 200, setup: (t) => ensure(t, 'running') },
  { name: 'call', permission: 'partitions/call', kind: 'partition', method: 'POST', path: (t) => `/partitions/${t}/call`, body: () => ({ export: 'upper', input: 'x' }), ok: 200, setup: (t) => ensure(t, 'running') },
  { name: 'console input', permission: 'partitions/console', kind: 'partition', method: 'POST', path: (t) => `/partitions/${t}/console`, body: () => ({ lines: ['x'] }), ok: 200, setup: (t) => ensure(t, 'running') },
  { name: 'console stream', permission: 'partitions/console', kind: 'partition', method: 'GET', path: (t) => `/partitions/${t}/console?follow=false`, ok: 200, setup: (t) => ensure(t, 'running') },
  { name: 'stop', permission: 'partitions/start', kind: 'partition', method: 'POST', path: (t) => `/partitions/${t}/stop`, ok: 200, setup: (t) => ensure(t, 'running') },
  { name: 'start', permission: 'partitions/start', kind: 'partition', method: 'POST', path: (t) => `/partitions/${t}/start`, ok: 200, setup: (t) => ensure(t, 'stopped') },
  { name: 'wipe disk', permission: 'disks/wipe', kind: 'partition', method: 'POST', path: (t) => `/partitions/${t}/disk/wipe`, ok: 200, setup: (t) => ensure(t, 'stopped') },
  { name: 'destroy', permission: 'partitions/write', kind: 'partition', method: 'DELETE', path: (t) => `/partitions/${t}`, ok: 200, setup: (t) => ensure(t, 'stopped') },
  { name: 'create', permission: 'partitions/write', kind: 'partition', method: 'POST', path: () => '/partitions', body: (t) => ({ ...spec(t), start: false }), ok: 201, setup: (t) => ensure(t, 'absent') },
  { name: 'get policy', permission: 'policy/read', kind: 'root', method: 'GET', path: () => '/policy', ok: 200 },
  { name: 'replace policy', permission: 'policy/write', kind: 'root', method: 'PUT', path: () => '/policy', body: () => ({ policy: null }), ok: 200 },
  { name: 'audit', permission: 'audit/read', kind: 'root', method: 'GET', path: () => '/audit?limit=5', ok: 200 },
  { name: 'attestation', permission: 'attestation/read', kind: 'root', method: 'GET', path: () => '/attestation?nonce=00112233445566778899aabbccddeeff', ok: 200 },
  { name: 'host metrics', permission: 'metrics/read', kind: 'root', method: 'GET', path: () => '/host/metrics', ok: 200 },
  { name: 'prometheus', permission: 'metrics/read', kind: 'root', method: 'GET', path: () => '/metrics', ok: 200 },
  { name: 'list tokens', permission: 'tokens/read', kind: 'root', method: 'GET', path: () => '/tokens', ok: 200 },
  { name: 'create token', permission: 'tokens/write', kind: 'root', method: 'POST', path: () => '/tokens', body: () => ({ name: 'minted', role: 'Reader', scope: '/partitions/a', expires: '1h' }), ok: 201 },
  { name: 'revoke token', permission: 'tokens/write', kind: 'root', method: 'DELETE', path: () => `/tokens/${victim}`, ok: 200, setup: async () => void (victim = (await h.token('Reader', '/', 'victim')).id) },
];
let victim = '';

beforeAll(async () => {
  h = await startHost({ limits: { ratePerSecond: 10_000, rateBurst: 10_000 } });
  for (const role of ROLES) {
    tokens[role] = { root: (await h.token(role, '/', `${role.toLowerCase()}-root`)).token, scoped: (await h.token(role, '/partitions/a', `${role.toLowerCase()}-a`)).token };
  }
  owner = tokens.Owner!.root;
  await ensure('a', 'running');
  await ensure('b', 'running');
}, 60_000);

afterAll(async () => {
  await h?.close();
});

describe('every endpoint × every built-in role × in and out of scope', () => {
  for (const row of rows) {
    for (const role of ROLES) {
      for (const inScope of [true, false]) {
        it(`${row.name}: ${role} ${inScope ? 'in' : 'out of'} scope`, async () => {
          // Partition rows: a token at /partitions/a, targeting a (in) or b (out).
          // Root rows: a token at / (in) or at /partitions/a (out).
          const target = row.kind === 'partition' ? (inScope ? 'a' : 'b') : 'a';
          const token = row.kind === 'partition' ? tokens[role]!.scoped : inScope ? tokens[role]!.root : tokens[role]!.scoped;
          const principal = row.kind === 'partition' ? `token:${role.toLowerCase()}-a` : inScope ? `token:${role.toLowerCase()}-root` : `token:${role.toLowerCase()}-a`;
          const scope = row.kind === 'partition' ? `/partitions/${target}` : '/';
          await row.setup?.(target);
          const allowed = inScope && ROLE_PERMISSIONS[role]!.includes(row.permission);
          // Creating a token also needs the caller to hold the granted role's permissions at its scope: true for every role holding tokens/write here (Owner).
          const before = (await h.records()).at(-1)?.seq ?? 0;
          const r = await h.client(token).request(row.method, row.path(target), row.body?.(target));
          expect(r.status, r.body.toString()).toBe(allowed ? row.ok : 403);
          if (!allowed) expect(JSON.parse(r.body.toString()).error.code).toBe('ERR_ACCESS_DENIED');
          const decisions = (await h.records()).filter((x) => x.seq > before && x.action === 'api.authorize' && x.details?.permission === row.permission && x.actor === principal && x.target === scope);
          expect(decisions.length, `audit record for ${principal} ${row.permission} at ${scope}`).toBeGreaterThanOrEqual(1);
          const d = decisions[0]!;
          expect(d.outcome).toBe(allowed ? 'success' : 'denied');
          expect(d.reason).toBe(allowed ? `allow:${principal}:${role}@${row.kind === 'partition' ? '/partitions/a' : '/'}` : 'default-deny');
        });
      }
    }
  }

  it('list: all partitions with partitions/read at /, only those in scope otherwise, none without the permission', async () => {
    await ensure('a', 'running');
    await ensure('b', 'running');
    for (const role of ROLES) {
      const all = await h.client(tokens[role]!.root).json<{ partitions: { name: string }[] }>('GET', '/partitions');
      const scoped = await h.client(tokens[role]!.scoped).json<{ partitions: { name: string }[] }>('GET', '/partitions');
      const reads = ROLE_PERMISSIONS[role]!.includes('partitions/read');
      expect(all.partitions.map((p) => p.name)).toEqual(reads ? ['a', 'b'] : []);
      expect(scoped.partitions.map((p) => p.name)).toEqual(reads ? ['a'] : []);
    }
  });

  it('a role at /segments/<s> reaches the partitions on that segment, and no other', async () => {
    await ensure('a', 'running');
    await ensure('b', 'running');
    const { token } = await h.token('Reader', '/segments/blue', 'blue-reader');
    const c = h.client(token);
    expect((await c.request('GET', '/partitions/a')).status).toBe(200);
    expect((await c.request('GET', '/partitions/b')).status).toBe(403);
    const rec = (await h.records()).filter((x) => x.actor === 'token:blue-reader' && x.target === '/partitions/a').at(-1)!;
    expect(rec.reason).toBe('allow:token:blue-reader:Reader@/segments/blue');
  });

  it('health needs no credential; every other route answers 401 without one, unknown routes and the OpenAPI document too', async () => {
    const anon = h.client();
    expect((await anon.request('GET', '/health')).status).toBe(200);
    // Any valid credential reads the OpenAPI document, whatever its role.
    const doc = JSON.parse((await h.client(tokens.Reader!.scoped).request('GET', '/openapi.json')).body.toString());
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/partitions/{name}/call');
    for (const path of ['/openapi.json', '/partitions', '/partitions/a', '/partitions/does-not-exist', '/no/such/route', '/metrics']) {
      const r = await anon.request('GET', path);
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body.toString()).error.code).toBe('ERR_UNAUTHENTICATED');
    }
    // An authenticated caller learns that a route does not exist.
    expect((await h.client(owner).request('GET', '/no/such/route')).status).toBe(404);
  });

  it('the OpenAPI document carries the very schemas that validate requests', async () => {
    const doc = JSON.parse((await h.client(owner).request('GET', '/openapi.json')).body.toString());
    const body = doc.paths['/partitions'].post.requestBody.content['application/json'].schema;
    expect(body.properties.spec.properties.name.pattern).toBe('^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');
    expect(body.additionalProperties).toBe(false);
    expect(doc.paths['/partitions/{name}/call'].post['x-permission']).toBe('partitions/call');
    // The spec is the library's (the JSON Schema the package ships), minus what names a host path.
    const library = jsonSchemas()['partition-spec.json'] as { properties: Record<string, { properties?: Record<string, unknown> }> };
    const spec = body.properties.spec;
    expect(Object.keys(spec.properties).sort()).toEqual(Object.keys(library.properties).filter((k) => k !== 'module' && k !== 'signature').sort());
    for (const k of ['limits', 'restart', 'kind', 'args']) expect(spec.properties[k], k).toEqual(library.properties[k]);
    const { block: apiBlock, console: apiConsole, ...apiDevices } = spec.properties.devices.properties;
    const { block: libBlock, console: libConsole, ...libDevices } = library.properties.devices!.properties!;
    expect(apiDevices).toEqual(libDevices);
    expect(Object.keys(apiBlock.anyOf[1].properties)).toEqual(Object.keys((libBlock as { anyOf: { properties: object }[] }).anyOf[1]!.properties).filter((k) => k !== 'path'));
    // The console's, but for the host fds its worker would write to (devices.console.outputFd).
    const libConsoleFields = (libConsole as { anyOf: { properties: Record<string, unknown> }[] }).anyOf[1]!.properties;
    expect(apiConsole.anyOf[1].properties).toEqual(Object.fromEntries(Object.entries(libConsoleFields).filter(([k]) => k !== 'outputFd')));
    expect(Object.keys(libConsoleFields)).toContain('outputFd');
    expect(Object.keys(spec.properties.wasi.properties.preopens.items.properties)).toEqual(['guestPath', 'readonly']);
    // And it is JSON Schema a standard validator compiles (what a generated client would use).
    expect(() => new Ajv({ strict: true, strictTypes: false }).compile(body)).not.toThrow();
  });
});
