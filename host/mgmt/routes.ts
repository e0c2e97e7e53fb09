/**
 * Every route of the management API in one table: method, path, the permission it needs and
 * the scope it is checked at, the schemas of its parameters, query and body, and its handler.
 * server.ts installs the table (hooks do authentication, rate limits, validation and the RBAC
 * decision for every row alike); openapi.ts turns the same rows into `/openapi.json`.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { AccessDeniedError, GuestCallError, InvalidArgumentError } from '../errors.ts';
import { VERSION } from '../cli/version.ts';
import { httpStatus, type ManagementServer, type RequestContext } from './server.ts';
import type { AuditQuery, AuditSink } from './audit.ts';
import { isWiped, type ManagedHost } from './host.ts';
import type { Permission, Rbac } from './rbac.ts';
import { parseLifetime, type TokenStore } from './tokens.ts';
import { renderPrometheus } from './prometheus.ts';
import { streamConsole } from './console-stream.ts';
import {
  AttestQuery,
  AuditQueryString,
  CallBody,
  ConsoleInputBody,
  ConsoleQuery,
  CreatePartitionBody,
  CreateTokenBody,
  DestroyQuery,
  PolicyAnswer,
  PolicyBody,
  MAX_MODULE_BASE64,
  NameParams,
  TokenParams,
  type AuditQueryString as AuditQueryStringT,
  type CallBody as CallBodyT,
  type CreatePartitionBody as CreatePartitionBodyT,
  type PolicyBody as PolicyBodyT,
} from './schemas.ts';
import type { Static } from '@sinclair/typebox';
import { quoted } from '../escape.ts';
import { parseQueryTime } from '../security/audit.ts';

export interface RouteDef {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  summary: string;
  tag: string;
  /** `public`: no credential needed (health, the OpenAPI document). */
  auth: 'public' | 'required';
  /** Checked before the handler at `scope(ctx)`; null: the handler decides (or none is needed). */
  permission: Permission | null;
  scope: (ctx: RequestContext) => { scope: string; segment: string | null };
  params?: TSchema;
  query?: TSchema;
  body?: TSchema;
  /** The 2xx answer, for the OpenAPI document. */
  response?: TSchema;
  status?: number;
  produces?: 'application/json' | 'text/plain' | 'text/event-stream';
  bodyLimit?: number;
  handler: (ctx: RequestContext) => Promise<unknown>;
}

interface Deps {
  host: ManagedHost;
  tokens: TokenStore;
  rbac: Rbac;
  audit: AuditSink;
  server: ManagementServer;
}

const ROOT = () => ({ scope: '/', segment: null });
const Any = Type.Object({}, { additionalProperties: true });

const PartitionInfo = Type.Object({
  name: Type.String(),
  kind: Type.Union([Type.Literal('command'), Type.Literal('reactor')]),
  state: Type.String({ description: 'created | running | exited | trapped | killed | destroyed | refused' }),
  measurement: Type.String(),
  restartPolicy: Type.String(),
  desired: Type.String(),
  lastRun: Type.String(),
  restarts: Type.Integer(),
  segment: Type.Union([Type.String(), Type.Null()]),
  lastExit: Type.Union([Type.Object({ state: Type.String(), code: Type.Union([Type.Integer(), Type.Null()]), reason: Type.String() }), Type.Null()]),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  createdAt: Type.String(),
  createdBy: Type.String(),
});

const WhoAmI = Type.Object({
  principal: Type.String(),
  kind: Type.String({ description: 'token | cert' }),
  expiresAt: Type.Union([Type.String(), Type.Null()]),
  assignments: Type.Array(
    Type.Object({
      principal: Type.String({ description: 'The principal, or `*` for an assignment to everyone authenticated' }),
      role: Type.String(),
      scope: Type.String(),
      source: Type.Union([Type.Literal('rbac.json'), Type.Literal('credential')], { description: "rbac.json's assignments, or the credential's own (a token's role at its scope)" }),
    }),
  ),
  denyAssignments: Type.Array(Type.Object({ name: Type.String(), principal: Type.String(), permissions: Type.Array(Type.String()), scope: Type.String() })),
  version: Type.String(),
});

