/**
 * What the dispatcher's fast path must keep exactly as it was: every call counted, memory
 * counters current after growth, every output window written whole (result, then zeros) and no
 * stale scratch byte ever reaching the guest, and the same bytes for every transfer size.
 */
import { describe, expect, it } from 'vitest';
import { HV_MAX_TRANSFER, HvCall, HvStatus } from '../../host/abi/codes.ts';
import { Dispatcher } from '../../host/abi/dispatcher.ts';
import { GuestMemory, WORD_COPY_MAX } from '../../host/abi/guest-memory.ts';
import { ClockDevice } from '../../host/devices/clock.ts';
import { EntropyDevice } from '../../host/devices/entropy.ts';
import { allocateStats, readMetrics } from '../../host/channel/stats.ts';
import type { ResolvedRateLimit } from '../../host/limits/rate-limiter.ts';

const PAGE = 65536;

function boundary(options: { args?: string[]; rate?: ResolvedRateLimit } = {}) {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
  const gm = new GuestMemory();
  gm.bind(memory);
  const sab = allocateStats();
  const stats = new Float64Array(sab);
  const devices = [new EntropyDevice({ seed: 'hot-path' }, stats), new ClockDevice({ resolutionNs: 1, deterministic: { startNs: '5000000', stepNs: '1000' } })];
  const d = new Dispatcher({ memory: gm, devices, args: options.args ?? [], stats, onViolation: () => {}, now: () => 0, hypercallRate: options.rate ?? null });
  const bytes = () => new Uint8Array(memory.buffer);
  return { memory, gm, d, bytes, metrics: () => readMetrics(sab) };
}

