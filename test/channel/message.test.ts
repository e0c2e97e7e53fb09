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

  it('an empty message is one empty record', () => {
    const ring = new SharedRing(SharedRing.allocate(64));
    expect(transfer(ring, [{ kind: 9, parts: [] }, { kind: 9, parts: [new Uint8Array(0)] }]).map((m) => [m.kind, m.bytes.length])).toEqual([
      [9, 0],
      [9, 0],
    ]);
  });
});
