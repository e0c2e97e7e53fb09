/**
 * The management API: fastify 5 over HTTPS (or plain HTTP on loopback), every route in one
 * table (routes.ts) that carries its permission, its scope, and the TypeBox schemas that both
 * validate the request and generate `/openapi.json`.
 *
 * Order of checks for every request (the same for every route, in hooks, so no handler can
 * forget one):
 *   1. connection cap, TLS handshake, header and request timeouts (node's server, set below)
 *   2. onRequest: authenticate (bearer token, else a verified client certificate); a route not
 *      marked public answers 401 to a caller without a valid credential — unknown routes too,
 *      so an unauthenticated caller learns nothing about which routes or partitions exist
 *   3. onRequest: the principal's rate limit (429 with Retry-After)
 *   4. body size limit (413) and JSON parsing (400; a key given twice in one object too), then
 *      schema validation (400 naming the field)
 *   5. the route wrapper, before the handler: RBAC decision at the route's scope, recorded in the audit log, allow or deny (403)
 *   6. the handler; errors become `{ error: { code, message } }` with the code's status, and
 *      anything unexpected a 500 without internals (the detail goes to the daemon's log)
 */
import { maxHeaderSize } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import { explain, refuseDuplicateKeys } from '../schema/check.ts';
import { CERT_NAME_PATTERN } from '../schema/patterns.ts';
import { AccessDeniedError, InvalidArgumentError, NotFoundError, RateLimitedError, UnauthenticatedError, WasmvisorError, type ErrorCode } from '../errors.ts';
import { TokenBucket } from '../limits/token-bucket.ts';
import type { AuditSink } from './audit.ts';
import type { ManagedHost } from './host.ts';
import type { Permission, Rbac, RoleAssignment } from './rbac.ts';
import { MAX_CREDENTIAL_LENGTH, type TokenStore } from './tokens.ts';
import { buildRoutes, type RouteDef } from './routes.ts';
import { MAX_PARAM_LENGTH } from './schemas.ts';
import { openApiDocument } from './openapi.ts';
import { quoted } from '../escape.ts';

/** Attestation as the API needs it; provided by host/security (issue 12) when it is on this branch. */
/** An authenticated caller. */
export interface Principal {
  /** `token:<name>` or `cert:<CN>`; `anonymous` only when auth is off. */
  id: string;
  kind: 'token' | 'cert' | 'none';
  /** The token's id (for revocation of its open streams). */
  tokenId: string | null;
  /** When the credential stops working (ms since the epoch), or null. */
  expiresAt: number | null;
  /** Assignments the credential itself carries (a token's role at its scope). */
  assignments: RoleAssignment[];
}

export interface ServerLimits {
  /** Largest JSON body, bytes (POST /partitions and calls have their own, larger limits). Default 1 MiB. */
  bodyBytes: number;
  /** Connections open at once; more are refused by the socket layer. Default 256. */
  maxConnections: number;
  /** Time to receive a request's headers (slow-loris), ms. Default 10000. */
  headersTimeoutMs: number;
  /** Time to receive a whole request, ms. Default 60000. */
  requestTimeoutMs: number;
  /** An idle connection is closed after this, ms. Default 5000 between requests, 120000 in all. */
  keepAliveTimeoutMs: number;
  /** Socket inactivity timeout, ms (streams send a heartbeat well within it). Default 120000. */
  socketTimeoutMs: number;
  /** TLS handshake budget, ms. Default 10000. */
  handshakeTimeoutMs: number;
  /** Requests per second per principal, sustained. Default 200. */
  ratePerSecond: number;
  /** Requests a principal may make at once after an idle period. Default 400. */
  rateBurst: number;
  /** Failed authentications per second per remote address. Default 20 (burst 40). */
  authFailuresPerSecond: number;
  /** Console streams open at once, in all. Default 64. */
  maxStreams: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  bodyBytes: 1 << 20,
  maxConnections: 256,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5000,
  socketTimeoutMs: 120_000,
  handshakeTimeoutMs: 10_000,
  ratePerSecond: 200,
  rateBurst: 400,
  authFailuresPerSecond: 20,
  maxStreams: 64,
};

