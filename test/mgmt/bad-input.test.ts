/**
 * Hostile and broken callers against a real TLS server: oversized bodies (413), malformed JSON
 * and schema violations (400 naming the field, no stack trace), path traversal in names, a
 * slow-loris client, too many connections, console output that tries to inject events. After
 * each, the host still serves and the partition is in the state it was.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBody, startHost, type Harness } from './harness.ts';
import { guest } from '../helpers.ts';

let h: Harness;
let owner: string;

beforeAll(async () => {
  h = await startHost({ limits: { headersTimeoutMs: 1000, maxConnections: 8, requestTimeoutMs: 3000 } });
  owner = (await h.token('Owner', '/', 'owner')).token;
  await h.running.host.create(createBody('echo', 'echo', { start: true }, { devices: { console: true }, limits: { timeoutMs: 0 } }), 'test');
}, 30_000);

afterAll(async () => {
  await h?.close();
});

/** Sends raw bytes over TLS; resolves with what came back when the server closed (or after `waitMs`). */
function raw(payload: string | Buffer, waitMs = 5000): Promise<{ text: string; closedAfterMs: number }> {
  const url = new URL(h.running.url);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let text = '';
    const s = tls.connect({ host: url.hostname, port: Number(url.port), ca: readFileSync(h.running.caFile!, 'utf8') }, () => s.write(payload));
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closedAfterMs: Infinity });
    }, waitMs);
    s.setEncoding('utf8').on('data', (d: string) => (text += d));
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedAfterMs: performance.now() - t0 });
    });
    s.on('error', (e) => (text === '' ? reject(e) : undefined));
  });
}

function request(method: string, path: string, body: string, headers: Record<string, string> = {}): string {
  const h2 = { host: 'x', authorization: `Bearer ${owner}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), connection: 'close', ...headers };
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(h2).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`;
}

function parse(text: string): { status: number; body: { error?: { code: string; message: string } } } {
  const status = Number(text.split(' ')[1]);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  // Chunked or not: take the JSON object.
  const json = body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1);
  return { status, body: json ? JSON.parse(json) : {} };
}

async function stillServes(): Promise<void> {
  const info = await h.client(owner).json<{ state: string }>('GET', '/partitions/echo');
  expect(info.state).toBe('running');
}

