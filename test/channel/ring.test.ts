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

  it('tryWriteParts writes its parts as one record, whole, across wrap-around (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 3 }), { maxLength: 60 }), (records) => {
        const ring = new SharedRing(SharedRing.allocate(64));
        const seen: Uint8Array[] = [];
        const want: Uint8Array[] = [];
        for (const parts of records) {
          const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
          parts.reduce((at, p) => (whole.set(p, at), at + p.length), 0);
          want.push(whole);
          if (!ring.tryWriteParts(3, parts)) {
            for (let rec = ring.tryRead(); rec; rec = ring.tryRead()) seen.push(rec.bytes);
            expect(ring.tryWriteParts(3, parts)).toBe(true);
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
    expect(() => ring.tryWriteParts(1, [new Uint8Array(30), new Uint8Array(31)])).toThrow(RangeError); // 61 > 60
    expect(() => ring.tryWriteParts(256, [new Uint8Array(1)])).toThrow(RangeError);
    expect(ring.tryWriteParts(1, [new Uint8Array(30), new Uint8Array(30)])).toBe(true); // the largest record
    expect(ring.tryWriteParts(1, [])).toBe(false); // full: even an empty record needs its header
    ring.close();
    expect(ring.tryWriteParts(1, [])).toBe(false);
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
    expect(ring.peekHeader()).toBe(-1);
    ring.tryWrite(200, new Uint8Array([1, 2, 3, 4, 5]));
    expect(ring.peekLength()).toBe(5);
    // The header word: kind in the top byte, length below, unsigned.
    expect(ring.peekHeader()).toBe(((200 << 24) | 5) >>> 0);
    expect(() => ring.readInto(new Uint8Array(4))).toThrow(RangeError);
    const dst = new Uint8Array(8);
    expect(ring.readInto(dst)).toBe(5);
    expect([...dst.subarray(0, 5)]).toEqual([1, 2, 3, 4, 5]);
    expect(ring.readInto(dst)).toBe(-1);
  });

  it('takeOne takes a whole record of its kind within its bounds, leaves any other, and says when the ring was left drained', () => {
    const ring = new SharedRing(SharedRing.allocate(64));
    const dst = new Uint8Array(16);
    expect(ring.takeOne(dst, 1, 16)).toBe(-1);
    // Another kind, a chunk (MORE set), over the bound, larger than dst: -2, nothing consumed.
    for (const [kind, length, max] of [
      [2, 4, 16],
      [1 | 0x80, 4, 16],
      [1, 9, 8],
      [1, 17, 32],
    ] as const) {
      ring.tryWrite(kind, new Uint8Array(length).fill(5));
      expect(ring.takeOne(dst, 1, max)).toBe(-2);
      expect(ring.drained).toBe(false);
      expect(ring.used).toBeGreaterThan(0);
      ring.tryRead();
    }
    // Two records: the first taken is not the last (not drained); the second is, its counter the one before its look.
    ring.tryWrite(1, new Uint8Array([1, 2, 3]));
    ring.tryWrite(1, new Uint8Array([4]));
    expect(ring.takeOne(dst, 1, 16)).toBe(3);
    expect([...dst.subarray(0, 3)]).toEqual([1, 2, 3]);
    expect(ring.drained).toBe(false);
    const seq = ring.writeSeq;
    expect(ring.takeOne(dst, 1, 16)).toBe(1);
    expect(ring.drained).toBe(true);
    expect(ring.takenSeq).toBe(seq);
    // The last record of a closed ring: not drained (the consumer must look, and end).
    ring.tryWrite(1, new Uint8Array([7]));
    ring.close();
    expect(ring.takeOne(dst, 1, 16)).toBe(1);
    expect(ring.drained).toBe(false);
  });

  it('takeOne reads across the wrap as tryRead does, and refuses a corrupt header (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 40 }), (records) => {
        const ring = new SharedRing(SharedRing.allocate(64));
        const dst = new Uint8Array(60);
        for (const r of records) {
          expect(ring.tryWrite(3, r)).toBe(true);
          expect(ring.takeOne(dst, 3, 60)).toBe(r.length);
          expect([...dst.subarray(0, r.length)]).toEqual([...r]);
          expect(ring.drained).toBe(true);
        }
        expect(ring.used).toBe(0);
      }),
    );
    const ring = new SharedRing(SharedRing.allocate(64));
    ring.tryWrite(1, new Uint8Array(4));
    // The header claims more bytes than are in use.
    new Uint8Array(ring.sab, 32, 4).set([60, 0, 0, 1]);
    expect(() => ring.takeOne(new Uint8Array(64), 1, 64)).toThrow(/corrupt ring/);
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

