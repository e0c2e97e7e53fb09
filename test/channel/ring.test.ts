import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SharedRing } from '../../host/channel/ring.ts';

describe('SharedRing', () => {
  it('delivers records in order, whole, across wrap-around (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 60 }), (records) => {
        const ring = new SharedRing(SharedRing.allocate(64));
        const seen: Uint8Array[] = [];
        for (const r of records) {
          if (!ring.tryWrite(7, r)) {
            // Full: drain one and the write must then fit (records are far smaller than the ring).
            for (let rec = ring.tryRead(); rec; rec = ring.tryRead()) seen.push(rec.bytes);
            expect(ring.tryWrite(7, r)).toBe(true);
          }
        }
        for (let rec = ring.tryRead(); rec; rec = ring.tryRead()) {
          expect(rec.kind).toBe(7);
          seen.push(rec.bytes);
        }
        expect(seen.map((b) => [...b])).toEqual(records.map((b) => [...b]));
        expect(ring.used).toBe(0);
      }),
    );
  });

  it('tryWritePrefixed writes the prefix word then the payload, whole, across wrap-around (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ maxLength: 36 })), { maxLength: 60 }), (records) => {
        const ring = new SharedRing(SharedRing.allocate(64));
        const seen: Uint8Array[] = [];
        const want: Uint8Array[] = [];
        for (const [prefix, r] of records) {
          const whole = new Uint8Array(4 + r.length);
          new DataView(whole.buffer).setUint32(0, prefix, true);
          whole.set(r, 4);
          want.push(whole);
          if (!ring.tryWritePrefixed(3, prefix, r)) {
            for (let rec = ring.tryRead(); rec; rec = ring.tryRead()) seen.push(rec.bytes);
            expect(ring.tryWritePrefixed(3, prefix, r)).toBe(true);
          }
        }
        for (let rec = ring.tryRead(); rec; rec = ring.tryRead()) {
          expect(rec.kind).toBe(3);
          seen.push(rec.bytes);
        }
        expect(seen).toEqual(want);
      }),
    );
    const ring = new SharedRing(SharedRing.allocate(64));
    expect(() => ring.tryWritePrefixed(1, 0, new Uint8Array(57))).toThrow(RangeError); // 4 + 57 > 60
    expect(ring.tryWritePrefixed(1, 0, new Uint8Array(56))).toBe(true); // 4 + 56 = the largest record
  });

  it('is bounded: refuses a record when full, never overwrites', () => {
    const ring = new SharedRing(SharedRing.allocate(64));
    expect(ring.tryWrite(1, new Uint8Array(28))).toBe(true); // 32 bytes with header
    expect(ring.tryWrite(1, new Uint8Array(28))).toBe(true);
    expect(ring.tryWrite(1, new Uint8Array(0))).toBe(false);
    expect(ring.used).toBe(64);
    expect(() => ring.tryWrite(1, new Uint8Array(61))).toThrow(RangeError);
  });

  it('peek and readInto leave a record that does not fit', () => {
    const ring = new SharedRing(SharedRing.allocate(64));
    ring.tryWrite(1, new Uint8Array([1, 2, 3, 4, 5]));
    expect(ring.peekLength()).toBe(5);
    expect(() => ring.readInto(new Uint8Array(4))).toThrow(RangeError);
    const dst = new Uint8Array(8);
    expect(ring.readInto(dst)).toBe(5);
    expect([...dst.subarray(0, 5)]).toEqual([1, 2, 3, 4, 5]);
    expect(ring.readInto(dst)).toBe(-1);
  });

  it('close ends the stream after the queued records', () => {
    const ring = new SharedRing(SharedRing.allocate(64));
    ring.tryWrite(1, new Uint8Array([9]));
    ring.close();
    expect(ring.tryWrite(1, new Uint8Array([1]))).toBe(false);
    expect(ring.waitReadable(0)).toBe('ready');
    ring.tryRead();
    expect(ring.waitReadable(0)).toBe('closed');
  });

  it('wakes an async reader when a record is written or the ring closes', async () => {
    const ring = new SharedRing(SharedRing.allocate(256));
    let seq = ring.writeSeq;
    const woke = ring.whenWritten(seq);
    ring.tryWrite(1, new Uint8Array([42]));
    await woke;
    expect(ring.tryRead()?.bytes[0]).toBe(42);
    seq = ring.writeSeq;
    const closed = ring.whenWritten(seq);
    ring.close();
    await closed;
    expect(ring.closed).toBe(true);
  });

  it('whenWritten on a stale counter resolves at once (no lost wake-up)', async () => {
    const ring = new SharedRing(SharedRing.allocate(256));
    const seq = ring.writeSeq;
    ring.tryWrite(1, new Uint8Array([1]));
    await ring.whenWritten(seq);
  });
});
