/**
 * A partition's console as Server-Sent Events: `GET /partitions/<name>/console`.
 *
 * Events: `console` (data `{ seq, stream, line }`), `state` (data `{ state }`), `dropped`
 * (data `{ lines }`: this client read too slowly and missed them), `end` (the partition was
 * destroyed or the stream was cut; data `{ code, message }`). Every data field is one line of
 * JSON: a guest's line can contain no raw CR or LF once encoded, so it can never start an event
 * or a field of its own, and no guest text ever goes into an HTTP header.
 *
 * The stream belongs to its credential (event-stream.ts): revoked or expired, it ends at once.
 * A client that does not read is not buffered for without bound: past MAX_STREAM_BUFFER bytes
 * queued, lines are dropped and counted for it alone.
 */
import type { ConsoleLine, Managed } from './host.ts';
import type { ManagementServer, RequestContext } from './server.ts';
import { openEventStream } from './event-stream.ts';

export function streamConsole(ctx: RequestContext, m: Managed, server: ManagementServer, options: { tail: number; follow: boolean }): void {
  const onLine = (l: ConsoleLine) => {
    if (dropped > 0 && stream.send('dropped', { lines: dropped })) dropped = 0;
    if (dropped > 0 || !stream.send('console', l, l.seq)) dropped++;
  };
  const onState = (state: string) => stream.send('state', { state });
  const onGone = () => stream.close('ERR_NOT_FOUND', `partition ${m.name} was destroyed`);
  let dropped = 0;
  const stream = openEventStream(ctx, server, () => {
    m.off('line', onLine);
    m.off('state', onState);
    m.off('gone', onGone);
  });
  for (const l of m.tail(options.tail)) stream.send('console', l, l.seq);
  if (!options.follow) {
    stream.close(null, '');
    ctx.reply.raw.end();
    return;
  }
  m.on('line', onLine);
  m.on('state', onState);
  m.once('gone', onGone);
}
