/**
 * `/openapi.json`: an OpenAPI 3.1 document generated from the route table, so the schemas that
 * validate requests are, object for object, the ones published (OpenAPI 3.1 takes JSON Schema
 * as it is; host/schema/json.ts turns TypeBox's into plain JSON Schema). A partition spec in it
 * is the library's (host/schema/), minus the host paths. Each operation lists the permission it needs and
 * the error answers every route can give.
 */
import type { TSchema } from '@sinclair/typebox';
import { VERSION } from '../cli/version.ts';
import { plainJsonSchema } from '../schema/json.ts';
import { ErrorBody } from './schemas.ts';
import type { RouteDef } from './routes.ts';

/**
 * A route's TypeBox schema as the JSON Schema published: host/schema's export (the same one
 * `wasmvisor/schema/*.json` ship, with what JSON cannot carry — bytes, Infinity — left out),
 * and `description: "expects: ..."`, our error wording, turned into plain documentation.
 */
function plain(schema: TSchema): unknown {
  return JSON.parse(JSON.stringify(plainJsonSchema(schema)), (key, value) => (key === 'description' && typeof value === 'string' && value.startsWith('expects: ') ? value.slice(9) : value));
}

function parameters(schema: TSchema | undefined, where: 'path' | 'query'): unknown[] {
  if (!schema) return [];
  const props = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  const required = new Set((schema as { required?: string[] }).required ?? []);
  return Object.entries(props).map(([name, s]) => ({ name, in: where, required: where === 'path' || required.has(name), schema: plain(s) }));
}

const ERRORS: Record<string, string> = {
  '400': 'ERR_INVALID_ARGUMENT: malformed JSON or a schema violation; the message names the field',
  '401': 'ERR_UNAUTHENTICATED: no valid credential (also for unknown routes, to callers without one)',
  '403': 'ERR_ACCESS_DENIED: the caller lacks the permission at the scope',
  '404': 'ERR_NOT_FOUND: no such partition, token or route',
  '409': 'ERR_INVALID_STATE: not possible in the partition\'s current state',
  '413': 'ERR_TOO_LARGE: the body is over the route\'s limit',
  '422': 'The module, spec or guest refused the request (ERR_MODULE_INVALID, ERR_INTEGRITY, ERR_GUEST_CALL, ...)',
  '429': 'ERR_RATE_LIMITED: over the caller\'s rate limit (Retry-After says when to retry)',
  '500': 'ERR_INTERNAL or ERR_STORAGE: a fault on the host',
  '503': 'ERR_BUSY: a bounded queue or the stream limit is full',
};

export function openApiDocument(routes: RouteDef[]): unknown {
  const paths: Record<string, Record<string, unknown>> = {};
  const errorSchema = plain(ErrorBody);
  for (const r of routes) {
    const url = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const ok = r.produces === 'text/event-stream' ? 'text/event-stream' : r.produces === 'text/plain' ? 'text/plain' : 'application/json';
    const responses: Record<string, unknown> = {
      [String(r.status ?? 200)]: { description: 'Success', content: { [ok]: { schema: r.response ? plain(r.response) : { type: 'string' } } } },
    };
    for (const [code, description] of Object.entries(ERRORS)) {
      if (r.auth === 'public' && code !== '429' && code !== '500') continue;
      responses[code] = { description, content: { 'application/json': { schema: errorSchema } } };
    }
    (paths[url] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      tags: [r.tag],
      operationId: `${r.method.toLowerCase()}${url.replace(/[{}]/g, '').replace(/(^|\/)([a-z])/g, (_m, _s, c: string) => c.toUpperCase()).replace(/\W/g, '')}`,
      'x-permission': r.permission,
      security: r.auth === 'public' ? [] : [{ bearer: [] }, { mutualTLS: [] }],
      parameters: [...parameters(r.params, 'path'), ...parameters(r.query, 'query')],
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: plain(r.body) } } } } : {}),
      responses,
    };
  }
  paths['/openapi.json'] = { get: { summary: 'This document (any valid credential).', tags: ['host'], operationId: 'getOpenapi', security: [{ bearer: [] }, { mutualTLS: [] }], responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } } } };
  return {
    openapi: '3.1.0',
    info: { title: 'Wasmvisor management API', version: VERSION, description: 'Manage a Wasmvisor host: partitions, console, calls, metrics, policy, attestation, audit and tokens. See docs/MANAGEMENT.md.' },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A token made by `wasmvisor token create` (wvt_<id>_<secret>).' },
        mutualTLS: { type: 'mutualTLS', description: 'A client certificate issued by the host\'s CA; the principal is cert:<CN>.' },
      },
    },
    paths,
  };
}
