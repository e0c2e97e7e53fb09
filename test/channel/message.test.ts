import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChannelError, MessageReader, MessageSender, MORE, sendMessageAsync } from '../../host/channel/message.ts';
import { RING_MAX_RECORD, SharedRing } from '../../host/channel/ring.ts';

/** Pumps every sender and drains the reader in turns until all messages are through. */
function transfer(ring: SharedRing, messages: { kind: number; parts: Uint8Array[] }[], max = Infinity): { kind: number; bytes: Uint8Array }[] {
  const reader = new MessageReader(ring, (kind) => (kind >= 1 && kind < 100 ? max : -1));
  const got: { kind: number; bytes: Uint8Array }[] = [];
  for (const m of messages) {
    const sender = new MessageSender(ring, m.kind, m.parts);
    let rounds = 0;
    while (!sender.pump()) {
      for (let r = reader.read(); r !== null; r = reader.read()) got.push(r);
      if (++rounds > 1_000_000) throw new Error('no progress');
    }
  }
  for (let r = reader.read(); r !== null; r = reader.read()) got.push(r);
  return got;
}

describe('messages over a ring', () => {
  it('delivers messages of any size, whole and in order, through a ring far smaller than them (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(64, 128, 4096),
        fc.array(fc.record({ kind: fc.integer({ min: 1, max: 99 }), parts: fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 4 }) }), { maxLength: 12 }),
        (capacity, messages) => {
          const ring = new SharedRing(SharedRing.allocate(capacity));
          const got = transfer(ring, messages);
          expect(got.map((m) => ({ kind: m.kind, bytes: [...m.bytes] }))).toEqual(messages.map((m) => ({ kind: m.kind, bytes: m.parts.flatMap((p) => [...p]) })));
          expect(ring.used).toBe(0);
        },
      ),
    );
  });

  it('carries a message larger than a ring record can (2^24 bytes and more) in chunks', () => {
    const big = new Uint8Array(RING_MAX_RECORD + 1000).map((_, i) => i * 7);
    const ring = new SharedRing(SharedRing.allocate(1 << 16));
    const [m] = transfer(ring, [{ kind: 4, parts: [new Uint8Array([1, 2, 3, 4]), big] }]);
    expect(m!.bytes.length).toBe(big.length + 4);
    expect([...m!.bytes.subarray(0, 6)]).toEqual([1, 2, 3, 4, 0, 7]);
    expect(Buffer.compare(m!.bytes.subarray(4), big)).toBe(0);
  });

  it('bounds a message by its kind at the edge: max bytes pass, one more is a ChannelError', () => {
    const ring = new SharedRing(SharedRing.allocate(64));
    expect(transfer(ring, [{ kind: 3, parts: [new Uint8Array(200)] }], 200)[0]!.bytes.length).toBe(200);
    expect(() => transfer(new SharedRing(SharedRing.allocate(64)), [{ kind: 3, parts: [new Uint8Array(201)] }], 200)).toThrow(ChannelError);
  });

  it('refuses an unknown kind, a kind change inside a message and a corrupt ring with ChannelError', () => {
    const ring = new SharedRing(SharedRing.allocate(64));
    ring.tryWrite(100, new Uint8Array(1));
    expect(() => new MessageReader(ring, (k) => (k < 100 ? 10 : -1)).read()).toThrow(/unknown message kind 100/);

    const mixed = new SharedRing(SharedRing.allocate(64));
    mixed.tryWrite(1 | MORE, new Uint8Array(2));
    mixed.tryWrite(2, new Uint8Array(2));
    expect(() => new MessageReader(mixed, () => 10).read()).toThrow(/kind 2 inside a message of kind 1/);

    const corrupt = new SharedRing(SharedRing.allocate(64));
    corrupt.tryWrite(1, new Uint8Array(4));
    // A header claiming more bytes than were published: the reader must not trust it.
    new Uint8Array(corrupt.sab)[32] = 0xff;
    new Uint8Array(corrupt.sab)[33] = 0xff;
    expect(() => new MessageReader(corrupt, () => 1 << 24).read()).toThrow(ChannelError);
  });

  it('sends from the root without blocking: the rest follows as the reader makes room', async () => {
    const ring = new SharedRing(SharedRing.allocate(64));
    const payload = new Uint8Array(1000).map((_, i) => i);
    const reader = new MessageReader(ring, () => 2000);
    const done = sendMessageAsync(ring, 5, [payload]);
    let got = null;
    while (got === null) {
      got = reader.read();
      await new Promise((r) => setImmediate(r));
    }
    expect(await done).toBe(true);
    expect([...got.bytes]).toEqual([...payload]);
  });

  it('readReusing delivers what read() does, in order, whole, through one reused buffer for single records (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(64, 128, 4096),
        fc.array(fc.record({ kind: fc.integer({ min: 1, max: 99 }), parts: fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 3 }) }), { maxLength: 12 }),
        (capacity, messages) => {
          const ring = new SharedRing(SharedRing.allocate(capacity));
          const reader = new MessageReader(ring, (kind) => (kind >= 1 && kind < 100 ? Infinity : -1));
          const got: { kind: number; bytes: number[] }[] = [];
          const take = (): void => {
            // A consumer of readReusing is done with a message before the next read: copy it out, zero it.
            for (let m = reader.readReusing(); m !== null; m = reader.readReusing()) {
              got.push({ kind: m.kind, bytes: [...m.bytes] });
              m.bytes.fill(0);
            }
          };
          for (const m of messages) {
            const sender = new MessageSender(ring, m.kind, m.parts);
            while (!sender.pump()) take();
          }
          take();
          expect(got).toEqual(messages.map((m) => ({ kind: m.kind, bytes: m.parts.flatMap((p) => [...p]) })));
          expect(ring.used).toBe(0);
        },
      ),
    );
  });

  it('readOne delivers what readReusing does, for messages of its kind and any other (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(64, 128, 4096),
        fc.array(fc.record({ kind: fc.integer({ min: 1, max: 3 }), parts: fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 3 }) }), { maxLength: 12 }),
        (capacity, messages) => {
          const ring = new SharedRing(SharedRing.allocate(capacity));
          const reader = new MessageReader(ring, (kind) => (kind >= 1 && kind <= 3 ? Infinity : -1));
          const got: { kind: number; bytes: number[] }[] = [];
          const take = (): void => {
            for (let m = reader.readOne(1, 2100); m !== null; m = reader.readOne(1, 2100)) {
              got.push({ kind: m.kind, bytes: [...m.bytes] });
              m.bytes.fill(0);
            }
          };
          for (const m of messages) {
            const sender = new MessageSender(ring, m.kind, m.parts);
            while (!sender.pump()) take();
          }
          take();
          expect(got).toEqual(messages.map((m) => ({ kind: m.kind, bytes: m.parts.flatMap((p) => [...p]) })));
          expect(ring.used).toBe(0);
        },
      ),
    );
  });

  it('readOne keeps readReusing’s checks: the bound, an unknown kind, a corrupt ring', () => {
    const ring = new SharedRing(SharedRing.allocate(4096));
    const reader = new MessageReader(ring, (kind) => (kind === 1 ? 1000 : -1));
    ring.tryWrite(1, new Uint8Array(1001));
    expect(() => reader.readOne(1, 1000)).toThrow(/exceeds its bound of 1000 bytes/);
    const unknown = new SharedRing(SharedRing.allocate(64));
    unknown.tryWrite(2, new Uint8Array(1));
    expect(() => new MessageReader(unknown, (kind) => (kind === 1 ? 1000 : -1)).readOne(1, 1000)).toThrow(/unknown message kind 2/);
    const corrupt = new SharedRing(SharedRing.allocate(64));
    corrupt.tryWrite(1, new Uint8Array(4));
    new Uint8Array(corrupt.sab, 32, 4).set([60, 0, 0, 1]);
    const reading = new MessageReader(corrupt, () => 1000);
    // takeOne checks the header before anything else (its kind, its bounds, the buffer).
    expect(() => reading.readOne(1, 1000)).toThrow(ChannelError);
  });

  it('readReusing reuses its buffer and message object, grows the buffer for a larger record, and keeps read()’s checks', () => {
    const ring = new SharedRing(SharedRing.allocate(4096));
    const reader = new MessageReader(ring, (kind) => (kind === 1 ? 1000 : -1));
    ring.tryWrite(1, new Uint8Array([1, 2, 3]));
    const a = reader.readReusing()!;
    expect([a.kind, ...a.bytes]).toEqual([1, 1, 2, 3]);
    a.bytes.fill(0);
    ring.tryWrite(1, new Uint8Array([4, 5]));
    const b = reader.readReusing()!;
    expect(b).toBe(a);
    expect(b.bytes.buffer).toBe(a.bytes.buffer);
    expect([...b.bytes]).toEqual([4, 5]);
    b.bytes.fill(0);
    // Larger than the buffer so far: a new one, the old one left zeroed.
    const old = b.bytes.buffer;
    ring.tryWrite(1, new Uint8Array(1000).fill(9));
    const c = reader.readReusing()!;
    expect(c.bytes.length).toBe(1000);
    expect(c.bytes.buffer).not.toBe(old);
    expect(new Uint8Array(old).every((x) => x === 0)).toBe(true);
    // discard() zeroes the reused buffer.
    reader.discard();
    expect(new Uint8Array(c.bytes.buffer).every((x) => x === 0)).toBe(true);
    expect(reader.readReusing()).toBeNull();
    // The bound at its edge, an unknown kind, a corrupt ring: ChannelError, as read().
    ring.tryWrite(1, new Uint8Array(1001));
    expect(() => reader.readReusing()).toThrow(/exceeds its bound of 1000 bytes/);
    const unknown = new SharedRing(SharedRing.allocate(64));
    unknown.tryWrite(2, new Uint8Array(1));
    expect(() => new MessageReader(unknown, (k) => (k === 1 ? 10 : -1)).readReusing()).toThrow(/unknown message kind 2/);
    const corrupt = new SharedRing(SharedRing.allocate(64));
    corrupt.tryWrite(1, new Uint8Array(4));
    new Uint8Array(corrupt.sab)[32] = 0xff;
    new Uint8Array(corrupt.sab)[33] = 0xff;
    expect(() => new MessageReader(corrupt, () => 1 << 24).readReusing()).toThrow(ChannelError);
    // A message in chunks goes through read(): whole, in a buffer of its own.
    const chunked = new SharedRing(SharedRing.allocate(64));
    const r = new MessageReader(chunked, () => 100);
    chunked.tryWrite(3 | MORE, new Uint8Array([1, 2]));
    expect(r.readReusing()).toBeNull();
    chunked.tryWrite(3, new Uint8Array([3]));
    const whole = r.readReusing()!;
    expect([whole.kind, ...whole.bytes]).toEqual([3, 1, 2, 3]);
  });

  it('an empty message is one empty record', () => {
    const ring = new SharedRing(SharedRing.allocate(64));
    expect(transfer(ring, [{ kind: 9, parts: [] }, { kind: 9, parts: [new Uint8Array(0)] }]).map((m) => [m.kind, m.bytes.length])).toEqual([
      [9, 0],
      [9, 0],
    ]);
  });
});
