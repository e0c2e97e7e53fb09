/**
 * A client of the management API (what `wasmvisor --host ...` uses): HTTP/1.1 over TLS with the
 * host's certificate verified — against a CA file, or pinned by its SHA-256 fingerprint — before
 * a single byte of the request (and so the token) is sent. Plain HTTP only to loopback.
 * Uses node:tls and node:http only (no framework), so the CLI stays light.
 */
import http, { type IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { takeEvents } from './sse.ts';
import { ConnectionError, errorFromCode, GuestCallError, InvalidArgumentError, isErrorCode, WasmvisorError } from '../errors.ts';
import { quoted } from '../escape.ts';

export interface ClientOptions {
  /** `https://host:port` (or `http://127.0.0.1:port`). */
  url: string;
  token?: string;
  /** SHA-256 fingerprint of the server's certificate (colons optional). */
  fingerprint?: string;
  /** PEM of the CA that issued the server's certificate. */
  ca?: string;
  /** A client certificate and key (PEM) for mutual TLS. */
  cert?: string;
  key?: string;
  /** Per request, ms (not for streams). Default 60000. */
  timeoutMs?: number;
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** The largest answer the client reads into memory. */
const MAX_RESPONSE_BYTES = 64 << 20;

function normalize(fp: string): string {
  const hex = fp.replace(/:/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) throw new InvalidArgumentError(`fingerprint ${quoted(fp)} is not a SHA-256 fingerprint (64 hex digits, colons optional)`);
  return hex.match(/../g)!.join(':');
}

/**
 * The checks of a client's options that read no file and reach no host (the URL, and that the
 * host's certificate can be verified): the CLI makes them before it reads its option files.
 */
export function checkClientOptions(options: Pick<ClientOptions, 'url' | 'fingerprint' | 'ca'>): URL {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new InvalidArgumentError(`--host ${quoted(options.url)} is not a URL (e.g. https://127.0.0.1:8443)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new InvalidArgumentError(`--host must be an https:// URL, got ${url.protocol}`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (url.protocol === 'http:' && !(host === 'localhost' || host === '::1' || host.startsWith('127.'))) {
    throw new InvalidArgumentError(`refusing plain http to ${host}: the token would cross the network in clear; use https`);
  }
  if (url.protocol === 'https:' && options.fingerprint === undefined && options.ca === undefined) {
    throw new InvalidArgumentError('give --fingerprint <sha256> or --ca <file> so the host\'s certificate can be verified');
  }
  if (options.fingerprint !== undefined) normalize(options.fingerprint);
  return url;
}

export class Client {
  private readonly url: URL;
  private readonly options: ClientOptions;
  private readonly pin: string | null;

  constructor(options: ClientOptions) {
    const url = checkClientOptions(options);
    this.url = url;
    this.options = options;
    this.pin = options.fingerprint !== undefined ? normalize(options.fingerprint) : null;
  }

  private get hostname(): string {
    return this.url.hostname.replace(/^\[|\]$/g, '');
  }

  private get port(): number {
    return Number(this.url.port || (this.url.protocol === 'https:' ? 443 : 80));
  }

  /** A connected, verified TLS socket. */
  private connectTls(): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      const host = this.hostname;
      const socket = tls.connect({
        host,
        port: this.port,
        ...(isIP(host) ? {} : { servername: host }),
        ...(this.options.ca !== undefined ? { ca: this.options.ca } : {}),
        ...(this.options.cert !== undefined ? { cert: this.options.cert, key: this.options.key } : {}),
        // With a pin, the chain is not checked against a CA: the pin below is the check.
        rejectUnauthorized: this.pin === null,
      });
      const timer = setTimeout(() => socket.destroy(new Error('TLS handshake timed out')), this.options.timeoutMs ?? 60_000);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        if (this.pin !== null) {
          const got = socket.getPeerCertificate().fingerprint256;
          if (got !== this.pin) {
            socket.destroy();
            reject(new ConnectionError(`the host's certificate (SHA-256 ${got}) does not match the pinned fingerprint ${this.pin}`));
            return;
          }
        }
        resolve(socket);
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(new ConnectionError(`cannot reach ${this.url.origin}: ${error.message}`, { cause: error }));
      });
    });
  }

  private async open(method: string, path: string, body: Buffer | null, accept: string, signal?: AbortSignal): Promise<{ res: IncomingMessage; req: http.ClientRequest }> {
    const headers: http.OutgoingHttpHeaders = { host: this.url.host, accept };
    if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`;
    if (body !== null) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = body.length;
    }
    const socket = this.url.protocol === 'https:' ? await this.connectTls() : null;
    return new Promise((resolve, reject) => {
      const req = http.request({
        method,
        path,
        headers,
        // The socket is already connected and verified; without one, a fresh connection (no pool).
        ...(socket ? { createConnection: () => socket } : { host: this.hostname, port: this.port, agent: false }),
      });
      req.once('response', (res) => resolve({ res, req }));
      if (signal) {
        if (signal.aborted) req.destroy();
        else signal.addEventListener('abort', () => req.destroy(), { once: true });
      }
      req.once('error', (error) => reject(error instanceof WasmvisorError ? error : new ConnectionError(`request to ${this.url.origin} failed: ${error.message}`, { cause: error })));
      req.end(body ?? undefined);
    });
  }

  async request(method: string, path: string, body?: unknown): Promise<Response> {
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const { res, req } = await this.open(method, path, payload, 'application/json');
    const timer = setTimeout(() => req.destroy(new Error('timed out')), this.options.timeoutMs ?? 60_000);
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res) {
        size += (chunk as Buffer).length;
        if (size > MAX_RESPONSE_BYTES) throw new ConnectionError(`the answer is over ${MAX_RESPONSE_BYTES} bytes`);
        chunks.push(chunk as Buffer);
      }
      return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
    } catch (error) {
      if (error instanceof WasmvisorError) throw error;
      throw new ConnectionError(`reading the answer from ${this.url.origin} failed: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a request and returns its JSON answer; a non-2xx answer throws its typed error. */
  async json<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.request(method, path, body);
    let parsed: unknown = null;
    try {
      parsed = r.body.length > 0 ? JSON.parse(r.body.toString('utf8')) : null;
    } catch {
      // Not JSON: handled below.
    }
    if (r.status >= 200 && r.status < 300) return parsed as T;
    throw errorOf(r.status, parsed);
  }

  /** Reads a Server-Sent Events stream until it ends; `onEvent` gets each event's name and parsed data. */
  async stream(path: string, onEvent: (name: string, data: unknown) => void, signal?: AbortSignal): Promise<void> {
    let opened: { res: IncomingMessage; req: http.ClientRequest };
    try {
      opened = await this.open('GET', path, null, 'text/event-stream', signal);
    } catch (error) {
      if (signal?.aborted) return;
      throw error;
    }
    const { res } = opened;
    if (res.statusCode !== 200) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        // Not JSON.
      }
      throw errorOf(res.statusCode ?? 0, parsed);
    }
    res.setEncoding('utf8');
    let buffer = '';
    try {
      for await (const chunk of res) {
        buffer = takeEvents(buffer + (chunk as string), (name, data) => onEvent(name, JSON.parse(data)));
        if (buffer.length > 1 << 20) throw new ConnectionError('an event of the stream is over 1 MiB');
      }
    } catch (error) {
      if (signal?.aborted) return;
      throw error;
    }
  }
}

