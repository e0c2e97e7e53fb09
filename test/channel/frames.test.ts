/**
 * The partition process channel (host/channel/frames.ts, mirror.ts) on its own: the child's
 * frames are decoded by a total function (any bytes give a frame or a refusal, never a throw),
 * the reader refuses an oversized frame from its length prefix at the bound and one past it, and
 * two mirrored rings agree on what is in use, refusing acknowledgements that do not match.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FRAME_HEADER,
  FrameReader,
  FrameType,
  MAX_CHILD_FRAME,
  MAX_LIFECYCLE_BYTES,
  RingId,
  decodeChildFrame,
  decodeRootFrame,
  encodeAck,
  encodeClose,
  encodeFrame,
  encodeKill,
  encodeLifecycle,
  encodeRecord,
  encodeStats,
  encodeStdio,
  StdioFlag,
} from '../../host/channel/frames.ts';
import { RingForwarder, RingReceiver, recordSize } from '../../host/channel/mirror.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { STAT_SLOTS } from '../../host/channel/stats.ts';

const body = (frame: Uint8Array) => frame.subarray(4);

describe('decodeChildFrame', () => {
  it('is total: any bytes give a frame or a refusal with a reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const f = decodeChildFrame(bytes);
        if (f.type === 'refused') expect(f.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 2000 },
    );
  });

  it("reads back what a child's encoders write", () => {
    expect(decodeChildFrame(body(encodeRecord(1, RingId.EVENTS, 4, Uint8Array.of(9, 8))))).toMatchObject({ type: 'record', slot: 1, ring: 0, kind: 4 });
    expect(decodeChildFrame(body(encodeAck(1, RingId.CALLS, 64)))).toEqual({ type: 'ack', slot: 1, ring: 1, bytes: 64 });
    expect(decodeChildFrame(body(encodeClose(1, RingId.NET_TX)))).toEqual({ type: 'close', slot: 1, ring: 3 });
    expect(decodeChildFrame(body(encodeLifecycle(1, { type: 'done', outcome: { kind: 'exit', code: -3 } })))).toEqual({
      type: 'lifecycle',
      slot: 1,
      message: { type: 'done', outcome: { kind: 'exit', code: -3 } },
    });
    const stats = new Float64Array(STAT_SLOTS).fill(2);
    expect(decodeChildFrame(body(encodeStats(FrameType.STATS, 1, stats)))).toMatchObject({ type: 'stats', slot: 1 });
  });

  it('cuts an error outcome to the lifecycle bound on a character boundary', () => {
    const message = 'é'.repeat(MAX_LIFECYCLE_BYTES);
    const f = decodeChildFrame(body(encodeLifecycle(1, { type: 'done', outcome: { kind: 'error', error: 'ERR_GUEST_TRAP', message } })));
    expect(f.type).toBe('lifecycle');
    const m = (f as { message: { outcome: { message: string } } }).message.outcome.message;
    expect(m.length).toBeGreaterThan(0);
    expect(m).toBe('é'.repeat(m.length));
  });

  it.each([
    ['a record for a ring the root produces', encodeRecord(1, RingId.CALLS, 1, Uint8Array.of(1)), /does not produce/],
    ['an ack of a ring the child produces', encodeAck(1, RingId.EVENTS, 4), /the root does not produce/],
    ['a kill (the root sends those)', encodeKill(1, { kind: 'exit', code: 0 }), /which a child may not send/],
    ['nonzero reserved bytes', Uint8Array.from([...encodeClose(1, RingId.EVENTS)].map((b, i) => (i === 6 ? 1 : b))), /reserved/],
    ['counters of the wrong size', encodeFrame(FrameType.STATS, 0, 1, new Uint8Array(8)), /counters of 8 bytes/],
    ['an infinite counter', encodeStats(FrameType.STATS, 1, new Float64Array(STAT_SLOTS).fill(Infinity)), /counter 0 is Infinity/],
    ['a counter past 2^53', encodeStats(FrameType.STATS, 1, new Float64Array(STAT_SLOTS).fill(2 ** 53)), /counter 0/],
    ['process counters for a slot', encodeFrame(FrameType.WORKER_STATS, 0, 3, new Uint8Array(64)), /belong to slot 0/],
    ['a lifecycle message with trailing bytes', encodeFrame(FrameType.LIFECYCLE, 0, 1, Uint8Array.of(1, 0)), /unknown type 1/],
    ['a lifecycle frame naming a ring', encodeFrame(FrameType.LIFECYCLE, 2, 1, Uint8Array.of(1)), /naming ring 2/],
    ['an exit outcome of the wrong size', encodeFrame(FrameType.LIFECYCLE, 0, 1, Uint8Array.of(3, 0, 1)), /exit outcome of 2 bytes/],
    ['an error outcome that is not UTF-8', encodeFrame(FrameType.LIFECYCLE, 0, 1, Uint8Array.of(3, 1, 1, 0x41, 0xff)), /not UTF-8/],
    ['a frame shorter than its header', Uint8Array.of(4, 0, 0, 0, 1, 0, 0, 0), /a frame of 4 bytes/],
  ])('refuses %s', (_what, frame, reason) => {
    const f = decodeChildFrame(body(frame));
    expect(f.type).toBe('refused');
    expect((f as { reason: string }).reason).toMatch(reason);
  });

  it('the root decoder accepts what the root sends and refuses what it does not', () => {
    expect(decodeRootFrame(body(encodeRecord(1, RingId.NET_RX, 1, Uint8Array.of(1)))).type).toBe('record');
    expect(decodeRootFrame(body(encodeRecord(1, RingId.EVENTS, 1, Uint8Array.of(1)))).type).toBe('refused');
    expect(decodeRootFrame(body(encodeLifecycle(1, { type: 'running' }))).type).toBe('refused');
  });

  it('the console output state (STDIO): one byte of known flags, each combination; an unknown bit, a second byte or a ring refused', () => {
    for (const flags of [0, StdioFlag.STDOUT_CLOSED, StdioFlag.STDERR_CLOSED, StdioFlag.STDOUT_CLOSED | StdioFlag.STDERR_CLOSED]) {
      expect(decodeRootFrame(body(encodeStdio(5, flags)))).toEqual({ type: 'stdio', slot: 5, flags });
    }
    expect(decodeRootFrame(body(encodeStdio(5, 4))).type).toBe('refused');
    expect(decodeRootFrame(body(encodeStdio(5, 0x80))).type).toBe('refused');
    expect(decodeRootFrame(body(encodeFrame(FrameType.STDIO, 0, 5, Uint8Array.of(1, 0)))).type).toBe('refused');
    expect(decodeRootFrame(body(encodeFrame(FrameType.STDIO, 0, 5, new Uint8Array(0)))).type).toBe('refused');
    expect(decodeRootFrame(body(encodeFrame(FrameType.STDIO, 1, 5, Uint8Array.of(1)))).type).toBe('refused');
    // Only the root sends it: from a child it is a violation.
    expect(decodeChildFrame(body(encodeStdio(1, 1)))).toMatchObject({ type: 'refused', reason: expect.stringMatching(/type 4, which a child may not send/) });
  });
});

describe('FrameReader', () => {
  it('delivers frames split anywhere in the stream', () => {
    const frames = [encodeClose(1, 0), encodeRecord(1, 0, 2, new Uint8Array(300).fill(7)), encodeAck(1, 1, 8)];
    const stream = Uint8Array.from(frames.flatMap((f) => [...f]));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 8 }), (cuts) => {
        const reader = new FrameReader(MAX_CHILD_FRAME);
        const got: number[] = [];
        let at = 0;
        for (const cut of [...cuts.sort((a, b) => a - b), stream.length]) {
          expect(reader.push(stream.slice(at, Math.max(at, cut)), (b) => (got.push(b.length), true))).toBeNull();
          at = Math.max(at, cut);
        }
        expect(got).toEqual(frames.map((f) => f.length - 4));
      }),
    );
  });

  it('takes a frame at the bound and refuses one past it from its prefix, before buffering it', () => {
    const atBound = new Uint8Array(4 + MAX_CHILD_FRAME);
    new DataView(atBound.buffer).setUint32(0, MAX_CHILD_FRAME, true);
    const reader = new FrameReader(MAX_CHILD_FRAME);
    let n = 0;
    expect(reader.push(atBound, () => (n++, true))).toBeNull();
    expect(n).toBe(1);
    const past = new Uint8Array(4);
    new DataView(past.buffer).setUint32(0, MAX_CHILD_FRAME + 1, true);
    expect(reader.push(past, () => true)).toEqual({ type: 'refused', reason: `a frame of ${MAX_CHILD_FRAME + 1} bytes (at most ${MAX_CHILD_FRAME})` });
  });

  it('stops at a frame its consumer refuses: nothing after it is delivered', () => {
    const reader = new FrameReader(MAX_CHILD_FRAME);
    const got: number[] = [];
    const stream = Uint8Array.from([...encodeClose(1, 0), ...encodeClose(2, 0)]);
    reader.push(stream, (b) => (got.push(b[4]!), false));
    expect(got).toEqual([1]);
    expect(FRAME_HEADER).toBe(12);
  });
});

describe('mirrored rings', () => {
  it('the receiver holds a subset of the producer, and acknowledgements free the producer exactly', () => {
    const producer = new SharedRing(SharedRing.allocate(256));
    const copy = new SharedRing(SharedRing.allocate(256));
    const sent: Uint8Array[] = [];
    const forward = new RingForwarder(producer, (kind, bytes) => sent.push(Uint8Array.of(kind, ...bytes)), () => sent.push(new Uint8Array(0)));
    const receive = new RingReceiver(copy);
    for (let i = 0; i < 5; i++) expect(producer.tryWrite(1, new Uint8Array(40).fill(i))).toBe(true);
    // The producer's copy is full until the far side acknowledges.
    expect(producer.tryWrite(1, new Uint8Array(40))).toBe(false);
    forward.pump();
    for (const f of sent.splice(0)) expect(receive.record(f[0]!, f.subarray(1))).toBe(true);
    expect(copy.used).toBe(producer.used);
    copy.tryRead();
    copy.tryRead();
    const taken = receive.consumed();
    expect(taken).toBe(2 * recordSize(40));
    expect(receive.consumed()).toBe(0);
    // More than was forwarded, or not on a record boundary: refused, nothing consumed.
    expect(forward.ack(6 * recordSize(40))).toBe(false);
    expect(forward.ack(recordSize(40) + 4)).toBe(false);
    expect(forward.ack(taken)).toBe(true);
    expect(producer.used).toBe(copy.used);
    // A record the copy cannot take (more than the producer could have had) is refused.
    const full = new RingReceiver(new SharedRing(SharedRing.allocate(64)));
    expect(full.record(1, new Uint8Array(61))).toBe(false);
    expect(full.record(1, new Uint8Array(60))).toBe(true);
    expect(full.record(1, new Uint8Array(4))).toBe(false);
    expect(full.close()).toBe(true);
    expect(full.close()).toBe(false);
  });
});