export interface ServerOptions {
  host: ManagedHost;
  tokens: TokenStore;
  rbac: Rbac;
  audit: AuditSink;
  /** Certificate and key (PEM); `clientCa` enables client certificates (mutual TLS). Null: plain HTTP, loopback only. */
  tls: { cert: string; key: string; clientCa?: string | null } | null;
  limits?: Partial<ServerLimits>;
  /**
   * Off only for measuring what authentication, authorization and audit cost (bench/mgmt.mjs):
   * every request runs as an anonymous principal, nothing is checked or recorded. Not reachable
   * from the command line.
   */
  auth?: boolean;
  /** The daemon's log (errors that are not the caller's). */
  log?: (line: string) => void;
}

const CHECK_INTERVAL_MS = 1000;
/**
 * Failed authentications recorded one by one, per second, from all addresses together: this
 * many times the per-address rate (burst twice that). Past it (an attacker with many source
 * addresses: 127.0.0.0/8 on a loopback host, an IPv6 prefix), and past an address's own limit,
 * failures are counted, and one `api.authenticate` record a second says how many and from how
 * many addresses: the log grows by a bounded number of records a second whoever knocks.
 */
const AUDITED_FAILURES_FACTOR = 5;
/** A client certificate's common name that names a principal: what `cert create` issues (schema/patterns.ts). */
const CERT_NAME = new RegExp(CERT_NAME_PATTERN);
/** Distinct addresses a summary counts (more are reported as "at least"). */
const MAX_SUMMARY_ADDRESSES = 1024;

const DECIMAL_INTEGER = /^(0|-?[1-9][0-9]*)$/;
const BOOLEANS: Readonly<Record<string, boolean>> = { true: true, false: false, 1: true, 0: false };

/**
 * Query strings and path parameters arrive as strings. A field whose schema is an integer takes
 * only a decimal integer, and a boolean only `true`, `false`, `1` or `0`; anything else stays
 * the string it was, and the schema then refuses it naming the field. (TypeBox's Value.Convert
 * read `limit=1e3` as 1, `tail=1.9` as 1 and `0x10` as 16: a query the caller did not mean,
 * answered without a word.)
 */
function convertStrings(schema: TSchema, data: unknown): unknown {
  const props = (schema as { properties?: Record<string, TSchema> }).properties;
  if (typeof data !== 'object' || data === null || props === undefined) return data;
  const out: Record<string, unknown> = { ...(data as Record<string, unknown>) };
  for (const [key, value] of Object.entries(out)) {
    if (typeof value !== 'string' || !Object.hasOwn(props, key)) continue;
    const type = props[key]!.type;
    if ((type === 'integer' || type === 'number') && DECIMAL_INTEGER.test(value)) out[key] = Number(value);
    else if (type === 'boolean' && Object.hasOwn(BOOLEANS, value)) out[key] = BOOLEANS[value];
  }
  return out;
}

/**
 * A request node's HTTP parser refuses before any route or hook runs (fastify's clientError):
 * bytes that are not HTTP/1.1 (a Content-Length that does not match what follows), headers
 * over node's limit, a request that did not arrive in time. Answered in the API's one error
 * shape, `{ error: { code, message } }` (fastify's default is `{ error: "Bad Request", … }`),
 * and the connection closed, as node does.
 */
function refuseConnection(error: Error & { code?: string }, socket: Socket, limits: ServerLimits): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, code, message]: [number, string, ErrorCode, string] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', 'ERR_INVALID_ARGUMENT', `the request did not arrive in time (headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms)`]
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'ERR_TOO_LARGE', `the request headers are over the limit of ${maxHeaderSize} bytes`]
        : [400, 'Bad Request', 'ERR_INVALID_ARGUMENT', 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify({ error: { code, message } });
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(error);
}