/**
 * The typed error of an API answer `{ error: { code, message } }`. An `ERR_GUEST_CALL` answer
 * also carries the export's `status` and its `output` (with `encoding`, as a call's answer does):
 * they are kept, so the remote `call` exits and prints as the local one. A status that is not a
 * 32-bit integer, or an output that does not decode, is left out (0, no bytes), never trusted.
 */
export function errorOf(status: number, body: unknown): WasmvisorError {
  const e = (body as { error?: { code?: unknown; message?: unknown; status?: unknown; output?: unknown; encoding?: unknown } } | null)?.error;
  if (e && isErrorCode(e.code) && typeof e.message === 'string') {
    if (e.code !== 'ERR_GUEST_CALL') return errorFromCode(e.code, e.message);
    const returned = typeof e.status === 'number' && Number.isInteger(e.status) && e.status >= -0x80000000 && e.status <= 0x7fffffff ? e.status : 0;
    const encoding = e.encoding === 'base64' ? 'base64' : e.encoding === 'utf8' || e.encoding === undefined ? 'utf8' : null;
    const output = typeof e.output === 'string' && encoding !== null ? new Uint8Array(Buffer.from(e.output, encoding)) : new Uint8Array(0);
    return new GuestCallError(e.message, returned, output);
  }
  return new ConnectionError(`the host answered HTTP ${status} without an error body`);
}
