/**
 * The order in which the API checks a request, as docs/MANAGEMENT.md ("Errors and limits") states
 * it: credential (401), rate (429), media type (415), size (413), JSON and schema (400), then the
 * RBAC decision (403), then the operation (404, 409, …). Checked with a Reader, which may not write
 * tokens or partitions: what it sends wrong in the request itself is answered before the 403, and
 * nothing about what exists (404) reaches it.
 */
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, type Harness } from './harness.ts';

let h: Harness;
let reader: string;
beforeAll(async () => {
  h = await startHost();
  reader = (await h.token('Reader', '/', 'reader')).token;
}, 30_000);
afterAll(async () => {
  await h?.close();
});

/** One request; resolves with its status and error code (if any). */
function send(method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<{ status: number; code: string | undefined }> {
  const url = new URL(path, h.running.url);
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca: readFileSync(h.running.caFile!, 'utf8'), headers: { connection: 'close', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, code: text.startsWith('{') ? (JSON.parse(text) as { error?: { code: string } }).error?.code : undefined }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the order of the checks (docs/MANAGEMENT.md)', () => {
  it('a Reader writing a token: 415, then 413, then 400 (JSON, schema), and only a well-formed request reaches the 403', async () => {
    const as = (type: string) => ({ authorization: `Bearer ${reader}`, 'content-type': type });
    const big = 'a'.repeat(2 << 20);
    expect(await send('POST', '/tokens', big, as('text/plain'))).toEqual({ status: 415, code: 'ERR_INVALID_ARGUMENT' });
    expect(await send('POST', '/tokens', big, as('application/json'))).toEqual({ status: 413, code: 'ERR_TOO_LARGE' });
    expect(await send('POST', '/tokens', '{bad', as('application/json'))).toEqual({ status: 400, code: 'ERR_INVALID_ARGUMENT' });
    expect(await send('POST', '/tokens', '{}', as('application/json'))).toEqual({ status: 400, code: 'ERR_INVALID_ARGUMENT' });
    expect(await send('POST', '/tokens', JSON.stringify({ name: 'x', role: 'Owner', scope: '/' }), as('application/json'))).toEqual({ status: 403, code: 'ERR_ACCESS_DENIED' });
    // Without a credential, the same requests are all 401.
    expect(await send('POST', '/tokens', big, { 'content-type': 'text/plain' })).toEqual({ status: 401, code: 'ERR_UNAUTHENTICATED' });
    expect(await send('POST', '/tokens', '{bad', { 'content-type': 'application/json' })).toEqual({ status: 401, code: 'ERR_UNAUTHENTICATED' });
  });

  it('the RBAC decision comes before the operation: a Reader deleting a partition that does not exist is 403, not 404', async () => {
    expect(await send('DELETE', '/partitions/nope', undefined, { authorization: `Bearer ${reader}` })).toEqual({ status: 403, code: 'ERR_ACCESS_DENIED' });
    expect(await send('GET', '/partitions/nope', undefined, { authorization: `Bearer ${reader}` })).toEqual({ status: 404, code: 'ERR_NOT_FOUND' });
  });
});
