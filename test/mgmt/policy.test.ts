/**
 * One admission policy: the management API serves and replaces host/security's policy file, and
 * the Hypervisor applies it to every partition the host creates or starts — over a real server.
 * A replacement is checked whole before anything is written, measured (a `policy.change` event in
 * the `runtime` register) and audited by the principal; the file survives a restart of the host.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, encodePublicKey } from '../../host/security/keys.ts';
import { signModule } from '../../host/security/signature.ts';
import { toHex } from '../../host/security/wire.ts';
import { guest } from '../helpers.ts';
import { createBody, startHost, type Harness, startOwnedHost } from './harness.ts';

const acme = generateKeyPair();
const acmeHex = toHex(encodePublicKey(acme.publicKey));
const echo = readFileSync(guest('echo'));
const signedEcho = Buffer.from(signModule(echo, acme).module).toString('base64');

let h: Harness;
let owner: string;

beforeAll(async () => {
  ({ h, owner } = await startOwnedHost());
}, 60_000);
afterAll(() => h?.close());

const policy = { publishers: { acme: { keys: [{ publicKey: acmeHex }], grants: { devices: ['console' as const], memoryPages: 32 } } } };
const spec = (name: string, extra: Record<string, unknown> = {}) => ({ name, devices: { console: true }, limits: { memoryPages: 32, timeoutMs: 0 }, ...extra });

describe('the admission policy through the API', () => {
  it('without a policy file: null, and any module is admitted', async () => {
    const c = h.client(owner);
    expect(await c.json('GET', '/policy')).toEqual({ policy: null, sha256: null });
    expect((await c.request('POST', '/partitions', createBody('free', 'echo', { start: true }, spec('free')))).status).toBe(201);
  });

  it('PUT: written, measured, audited by the principal; then unsigned, unknown and over-the-grant modules are refused (422) naming the rule', async () => {
    const c = h.client(owner);
    const answer = await c.json<{ policy: unknown; sha256: string }>('PUT', '/policy', { policy });
    expect(answer.policy).toEqual(policy);
    expect(answer.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(readFileSync(path.join(h.config, 'policy.json'), 'utf8'))).toEqual(policy);
    expect(await c.json('GET', '/policy')).toEqual(answer);
    // Measured: the change extends the runtime register, with the new policy's hash.
    const events = h.running.host.hv.eventLog().events.filter((e) => e.type === 'policy.change');
    expect(events.at(-1)!.data).toMatchObject({ sha256: answer.sha256 });
    // Audited (durably, before the answer) as done by the principal.
    expect((await h.records()).filter((r) => r.action === 'policy.change').at(-1)).toMatchObject({ actor: 'token:owner', outcome: 'success' });

    const refused = async (name: string, module: string, extra: Record<string, unknown> = {}) => {
      const r = await c.request('POST', '/partitions', { spec: spec(name, extra), module });
      return { status: r.status, error: (JSON.parse(r.body.toString()) as { error?: { code: string; message: string } }).error };
    };
    const unsigned = await refused('u', echo.toString('base64'));
    expect(unsigned).toMatchObject({ status: 422, error: { code: 'ERR_INTEGRITY', message: expect.stringMatching(/is not signed and not pinned by the policy/) } });
    const mallory = Buffer.from(signModule(echo, generateKeyPair()).module).toString('base64');
    expect(await refused('m', mallory)).toMatchObject({ status: 422, error: { code: 'ERR_INTEGRITY', message: expect.stringMatching(/signed only by keys the policy does not trust/) } });
    expect(await refused('g', signedEcho, { devices: { console: true, clock: true } })).toMatchObject({
      status: 422,
      error: { code: 'ERR_POLICY_DENIED', message: 'partition g: publisher acme does not grant the clock device (grants: console)' },
    });
    expect(await refused('p', signedEcho, { limits: { memoryPages: 33 } })).toMatchObject({ status: 422, error: { code: 'ERR_POLICY_DENIED', message: expect.stringMatching(/grants at most 32 memory pages; the spec asks for 33/) } });
    // Nothing of a refused partition is kept, and each refusal is on the record with its code.
    expect(h.running.host.list().map((p) => p.name)).toEqual(['free']);
    const denied = (await h.records()).filter((r) => r.action === 'partition.create' && r.outcome === 'denied').map((r) => r.code);
    expect(denied).toEqual(expect.arrayContaining(['ERR_INTEGRITY', 'ERR_POLICY_DENIED']));

    const ok = await c.request('POST', '/partitions', { spec: spec('signed'), module: signedEcho, start: true });
    expect(ok.status, ok.body.toString()).toBe(201);
    expect(JSON.parse(ok.body.toString())).toMatchObject({ name: 'signed', state: 'running' });
  });

  it('a partition declared before the policy keeps running, and is judged by it when a new run begins', async () => {
    const c = h.client(owner);
    expect(h.running.host.get('free').partition?.state).toBe('running');
    expect((await c.request('POST', '/partitions/free/stop')).status).toBe(200);
    const r = await c.request('POST', '/partitions/free/start');
    expect(r.status).toBe(422);
    expect(JSON.parse(r.body.toString()).error.code).toBe('ERR_INTEGRITY');
  });

  it('bad policies are refused whole, naming the field, and nothing is written', async () => {
    const c = h.client(owner);
    const before = readFileSync(path.join(h.config, 'policy.json'), 'utf8');
    const bad = async (body: unknown) => {
      const r = await c.request('PUT', '/policy', body);
      expect(r.status).toBe(400);
      return (JSON.parse(r.body.toString()) as { error: { code: string; message: string } }).error;
    };
    expect(await bad({ policy: { publisher: {} } })).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('policy.publisher: unknown key; did you mean publishers?') });
    // A key file names a file on the host: the host administrator's, not a remote caller's.
    expect(await bad({ policy: { publishers: { acme: { keys: [{ file: '/etc/passwd' }] } } } })).toMatchObject({ message: expect.stringContaining('policy.publishers.acme.keys[0].file: unknown key') });
    expect(await bad({ policy: { publishers: { acme: { keys: [{ publicKey: 'zz' }] } } } })).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('publishers.acme.keys[0]') });
    expect(await bad({ policy: { defaultGrants: { memoryPages: '16' } } })).toMatchObject({ message: expect.stringContaining('expected an integer from 1 to 65536, got the string "16"') });
    expect(await bad({})).toMatchObject({ message: expect.stringContaining('policy: is required') });
    expect(readFileSync(path.join(h.config, 'policy.json'), 'utf8')).toBe(before);
  });

  it('the policy file survives a restart of the host; PUT null removes it', async () => {
    const sha = (await h.client(owner).json<{ sha256: string }>('GET', '/policy')).sha256;
    await h.close();
    h = await startHost({ config: h.config });
    owner = (await h.token('Owner', '/', 'owner2')).token;
    const c = h.client(owner);
    expect(await c.json('GET', '/policy')).toEqual({ policy, sha256: sha });
    // The restored partitions were judged by it: the signed one runs again, the unsigned does not.
    expect(h.running.host.get('signed').partition?.state).toBe('created');
    expect(h.running.host.get('free').error?.code).toBe('ERR_INTEGRITY');
    // The load is measured at start.
    expect(h.running.host.hv.eventLog().events.find((e) => e.type === 'policy.load')!.data).toMatchObject({ sha256: sha });

    expect(await c.json('PUT', '/policy', { policy: null })).toEqual({ policy: null, sha256: null });
    expect(() => readFileSync(path.join(h.config, 'policy.json'))).toThrow(/ENOENT/);
    expect((await c.request('POST', '/partitions/free/start')).status).toBe(200);
  });
});
