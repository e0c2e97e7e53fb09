/**
 * A Server-Sent Events stream that belongs to its credential, for every streaming route (a
 * partition's console, the dashboard's live data): it counts against the server's stream limit,
 * sends a heartbeat comment, ends with an `end` event when its token is revoked (the server's
 * registry) or expires (a timer at the expiry), and never buffers without bound for a client
 * that does not read (`send` reports when the client is too far behind, so the caller can drop
 * and count). Each `data:` is one line of JSON, so no text inside can start an event or a field.
 */
import type { ServerResponse } from 'node:http';
import { BusyError, type ErrorCode } from '../errors.ts';
import type { ManagementServer, RequestContext } from './server.ts';

/** Bytes queued for one slow client before `send` refuses. */
export const MAX_STREAM_BUFFER = 1 << 20;
/** Bytes queued for one slow client before even urgent events end the stream. */
export const URGENT_STREAM_BUFFER = 4 * MAX_STREAM_BUFFER;
/** A comment line this often keeps proxies and the socket timeout from closing an idle stream. */
export const HEARTBEAT_MS = 15_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface EventStream {
  /**
   * Sends an event; false (and nothing sent) when the client has more than MAX_STREAM_BUFFER
   * unread. An `urgent` event (one the client cannot do without) may use up to
   * URGENT_STREAM_BUFFER; past that the stream ends (ERR_BUSY) so the client reconnects.
   */
  send(name: string, data: unknown, id?: number, urgent?: boolean): boolean;
  /** Ends the stream: with a code, an `end` event says why first. Idempotent. */
  close(code: ErrorCode | null, message: string): void;
  readonly closed: boolean;
}

function write(res: ServerResponse, name: string, data: unknown, id?: number): void {
  res.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}

/**
 * Answers the request with an event stream. `onClose` runs once when it ends, however it ends
 * (the client left, the credential went, the caller closed it, the server is shutting down).
 */
export function openEventStream(ctx: RequestContext, server: ManagementServer, onClose: () => void): EventStream {
  if (server.counters.openStreams >= server.limits.maxStreams) throw new BusyError(`${server.limits.maxStreams} streams are open, the most the host serves`);
  const { reply, principal } = ctx;
  reply.hijack();
  const res = reply.raw;
  // No `connection` header of our own: node then answers the request's (keep-alive, or close and
  // closes the socket once the stream ends). One set here overrides it, and a `Connection: close`
  // client's socket stayed open after a finished stream.
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  // Headers go out now, not with the first event: a quiet stream is open at once.
  res.flushHeaders();
  server.counters.openStreams++;
  let closed = false;
  const heartbeat = setInterval(() => res.write(': keepalive\n\n'), HEARTBEAT_MS);
  let expiry: NodeJS.Timeout | null = null;
  const entry = { principal, close: (code: ErrorCode, message: string) => stream.close(code, message) };
  const stream: EventStream = {
    get closed() {
      return closed;
    },
    send(name, data, id, urgent = false) {
      if (closed) return false;
      if (res.writableLength > (urgent ? URGENT_STREAM_BUFFER : MAX_STREAM_BUFFER)) {
        if (urgent) stream.close('ERR_BUSY', 'this client reads too slowly; reconnect');
        return false;
      }
      write(res, name, data, id);
      return true;
    },
    close(code, message) {
      if (closed) return;
      closed = true;
      server.counters.openStreams--;
      clearInterval(heartbeat);
      if (expiry) clearTimeout(expiry);
      server.streams.delete(entry);
      if (code !== null && !res.destroyed) {
        write(res, 'end', { code, message });
        res.end();
      }
      onClose();
    },
  };
  const armExpiry = () => {
    if (principal.expiresAt === null) return;
    const left = principal.expiresAt - Date.now();
    if (left <= 0) return stream.close('ERR_UNAUTHENTICATED', 'the token expired');
    expiry = setTimeout(armExpiry, Math.min(left, MAX_TIMER_MS));
  };
  server.streams.add(entry);
  res.on('close', () => stream.close(null, ''));
  res.on('error', () => stream.close(null, ''));
  armExpiry();
  return stream;
}
