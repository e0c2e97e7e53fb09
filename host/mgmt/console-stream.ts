/**
 * A partition's console as Server-Sent Events: `GET /partitions/<name>/console`.
 *
 * Events: `console` (data `{ seq, stream, line }`), `state` (data `{ state }`), `dropped`
 * (data `{ lines }`: this client read too slowly and missed them), `end` (the partition was
 * destroyed or the stream was cut; data `{ code, message }`). Every data field is one line of
 * JSON: a guest's line can contain no raw CR or LF once encoded, so it can never start an event
 * or a field of its own, and no guest text ever goes into an HTTP header.
 *
 * The stream belongs to its credential: when the token is revoked (the store's event) or expires
 * (a timer at its expiry) the stream gets `end` with ERR_UNAUTHENTICATED and is closed at once.
 * A client that does not read is not buffered for without bound: past MAX_STREAM_BUFFER bytes
 * queued, lines are dropped and counted for it alone.
 */
import type { ServerResponse } from 'node:http';
import { BusyError, type ErrorCode } from '../errors.ts';
import type { ConsoleLine, Managed } from './host.ts';
import type { ManagementServer, RequestContext } from './server.ts';

/** Bytes queued for one slow client before its lines are dropped. */
export const MAX_STREAM_BUFFER = 1 << 20;
/** A comment line this often keeps proxies and the socket timeout from closing an idle stream. */
export const HEARTBEAT_MS = 15_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

function event(res: ServerResponse, name: string, data: unknown, id?: number): void {
  res.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}

export function streamConsole(ctx: RequestContext, m: Managed, server: ManagementServer, options: { tail: number; follow: boolean }): void {
  if (server.counters.openStreams >= server.limits.maxStreams) throw new BusyError(`${server.limits.maxStreams} console streams are open, the most the host serves`);
  const { reply, principal } = ctx;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    connection: 'keep-alive',
  });
  // Headers go out now, not with the first line: a quiet partition's stream is open at once.
  res.flushHeaders();
  for (const l of m.tail(options.tail)) event(res, 'console', l, l.seq);
  if (!options.follow) {
    res.end();
    return;
  }
  server.counters.openStreams++;
  let dropped = 0;
  let closed = false;
  const onLine = (l: ConsoleLine) => {
    if (res.writableLength > MAX_STREAM_BUFFER) {
      dropped++;
      return;
    }
    if (dropped > 0) {
      event(res, 'dropped', { lines: dropped });
      dropped = 0;
    }
    event(res, 'console', l, l.seq);
  };
  const onState = (state: string) => event(res, 'state', { state });
  const onGone = () => close('ERR_NOT_FOUND', `partition ${m.name} was destroyed`);
  const heartbeat = setInterval(() => res.write(': keepalive\n\n'), HEARTBEAT_MS);
  let expiry: NodeJS.Timeout | null = null;
  const armExpiry = () => {
    if (principal.expiresAt === null) return;
    const left = principal.expiresAt - Date.now();
    if (left <= 0) return close('ERR_UNAUTHENTICATED', 'the token expired');
    expiry = setTimeout(armExpiry, Math.min(left, MAX_TIMER_MS));
  };
  const entry = { principal, close: (code: ErrorCode, message: string) => close(code, message) };
  function close(code: ErrorCode | null, message: string): void {
    if (closed) return;
    closed = true;
    server.counters.openStreams--;
    m.off('line', onLine);
    m.off('state', onState);
    m.off('gone', onGone);
    clearInterval(heartbeat);
    if (expiry) clearTimeout(expiry);
    server.streams.delete(entry);
    if (code !== null && !res.destroyed) {
      event(res, 'end', { code, message });
      res.end();
    }
  }
  m.on('line', onLine);
  m.on('state', onState);
  m.once('gone', onGone);
  server.streams.add(entry);
  res.on('close', () => close(null, ''));
  res.on('error', () => close(null, ''));
  armExpiry();
}
