import type { LabContext } from '../context.ts';
import type { LabDefinition } from '../lab.ts';
import { MemoryAuditLog, type AuditEntry, type AuditSink } from '../../mgmt/audit.ts';
import { serve, type RunningHost } from '../../mgmt/serve.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The host's audit sink, copied into the lab's record so the page shows each decision. */
function labSink(ctx: LabContext): AuditSink {
  const inner = new MemoryAuditLog();
  return {
    durable: false,
    note(entry: AuditEntry) {
      inner.note(entry);
      ctx.audit(entry);
    },
    async record(entry: AuditEntry) {
      this.note(entry);
    },
    query: (q) => inner.query(q),
    close: () => inner.close(),
  };
}

/** A management host on loopback for this run (plain HTTP, loopback only), with an Operator token for /partitions/web. */
async function host(ctx: LabContext, auth: boolean): Promise<{ running: RunningHost; operator: string }> {
  // serve() makes the folder (files.ts makeDirsSync: a recursive mkdir hangs on Node 20 under /proc).
  const config = path.join(ctx.workDir, auth ? 'host' : 'host-noauth');
  const running = await serve({ config, bind: '127.0.0.1', port: 0, audit: labSink(ctx), log: () => {}, ...(auth ? {} : { auth: false }) });
  ctx.defer(() => running.close());
  ctx.show(running.host.hv, (name) => running.host.list().some((p) => p.name === name) ? running.host.get(name).decl.spec : undefined);
  const { token } = await running.tokens.create({ name: 'ci', role: 'Operator', scope: '/partitions/web', lifetimeMs: 600_000, createdBy: 'lab' });
  ctx.evidence('token', `"ci": role Operator at scope /partitions/web (the secret is shown to nobody: only its SHA-256 is stored)`);
  return { running, operator: token };
}

async function request(url: string, method: string, token: string, body: unknown): Promise<{ status: number; json: { error?: { code: string; message: string } } & Record<string, unknown> }> {
  const res = await fetch(url, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
}

const OWNER_ACTION = { method: 'PUT', path: '/policy', body: { policy: { defaultGrants: { devices: ['console', 'clock', 'entropy', 'block', 'net'] } } }, what: 'replace the host\'s admission policy (policy/write at /, an Owner action)' };

export const restrictedAccess: LabDefinition = {
  id: 'restricted-access',
  title: 'Restricted access',
  order: 10,
  minutes: 15,
  goal: 'restricted access',
  concept: [
    'The management plane is the most powerful interface of a hypervisor: whoever can call it can start, stop, read and delete every guest. Wasmvisor\'s management API authenticates every request (a bearer token with a 256-bit secret, or a client certificate), and authorizes it with role assignments at scopes, in Azure\'s model: a role (Owner, Operator, Auditor, Reader) applies at a scope (/, /segments/<s>, /partitions/<name>) and everything below it, explicit deny assignments win, and anything not granted is denied. Every decision is audited, either way.',
    'Stolen CI credentials and over-privileged service accounts are how most management planes fall: a deployment token that can also change policy, mint new tokens or read every tenant\'s console. Least privilege means a credential can do its one job, in its one place, and nothing else.',
    'A CI token holds the Operator role for /partitions/web only. It creates and starts its partition, which it may. Then it tries to replace the host\'s policy, an Owner action at /: the API answers 403 ERR_ACCESS_DENIED and the audit log records the decision with the rule that made it.',
  ],
  feature: 'rbac',
  guests: ['hello'],
  expect: {
    code: 'ERR_ACCESS_DENIED',
    audit: { action: 'api.authorize', outcome: 'denied' },
  },
  async run(ctx) {
    ctx.step('Start a management host on 127.0.0.1 and give CI an Operator token for /partitions/web');
    const { running, operator } = await host(ctx, true);
    ctx.step('CI creates and starts its partition "web"');
    const module = readFileSync(ctx.guest('hello')).toString('base64');
    const created = await request(`${running.url}/partitions`, 'POST', operator, { spec: { name: 'web', devices: { console: true } }, module, start: true });
    ctx.evidence('POST /partitions (web)', `${created.status}${created.json.error ? ` ${created.json.error.code}` : ' created'}`);
    if (created.status !== 201) ctx.problem(`the Operator could not create its own partition: ${created.status}`);
    ctx.step(`CI tries to ${OWNER_ACTION.what}`);
    const denied = await request(`${running.url}${OWNER_ACTION.path}`, OWNER_ACTION.method, operator, OWNER_ACTION.body);
    ctx.evidence(`${OWNER_ACTION.method} ${OWNER_ACTION.path}`, `HTTP ${denied.status}`);
    if (denied.json.error) ctx.code(denied.json.error.code, denied.json.error.message, `HTTP ${denied.status} from ${OWNER_ACTION.method} ${OWNER_ACTION.path}`);
    ctx.step('CI tries to mint itself an Owner token');
    const mint = await request(`${running.url}/tokens`, 'POST', operator, { name: 'escalate', role: 'Owner', scope: '/' });
    ctx.evidence('POST /tokens (Owner at /)', `HTTP ${mint.status} ${mint.json.error?.code ?? ''}`);
    if (mint.status !== 403) ctx.problem(`minting an Owner token answered ${mint.status}`);
  },
  defenceOff: {
    title: 'The same request to a host without authorization',
    text: 'The same host with authentication and authorization switched off (the switch exists only to measure their cost, in bench/mgmt.mjs; the command line cannot reach it). It listens on 127.0.0.1 for this run only and is closed at its end.',
    async run(ctx) {
      const { running, operator } = await host(ctx, false);
      ctx.step(`CI tries to ${OWNER_ACTION.what}`);
      const r = await request(`${running.url}${OWNER_ACTION.path}`, OWNER_ACTION.method, operator, OWNER_ACTION.body);
      ctx.evidence(`${OWNER_ACTION.method} ${OWNER_ACTION.path}`, `HTTP ${r.status}`);
      if (r.status === 200) ctx.breach('a CI token replaced the host\'s policy: without authorization every caller can do everything');
      else ctx.problem(`the unprotected host answered ${r.status}`);
    },
  },
};