/**
 * Where a parsed JSON body holds a number that is not finite (`1e400` parses as Infinity), or
 * null. A schema may admit Infinity, which JavaScript callers can pass ("no timeout"), but a
 * body is JSON: a value it cannot spell would be stored as `null` (JSON.stringify) and refused
 * when the host reads its declaration back, losing the partition at the next start. Iterative:
 * the body is the caller's.
 */
function nonFiniteAt(body: unknown): string | null {
  const stack: [unknown, string][] = [[body, '']];
  while (stack.length > 0) {
    const [value, at] = stack.pop()!;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return at === '' ? '(root)' : at;
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push([value[i], `${at}[${i}]`]);
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, v] of Object.entries(value)) stack.push([v, at === '' ? key : `${at}.${key}`]);
    }
  }
  return null;
}

/** Counters for `/metrics`. */
export interface ApiCounters {
  requests: number;
  denied: number;
  unauthenticated: number;
  rateLimited: number;
  openStreams: number;
}

/** What a handler gets: the validated request and who made it. */
export interface RequestContext {
  req: FastifyRequest;
  reply: FastifyReply;
  principal: Principal;
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
  /** Runs an RBAC decision (audited) and throws ERR_ACCESS_DENIED when it denies. */
  authorize(permission: Permission, scope: string, segment?: string | null): void;
  /** Runs an RBAC decision (audited) and returns whether it allowed. */
  allowed(permission: Permission, scope: string, segment?: string | null): boolean;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_INVALID_ARGUMENT: 400,
  ERR_UNAUTHENTICATED: 401,
  ERR_ACCESS_DENIED: 403,
  ERR_NOT_FOUND: 404,
  ERR_INVALID_STATE: 409,
  ERR_TOO_LARGE: 413,
  ERR_MODULE_INVALID: 422,
  ERR_IMPORT_DENIED: 422,
  ERR_FEATURE_DENIED: 422,
  ERR_LIMIT_MEMORY: 422,
  ERR_LIMIT_TABLE: 422,
  ERR_LIMIT_MODULE: 422,
  ERR_INTEGRITY: 422,
  ERR_POLICY_DENIED: 422,
  ERR_GUEST_CALL: 422,
  ERR_GUEST_TRAP: 422,
  ERR_LIMIT_CPU: 422,
  ERR_KILLED: 422,
  ERR_RATE_LIMITED: 429,
  ERR_BUSY: 503,
  ERR_NOT_IMPLEMENTED: 501,
  ERR_STORAGE: 500,
  ERR_INTERNAL: 500,
};

/** The HTTP status for an error code (documented in docs/MANAGEMENT.md). */
export function httpStatus(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    route?: RouteDef;
  }
}

/** Principals' rate-limit buckets, bounded: the least recently used is forgotten first. */
class Buckets {
  private readonly map = new Map<string, TokenBucket>();
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly max = 10_000,
  ) {}
  take(key: string): number {
    let b = this.map.get(key);
    if (b === undefined) {
      if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
      b = new TokenBucket({ capacity: this.burst, refillTimeMs: (this.burst / this.perSecond) * 1000 });
    } else this.map.delete(key);
    this.map.set(key, b);
    return b.reduce(1) === 'ok' ? 0 : Math.ceil(b.waitTimeMs(1));
  }
}

export class ManagementServer {
  readonly app: FastifyInstance;
  readonly counters: ApiCounters = { requests: 0, denied: 0, unauthenticated: 0, rateLimited: 0, openStreams: 0 };
  readonly limits: ServerLimits;
  readonly routes: RouteDef[];
  private readonly options: ServerOptions;
  private readonly principalBuckets: Buckets;
  private readonly failureBuckets: Buckets;
  /** Failed authentications recorded one by one, from all addresses together. */
  private readonly auditedFailures: TokenBucket;
  /** Failed authentications not recorded one by one since the last summary, and from where. */
  private unrecorded = { count: 0, rateLimited: 0, addresses: new Set<string>() };
  private readonly summaryTimer: NodeJS.Timeout;
  private readonly log: (line: string) => void;
  /** Open console streams, to cut them when their credential is revoked or expires, or the server closes. */
  readonly streams = new Set<{ principal: Principal; close: (code: ErrorCode, message: string) => void }>();
  private readonly onRevoked = (id: string) => {
    for (const s of this.streams) if (s.principal.tokenId === id) s.close('ERR_UNAUTHENTICATED', 'the token was revoked');
  };