/** Standard base64, padded or not (`=` only at the end, no whitespace). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

const fatal = new TextDecoder('utf-8', { fatal: true });

function encodeOutput(bytes: Uint8Array, encoding: 'utf8' | 'base64'): { output: string; encoding: 'utf8' | 'base64' } {
  if (encoding === 'utf8') {
    try {
      return { output: fatal.decode(bytes), encoding: 'utf8' };
    } catch {
      // Not UTF-8: say so by answering in base64.
    }
  }
  return { output: Buffer.from(bytes).toString('base64'), encoding: 'base64' };
}

/** Where a partition about to be declared sits: its scope, and its NIC's segment (for inherited assignments). */
function specScope(spec: CreatePartitionBodyT['spec']): { scope: string; segment: string | null } {
  const net = spec.devices?.net;
  return { scope: `/partitions/${spec.name}`, segment: net ? net.segment : null };
}

export function buildRoutes(d: Deps): RouteDef[] {
  const { host, tokens, rbac, audit, server } = d;
  const partitionScope = (ctx: RequestContext) => ({ scope: `/partitions/${ctx.params.name}`, segment: host.segmentOf(ctx.params.name!) });
  const named = (ctx: RequestContext) => ctx.params.name!;
  const routes: RouteDef[] = [
    {
      method: 'GET',
      url: '/health',
      summary: 'Liveness: 200 while the host serves. No credential needed.',
      tag: 'host',
      auth: 'public',
      permission: null,
      scope: ROOT,
      response: Type.Object({ status: Type.Literal('ok') }),
      handler: async () => ({ status: 'ok' }),
    },
    {
      method: 'GET',
      url: '/whoami',
      summary:
        "The caller: its principal, every role assignment that applies to it (rbac.json's that name it or `*`, then its credential's own: a token's role at its scope), the deny assignments that apply to it, and when its credential expires.",
      tag: 'host',
      auth: 'required',
      permission: null,
      scope: ROOT,
      response: WhoAmI,
      handler: async ({ principal }) => {
        const config = rbac.appliesTo(principal.id);
        return {
          principal: principal.id,
          kind: principal.kind,
          expiresAt: principal.expiresAt === null ? null : new Date(principal.expiresAt).toISOString(),
          assignments: [
            ...config.assignments.map((a) => ({ ...a, source: 'rbac.json' as const })),
            ...principal.assignments.map((a) => ({ principal: a.principal, role: a.role, scope: a.scope, source: 'credential' as const })),
          ],
          denyAssignments: config.denyAssignments,
          version: VERSION,
        };
      },
    },
    {
      method: 'GET',
      url: '/partitions',
      summary: 'The declared partitions the caller may read (partitions/read at / shows all; otherwise those in scope).',
      tag: 'partitions',
      auth: 'required',
      permission: null,
      scope: ROOT,
      response: Type.Object({ partitions: Type.Array(PartitionInfo) }),
      handler: async (ctx) => {
        const all = host.list();
        if (ctx.allowed('partitions/read', '/')) return { partitions: all };
        const visible = all.filter((p) => rbac.decide(ctx.principal.id, ctx.principal.assignments, 'partitions/read', `/partitions/${p.name}`, p.segment).allowed);
        audit.note({
          actor: ctx.principal.id,
          action: 'api.authorize',
          target: '/partitions/*',
          outcome: visible.length > 0 ? 'success' : 'denied',
          reason: `list filtered to the partitions in scope: ${visible.map((p) => p.name).join(', ') || 'none'}`,
          details: { permission: 'partitions/read', requestId: ctx.req.id },
        });
        return { partitions: visible };
      },
    },
    {
      method: 'POST',
      url: '/partitions',
      summary: 'Declares a partition (spec + module in base64), loads it, and with `start` starts it. Needs partitions/write (and partitions/start) at /partitions/<name>.',
      tag: 'partitions',
      auth: 'required',
      permission: 'partitions/write',
      scope: (ctx) => specScope((ctx.body as CreatePartitionBodyT).spec),
      body: CreatePartitionBody,
      bodyLimit: MAX_MODULE_BASE64 + (1 << 20),
      status: 201,
      response: PartitionInfo,
      handler: async (ctx) => {
        const body = ctx.body as CreatePartitionBodyT;
        if (body.start) {
          const { scope, segment } = specScope(body.spec);
          ctx.authorize('partitions/start', scope, segment);
        }
        const info = await host.create(body, ctx.principal.id);
        ctx.reply.status(201);
        return info;
      },
    },
    {
      method: 'GET',
      url: '/partitions/:name',
      summary: 'One declared partition.',
      tag: 'partitions',
      auth: 'required',
      permission: 'partitions/read',
      scope: partitionScope,
      params: NameParams,
      response: PartitionInfo,
      handler: async (ctx) => host.get(named(ctx)).info(),
    },
    {
      method: 'DELETE',
      url: '/partitions/:name',
      summary:
        'Stops, destroys and undeclares a partition. `?wipe=true` also scrubs its disk (needs disks/wipe too): `wiped` says whether an image was scrubbed or a key removed. A partition with no disk (its spec grants none, and no image of its name is left) has nothing to scrub: `?wipe=true` destroys it as without, `wiped: false` (POST …/disk/wipe is 400 then). A wipe refused (422 ERR_INTEGRITY, 409 ERR_INVALID_STATE) or failed leaves the disk untouched and the partition declared and stopped: retry, or DELETE without the wipe.',
      tag: 'partitions',
      auth: 'required',
      permission: 'partitions/write',
      scope: partitionScope,
      params: NameParams,
      query: DestroyQuery,
      response: Type.Object({
        destroyed: Type.String(),
        wiped: Type.Boolean({ description: 'True when the wipe scrubbed an image or removed a key of the name; false without ?wipe=true, or when nothing of the disk was there any more.' }),
      }),
      handler: async (ctx) => {
        const wipe = (ctx.query as Static<typeof DestroyQuery>).wipe === true;
        if (wipe) {
          const s = partitionScope(ctx);
          ctx.authorize('disks/wipe', s.scope, s.segment);
        }
        const result = await host.destroy(named(ctx), { wipe }, ctx.principal.id);
        return { destroyed: named(ctx), wiped: result !== null && isWiped(result) };
      },
    },
    {
      method: 'POST',
      url: '/partitions/:name/start',
      summary: 'Starts a partition (a fresh run if its last one ended).',
      tag: 'partitions',
      auth: 'required',
      permission: 'partitions/start',
      scope: partitionScope,
      params: NameParams,
      response: PartitionInfo,
      handler: async (ctx) => host.start(named(ctx), ctx.principal.id),
    },
    {
      method: 'POST',
      url: '/partitions/:name/stop',
      summary: 'Stops a partition and keeps it stopped (restart policies do not apply until it is started). Needs partitions/start.',
      tag: 'partitions',
      auth: 'required',
      permission: 'partitions/start',
      scope: partitionScope,
      params: NameParams,
      response: PartitionInfo,
      handler: async (ctx) => host.stop(named(ctx), ctx.principal.id),
    },
    {
      method: 'POST',
      url: '/partitions/:name/disk/wipe',
      summary:
        'Scrubs and removes the disk of a partition that is not running; its next run gets an empty disk. A partition whose spec grants none: the images an earlier declaration of its name left (400 when none is left, as DELETE ?wipe=true). A file that is not the image of the name (another partition’s, or not an image) is 422 ERR_INTEGRITY and left untouched; after a refused or failed wipe the partition is declared and stopped, its disk as it was.',
      tag: 'partitions',
      auth: 'required',
      permission: 'disks/wipe',
      scope: partitionScope,
      params: NameParams,
      response: PartitionInfo,
      handler: async (ctx) => host.wipeDisk(named(ctx), ctx.principal.id),
    },
    {
      method: 'GET',
      url: '/partitions/:name/console',
      summary: 'The console as Server-Sent Events: `console`, `state`, `dropped` and `end` events, each with one line of JSON data.',
      tag: 'console',
      auth: 'required',
      permission: 'partitions/console',
      scope: partitionScope,
      params: NameParams,
      query: ConsoleQuery,
      produces: 'text/event-stream',
      handler: async (ctx) => {
        const q = ctx.query as Static<typeof ConsoleQuery>;
        streamConsole(ctx, host.get(named(ctx)), server, { tail: q.tail ?? 100, follow: q.follow !== false });
        return ctx.reply;
      },
    },
    {
      method: 'POST',
      url: '/partitions/:name/console',
      summary:
        "Writes console input lines, in order, until the guest's input buffer is full, and with `end` ends the input once every line was taken. Answers how many lines the buffer took (`accepted`) and whether the input was ended (`ended`): a line not taken, and those after it, are the caller's to send again (with `end`).",
      tag: 'console',
      auth: 'required',
      permission: 'partitions/console',
      scope: partitionScope,
      params: NameParams,
      body: ConsoleInputBody,
      response: Type.Object({ accepted: Type.Integer(), ended: Type.Boolean() }),
      handler: async (ctx) => {
        const b = ctx.body as Static<typeof ConsoleInputBody>;
        return host.writeConsole(named(ctx), b.lines, b.end === true);
      },
    },
    {
      method: 'POST',
      url: '/partitions/:name/call',
      summary: 'Calls a running reactor\'s export. A non-zero return is 422 ERR_GUEST_CALL with the guest\'s `status` and `output`.',
      tag: 'partitions',
      auth: 'required',
      permission: 'partitions/call',
      scope: partitionScope,
      params: NameParams,
      body: CallBody,
      bodyLimit: 6 << 20,
      response: Type.Object({ output: Type.String(), encoding: Type.Union([Type.Literal('utf8'), Type.Literal('base64')]) }),
      handler: async (ctx) => {
        const b = ctx.body as CallBodyT;
        const encoding = b.encoding ?? 'utf8';
        // Buffer.from skips what is not base64: a garbled input would reach the guest as other bytes.
        if (encoding === 'base64' && b.input !== undefined && !BASE64.test(b.input)) throw new InvalidArgumentError(`body: input: is not base64 (encoding: base64), got ${quoted(b.input)}`);
        const input = Buffer.from(b.input ?? '', encoding === 'base64' ? 'base64' : 'utf8');
        try {
          const output = await host.call(named(ctx), b.export, input, b.timeoutMs, new AbortController().signal);
          return encodeOutput(output, encoding);
        } catch (error) {
          if (!(error instanceof GuestCallError)) throw error;
          return ctx.reply.status(httpStatus(error.code)).send({ error: { code: error.code, message: error.message, status: error.status, ...encodeOutput(error.output, encoding) } });
        }
      },
    },
    {
      method: 'GET',
      url: '/partitions/:name/metrics',
      summary: 'A partition\'s counters (hypercalls, memory, console, CPU, disk, network), JSON.',
      tag: 'metrics',
      auth: 'required',
      permission: 'metrics/read',
      scope: partitionScope,
      params: NameParams,
      response: Any,
      handler: async (ctx) => {
        const m = host.get(named(ctx));
        return { name: m.name, state: m.partition?.state ?? 'refused', restarts: m.restarts, metrics: m.partition?.metrics() ?? null };
      },
    },
    {
      method: 'GET',
      url: '/host/metrics',
      summary: 'The host\'s counters, JSON: memory budget, partitions by state, API counters, process memory.',
      tag: 'metrics',
      auth: 'required',
      permission: 'metrics/read',
      scope: ROOT,
      response: Any,
      handler: async () => {
        const byState: Record<string, number> = {};
        for (const p of host.list()) byState[p.state] = (byState[p.state] ?? 0) + 1;
        const mem = process.memoryUsage();
        return {
          uptimeSeconds: (Date.now() - host.startedAt) / 1000,
          memory: host.hv.memoryUsage(),
          partitions: byState,
          api: server.counters,
          process: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
          auditDurable: audit.durable,
        };
      },
    },
    {
      method: 'GET',
      url: '/metrics',
      summary: 'Host and partition metrics in the Prometheus text format (version 0.0.4).',
      tag: 'metrics',
      auth: 'required',
      permission: 'metrics/read',
      scope: ROOT,
      produces: 'text/plain',
      handler: async (ctx) => {
        const text = renderPrometheus({
          uptimeSeconds: (Date.now() - host.startedAt) / 1000,
          memory: host.hv.memoryUsage(),
          partitions: host.list().map((p) => {
            const part = host.get(p.name).partition;
            return { name: p.name, state: p.state, restarts: p.restarts, metrics: part ? part.metrics() : null };
          }),
          api: server.counters,
        });
        return ctx.reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8').send(text);
      },
    },
    {
      method: 'GET',
      url: '/policy',
      summary: "The admission policy in force (the host's policy file, docs/SECURITY.md) and its hash; null without one.",
      tag: 'policy',
      auth: 'required',
      permission: 'policy/read',
      scope: ROOT,
      response: PolicyAnswer,
      handler: async () => host.policy,
    },
    {
      method: 'PUT',
      url: '/policy',
      summary:
        'Replaces the admission policy (null: none). Measured and audited (policy.change, by the caller) before the answer. It applies to partitions created or started from now on; running ones keep running.',
      tag: 'policy',
      auth: 'required',
      permission: 'policy/write',
      scope: ROOT,
      body: PolicyBody,
      response: PolicyAnswer,
      handler: async (ctx) => {
        await host.setPolicy((ctx.body as PolicyBodyT).policy, ctx.principal.id);
        return host.policy;
      },
    },
    {
      method: 'GET',
      url: '/attestation',
      summary:
        "A signed attestation report of the host (docs/SECURITY.md): the measured-boot registers and event log, the partitions with their measurements and signers, the verifier's nonce and the time, signed with the host's attestation key. Verify it offline with `wasmvisor attest verify` and the host's public key.",
      tag: 'attestation',
      auth: 'required',
      permission: 'attestation/read',
      scope: ROOT,
      query: AttestQuery,
      response: Any,
      // The request is on the record (by the principal) before the report is sent.
      handler: async (ctx) => host.hv.attest({ nonce: (ctx.query as Static<typeof AttestQuery>).nonce, actor: ctx.principal.id }),
    },
    {
      method: 'GET',
      url: '/audit',
      summary: 'Audit records, newest last, filtered by actor, action, target, partition, outcome and time. Needs audit/read at / (or at /partitions/<p> with `partition=<p>`).',
      tag: 'audit',
      auth: 'required',
      permission: 'audit/read',
      scope: (ctx) => {
        const p = (ctx.query as AuditQueryStringT).partition;
        return p === undefined ? { scope: '/', segment: null } : { scope: `/partitions/${p}`, segment: host.segmentOf(p) };
      },
      query: AuditQueryString,
      response: Type.Object({ durable: Type.Boolean(), records: Type.Array(Any) }),
      handler: async (ctx) => {
        const q = ctx.query as AuditQueryStringT;
        if (q.partition !== undefined && q.target !== undefined) throw new InvalidArgumentError('query: give partition or target, not both');
        const iso = (t: string | undefined, what: string) => {
          if (t === undefined) return undefined;
          const ms = parseQueryTime(t);
          if (Number.isNaN(ms)) throw new InvalidArgumentError(`query.${what}: ${quoted(t)} is not a valid time`);
          return new Date(ms).toISOString();
        };
        const query: AuditQuery = {
          limit: q.limit ?? 1000,
          ...(q.actor !== undefined ? { actor: q.actor } : {}),
          ...(q.action !== undefined ? { action: q.action } : {}),
          ...(q.outcome !== undefined ? { outcome: q.outcome } : {}),
          ...(q.partition !== undefined ? { partition: q.partition } : q.target !== undefined ? { target: q.target } : {}),
          ...(q.since !== undefined ? { since: iso(q.since, 'since')! } : {}),
          ...(q.until !== undefined ? { until: iso(q.until, 'until')! } : {}),
        };
        return { durable: audit.durable, records: await audit.query(query) };
      },
    },
    {
      method: 'GET',
      url: '/tokens',
      summary: 'API tokens, without their secrets.',
      tag: 'tokens',
      auth: 'required',
      permission: 'tokens/read',
      scope: ROOT,
      response: Type.Object({ tokens: Type.Array(Any) }),
      handler: async () => ({ tokens: tokens.list() }),
    },
    {
      method: 'POST',
      url: '/tokens',
      summary: 'Creates a token and answers its secret, once. The caller must itself hold every permission of the role at the scope (no escalation).',
      tag: 'tokens',
      auth: 'required',
      permission: 'tokens/write',
      scope: ROOT,
      body: CreateTokenBody,
      status: 201,
      response: Type.Object({ token: Type.String(), id: Type.String(), expiresAt: Type.Union([Type.String(), Type.Null()]) }),
      handler: async (ctx) => {
        const b = ctx.body as Static<typeof CreateTokenBody>;
        const role = rbac.role(b.role, 'body.role');
        const refusals = rbac.mintRefusals(ctx.principal.id, ctx.principal.assignments, b.name, role, b.scope);
        audit.note({
          actor: ctx.principal.id,
          action: 'api.authorize',
          target: b.scope,
          outcome: refusals.length === 0 ? 'success' : 'denied',
          reason: refusals.length === 0 ? `holds every permission token:${b.name} would hold (${role.name} at ${b.scope})` : refusals.join('; '),
          details: { permission: `grant ${role.name}`, requestId: ctx.req.id },
        });
        if (refusals.length > 0) {
          server.counters.denied++;
          throw new AccessDeniedError(`${ctx.principal.id} may not grant ${role.name} at ${b.scope} as token:${b.name}: ${refusals.join('; ')}`);
        }
        const { token, record } = await tokens.create({ name: b.name, role: role.name, scope: b.scope, lifetimeMs: parseLifetime(b.expires ?? '30d', 'body.expires'), createdBy: ctx.principal.id });
        await audit.record({ actor: ctx.principal.id, action: 'token.create', target: `token:${record.name}`, outcome: 'success', reason: `id ${record.id}, ${record.role} at ${record.scope}`, details: { requestId: ctx.req.id } });
        ctx.reply.status(201);
        return { token, id: record.id, expiresAt: record.expiresAt };
      },
    },
    {
      method: 'DELETE',
      url: '/tokens/:id',
      summary:
        'Revokes a token: it fails from now on, and its open console streams end. Idempotent: a token revoked already answers `alreadyRevoked: true` and the time it was revoked, and nothing changes.',
      tag: 'tokens',
      auth: 'required',
      permission: 'tokens/write',
      scope: ROOT,
      params: TokenParams,
      response: Type.Object({ revoked: Type.String(), revokedAt: Type.String(), alreadyRevoked: Type.Boolean() }),
      handler: async (ctx) => {
        const { record: r, changed } = await tokens.revokeOnce(ctx.params.id!);
        await audit.record({
          actor: ctx.principal.id,
          action: 'token.revoke',
          target: `token:${r.name}`,
          outcome: 'success',
          reason: changed ? `id ${r.id}` : `id ${r.id}: revoked already at ${r.revokedAt}, nothing changed`,
          details: { requestId: ctx.req.id, changed },
        });
        return { revoked: r.id, revokedAt: r.revokedAt!, alreadyRevoked: !changed };
      },
    },
  ];
  return routes;
}
