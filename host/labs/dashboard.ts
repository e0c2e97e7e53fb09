/**
 * The dashboard, served by the management server beside its API (`wasmvisor lab`, and
 * `wasmvisor serve --dashboard`): one page and its two bundled files (public: the same bytes for
 * every host, shipped in the package), and three data routes that go through the API's
 * authentication and RBAC like any other (a bearer token; `metrics/read` at / to watch,
 * `partitions/write` at / to run a lab).
 *
 *   GET  /dashboard/                    the page (index.html), app.js, app.css
 *   GET  /dashboard/api/labs            the labs: concept, expectation, live or coming
 *   GET  /dashboard/api/events          Server-Sent Events: samples, violations, states, audit
 *                                       records, lab runs (host/labs/telemetry.ts)
 *   POST /dashboard/api/labs/{id}/run   { mode: 'defence' | 'defence-off' } -> 202 { run }
 *   GET  /dashboard/api/runs/{run}      a run's result once it has ended
 *
 * The page is served on loopback only (the caller refuses any other bind), and every route
 * answers only requests whose Host names the loopback address it listens on, so a web page
 * elsewhere cannot reach it by rebinding a DNS name to 127.0.0.1. The page never receives guest
 * memory contents: only what telemetry.ts carries, and the transcripts of labs (what a lab
 * deliberately prints).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Type } from '@sinclair/typebox';
import { AccessDeniedError, InternalError, InvalidStateError, NotFoundError } from '../errors.ts';
import type { AuditEntry, AuditSink } from '../mgmt/audit.ts';
import type { ManagedHost } from '../mgmt/host.ts';
import type { RouteDef } from '../mgmt/routes.ts';
import type { ServeExtension } from '../mgmt/serve.ts';
import type { ManagementServer, RequestContext } from '../mgmt/server.ts';
import { openEventStream } from '../mgmt/event-stream.ts';
import { labsWebDir } from '../paths.ts';
import { LABS } from './catalog.ts';
import { FEATURES } from './features.ts';
import type { AuditLine } from './lab.ts';
import { isLive } from './runner.ts';
import { LabSession } from './session.ts';
import { Telemetry, type TelemetryEvent } from './telemetry.ts';
import { quoted } from '../escape.ts';

/** The page's files: name, content type. Nothing else under /dashboard/ is a file. */
const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** The page may load only its own files and talk only to its own origin. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ROOT = () => ({ scope: '/', segment: null });
const RunParams = Type.Object({ id: Type.String({ pattern: '^[a-z0-9-]{1,64}$' }) }, { additionalProperties: false });
const RunResultParams = Type.Object({ run: Type.String({ pattern: '^[a-z0-9-]{1,80}$' }) }, { additionalProperties: false });
const RunBody = Type.Object({ mode: Type.Optional(Type.Union([Type.Literal('defence'), Type.Literal('defence-off')])) }, { additionalProperties: false });
const FileParams = Type.Object({ file: Type.String({ pattern: '^[a-z.]{1,32}$' }) }, { additionalProperties: false });

export interface DashboardOptions {
  /** Whether the page may start labs (`wasmvisor lab`); a host's dashboard (`serve --dashboard`) only watches. */
  labs: boolean;
  /** Where the page's files are (default: the package's dist/labs/web/). */
  webDir?: URL;
}

/** The public part of a lab, as the page shows it. */
export function describeLabs() {
  return LABS.map((lab) => ({
    id: lab.id,
    title: lab.title,
    order: lab.order,
    minutes: lab.minutes,
    goal: lab.goal,
    concept: lab.concept,
    guests: lab.guests,
    expect: lab.expect,
    live: isLive(lab),
    feature: { id: lab.feature, what: FEATURES[lab.feature].what, where: FEATURES[lab.feature].where },
    defenceOff: lab.defenceOff ? { title: lab.defenceOff.title, text: lab.defenceOff.text } : null,
  }));
}

/** Answers only requests addressed to the loopback address and port the server listens on. */
function checkHost(ctx: RequestContext, server: ManagementServer): void {
  const address = server.app.server.address() as AddressInfo | null;
  const host = ctx.req.headers.host ?? '';
  const port = address?.port;
  const allowed = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
  if (!allowed.includes(host)) throw new AccessDeniedError(`the dashboard answers only requests for ${allowed[0]} (this one names ${quoted(host, 100)})`);
}

/** The dashboard as an extension of a management host (serve's `extension`). */
export class Dashboard implements ServeExtension {
  readonly telemetry = new Telemetry();
  private session: LabSession | null = null;
  private sink: AuditSink | null = null;
  private readonly files = new Map<string, Buffer>();
  private unwatchHost: (() => void) | null = null;

  constructor(private readonly options: DashboardOptions) {
    const dir = options.webDir ?? labsWebDir;
    for (const name of Object.keys(FILES)) {
      try {
        this.files.set(name, readFileSync(new URL(name, dir)));
      } catch (error) {
        throw new InternalError(`the dashboard's ${name} is missing from ${dir.pathname} (run \`npm run build\`): ${(error as Error).message}`);
      }
    }
  }

  /** Every record the host writes reaches the page too. */
  wrapAudit(sink: AuditSink): AuditSink {
    this.sink = sink;
    const telemetry = this.telemetry;
    return {
      get durable() {
        return sink.durable;
      },
      note(entry) {
        sink.note(entry);
        telemetry.audit(entry);
      },
      async record(entry) {
        const r = await sink.record(entry);
        telemetry.audit(entry);
        return r;
      },
      query: (q) => sink.query(q),
      close: () => sink.close(),
    };
  }