  constructor(options: ServerOptions) {
    this.options = options;
    this.limits = { ...DEFAULT_SERVER_LIMITS, ...options.limits };
    this.log = options.log ?? (() => {});
    const l = this.limits;
    this.principalBuckets = new Buckets(l.ratePerSecond, l.rateBurst);
    this.failureBuckets = new Buckets(l.authFailuresPerSecond, l.authFailuresPerSecond * 2);
    const audited = l.authFailuresPerSecond * AUDITED_FAILURES_FACTOR;
    this.auditedFailures = new TokenBucket({ capacity: audited * 2, refillTimeMs: 2000 });
    this.summaryTimer = setInterval(() => this.summarizeFailures(), 1000);
    this.summaryTimer.unref();
    const tls = options.tls;
    this.app = Fastify({
      logger: false,
      bodyLimit: l.bodyBytes,
      connectionTimeout: l.socketTimeoutMs,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      requestTimeout: l.requestTimeoutMs,
      return503OnClosing: true,
      forceCloseConnections: true,
      routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
      frameworkErrors: (error, req, reply) => void this.refusePath(error, req, reply),
      clientErrorHandler: (error, socket) => refuseConnection(error, socket, l),
      onProtoPoisoning: 'error',
      onConstructorPoisoning: 'error',
      // Node checks header and request timeouts every connectionsCheckingInterval (30 s by
      // default): once a second makes a slow-loris client's headersTimeout exact within 1 s.
      http: { headersTimeout: l.headersTimeoutMs, connectionsCheckingInterval: CHECK_INTERVAL_MS },
      ...(tls
        ? {
            https: {
              cert: tls.cert,
              key: tls.key,
              headersTimeout: l.headersTimeoutMs,
              connectionsCheckingInterval: CHECK_INTERVAL_MS,
              handshakeTimeout: l.handshakeTimeoutMs,
              minVersion: 'TLSv1.2' as const,
              ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
            },
          }
        : {}),
    });
    this.app.server.maxConnections = l.maxConnections;
    this.app.server.headersTimeout = l.headersTimeoutMs;
    this.app.decorateRequest('principal', null);
    this.routes = buildRoutes({ host: options.host, tokens: options.tokens, rbac: options.rbac, audit: options.audit, server: this });
    this.install();
    options.tokens.on('revoked', this.onRevoked);
  }

  private get authOn(): boolean {
    return this.options.auth !== false;
  }