describe('dispatcher fast path', () => {
  it('counts every call once: the total is the sum of the per-call counters, refusals included', () => {
    const b = boundary({ args: ['x'] });
    b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0);
    b.d.hypercall(HvCall.ARGS_GET, 0, 0, 0, 16);
    b.d.hypercall(HvCall.ENTROPY_GET, 0, 0, 0, 8);
    b.d.hypercall(HvCall.CONSOLE_WRITE, 0, 1, 0, 0); // not granted
    b.d.hypercall(0x0777, 0, 0, 0, 0); // unknown
    b.d.hypercall(-1, 0, 0, 0, 0); // unknown, negative as i32
    b.d.hypercall(HvCall.VERSION, 0, 0, PAGE, 1); // bad window
    const m = b.metrics();
    expect(m.hypercallsByCall).toEqual({ VERSION: 2, ARGS_GET: 1, ENTROPY_GET: 1, CONSOLE_WRITE: 1, UNKNOWN: 2 });
    expect(m.hypercalls).toBe(7);
    expect(m.violations).toBe(4);
    expect(m.faults).toBe(1);
  });

  it('counts a call refused by the hypercall rate limit, and sees memory growth on it', () => {
    const b = boundary({ rate: { bytes: null, ops: { perSecond: 1, burst: 1, oneTimeBurst: 0 }, mode: 'reject' } });
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBeGreaterThan(0);
    b.memory.grow(1);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(-HvStatus.RATE_LIMITED);
    expect(b.metrics()).toMatchObject({ hypercalls: 2, memoryBytes: 2 * PAGE, peakMemoryBytes: 2 * PAGE });
  });

  it('updates the memory counters after memory.grow at the next refused call, call with a buffer, or updateMemoryStats', () => {
    const b = boundary();
    b.d.updateMemoryStats();
    expect(b.metrics().memoryBytes).toBe(PAGE);
    b.memory.grow(1);
    expect(b.d.hypercall(0x0777, 0, 0, 0, 0)).toBe(-HvStatus.INVALID_CALL); // refused before any window check
    expect(b.metrics()).toMatchObject({ memoryBytes: 2 * PAGE, peakMemoryBytes: 2 * PAGE });
    b.memory.grow(1);
    expect(b.d.hypercall(HvCall.CONSOLE_WRITE, 0, 0, 0, 0)).toBe(-HvStatus.ACCESS_DENIED);
    expect(b.metrics().memoryBytes).toBe(3 * PAGE);
    b.memory.grow(1);
    expect(b.d.hypercall(HvCall.ENTROPY_GET, 0, 0, 0, 8)).toBe(8); // an output window: its check reads the size
    expect(b.metrics()).toMatchObject({ memoryBytes: 4 * PAGE, peakMemoryBytes: 4 * PAGE });
  });

  it('a call without buffers does not read the memory size; the next point that does sees the grow (the worker updates at every call end)', () => {
    const b = boundary();
    b.d.updateMemoryStats();
    b.memory.grow(1);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBeGreaterThan(0); // counted, handled, no size read
    expect(b.metrics()).toMatchObject({ hypercalls: 1, memoryBytes: PAGE });
    b.d.updateMemoryStats(); // what the worker does when a reactor call, an initialisation or a run ends
    expect(b.metrics()).toMatchObject({ memoryBytes: 2 * PAGE, peakMemoryBytes: 2 * PAGE });
    b.memory.grow(1);
    expect(b.d.hypercall(HvCall.INPUT_SIZE, 0, 0, 0, 0)).toBe(-HvStatus.NOT_IN_CALL); // a handler's own refusal is not a boundary refusal
    expect(b.d.hypercall(HvCall.ENTROPY_GET, 0, 0, 0, 4)).toBe(4);
    expect(b.metrics()).toMatchObject({ memoryBytes: 3 * PAGE, peakMemoryBytes: 3 * PAGE });
  });

  it('checks every window against the memory size of the moment: grown between two calls, a pointer past the old end is accepted and one past the new end refused', () => {
    const b = boundary();
    // Only buffer-less calls between the grow and the window checks: nothing read the size meanwhile.
    expect(b.d.hypercall(HvCall.ENTROPY_GET, 0, 0, PAGE - 8, 8)).toBe(8);
    expect(b.d.hypercall(HvCall.ENTROPY_GET, 0, 0, PAGE, 8)).toBe(-HvStatus.INVALID_ADDRESS);
    b.memory.grow(1);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBeGreaterThan(0);
    b.bytes().fill(0xee, PAGE, PAGE + 16);
    expect(b.d.hypercall(HvCall.ENTROPY_GET, 0, 0, PAGE, 8)).toBe(8); // past the old end: now inside
    expect(b.bytes().subarray(PAGE, PAGE + 8).some((x) => x !== 0xee)).toBe(true);
    expect(b.d.hypercall(HvCall.ENTROPY_GET, 0, 0, 2 * PAGE - 8, 9)).toBe(-HvStatus.INVALID_ADDRESS); // one byte past the new end
    expect(b.d.hypercall(HvCall.CLOCK_GET, 2 * PAGE - 3, 4, 0, 8)).toBe(-HvStatus.INVALID_ADDRESS); // an input window too
    expect(b.d.hypercall(HvCall.CLOCK_GET, 2 * PAGE - 4, 4, 0, 8)).toBe(8); // at the new end exactly
    expect(b.metrics()).toMatchObject({ memoryBytes: 2 * PAGE, faults: 3 });
  });

  it('never lets a stale scratch byte reach the guest: prefix writers and zeroing handlers alike', () => {
    const b = boundary({ args: ['abc'] });
    const view = () => b.bytes();
    const stale = () => expect(b.d.hypercall(HvCall.ENTROPY_GET, 0, 0, 0, HV_MAX_TRANSFER)).toBe(HV_MAX_TRANSFER); // scratch full of random bytes
    // A prefix writer (ARGS_GET): the block, then zeros, for small and large windows.
    for (const cap of [4, 5, 64, WORD_COPY_MAX, WORD_COPY_MAX + 1, 4096, HV_MAX_TRANSFER]) {
      stale();
      view().fill(0xee);
      expect(b.d.hypercall(HvCall.ARGS_GET, 0, 0, 0, cap)).toBe(4);
      expect([...view().subarray(0, 4)]).toEqual([0x61, 0x62, 0x63, 0]);
      expect(view().subarray(4, cap).every((x) => x === 0)).toBe(true);
      if (cap < PAGE) expect(view()[cap]).toBe(0xee);
    }
    // INPUT_READ (a prefix writer) after random bytes.
    stale();
    view().fill(0xee);
    b.d.beginCall(new Uint8Array([1, 2, 3]), 16);
    expect(b.d.hypercall(HvCall.INPUT_READ, 0, 0, 100, 300)).toBe(3);
    b.d.endCall();
    expect([...view().subarray(100, 103)]).toEqual([1, 2, 3]);
    expect(view().subarray(103, 400).every((x) => x === 0)).toBe(true);
    expect(view()[400]).toBe(0xee);
    // A handler that is not a prefix writer (CLOCK_GET) gets a zeroed scratch.
    for (const cap of [12, 300]) {
      stale();
      view().fill(0xee);
      view().fill(0, 400, 404); // clock id 0: monotonic
      expect(b.d.hypercall(HvCall.CLOCK_GET, 400, 4, 0, cap)).toBe(8);
      expect(view().subarray(8, cap).every((x) => x === 0)).toBe(true);
    }
    // A failed call writes nothing, whatever its scratch holds.
    stale();
    view().fill(0xee);
    expect(b.d.hypercall(HvCall.ARGS_GET, 0, 0, 0, 3)).toBe(-HvStatus.BUFFER_TOO_SMALL);
    expect(view().subarray(0, 64).every((x) => x === 0xee)).toBe(true);
  });

});

