/**
 * The management plane's pure parts and its bounds at their edges: RBAC model (custom roles,
 * notPermissions, deny order, bad configurations), token lifetimes, the config lock, Prometheus
 * escaping, and the server's body, stream and lifetime limits (at the edge
 * and one past it).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rbac, rolePermissions, BUILT_IN_ROLES } from '../../host/mgmt/rbac.ts';
import { MAX_TOKEN_LIFETIME_MS, parseLifetime } from '../../host/mgmt/tokens.ts';
import { ConfigDir } from '../../host/mgmt/config.ts';
import { escapeLabel } from '../../host/mgmt/prometheus.ts';
import { isLoopback, serve } from '../../host/mgmt/serve.ts';
import { MemoryAuditLog, type AuditQuery } from '../../host/mgmt/audit.ts';
import { verifyAuditLog } from '../../host/security/audit.ts';
import { createBody, startHost, tempDir, type Harness } from './harness.ts';

describe('RBAC model', () => {
  it('custom roles with wildcards and notPermissions', () => {
    const rbac = new Rbac({
      roles: [{ name: 'Runner', permissions: ['partitions/*'], notPermissions: ['partitions/write'] }],
      assignments: [{ principal: 'token:r', role: 'Runner', scope: '/partitions/web' }],
    });
    expect(rolePermissions(rbac.role('Runner'))).toEqual(['partitions/read', 'partitions/start', 'partitions/console', 'partitions/call']);
    expect(rbac.decide('token:r', [], 'partitions/start', '/partitions/web').allowed).toBe(true);
    expect(rbac.decide('token:r', [], 'partitions/write', '/partitions/web')).toMatchObject({ allowed: false, rule: 'default-deny' });
    expect(rbac.decide('token:r', [], 'partitions/start', '/partitions/db').allowed).toBe(false);
    // Assignments are inherited downwards, never upwards.
    expect(rbac.decide('token:r', [], 'partitions/read', '/').allowed).toBe(false);
  });

  it('a deny assignment wins over any allow, also one for everyone (*), and is inherited downwards', () => {
    const rbac = new Rbac({ denyAssignments: [{ principal: '*', permissions: ['disks/*'], scope: '/' }] });
    const owner = [{ principal: 'token:o', role: 'Owner', scope: '/' }];
    expect(rbac.decide('token:o', owner, 'disks/wipe', '/partitions/x')).toMatchObject({ allowed: false, rule: 'deny:deny-0@/' });
    expect(rbac.decide('token:o', owner, 'partitions/write', '/partitions/x')).toMatchObject({ allowed: true, rule: 'allow:token:o:Owner@/' });
  });

  it('refuses bad configurations, naming the place', () => {
    expect(() => new Rbac({ roles: [{ name: 'Owner', permissions: [] }] })).toThrow(/role "Owner" is defined twice/);
    expect(() => new Rbac({ roles: [{ name: 'X', permissions: ['partitions/fly'] }] })).toThrow(/role X.permissions\[0\]: unknown permission "partitions\/fly"/);
    expect(() => new Rbac({ roles: [{ name: 'X', permissions: ['boats/*'] }] })).toThrow(/no permission has the resource "boats"/);
    expect(() => new Rbac({ assignments: [{ principal: 'token:a', role: 'Nobody', scope: '/' }] })).toThrow(/assignments\[0\]\.role: unknown role "Nobody"/);
    expect(() => new Rbac({ assignments: [{ principal: 'token:a', role: 'Reader', scope: '/partitions/../x' }] })).toThrow(/assignments\[0\]\.scope .* is not a scope/);
  });

  it('the built-in roles are Owner, Operator, Auditor, Reader', () => {
    expect(BUILT_IN_ROLES.map((r) => r.name)).toEqual(['Owner', 'Operator', 'Auditor', 'Reader']);
  });
});

describe('bounds at their edges', () => {
  it('token lifetimes: 3650d is the most, 3651d one past it', () => {
    expect(parseLifetime('3650d')).toBe(MAX_TOKEN_LIFETIME_MS);
    expect(() => parseLifetime('3651d')).toThrow(/longer than the most a token may live/);
    expect(parseLifetime('1s')).toBe(1000);
    expect(() => parseLifetime('0s')).toThrow(/expected a duration/);
    expect(parseLifetime('never')).toBeNull();
  });

  it('Prometheus label values are escaped', () => {
    expect(escapeLabel('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
  });

  it('loopback is 127.0.0.0/8, ::1 and localhost; nothing else', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopback(a)).toBe(true);
    for (const a of ['0.0.0.0', '10.0.0.1', '::', '128.0.0.1', 'example.com']) expect(isLoopback(a)).toBe(false);
  });

  it('a non-loopback bind without TLS is refused before anything is opened', async () => {
    const config = tempDir();
    await expect(serve({ config, bind: '0.0.0.0', port: 0, log: () => {} })).rejects.toThrow(/^refusing to serve on 0\.0\.0\.0 without TLS/);
  });

  it('the lock: a live owner refuses, a dead owner\'s lock is taken over', () => {
    const dir = new ConfigDir(tempDir());
    dir.ensure();
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(dir.path('serve.lock'), `${dead}\n`);
    dir.lock();
    dir.unlock();
    writeFileSync(dir.path('serve.lock'), `${process.ppid}\n`);
    expect(() => dir.lock()).toThrow(/another wasmvisor serve \(pid \d+\) is using/);
  });
});

describe('server limits at their edges', () => {
  let h: Harness;
  let owner: string;
  beforeAll(async () => {
    h = await startHost({ limits: { bodyBytes: 1024, maxStreams: 2 } });
    owner = (await h.token('Owner', '/', 'owner')).token;
    await h.running.host.create(createBody('e', 'echo', { start: true }, { devices: { console: true }, limits: { timeoutMs: 0 } }), 'test');
  }, 30_000);
  afterAll(async () => {
    await h?.close();
  });

  it('a body of exactly the limit is read (then judged by its schema); one byte more is 413', async () => {
    const pad = (n: number) => {
      const base = JSON.stringify({ policy: null, x: '' });
      return JSON.stringify({ policy: null, x: 'y'.repeat(n - base.length) });
    };
    const c = h.client(owner);
    const at = await c.request('PUT', '/policy', JSON.parse(pad(1024)));
    expect(at.status).toBe(400);
    expect(JSON.parse(at.body.toString()).error.message).toMatch(/body: x: unknown key/);
    const past = await c.request('PUT', '/policy', JSON.parse(pad(1025)));
    expect(past.status).toBe(413);
  });

  it('streams: the limit is served, one more is 503 ERR_BUSY', async () => {
    const c = h.client(owner);
    const ac = new AbortController();
    const open = [c.stream('/partitions/e/console', () => {}, ac.signal), c.stream('/partitions/e/console', () => {}, ac.signal)];
    const deadline = Date.now() + 5000;
    while (h.running.server.counters.openStreams < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(h.running.server.counters.openStreams).toBe(2);
    const third = await c.request('GET', '/partitions/e/console');
    expect(third.status).toBe(503);
    expect(JSON.parse(third.body.toString()).error.code).toBe('ERR_BUSY');
    ac.abort();
    await Promise.all(open);
    while (h.running.server.counters.openStreams > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(h.running.server.counters.openStreams).toBe(0);
  });

  it('the audit query filters by partition, action, outcome and time', async () => {
    const c = h.client(owner);
    await c.json('POST', '/partitions/e/stop');
    const since = new Date(Date.now() - 60_000).toISOString();
    const r = await c.json<{ durable: boolean; records: { action: string; target: string; outcome: string }[] }>('GET', `/audit?partition=e&action=partition.stop&since=${since}`);
    expect(r.durable).toBe(true);
    expect(r.records).toHaveLength(1);
    expect(r.records[0]).toMatchObject({ action: 'partition.stop', target: '/partitions/e', outcome: 'success' });
    // The record says what the stop did: a run stopped, then (stopped again) nothing.
    expect(r.records[0]!).toMatchObject({ reason: 'run stopped' });
    const again = await c.json<{ state: string }>('POST', '/partitions/e/stop');
    const last = (await c.json<{ records: { reason: string }[] }>('GET', `/audit?partition=e&action=partition.stop&since=${since}`)).records.at(-1);
    expect(last).toMatchObject({ reason: `not running (${again.state}): kept stopped` });
    const denied = await c.json<{ records: unknown[] }>('GET', '/audit?outcome=denied&until=2000-01-01');
    expect(denied.records).toEqual([]);
  });
});

describe('the memory audit log', () => {
  it('keeps the newest records up to its capacity and counts the dropped', async () => {
    const log = new MemoryAuditLog(3);
    for (let i = 0; i < 5; i++) log.record({ actor: 'a', action: `x${i}`, target: '/', outcome: 'success', reason: '' });
    expect(log.all().map((r) => r.action)).toEqual(['x2', 'x3', 'x4']);
    expect(log.dropped).toBe(2);
    expect((await log.query({ limit: 2 })).map((r) => r.seq)).toEqual([4, 5]);
  });

  it("refuses a record after close as host/security's AuditLog does (ERR_INVALID_STATE), and drops a note alike", async () => {
    const { durableSink } = await import('../../host/mgmt/audit.ts');
    const { openAuditLog } = await import('../../host/security/monitor.ts');
    const { readAuditRecords } = await import('../../host/security/audit.ts');
    const opened = openAuditLog({ dataDir: mkdtempSync(path.join(os.tmpdir(), 'wv-sink-')), actor: 'host' });
    const durable = durableSink(opened.log, () => readAuditRecords(opened.dir).records);
    const memory = new MemoryAuditLog();
    const entry = { actor: 'token:a', action: 'partition.stop', target: '/partitions/x', outcome: 'success' as const, reason: '' };
    for (const sink of [memory, durable]) {
      await sink.record(entry);
      await sink.close();
      await expect(sink.record(entry)).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: 'the audit log is closed' });
      expect(() => sink.note(entry)).not.toThrow();
    }
    // Nothing after close reached either log.
    expect(memory.all().map((r) => r.action)).toEqual(['partition.stop']);
    expect(readAuditRecords(opened.dir).records.filter((r) => r.action === 'partition.stop')).toHaveLength(1);
  });
});

describe('the durable-log adapter', () => {
  it("writes through host/security's AuditLog, and a query sees batched records at once, filtered", async () => {
    const { durableSink } = await import('../../host/mgmt/audit.ts');
    const { openAuditLog } = await import('../../host/security/monitor.ts');
    const { readAuditRecords } = await import('../../host/security/audit.ts');
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'wv-sink-'));
    const opened = openAuditLog({ dataDir, actor: 'host' });
    const sink = durableSink(opened.log, () => readAuditRecords(opened.dir).records);
    expect(sink.durable).toBe(true);
    // A noted record waits for its batch (up to 100 ms); the query flushes it first.
    sink.note({ actor: 'token:a', action: 'api.authorize', target: '/partitions/x', outcome: 'denied', reason: 'default-deny' });
    await sink.record({ actor: 'token:a', action: 'partition.stop', target: '/partitions/x', outcome: 'success', reason: '' });
    await sink.record({ actor: 'token:b', action: 'partition.stop', target: '/partitions/y', outcome: 'success', reason: '' });
    const ours = (q: Omit<AuditQuery, 'limit'>, limit = 10) => sink.query({ ...q, limit }).then((rs) => rs.map((r) => `${r.actor} ${r.action} ${r.target}`));
    expect(await ours({ target: '/partitions/*' })).toEqual(['token:a api.authorize /partitions/x', 'token:a partition.stop /partitions/x', 'token:b partition.stop /partitions/y']);
    expect(await ours({ actor: 'token:a', outcome: 'success' })).toEqual(['token:a partition.stop /partitions/x']);
    expect(await ours({ partition: 'y' })).toEqual(['token:b partition.stop /partitions/y']);
    expect(await ours({}, 1)).toEqual(['token:b partition.stop /partitions/y']);
    await sink.close();
    expect(verifyAuditLog(opened.dir, { macKey: new Uint8Array(readFileSync(path.join(dataDir, 'keys', 'audit.key'))), publicKey: null, head: null }).ok).toBe(true);
  });
});

describe("the client's typed errors (errorOf)", () => {
  it("keep an ERR_GUEST_CALL answer's status and output, and trust neither when malformed", async () => {
    const { errorOf } = await import('../../host/mgmt/client.ts');
    const { GuestCallError } = await import('../../host/errors.ts');
    const ok = errorOf(422, { error: { code: 'ERR_GUEST_CALL', message: 'm', status: -2, output: 'YmFk', encoding: 'base64' } });
    expect(ok).toBeInstanceOf(GuestCallError);
    expect([(ok as InstanceType<typeof GuestCallError>).status, Buffer.from((ok as InstanceType<typeof GuestCallError>).output).toString()]).toEqual([-2, 'bad']);
    const utf8 = errorOf(422, { error: { code: 'ERR_GUEST_CALL', message: 'm', status: 7, output: 'bad input' } }) as InstanceType<typeof GuestCallError>;
    expect([utf8.status, Buffer.from(utf8.output).toString()]).toEqual([7, 'bad input']);
    for (const status of [2 ** 31, -(2 ** 31) - 1, 1.5, '7', null]) {
      const bad = errorOf(422, { error: { code: 'ERR_GUEST_CALL', message: 'm', status, output: 'x', encoding: 'hex' } }) as InstanceType<typeof GuestCallError>;
      expect([bad.code, bad.status, bad.output.length]).toEqual(['ERR_GUEST_CALL', 0, 0]);
    }
    expect(errorOf(404, { error: { code: 'ERR_NOT_FOUND', message: 'no' } }).code).toBe('ERR_NOT_FOUND');
  });
});