  private install(): void {
    const app = this.app;
    // Bodies are JSON only (docs/MANAGEMENT.md: any other media type is 415). Fastify also parses
    // text/plain by default, which handed the string to the route's schema: a 400 instead.
    app.removeContentTypeParser('text/plain');
    // A key given twice in one object of a body (`{"policy": {...}, "policy": null}`) is read one
    // way by whoever reviews, logs or filters the request and another by JSON.parse, which keeps
    // the last: every JSON body is refused for it (400), as a policy file is. Fastify's own parser
    // (proto and constructor poisoning refused) runs first; the scan is one indexOf per string.
    const parseJson = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
      parseJson(req, body as string, (error, value?: unknown) => {
        if (error !== null) return done(error, undefined);
        try {
          refuseDuplicateKeys(body as string, 'body');
        } catch (refusal) {
          return done(refusal as Error, undefined);
        }
        done(null, value);
      });
    });
    app.setValidatorCompiler(({ schema, httpPart }) => {
      const s = schema as TSchema;
      return (data: unknown) => {
        // Query strings and path parameters arrive as strings: convert to the schema's types first.
        const value = httpPart === 'querystring' || httpPart === 'params' ? convertStrings(s, data) : data;
        const problems = explain(s, value);
        const where = httpPart === 'querystring' ? 'query' : httpPart === 'params' ? 'path' : httpPart;
        if (problems.length > 0) return { error: new InvalidArgumentError(`${where}: ${problems.join('; ')}`) };
        const overflow = httpPart === 'body' ? nonFiniteAt(value) : null;
        return overflow === null ? { value } : { error: new InvalidArgumentError(`body: ${overflow}: expected a finite number; JSON has no Infinity (the number given overflows a double)`) };
      };
    });

    app.addHook('onRequest', async (req, reply) => this.admit(req, reply, req.routeOptions.config.route));

    app.setNotFoundHandler(async (req) => {
      throw new NotFoundError(`no route ${req.method} ${quoted(req.url.split('?')[0]!, 200)}`);
    });

    app.setErrorHandler(async (error, req, reply) => this.sendError(error, req, reply));

    for (const route of this.routes) this.installRoute(route);
    // Any valid credential may read the document (no permission needed); without one it is a 401
    // like every other route, so the route list is not shown to anonymous callers.
    app.get('/openapi.json', { config: { route: { auth: 'required' } as RouteDef } }, async () => this.openapi);
  }

  private sendError(error: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
    const { status, code, message } = this.toError(error, req);
    return reply.status(status).header('content-type', 'application/json; charset=utf-8').send({ error: { code, message } });
  }

  /**
   * A path the router refuses before any route or hook runs (fastify's frameworkErrors): a
   * segment that is not valid percent-encoding, or a parameter over its length. Answered like
   * any other refusal (`{ error: { code, message } }`, the path not echoed), and only after
   * authentication, so an anonymous caller still learns nothing about which routes exist.
   */
  private async refusePath(error: Error & { code?: string }, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      await this.admit(req, reply, undefined);
      throw error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? new InvalidArgumentError(`path: a segment is over ${MAX_PARAM_LENGTH} characters`)
        : new InvalidArgumentError('path: is not a valid URL (bad percent-encoding)');
    } catch (refusal) {
      this.sendError(refusal, req, reply);
    }
  }

  /** Authentication and the principal's rate limit, for every request (onRequest). */
  private async admit(req: FastifyRequest, reply: FastifyReply, route: RouteDef | undefined): Promise<void> {
    this.counters.requests++;
    if (!this.authOn) {
      req.principal = { id: 'anonymous', kind: 'none', tokenId: null, expiresAt: null, assignments: [] };
      return;
    }
    if (route?.auth === 'public') return;
    try {
      req.principal = this.authenticate(req);
    } catch (error) {
      this.counters.unauthenticated++;
      const wait = this.failureBuckets.take(req.ip);
      if (wait > 0) {
        this.counters.rateLimited++;
        this.unrecordedFailure(req.ip, true);
        void reply.header('retry-after', String(Math.ceil(wait / 1000)));
        throw new RateLimitedError('too many failed authentications from this address');
      }
      if (this.auditedFailures.reduce(1) === 'ok') {
        this.options.audit.note({ actor: `anonymous@${req.ip}`, action: 'api.authenticate', target: route ? route.url : '(unknown route)', outcome: 'denied', reason: (error as Error).message, details: { requestId: req.id } });
      } else {
        this.unrecordedFailure(req.ip, false);
      }
      void reply.header('www-authenticate', 'Bearer realm="wasmvisor"');
      throw error;
    }
    const wait = this.principalBuckets.take(req.principal.id);
    if (wait > 0) {
      this.counters.rateLimited++;
      void reply.header('retry-after', String(Math.ceil(wait / 1000)));
      throw new RateLimitedError(`${req.principal.id} is over its rate limit (${this.limits.ratePerSecond} requests/s)`);
    }
  }

  /**
   * Adds routes beside the API's own (the dashboard's, host/labs/), before the server listens.
   * They go through the same hooks and wrapper as every other route: authentication unless
   * `auth: 'public'`, the rate limit, schema validation, and the RBAC decision at their scope.
   */
  addRoutes(routes: RouteDef[]): void {
    for (const route of routes) {
      this.routes.push(route);
      this.installRoute(route);
    }
    this.openapiCache = null;
  }

  private installRoute(route: RouteDef): void {
    const app = this.app;
    app.route({
      method: route.method,
      url: route.url,
      config: { route },
      ...(route.bodyLimit ? { bodyLimit: route.bodyLimit } : {}),
      schema: {
        ...(route.params ? { params: route.params } : {}),
        ...(route.query ? { querystring: route.query } : {}),
        ...(route.body ? { body: route.body } : {}),
      },
      handler: async (req, reply) => {
        const principal = req.principal!;
        const ctx: RequestContext = {
          req,
          reply,
          principal,
          params: (req.params ?? {}) as Record<string, string>,
          query: (req.query ?? {}) as Record<string, unknown>,
          body: req.body,
          authorize: (permission, scope, segment = null) => {
            if (!this.decide(req, principal, permission, scope, segment)) {
              throw new AccessDeniedError(`${principal.id} may not ${permission} at ${scope}`);
            }
          },
          allowed: (permission, scope, segment = null) => this.decide(req, principal, permission, scope, segment),
        };
        if (route.permission !== null && this.authOn) {
          const { scope, segment } = route.scope(ctx);
          ctx.authorize(route.permission, scope, segment);
        }
        try {
          return await route.handler(ctx);
        } catch (error) {
          // Every refusal after authorization is recorded with its code (successes are recorded by the action).
          const code = error instanceof WasmvisorError ? error.code : 'ERR_INTERNAL';
          this.options.audit.note({
            // A public route has no principal.
            actor: req.principal?.id ?? `anonymous@${req.ip}`,
            action: 'api.request',
            target: `${route.method} ${req.url.split('?')[0]!.slice(0, 200)}`,
            outcome: code === 'ERR_ACCESS_DENIED' ? 'denied' : 'failure',
            reason: error instanceof Error ? error.message.slice(0, 1000) : String(error),
            code,
            details: { requestId: req.id },
          });
          throw error;
        }
      },
    });
  }

  private openapiCache: unknown = null;
  private get openapi(): unknown {
    this.openapiCache ??= openApiDocument(this.routes);
    return this.openapiCache;
  }

  /** An RBAC decision, recorded in the audit log whichever way it goes. */
  private decide(req: FastifyRequest, principal: Principal, permission: Permission, scope: string, segment: string | null): boolean {
    if (!this.authOn) return true;
    const d = this.options.rbac.decide(principal.id, principal.assignments, permission, scope, segment);
    this.options.audit.note({ actor: principal.id, action: 'api.authorize', target: scope, outcome: d.allowed ? 'success' : 'denied', reason: d.rule, details: { permission, requestId: req.id } });
    if (!d.allowed) this.counters.denied++;
    return d.allowed;
  }

  /** Token first (explicit), else a client certificate our CA issued. */
  authenticate(req: FastifyRequest): Principal {
    const header = req.headers.authorization;
    if (header !== undefined) {
      if (header.length > MAX_CREDENTIAL_LENGTH + 7 || !header.startsWith('Bearer ')) throw new UnauthenticatedError('the Authorization header must be "Bearer <token>"');
      const record = this.options.tokens.verify(header.slice(7));
      const id = `token:${record.name}`;
      return {
        id,
        kind: 'token',
        tokenId: record.id,
        expiresAt: record.expiresAt === null ? null : Date.parse(record.expiresAt),
        assignments: [{ principal: id, role: record.role, scope: record.scope }],
      };
    }
    const socket = req.raw.socket as TLSSocket;
    if (this.options.tls?.clientCa && typeof socket.getPeerCertificate === 'function' && socket.authorized) {
      const cn = socket.getPeerCertificate().subject?.CN;
      const name = Array.isArray(cn) ? cn[0] : cn;
      if (typeof name === 'string' && CERT_NAME.test(name)) {
        return { id: `cert:${name}`, kind: 'cert', tokenId: null, expiresAt: null, assignments: [] };
      }
      throw new UnauthenticatedError('the client certificate has no usable common name');
    }
    throw new UnauthenticatedError('no credential: send "Authorization: Bearer <token>" or a client certificate');
  }

  private toError(error: unknown, req: FastifyRequest): { status: number; code: ErrorCode; message: string } {
    if (error instanceof WasmvisorError) return { status: httpStatus(error.code), code: error.code, message: error.message };
    const e = error as { code?: string; statusCode?: number; message?: string };
    switch (e.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return { status: 413, code: 'ERR_TOO_LARGE', message: `the request body is over the limit of ${req.routeOptions.bodyLimit ?? this.limits.bodyBytes} bytes` };
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return { status: 415, code: 'ERR_INVALID_ARGUMENT', message: 'the request body must be application/json' };
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return { status: 400, code: 'ERR_INVALID_ARGUMENT', message: 'body: is empty, expected a JSON object' };
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return { status: 400, code: 'ERR_INVALID_ARGUMENT', message: 'the Content-Length does not match the body' };
    }
    if (error instanceof SyntaxError || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return { status: 400, code: 'ERR_INVALID_ARGUMENT', message: 'body: is not valid JSON' };
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      // A framework refusal (e.g. proto poisoning): its status, a message without internals.
      return { status: e.statusCode, code: 'ERR_INVALID_ARGUMENT', message: `the request was refused (${e.code ?? e.statusCode})` };
    }
    this.log(`wasmvisor serve: request ${req.id} ${req.method} ${req.routeOptions.url ?? '?'} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return { status: 500, code: 'ERR_INTERNAL', message: `internal error (request ${req.id}); see the host's log` };
  }

  /** Listens; resolves with the bound address. */
  async listen(host: string, port: number): Promise<AddressInfo> {
    await this.app.listen({ host, port });
    return this.app.server.address() as AddressInfo;
  }

  get url(): string {
    const a = this.app.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${a.port}`;
  }

  private unrecordedFailure(ip: string, rateLimited: boolean): void {
    const u = this.unrecorded;
    u.count++;
    if (rateLimited) u.rateLimited++;
    if (u.addresses.size < MAX_SUMMARY_ADDRESSES) u.addresses.add(ip);
  }

  /** One record for the failed authentications of the last second that were not recorded one by one. */
  private summarizeFailures(): void {
    const u = this.unrecorded;
    if (u.count === 0) return;
    this.unrecorded = { count: 0, rateLimited: 0, addresses: new Set() };
    const from = `${u.addresses.size >= MAX_SUMMARY_ADDRESSES ? 'at least ' : ''}${u.addresses.size} address${u.addresses.size === 1 ? '' : 'es'}`;
    this.options.audit.note({
      actor: 'anonymous',
      action: 'api.authenticate',
      target: '(summary)',
      outcome: 'denied',
      reason: `${u.count} failed authentication${u.count === 1 ? '' : 's'} from ${from} not recorded one by one (${u.rateLimited} over an address's rate limit, answered 429)`,
      details: { count: u.count, rateLimited: u.rateLimited, addresses: u.addresses.size },
    });
  }

  /** Ends every stream and stops listening. */
  async close(): Promise<void> {
    clearInterval(this.summaryTimer);
    this.summarizeFailures();
    this.options.tokens.off('revoked', this.onRevoked);
    for (const s of this.streams) s.close('ERR_INVALID_STATE', 'the host is shutting down');
    await this.app.close();
  }
}