describe('GuestMemory copies of every size', () => {
  it('copies the same bytes in words (small) and with set (large), at every alignment, and zeroes the rest of the window', () => {
    const size = 3 * WORD_COPY_MAX + 64;
    const buffer = new ArrayBuffer(size);
    const bytes = new Uint8Array(buffer);
    const gm = new GuestMemory();
    gm.bind({ buffer });
    const pattern = (i: number) => (i * 131 + 17) & 0xff;
    const dst = new Uint8Array(HV_MAX_TRANSFER);
    const src = new Uint8Array(HV_MAX_TRANSFER).map((_, i) => pattern(i) ^ 0x55);
    for (const ptr of [0, 1, 2, 3, 5]) {
      for (let n = 0; n <= WORD_COPY_MAX + 9; n += n < 12 ? 1 : 7) {
        for (let i = 0; i < size; i++) bytes[i] = pattern(i);
        dst.fill(0xaa);
        expect(gm.copyIn(ptr, n, dst)).toBe(HvStatus.SUCCESS);
        for (let i = 0; i < n; i++) if (dst[i] !== pattern(ptr + i)) throw new Error(`copyIn ptr ${ptr} n ${n}: byte ${i}`);
        expect(dst[n]).toBe(0xaa);
        // copyOut: srcLen result bytes then zeros up to cap, nothing outside [ptr, ptr + cap).
        for (const extra of [0, 1, 3, 4, WORD_COPY_MAX + 1]) {
          const cap = n + extra;
          if (ptr + cap > size) continue;
          for (let i = 0; i < size; i++) bytes[i] = 0xcc;
          expect(gm.copyOut(ptr, cap, src, n)).toBe(HvStatus.SUCCESS);
          for (let i = 0; i < size; i++) {
            const want = i < ptr || i >= ptr + cap ? 0xcc : i - ptr < n ? src[i - ptr] : 0;
            if (bytes[i] !== want) throw new Error(`copyOut ptr ${ptr} n ${n} cap ${cap}: byte ${i} is ${bytes[i]}, want ${want}`);
          }
        }
      }
    }
  });

  it('follows memory.grow: the view is re-made and the resize is reported once', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 3 });
    const gm = new GuestMemory();
    const sizes: number[] = [];
    gm.onResize = (n) => sizes.push(n);
    gm.bind(memory);
    const dst = new Uint8Array(16);
    expect(gm.copyIn(PAGE, 16, dst)).toBe(HvStatus.INVALID_ADDRESS);
    memory.grow(1);
    expect(gm.copyIn(PAGE, 16, dst)).toBe(HvStatus.SUCCESS);
    expect(gm.byteLength).toBe(2 * PAGE);
    memory.grow(0);
    expect(gm.byteLength).toBe(2 * PAGE);
    expect(sizes).toEqual([PAGE, 2 * PAGE]);
  });
});