  /** Writes a lab's record to the host's log and the page. */
  private writeAudit(entry: AuditEntry): AuditLine {
    this.sink?.note(entry);
    return this.telemetry.audit(entry);
  }

  routes({ host, server }: { host: ManagedHost; server: ManagementServer }): RouteDef[] {
    this.unwatchHost = this.telemetry.watch(host.hv, 'host', (name) => {
      try {
        return host.get(name).decl.spec;
      } catch {
        return undefined;
      }
    });
    if (this.options.labs) this.session = new LabSession(this.telemetry, (entry) => this.writeAudit(entry));
    const file = (name: string) => async (ctx: RequestContext) => {
      checkHost(ctx, server);
      const type = FILES[name];
      const bytes = this.files.get(name);
      if (type === undefined || bytes === undefined) throw new NotFoundError(`no file ${quoted(name)} in the dashboard`);
      void ctx.reply
        .header('content-type', type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('content-security-policy', CSP)
        .header('x-frame-options', 'DENY');
      return bytes;
    };
    return [
      {
        method: 'GET',
        url: '/dashboard',
        summary: 'Redirects to the dashboard page.',
        tag: 'dashboard',
        auth: 'public',
        permission: null,
        scope: ROOT,
        status: 302,
        handler: async (ctx) => {
          checkHost(ctx, server);
          void ctx.reply.redirect('/dashboard/', 302);
          return null;
        },
      },
      {
        method: 'GET',
        url: '/dashboard/',
        summary: 'The dashboard page (public: the same file for every host; its data routes need a credential).',
        tag: 'dashboard',
        auth: 'public',
        permission: null,
        scope: ROOT,
        produces: 'text/plain',
        handler: file('index.html'),
      },
      {
        method: 'GET',
        url: '/dashboard/:file',
        summary: 'The dashboard\'s script and style sheet (public, like the page).',
        tag: 'dashboard',
        auth: 'public',
        permission: null,
        scope: ROOT,
        params: FileParams,
        produces: 'text/plain',
        handler: (ctx) => file(ctx.params.file!)(ctx),
      },
      {
        method: 'GET',
        url: '/dashboard/api/labs',
        summary: 'The labs: concept, guests, the expected code, violation and audit record, and whether each is live in this build.',
        tag: 'dashboard',
        auth: 'required',
        permission: 'metrics/read',
        scope: ROOT,
        handler: async (ctx) => {
          checkHost(ctx, server);
          return { runnable: this.session !== null, labs: describeLabs() };
        },
      },
      {
        method: 'GET',
        url: '/dashboard/api/events',
        summary: 'Server-Sent Events: partition samples, violations, state changes, audit records and lab runs.',
        tag: 'dashboard',
        auth: 'required',
        permission: 'metrics/read',
        scope: ROOT,
        produces: 'text/event-stream',
        handler: async (ctx) => {
          checkHost(ctx, server);
          let dropped = 0;
          let unsubscribe: (() => void) | null = null;
          const stream = openEventStream(ctx, server, () => unsubscribe?.());
          stream.send('hello', { runnable: this.session !== null, sampleMs: 500 });
          // A sample is superseded by the next one: for a client that reads slowly, samples are
          // dropped (and counted for it); everything else (audit records, lab runs) is urgent.
          unsubscribe = this.telemetry.subscribe((event: TelemetryEvent) => {
            if (event.type !== 'sample') {
              stream.send(event.type, event, undefined, true);
              return;
            }
            if (dropped > 0 && stream.send('dropped', { samples: dropped })) dropped = 0;
            if (dropped > 0 || !stream.send(event.type, event)) dropped++;
          });
          return null;
        },
      },
      {
        method: 'POST',
        url: '/dashboard/api/labs/:id/run',
        summary: 'Starts a lab (the attack with the defence on, or the comparison with it off); its events stream on /dashboard/api/events.',
        tag: 'dashboard',
        auth: 'required',
        permission: 'partitions/write',
        scope: ROOT,
        params: RunParams,
        body: RunBody,
        status: 202,
        handler: async (ctx) => {
          checkHost(ctx, server);
          if (this.session === null) throw new InvalidStateError('this dashboard watches a host; labs run with `wasmvisor lab`');
          const mode = (ctx.body as { mode?: 'defence' | 'defence-off' } | undefined)?.mode ?? 'defence';
          const run = this.session.start(ctx.params.id!, mode);
          void ctx.reply.status(202);
          return { run };
        },
      },
      {
        method: 'GET',
        url: '/dashboard/api/runs/:run',
        summary: 'A lab run\'s result (verdict, code, violation, audit record, events), or { running: true }.',
        tag: 'dashboard',
        auth: 'required',
        permission: 'metrics/read',
        scope: ROOT,
        params: RunResultParams,
        handler: async (ctx) => {
          checkHost(ctx, server);
          if (this.session === null) throw new NotFoundError('this dashboard runs no labs');
          return this.session.result(ctx.params.run!) ?? { running: true };
        },
      },
    ];
  }

  async close(): Promise<void> {
    await this.session?.close();
    this.unwatchHost?.();
    this.telemetry.close();
  }
}