describe('bad input', () => {
  it('a body over the limit is 413 ERR_TOO_LARGE', async () => {
    const big = JSON.stringify({ version: 1, pad: 'x'.repeat(1 << 20) });
    const r = parse((await raw(request('PUT', '/policy', big))).text);
    expect(r.status).toBe(413);
    expect(r.body.error?.code).toBe('ERR_TOO_LARGE');
    await stillServes();
  });

  it('a body over the limit is refused by its Content-Length, before it is read', async () => {
    const r = parse((await raw(request('PUT', '/policy', '{', { 'content-length': String(50 << 20) }))).text);
    expect(r.status).toBe(413);
  });

  it('a body that is not application/json is 415 ERR_INVALID_ARGUMENT, text/plain included', async () => {
    // text/plain was parsed (fastify's default) and reached the route's schema as a string: 400.
    for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/xml', 'application/x-www-form-urlencoded']) {
      for (const [method, path, body] of [['PUT', '/policy', '{"policy":null}'], ['POST', '/partitions/echo/console', '{"lines":["x"]}']] as const) {
        const r = parse((await raw(request(method, path, body, { 'content-type': type }))).text);
        expect([type, method, r.status, r.body.error]).toEqual([type, method, 415, { code: 'ERR_INVALID_ARGUMENT', message: 'the request body must be application/json' }]);
      }
    }
    await stillServes();
  });

  it('malformed JSON is 400 without a stack trace', async () => {
    for (const body of ['{"version": 1,', 'not json', '{"__proto__": {"x": 1}, "version": 1}']) {
      const { text } = await raw(request('PUT', '/policy', body));
      const r = parse(text);
      expect(r.status, body).toBe(400);
      expect(r.body.error?.code).toBe('ERR_INVALID_ARGUMENT');
      expect(text).not.toMatch(/at .*\.(ts|js):\d+/);
    }
    await stillServes();
  });

  it('a key given twice in one object of any body is 400 naming it (JSON.parse would keep the last), and nothing is done', async () => {
    const before = await h.client(owner).json<{ sha256: string | null }>('GET', '/policy');
    const cases: [string, string, string, string][] = [
      // The policy, as the policy file loader refuses it: at the top and inside the document.
      ['PUT', '/policy', '{"policy": null, "policy": {"requireSignature": false}}', 'body: key "policy" is given twice'],
      ['PUT', '/policy', '{"policy": {"requireSignature": true, "requireSignature": false}}', 'body: policy: key "requireSignature" is given twice'],
      // The same key spelt with an escape is the same key.
      ['PUT', '/policy', '{"policy": {"requireSignature": true, "requireSignatur\\u0065": false}}', 'body: policy: key "requireSignature" is given twice'],
      // A partition spec's grants, a token's role, console input, a call.
      ['POST', '/partitions', '{"spec": {"name": "twice", "devices": {"console": true}, "devices": {}}, "module": "AA=="}', 'body: spec: key "devices" is given twice'],
      ['POST', '/tokens', '{"name": "t", "role": "Viewer", "scope": "/", "role": "Owner"}', 'body: key "role" is given twice'],
      ['POST', '/partitions/echo/console', '{"lines": ["a"], "lines": ["b"]}', 'body: key "lines" is given twice'],
      ['POST', '/partitions/echo/call', '{"export": "a", "export": "b"}', 'body: key "export" is given twice'],
    ];
    for (const [method, path, body, message] of cases) {
      const { text } = await raw(request(method, path, body));
      const r = parse(text);
      expect([path, r.status, r.body.error]).toEqual([path, 400, { code: 'ERR_INVALID_ARGUMENT', message }]);
    }
    const c = h.client(owner);
    expect((await c.json<{ sha256: string | null }>('GET', '/policy')).sha256).toBe(before.sha256);
    expect((await c.request('GET', '/partitions/twice')).status).toBe(404);
    // The same key in two objects, or a key's name as a string value (escaped quotes in it), is no duplicate.
    const ok = parse((await raw(request('POST', '/partitions/echo/console', '{"lines": ["lines", "\\"lines\\": [", "end"], "end": false}'))).text);
    expect([ok.status, ok.body]).toEqual([200, { accepted: 3, ended: false }]);
    await stillServes();
  });

  it('a schema violation is 400 naming the field', async () => {
    const c = h.client(owner);
    const cases: [unknown, RegExp][] = [
      [{ spec: { name: 'x', limits: { memoryPages: '16' } }, module: 'AA==' }, /body: spec\.limits\.memoryPages: expected an integer from 1 to 65536, got the string "16"/],
      [{ spec: { name: 'x', devices: { consol: true } }, module: 'AA==' }, /spec\.devices\.consol: unknown key; did you mean console\?/],
      [{ spec: { name: 'x', devices: { block: { sizeMiB: 1, path: '/etc/passwd' } } }, module: 'AA==' }, /spec\.devices\.block\.path: unknown key/],
      [{ spec: { name: 'x', wasi: { preopens: [{ guestPath: '/', hostPath: '/' }] } }, module: 'AA==' }, /spec\.wasi\.preopens\[0\]\.hostPath: unknown key/],
      // A host fd for the worker to write the guest's output to: the daemon's own open files
      // (its audit log, another partition's disk image) would take the guest's bytes.
      [{ spec: { name: 'x', devices: { console: { outputFd: { stdout: 1 } } } }, module: 'AA==' }, /spec\.devices\.console\.outputFd: unknown key/],
      [{ spec: { name: 'x' } }, /body: module: is required/],
      // A detached signature is a file on the host: remote modules carry embedded signatures.
      [{ spec: { name: 'x', signature: 'm.sig' }, module: 'AA==' }, /spec\.signature: unknown key/],
      // The library's ranges, with the library's words: a timer's longest delay, one past it.
      [{ spec: { name: 'x', limits: { timeoutMs: 2 ** 31 } }, module: 'AA==' }, /spec\.limits\.timeoutMs: expected a number of ms: an integer from 0 to 2147483647 \(about 24\.8 days\), or 0 or Infinity for none, got the number 2147483648/],
      [{ spec: { name: 'x', devices: { console: { linesPerSec: 5 } } }, module: 'AA==' }, /spec\.devices\.console\.linesPerSec: unknown key; did you mean linesPerSecond\?/],
      [{ spec: { name: 'x', devices: { attestation: 'yes' } }, module: 'AA==' }, /spec\.devices\.attestation: expected a boolean, got the string "yes"/],
    ];
    for (const [body, message] of cases) {
      const r = await c.request('POST', '/partitions', body);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body.toString()).error.message).toMatch(message);
    }
    const q = await c.request('GET', '/audit?limit=0');
    expect(JSON.parse(q.body.toString()).error.message).toMatch(/query: limit: expected an integer from 1 to 10000, got the number 0/);
  });

  it('a query value is converted only when it is what its field takes: 1e3, 1.9, 0x10 or yes are refused naming the field', async () => {
    // TypeBox's Value.Convert read limit=1e3 as 1, tail=1.9 as 1 and 0x10 as 16: answered 200, not the query asked.
    const c = h.client(owner);
    for (const [path, message] of [
      ['/audit?limit=1e3', 'query: limit: expected an integer from 1 to 10000, got the string "1e3"'],
      ['/audit?limit=1.9', 'query: limit: expected an integer from 1 to 10000, got the string "1.9"'],
      ['/audit?limit=0x10', 'query: limit: expected an integer from 1 to 10000, got the string "0x10"'],
      ['/audit?limit=%207', 'query: limit: expected an integer from 1 to 10000, got the string " 7"'],
      ['/partitions/echo/console?tail=1.9&follow=false', 'query: tail: expected an integer from 0 to 1000, got the string "1.9"'],
      ['/partitions/echo/console?tail=1&follow=no', 'query: follow: expected a boolean, got the string "no"'],
    ] as const) {
      const r = await c.request('GET', path);
      expect([path, r.status, JSON.parse(r.body.toString())]).toEqual([path, 400, { error: { code: 'ERR_INVALID_ARGUMENT', message } }]);
    }
    // A day its month does not have: Date.parse reads 2025-02-30 as March 2nd.
    for (const since of ['2025-02-30', '2025-04-31T12:00:00Z', '2100-02-29']) {
      const r = await c.request('GET', `/audit?since=${since}`);
      expect([since, r.status, JSON.parse(r.body.toString()).error]).toEqual([since, 400, { code: 'ERR_INVALID_ARGUMENT', message: `query.since: "${since}" is not a valid time` }]);
    }
    expect((await c.request('GET', '/audit?since=2024-02-29&until=2000-02-29T00:00Z')).status).toBe(200);
    // An attestation nonce is whole bytes: 8 to 64 of them, in hex. At each edge and one past it.
    for (const [digits, status] of [[15, 400], [16, 200], [17, 400], [127, 400], [128, 200], [129, 400], [130, 400]] as const) {
      const nonce = 'a'.repeat(digits);
      const r = await c.request('GET', `/attestation?nonce=${nonce}`);
      expect([digits, r.status]).toEqual([digits, status]);
      if (status === 400) expect(JSON.parse(r.body.toString()).error.message).toMatch(/^query: nonce: expected 8 to 64 bytes in hex, got the string "a+"/);
    }
    // Decimal integers and true/false/1/0 still arrive as numbers and booleans.
    const ok = JSON.parse((await c.request('GET', '/audit?limit=3')).body.toString()) as { records: unknown[] };
    expect(ok.records).toHaveLength(3);
    for (const follow of ['false', '0']) expect((await c.request('GET', `/partitions/echo/console?tail=0&follow=${follow}`)).status).toBe(200);
  });

  it('a request the HTTP parser refuses is answered in the API\'s error shape', async () => {
    // A Content-Length shorter than the body: the rest is not a request. Fastify's default answered
    // {"error":"Bad Request","message":"Client Error","statusCode":400}.
    const short = await raw(request('PUT', '/policy', '{"policy":null}', { 'content-length': '5' }));
    const garbage = await raw('NOT HTTP\r\n\r\n');
    for (const { text } of [short, garbage]) {
      const r = parse(text.slice(text.lastIndexOf('HTTP/1.1 ')));
      expect([r.status, r.body]).toEqual([400, { error: { code: 'ERR_INVALID_ARGUMENT', message: 'the request is not valid HTTP/1.1' } }]);
    }
    const big = parse((await raw(request('GET', '/whoami', '', { 'x-pad': 'a'.repeat(20_000) }))).text);
    expect([big.status, big.body.error?.code]).toEqual([431, 'ERR_TOO_LARGE']);
    expect(big.body.error?.message).toMatch(/^the request headers are over the limit of \d+ bytes$/);
    await stillServes();
  });

  it('a call whose input is not base64 under encoding: base64 is 400, not other bytes for the guest', async () => {
    const c = h.client(owner);
    await h.running.host.create(createBody('b64', 'transform', { start: true }, { kind: 'reactor' }), 'test');
    try {
      // Buffer.from('!!!@@@', 'base64') is empty, and 'aG k=' decodes as 'aG' + 'k': the guest got bytes nobody sent.
      for (const input of ['!!!@@@', 'aG k=', 'aGk=aGk=', 'a']) {
        const r = await c.request('POST', '/partitions/b64/call', { export: 'upper', input, encoding: 'base64' });
        expect([input, r.status, JSON.parse(r.body.toString()).error?.code]).toEqual([input, 400, 'ERR_INVALID_ARGUMENT']);
        expect(JSON.parse(r.body.toString()).error.message).toMatch(/^body: input: is not base64/);
      }
      for (const [input, upper] of [['aGk=', 'HI'], ['aGk', 'HI'], ['', '']] as const) {
        const r = await c.json<{ output: string }>('POST', '/partitions/b64/call', { export: 'upper', input, encoding: 'base64' });
        expect(Buffer.from(r.output, 'base64').toString()).toBe(upper);
      }
    } finally {
      await c.request('DELETE', '/partitions/b64');
    }
  });

  it('a number JSON cannot hold (1e400 parses as Infinity) is 400 naming the field, and nothing is declared', async () => {
    // limits.timeoutMs takes Infinity from JavaScript callers ("none"); from JSON it was stored as
    // null, and the host refused its own declaration at the next start: the partition was lost.
    const body = JSON.stringify(createBody('inf', 'echo', {}, { limits: { timeoutMs: 12345 } })).replace('12345', '1e400');
    const r = parse((await raw(request('POST', '/partitions', body))).text);
    expect([r.status, r.body.error]).toEqual([400, { code: 'ERR_INVALID_ARGUMENT', message: 'body: spec.limits.timeoutMs: expected a finite number; JSON has no Infinity (the number given overflows a double)' }]);
    // Where the schema takes finite numbers only, an overflowed one is the schema's own 400.
    const call = parse((await raw(request('POST', '/partitions/echo/call', '{"export":"x","timeoutMs":-1e999}'))).text);
    expect(call.status).toBe(400);
    expect(h.running.host.list().map((p) => p.name)).toEqual(['echo']);
    // Finite edge values still pass (the schema test below takes 2^31 - 1).
    await stillServes();
  });

  it('a spec the library accepts is accepted: the edge values of its ranges, the attestation device, 0 for no timeout', async () => {
    const c = h.client(owner);
    const r = await c.request(
      'POST',
      '/partitions',
      createBody('edges', 'transform', {}, {
        kind: 'reactor',
        limits: { timeoutMs: 2 ** 31 - 1, callTimeoutMs: 0, memoryPages: 65536, cpu: { maxPercent: 100, periodMs: 10_000 } },
        devices: { attestation: true, console: { maxLineBytes: 65536 } },
        restart: { mode: 'never', backoffMs: 3_600_000 },
      }),
    );
    expect(r.status, r.body.toString()).toBe(201);
    await h.client(owner).request('DELETE', '/partitions/edges');
  });

  it('an invalid module is refused before anything is declared', async () => {
    const r = await h.client(owner).request('POST', '/partitions', { spec: { name: 'junk' }, module: Buffer.from('not wasm').toString('base64') });
    expect(r.status).toBe(422);
    expect(JSON.parse(r.body.toString()).error.code).toBe('ERR_MODULE_INVALID');
    expect(h.running.host.list().map((p) => p.name)).toEqual(['echo']);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(`${h.config}/partitions`)).toEqual(['echo.json']);
    expect(readdirSync(`${h.config}/modules`)).toHaveLength(1);
  });

  it('a name already declared is 409 ERR_INVALID_STATE, the code the library gives a name in use; the declared one is untouched', async () => {
    const r = await h.client(owner).request('POST', '/partitions', createBody('echo', 'hello'));
    expect(r.status).toBe(409);
    expect(JSON.parse(r.body.toString())).toEqual({ error: { code: 'ERR_INVALID_STATE', message: 'a partition named echo is already declared' } });
    expect(h.running.host.list().map((p) => [p.name, p.state])).toEqual([['echo', 'running']]);
    // The library, asked directly for the same name, answers the same code.
    await expect(h.running.host.hv.createPartition({ name: 'echo', module: readFileSync(guest('hello')) })).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
  });

  it('path traversal in names goes nowhere', async () => {
    const c = h.client(owner);
    for (const path of ['/partitions/..%2F..%2Fetc%2Fpasswd', '/partitions/%2E%2E', '/partitions/.hidden', '/partitions/a%00b']) {
      const r = await c.request('GET', path);
      expect([400, 404], path).toContain(r.status);
    }
    const r = await c.request('POST', '/partitions', { spec: { name: '../../evil' }, module: 'AA==' });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body.toString()).error.message).toMatch(/spec\.name/);
  });

  it('a path the router refuses (bad percent-encoding, a segment over 100 characters) is a typed error, and 401 without a credential', async () => {
    const long = `/partitions/${'a'.repeat(101)}`;
    for (const [path, message] of [[long, /path: a segment is over 100 characters/], ['/partitions/%E0%A4%A', /path: is not a valid URL/]] as const) {
      const { text } = await raw(request('GET', path, ''));
      const r = parse(text);
      expect(r.status, path).toBe(400);
      expect(r.body.error?.code).toBe('ERR_INVALID_ARGUMENT');
      expect(r.body.error?.message).toMatch(message);
      expect(text).not.toContain('aaaaaaaaaa');
      // Without a credential the router's refusal is not told apart from any other route's.
      const anonymous = parse((await raw(request('GET', path, '', { authorization: 'Bearer nope' }))).text);
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.error?.code).toBe('ERR_UNAUTHENTICATED');
    }
    // At the edge: a 100-character segment reaches the route (and its schema: names are at most 64).
    const edge = parse((await raw(request('GET', `/partitions/${'a'.repeat(100)}`, ''))).text);
    expect(edge.status).toBe(400);
    expect(edge.body.error?.message).toMatch(/path: name: expected a name of 1-64/);
    await stillServes();
  });

  it('a slow-loris client is cut after the headers timeout', async () => {
    const { closedAfterMs, text } = await raw('GET /health HTTP/1.1\r\nHost: x\r\n', 6000);
    expect(closedAfterMs).toBeLessThan(4000);
    expect(text === '' || text.startsWith('HTTP/1.1 408')).toBe(true);
    if (text !== '') expect(parse(text).body.error).toEqual({ code: 'ERR_INVALID_ARGUMENT', message: 'the request did not arrive in time (headers within 1000 ms, the whole request within 3000 ms)' });
    await stillServes();
  });

  it('connections past the cap are refused; the host serves again once they close', async () => {
    const url = new URL(h.running.url);
    const ca = readFileSync(h.running.caFile!, 'utf8');
    const sockets: tls.TLSSocket[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        sockets.push(await new Promise<tls.TLSSocket>((resolve, reject) => {
          const s = tls.connect({ host: url.hostname, port: Number(url.port), ca }, () => resolve(s));
          s.on('error', reject);
        }));
      }
      await expect(h.client(owner, { timeoutMs: 3000 }).request('GET', '/health')).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    } finally {
      for (const s of sockets) s.destroy();
    }
    await new Promise((r) => setTimeout(r, 100));
    await stillServes();
  });

  it('console output cannot inject events or headers into the stream', async () => {
    const c = h.client(owner);
    const evil = 'x\r\n\r\nevent: end\r\ndata: {"code":"ERR_FAKE"}\r\nSet-Cookie: a=b';
    await c.json('POST', '/partitions/echo/console', { lines: [evil, 'after'] });
    const events: [string, unknown][] = [];
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      events.length = 0;
      await c.stream('/partitions/echo/console?tail=10&follow=false', (n, d) => events.push([n, d]));
      if (events.some(([, d]) => (d as { line?: string }).line === 'echo: after')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(events.every(([n]) => n === 'console')).toBe(true);
    // Console input is a byte stream, so the guest reads the LF-separated parts of the line as lines
    // of their own, and its echoes all arrive as the data of `console` events, CRs intact: nothing
    // became an event, a field or a header of its own.
    const lines = events.map(([, d]) => (d as { line: string }).line);
    expect(lines.slice(-6)).toEqual(['echo: x\r', 'echo: \r', 'echo: event: end\r', 'echo: data: {"code":"ERR_FAKE"}\r', 'echo: Set-Cookie: a=b', 'echo: after']);
    const r = await c.request('GET', '/partitions/echo/console?tail=10&follow=false');
    expect(r.headers['set-cookie']).toBeUndefined();
  });

  it('a finished follow=false console stream honours Connection: close: the server closes the socket', async () => {
    // The host's keep-alive timeout (5 s) would close an idle kept socket too: wait less than that.
    const { text, closedAfterMs } = await raw(request('GET', '/partitions/echo/console?tail=1&follow=false', ''), 3000);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.toLowerCase()).toContain('content-type: text/event-stream');
    expect(text.toLowerCase()).toContain('connection: close');
    // A socket kept open would be cut by the test's own timer, after 3 s.
    expect(closedAfterMs).not.toBe(Infinity);
    // Without `close`, the finished stream's socket carries the next request (here one that closes it).
    const stream = request('GET', '/partitions/echo/console?tail=1&follow=false', '', { connection: 'keep-alive' });
    const kept = await raw(stream + request('GET', '/health', ''), 3000);
    expect(kept.text.toLowerCase()).toContain('connection: keep-alive');
    expect(kept.text.match(/^HTTP\/1\.1 200 /gm)).toHaveLength(2);
    expect(kept.closedAfterMs).not.toBe(Infinity);
  });
});

