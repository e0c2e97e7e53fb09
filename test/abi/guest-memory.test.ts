import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HV_MAX_TRANSFER, HvStatus } from '../../host/abi/codes.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';

/** A memory-shaped object of any size, filled with a recognisable pattern. */
function fakeMemory(size: number): { buffer: ArrayBuffer; bytes: Uint8Array } {
  const buffer = new ArrayBuffer(size);
  const bytes = new Uint8Array(buffer);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return { buffer, bytes };
}

// Pointers and lengths reach the host as wasm i32: any 32-bit pattern, seen by JS as signed.
const i32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
/** Fast equality for large byte arrays (deep-equal matchers are slow on 100 KiB arrays). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

const nearEdge = (size: number) =>
  fc.oneof(i32, fc.integer({ min: 0, max: size + 8 }), fc.constantFrom(0, size, size - 1, size + 1, -1, 2 ** 31 - 1, -(2 ** 31)));

describe('GuestMemory', () => {
  it('accepts exactly the in-bounds windows and never touches bytes outside (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 * 65536 + 17 }).chain((size) => fc.tuple(fc.constant(size), nearEdge(size), nearEdge(Math.min(size, HV_MAX_TRANSFER + 4)))),
        ([size, ptr, len]) => {
          const { buffer, bytes } = fakeMemory(size);
          const before = bytes.slice();
          const gm = new GuestMemory();
          gm.bind({ buffer });
          const p = ptr >>> 0;
          const n = len >>> 0;
          const inBounds = n <= HV_MAX_TRANSFER && p + n <= size;

          const dst = new Uint8Array(HV_MAX_TRANSFER);
          const inStatus = gm.copyIn(ptr, len, dst);
          if (inBounds) {
            expect(inStatus).toBe(HvStatus.SUCCESS);
            expect(same(dst.subarray(0, n), before.subarray(p, p + n))).toBe(true);
          } else {
            expect(inStatus).toBe(n > HV_MAX_TRANSFER ? HvStatus.TOO_LARGE : HvStatus.INVALID_ADDRESS);
          }
          expect(same(bytes, before)).toBe(true); // reading never writes

          const src = new Uint8Array(HV_MAX_TRANSFER).fill(0xee);
          const fill = Math.min(n, 3);
          const outStatus = gm.copyOut(ptr, len, src, fill);
          if (inBounds) {
            expect(outStatus).toBe(HvStatus.SUCCESS);
            // Inside the window: the result, then zeros. Outside: untouched.
            for (let i = 0; i < size; i++) {
              const expected = i >= p && i < p + n ? (i - p < fill ? 0xee : 0) : before[i];
              if (bytes[i] !== expected) throw new Error(`byte ${i} is ${bytes[i]}, expected ${expected}`);
            }
          } else {
            expect(outStatus).toBe(n > HV_MAX_TRANSFER ? HvStatus.TOO_LARGE : HvStatus.INVALID_ADDRESS);
            expect(same(bytes, before)).toBe(true); // all-or-nothing
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('treats the edge ptr + len == size as valid and one past it as invalid', () => {
    const { buffer } = fakeMemory(65536);
    const gm = new GuestMemory();
    gm.bind({ buffer });
    const dst = new Uint8Array(16);
    expect(gm.copyIn(65536 - 16, 16, dst)).toBe(HvStatus.SUCCESS);
    expect(gm.copyIn(65536 - 15, 16, dst)).toBe(HvStatus.INVALID_ADDRESS);
    expect(gm.copyIn(65536, 0, dst)).toBe(HvStatus.SUCCESS);
    expect(gm.copyIn(65537, 0, dst)).toBe(HvStatus.INVALID_ADDRESS);
    // u32 wrap-around: 0xFFFFFFF0 + 0x20 must not wrap to a small address.
    expect(gm.copyIn(0xfffffff0 | 0, 0x20, dst)).toBe(HvStatus.INVALID_ADDRESS);
  });

  it('refuses a result larger than the window without writing', () => {
    const { buffer, bytes } = fakeMemory(1024);
    const before = bytes.slice();
    const gm = new GuestMemory();
    gm.bind({ buffer });
    expect(gm.copyOut(0, 4, new Uint8Array(8), 8)).toBe(HvStatus.BUFFER_TOO_SMALL);
    expect(bytes).toEqual(before);
  });

  it('follows memory.grow: checks against the current size, never a stale view', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
    const gm = new GuestMemory();
    gm.bind(memory);
    const dst = new Uint8Array(16);
    expect(gm.copyIn(65536, 16, dst)).toBe(HvStatus.INVALID_ADDRESS);
    memory.grow(1);
    expect(gm.byteLength).toBe(131072);
    new Uint8Array(memory.buffer).set([1, 2, 3], 65536);
    expect(gm.copyIn(65536, 16, dst)).toBe(HvStatus.SUCCESS);
    expect([...dst.subarray(0, 3)]).toEqual([1, 2, 3]);
  });

  it('copies input once: later changes to guest memory do not reach the copy', () => {
    const { buffer, bytes } = fakeMemory(256);
    const gm = new GuestMemory();
    gm.bind({ buffer });
    const dst = new Uint8Array(8);
    gm.copyIn(10, 8, dst);
    const copy = dst.slice();
    bytes.fill(0, 10, 18);
    expect(dst).toEqual(copy);
  });

  it('with no memory bound (during the start function), every non-empty window is invalid', () => {
    const gm = new GuestMemory();
    expect(gm.check(0, 0)).toBe(HvStatus.SUCCESS);
    expect(gm.check(0, 1)).toBe(HvStatus.INVALID_ADDRESS);
  });

  it('scrub zeroes the whole memory', () => {
    const { buffer, bytes } = fakeMemory(4096);
    const gm = new GuestMemory();
    gm.bind({ buffer });
    gm.scrub();
    expect(bytes.every((b) => b === 0)).toBe(true);
  });
});

describe('GuestMemory: typed access and iovecs (used by WASI)', () => {
  it('readIovecs accepts only arrays whose every buffer is in memory, caps the total, and scatter stays inside (property)', () => {
    const size = 4096;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 6 }),
        nearEdge(size),
        fc.array(fc.tuple(nearEdge(size), fc.oneof(fc.integer({ min: 0, max: 600 }), i32)), { minLength: 6, maxLength: 6 }),
        (count, at, iovs) => {
          const { buffer, bytes } = fakeMemory(size);
          const gm = new GuestMemory(1000);
          gm.bind({ buffer });
          const base = at >>> 0;
          const dv = new DataView(buffer);
          iovs.slice(0, count).forEach(([p, n], i) => {
            if (base + i * 8 + 8 <= size) {
              dv.setUint32(base + i * 8, p >>> 0, true);
              dv.setUint32(base + i * 8 + 4, n >>> 0, true);
            }
          });
          const before = bytes.slice();
          const spans: number[] = [];
          const total = gm.readIovecs(at, count, spans);
          if (base + count * 8 > size) {
            expect(total).toBe(-HvStatus.INVALID_ADDRESS);
            return;
          }
          let anyBad = false;
          for (let i = 0; i < count; i++) anyBad ||= dv.getUint32(base + i * 8, true) + dv.getUint32(base + i * 8 + 4, true) > size;
          if (anyBad) {
            expect(total).toBe(-HvStatus.INVALID_ADDRESS);
            return;
          }
          expect(total).toBeGreaterThanOrEqual(0);
          expect(total).toBeLessThanOrEqual(1000);
          let sum = 0;
          for (let i = 0; i < spans.length; i += 2) {
            expect(spans[i]! + spans[i + 1]!).toBeLessThanOrEqual(size);
            sum += spans[i + 1]!;
          }
          expect(sum).toBe(total);
          // scatter writes exactly the spans' bytes, nothing else.
          const src = new Uint8Array(total).fill(0xee);
          expect(gm.scatter(spans, src, total)).toBe(total);
          const expected = before.slice();
          for (let i = 0; i < spans.length; i += 2) expected.fill(0xee, spans[i]!, spans[i]! + spans[i + 1]!);
          expect(same(bytes, expected)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('readU32 / writeU32 / writeU64 / writeBytes check the whole window, at the edge and one past it', () => {
    const { buffer, bytes } = fakeMemory(64);
    const gm = new GuestMemory();
    gm.bind({ buffer });
    const before = bytes.slice();
    expect(gm.readU32(61)).toBe(-1);
    expect(gm.readU32(-1)).toBe(-1);
    expect(gm.writeU32(61, 1)).toBe(HvStatus.INVALID_ADDRESS);
    expect(gm.writeU64(57, 1n)).toBe(HvStatus.INVALID_ADDRESS);
    expect(gm.writeBytes(60, new Uint8Array(5))).toBe(HvStatus.INVALID_ADDRESS);
    expect(gm.checkSpan(0xfffffff0, 0x20)).toBe(HvStatus.INVALID_ADDRESS);
    expect(same(bytes, before)).toBe(true);
    expect(gm.writeU32(60, 0xdeadbeef)).toBe(HvStatus.SUCCESS);
    expect(gm.readU32(60)).toBe(0xdeadbeef);
    expect(gm.writeU64(56, 2n ** 64n - 1n)).toBe(HvStatus.SUCCESS);
    expect(bytes.subarray(56, 64).every((b) => b === 0xff)).toBe(true);
    expect(gm.writeBytes(60, new Uint8Array([1, 2, 3, 4]))).toBe(HvStatus.SUCCESS);
  });

  it('readIovecs refuses more iovecs than one transfer could describe', () => {
    const gm = new GuestMemory();
    gm.bind({ buffer: new ArrayBuffer(65536) });
    expect(gm.readIovecs(0, 8193, [])).toBe(-HvStatus.TOO_LARGE);
  });
});
