/**
 * GuestMemory's less travelled paths, each at its edge and one past it: a destination or source
 * that cannot hold the transfer, the uncapped typed accessors the WASI layer uses (readBytes,
 * writeBytes), iovec arrays at the per-call limit, gather / scatter / spanView over checked spans,
 * and the resize reports the dispatcher's memory counters follow.
 */
import { describe, expect, it } from 'vitest';
import { HV_MAX_TRANSFER, HvStatus } from '../../host/abi/codes.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';

/** A memory-shaped object of `size` bytes holding i & 0xff at i, and a GuestMemory bound to it. */
function bound(size: number, maxTransfer?: number) {
  const buffer = new ArrayBuffer(size);
  const bytes = new Uint8Array(buffer);
  for (let i = 0; i < size; i++) bytes[i] = i & 0xff;
  const gm = new GuestMemory(maxTransfer);
  gm.bind({ buffer });
  return { gm, bytes, before: bytes.slice(), dv: new DataView(buffer) };
}

describe('GuestMemory: transfers that do not fit their host buffer', () => {
  it('copyIn refuses a window longer than the destination (TOO_LARGE) and writes nothing anywhere', () => {
    const { gm, bytes, before } = bound(256);
    const dst = new Uint8Array(8).fill(0xaa);
    expect(gm.copyIn(0, 9, dst)).toBe(HvStatus.TOO_LARGE);
    expect([...dst]).toEqual(Array(8).fill(0xaa));
    expect(gm.copyIn(0, 8, dst)).toBe(HvStatus.SUCCESS);
    expect([...dst]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(bytes).toEqual(before);
  });

  it('copyOut refuses a result longer than its source (INVALID_ARGUMENT) and writes nothing', () => {
    const { gm, bytes, before } = bound(256);
    expect(gm.copyOut(16, 8, new Uint8Array([9, 9, 9]), 4)).toBe(HvStatus.INVALID_ARGUMENT);
    expect(bytes).toEqual(before);
    expect(gm.copyOut(16, 8, new Uint8Array([9, 9, 9]), 3)).toBe(HvStatus.SUCCESS);
    expect([...bytes.subarray(15, 25)]).toEqual([15, 9, 9, 9, 0, 0, 0, 0, 0, 24]);
  });

  it('a GuestMemory with a smaller maxTransfer refuses one byte more than it, and takes exactly it', () => {
    const { gm } = bound(1024, 100);
    expect(gm.check(0, 100)).toBe(HvStatus.SUCCESS);
    expect(gm.check(0, 101)).toBe(HvStatus.TOO_LARGE);
    // fitRead: the size when both windows fit (out first, then in), else -1 - size and nothing copied.
    const dst = new Uint8Array(100);
    expect(gm.fitRead(0, 101, 0, 0, dst)).toBe(-1025);
    expect(gm.fitRead(0, 0, 0, 101, dst)).toBe(-1025);
    expect(gm.fitRead(925, 100, 0, 100, dst)).toBe(-1025);
    expect(gm.fitRead(0, 0, 925, 100, dst)).toBe(-1025);
    expect(gm.fitRead(-1, 1, 0, 0, dst)).toBe(-1025); // 0xFFFFFFFF
    expect(dst.every((b) => b === 0)).toBe(true);
    expect(gm.fitRead(924, 100, 1024, 0, dst)).toBe(1024);
    expect(dst.every((b) => b === 0)).toBe(true);
    expect(gm.fitRead(0, 100, 3, 100, dst)).toBe(1024);
    expect([...dst]).toEqual(Array.from({ length: 100 }, (_, i) => (i + 3) & 0xff));
  });

  it('fitRead copies exactly the input window, by words or by set, from any alignment', () => {
    const { gm } = bound(4096);
    for (const n of [0, 1, 3, 4, 5, 63, 64, 192, 193, 1000]) {
      for (const at of [0, 1, 2, 3, 4096 - n]) {
        const dst = new Uint8Array(n + 4).fill(0xaa);
        expect(gm.fitRead(0, 0, at, n, dst)).toBe(4096);
        expect([...dst.subarray(0, n)]).toEqual(Array.from({ length: n }, (_, i) => (at + i) & 0xff));
        expect([...dst.subarray(n)]).toEqual([0xaa, 0xaa, 0xaa, 0xaa]);
      }
    }
  });
});

describe('GuestMemory: uncapped typed access (WASI)', () => {
  it('readBytes copies exactly [ptr, ptr + len), refuses a short destination or a window past the end', () => {
    const { gm } = bound(300);
    const dst = new Uint8Array(4).fill(0xaa);
    expect(gm.readBytes(296, 4, dst)).toBe(HvStatus.SUCCESS);
    expect([...dst]).toEqual([296 & 0xff, 297 & 0xff, 298 & 0xff, 299 & 0xff]);
    dst.fill(0xaa);
    expect(gm.readBytes(297, 4, dst)).toBe(HvStatus.INVALID_ADDRESS);
    expect(gm.readBytes(0, 5, dst)).toBe(HvStatus.TOO_LARGE);
    expect(gm.readBytes(-1, 1, dst)).toBe(HvStatus.INVALID_ADDRESS); // 0xFFFFFFFF
    expect(gm.readBytes(300, 0, dst)).toBe(HvStatus.SUCCESS);
    expect([...dst]).toEqual([0xaa, 0xaa, 0xaa, 0xaa]);
    // Not capped by maxTransfer: the caller bounds the transfer.
    const big = bound(HV_MAX_TRANSFER + 8);
    const out = new Uint8Array(HV_MAX_TRANSFER + 8);
    expect(big.gm.readBytes(0, HV_MAX_TRANSFER + 8, out)).toBe(HvStatus.SUCCESS);
    expect(out).toEqual(big.before);
  });

  it('writeBytes writes the first len bytes of its source only, no zero-fill past them; a len past the source is refused', () => {
    const { gm, bytes, before } = bound(64);
    const src = new Uint8Array([0xf1, 0xf2, 0xf3, 0xf4]);
    expect(gm.writeBytes(10, src, 5)).toBe(HvStatus.INVALID_ARGUMENT);
    expect(gm.writeBytes(61, src)).toBe(HvStatus.INVALID_ADDRESS);
    expect(bytes).toEqual(before);
    expect(gm.writeBytes(10, src, 2)).toBe(HvStatus.SUCCESS);
    expect([...bytes.subarray(9, 14)]).toEqual([9, 0xf1, 0xf2, 12, 13]);
    expect(gm.writeBytes(64, src, 0)).toBe(HvStatus.SUCCESS);
    expect(gm.writeBytes(65, src, 0)).toBe(HvStatus.INVALID_ADDRESS);
  });

  it('readU32 and writeU32 are little-endian and take the last word of memory', () => {
    const { gm, bytes } = bound(64);
    expect(gm.readU32(0)).toBe(0x03020100);
    expect(gm.writeU32(60, -2)).toBe(HvStatus.SUCCESS); // an i32 from wasm, stored as u32
    expect([...bytes.subarray(60, 64)]).toEqual([0xfe, 0xff, 0xff, 0xff]);
    expect(gm.readU32(60)).toBe(0xfffffffe);
    expect(gm.writeU64(56, -1n)).toBe(HvStatus.SUCCESS);
    expect(gm.writeU64(0, 0x0807060504030201n)).toBe(HvStatus.SUCCESS);
    expect([...bytes.subarray(0, 8)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(gm.writeU64(-8, 1n)).toBe(HvStatus.INVALID_ADDRESS);
  });
});

describe('GuestMemory: iovecs, gather, scatter, spanView', () => {
  it('readIovecs takes exactly maxTransfer / 8 iovecs and refuses one more', () => {
    const gm = new GuestMemory();
    gm.bind({ buffer: new ArrayBuffer(HV_MAX_TRANSFER + 16) });
    const spans: number[] = [];
    // Zeroed memory: 8192 empty iovecs at 0, all in memory.
    expect(gm.readIovecs(0, HV_MAX_TRANSFER / 8, spans)).toBe(0);
    expect(gm.readIovecs(0, HV_MAX_TRANSFER / 8 + 1, spans)).toBe(-HvStatus.TOO_LARGE);
    expect(spans).toEqual([]);
  });

  it('readIovecs lists the non-empty buffers in order, cut at maxTransfer in total; an array ending at the edge is read', () => {
    const { gm, dv } = bound(4096, 100);
    const iovs: [number, number][] = [
      [100, 10],
      [200, 0],
      [300, 60],
      [400, 50],
      [500, 5],
    ];
    const at = 4096 - iovs.length * 8;
    iovs.forEach(([p, n], i) => {
      dv.setUint32(at + i * 8, p, true);
      dv.setUint32(at + i * 8 + 4, n, true);
    });
    const spans = [7, 7, 7];
    expect(gm.readIovecs(at, iovs.length, spans)).toBe(100);
    expect(spans).toEqual([100, 10, 300, 60, 400, 30]);
    expect(gm.readIovecs(at + 1, iovs.length, spans)).toBe(-HvStatus.INVALID_ADDRESS);
    expect(spans).toEqual([]);
    // A buffer ending exactly at the end of memory is in; one byte more is not.
    dv.setUint32(at, 4086, true);
    expect(gm.readIovecs(at, 1, spans)).toBe(10);
    dv.setUint32(at, 4087, true);
    expect(gm.readIovecs(at, 1, spans)).toBe(-HvStatus.INVALID_ADDRESS);
  });

  it('gather copies the spans in order and stops before a span that does not fit the destination', () => {
    const { gm } = bound(1024);
    const dst = new Uint8Array(8).fill(0xaa);
    expect(gm.gather([10, 3, 20, 2], dst)).toBe(5);
    expect([...dst]).toEqual([10, 11, 12, 20, 21, 0xaa, 0xaa, 0xaa]);
    dst.fill(0xaa);
    expect(gm.gather([10, 3, 20, 5, 30, 1], dst)).toBe(8);
    expect([...dst]).toEqual([10, 11, 12, 20, 21, 22, 23, 24]);
    dst.fill(0xaa);
    expect(gm.gather([10, 3, 20, 6], dst)).toBe(3); // 3 + 6 > 8: the second span is not cut, it is left out
    expect([...dst.subarray(3)]).toEqual([0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
    expect(gm.gather([1020, 4], dst)).toBe(4);
    expect(gm.gather([1020, 5], dst)).toBe(0); // past the end of memory (a span made before the memory changed)
  });

  it('scatter writes at most len bytes across the spans, cutting the last one', () => {
    const { gm, bytes, before } = bound(256);
    const src = new Uint8Array([0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5]);
    expect(gm.scatter([10, 2, 20, 3, 30, 4], src, 4)).toBe(4);
    const expected = before.slice();
    expected.set([0xe0, 0xe1], 10);
    expected.set([0xe2, 0xe3], 20);
    expect(bytes).toEqual(expected);
    expect(gm.scatter([10, 2, 20, 3, 30, 4], src, 0)).toBe(0);
    expect(bytes).toEqual(expected);
    expect(gm.scatter([100, 2], src, 6)).toBe(2); // fewer span bytes than len: what the spans hold
    expect([...bytes.subarray(100, 103)]).toEqual([0xe0, 0xe1, 102]);
    expect(gm.scatter([250, 6], src, 6)).toBe(6);
    expect(gm.scatter([251, 6], src, 6)).toBe(0);
  });

  it('spanView is the live window [ptr, ptr + len)', () => {
    const { gm, bytes } = bound(64);
    const v = gm.spanView(60, 4);
    expect([...v]).toEqual([60, 61, 62, 63]);
    bytes[61] = 0;
    expect(v[1]).toBe(0);
    expect(gm.spanView(-4 >>> 0, 0).length).toBe(0);
  });
});

describe('GuestMemory: size and resize reports', () => {
  it('reports the size at bind and at the first access after a grow, once per size', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 3 });
    const gm = new GuestMemory();
    const sizes: number[] = [];
    gm.onResize = (n) => sizes.push(n);
    expect(gm.byteLength).toBe(0);
    expect(gm.size()).toBe(0);
    gm.bind(memory);
    expect(sizes).toEqual([65536]);
    expect(gm.size()).toBe(65536);
    memory.grow(1);
    expect(gm.readU32(65536)).toBe(0); // the typed accessors follow the grow too
    expect(gm.size()).toBe(131072);
    memory.grow(1);
    expect(gm.checkSpan(131072, 65536)).toBe(HvStatus.SUCCESS);
    gm.scrub();
    expect(sizes).toEqual([65536, 131072, 196608]);
  });

  it('without a memory every typed access is refused and gather/scatter move nothing', () => {
    const gm = new GuestMemory();
    expect(gm.readU32(0)).toBe(-1);
    expect(gm.writeU32(0, 1)).toBe(HvStatus.INVALID_ADDRESS);
    expect(gm.checkSpan(0, 0)).toBe(HvStatus.SUCCESS);
    expect(gm.checkSpan(0, 1)).toBe(HvStatus.INVALID_ADDRESS);
    expect(gm.gather([0, 1], new Uint8Array(1))).toBe(0);
    expect(gm.scatter([0, 1], new Uint8Array(1), 1)).toBe(0);
  });
});