describe('SharedRing.scrub', () => {
  const zero = (ring: SharedRing) => new Uint8Array(ring.sab).every((b) => b === 0);

  it('leaves nothing written behind, from either side, whether or not the ring wrapped (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { maxLength: 40 }), fc.integer({ min: 0, max: 40 }), fc.boolean(), (records, keep, writerScrubs) => {
        // Two views of one buffer, as the root and the worker hold it.
        const sab = SharedRing.allocate(256);
        const writer = new SharedRing(sab);
        const reader = new SharedRing(sab);
        records.forEach((r, i) => {
          r.fill(0xa5);
          if (!writer.tryWrite(1, r)) {
            for (let rec = reader.tryRead(); rec; rec = reader.tryRead());
            expect(writer.tryWrite(1, r)).toBe(true);
          }
          // Some records stay unread at the end.
          if (i < records.length - keep) reader.tryRead();
        });
        (writerScrubs ? writer : reader).scrub(true);
        expect(zero(writer)).toBe(true);
      }),
    );
  });

  it('a ring used only at its start is zeroed there without touching the rest; a writer stopped mid-record makes it zero all', () => {
    const sab = SharedRing.allocate(65536);
    const bytes = new Uint8Array(sab);
    const ring = new SharedRing(sab);
    ring.tryWrite(1, new Uint8Array(100).fill(7));
    // A stray byte past what was published (a writer stopped between its copy and its publish).
    bytes[32 + 4000] = 9;
    new SharedRing(sab).tryRead();
    ring.scrub(true);
    expect(bytes.subarray(0, 32 + 104).every((b) => b === 0)).toBe(true);
    expect(bytes[32 + 4000]).toBe(9); // beyond the reach of any published write: left alone
    const reader = new SharedRing(sab);
    new SharedRing(sab).tryWrite(1, new Uint8Array(100).fill(7));
    reader.tryRead();
    reader.scrub(false);
    expect(zero(ring)).toBe(true);
  });
});

describe('SharedRing wake-ups across threads (RWAIT/WWAIT and one pending wake-up per wait)', () => {
  /**
   * A worker writes `count` small records as fast as it can (waiting for room with `write`), the
   * root reads them with async waits (`whenWritten`); then the roles of waiting swap direction: the
   * root writes with `whenRead` waits while the worker reads with `waitReadable`. A lost wake-up
   * would hang (the test's timeout), a duplicate or a loss would break the sequence.
   */
  it('no wake-up is lost under a flood in either direction, sync or async waiters', async () => {
    const { Worker } = await import('node:worker_threads');
    const { readFileSync } = await import('node:fs');
    const { transformSync } = await import('esbuild');
    const count = 200_000;
    const toRoot = new SharedRing(SharedRing.allocate(256));
    const toWorker = new SharedRing(SharedRing.allocate(256));
    // The worker runs the same ring code, as plain JavaScript.
    const ringJs = transformSync(readFileSync(new URL('../../host/channel/ring.ts', import.meta.url), 'utf8'), { loader: 'ts', format: 'esm' }).code;
    const ringUrl = `data:text/javascript,${encodeURIComponent(ringJs)}`;
    const worker = new Worker(
      `import { workerData, parentPort } from 'node:worker_threads';
       const { SharedRing } = await import(workerData.ringUrl);
       const out = new SharedRing(workerData.toRoot), inp = new SharedRing(workerData.toWorker);
       const rec = new Uint8Array(4), buf = new Uint8Array(64);
       for (let i = 0; i < workerData.count; i++) { new DataView(rec.buffer).setUint32(0, i, true); if (!out.write(1, rec)) throw new Error('write ' + i); }
       let next = 0;
       for (;;) {
         if (inp.waitReadable() === 'closed') break;
         inp.readInto(buf);
         const v = new DataView(buf.buffer).getUint32(0, true);
         if (v !== next++) throw new Error('worker got ' + v + ' expected ' + (next - 1));
       }
       parentPort.postMessage(next);`,
      { eval: true, workerData: { ringUrl, toRoot: toRoot.sab, toWorker: toWorker.sab, count } },
    );
    const failed = new Promise<never>((_, reject) => worker.once('error', reject));
    // Root reads with async waits.
    let expected = 0;
    const buf = new Uint8Array(64);
    const reading = (async () => {
      while (expected < count) {
        const seq = toRoot.writeSeq;
        while (toRoot.readInto(buf) >= 0) {
          const v = new DataView(buf.buffer).getUint32(0, true);
          if (v !== expected) throw new Error(`root got ${v}, expected ${expected}`);
          expected++;
        }
        if (expected < count) await toRoot.whenWritten(seq);
      }
    })();
    await Promise.race([reading, failed]);
    expect(expected).toBe(count);
    // Root writes with async waits for room.
    const rec = new Uint8Array(4);
    const writing = (async () => {
      for (let i = 0; i < count; i++) {
        new DataView(rec.buffer).setUint32(0, i, true);
        for (;;) {
          const seq = toWorker.readSeq;
          if (toWorker.tryWrite(1, rec)) break;
          await toWorker.whenRead(seq);
        }
      }
      toWorker.close();
    })();
    const got = await Promise.race([new Promise<number>((resolve) => worker.once('message', resolve)), failed, writing.then(() => new Promise<number>(() => {}))]);
    expect(got).toBe(count);
    await worker.terminate();
  }, 60_000);
});
