/**
 * GuestMemory.scrub: what a partition leaves behind is zeroed. It writes only the 4 KiB pages
 * that hold a non-zero byte (issue #15: a never-written page is not committed just to be
 * zeroed), so every edge of that page walk is checked here: the first and last byte of each
 * page, the last byte of the memory, a memory that is not a whole number of pages, one byte
 * anywhere, and after the memory grew. And Dispatcher.scrub: the scratch every hypercall's input
 * and output passes through, zeroed when the run ends.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HV_MAX_TRANSFER, HvCall } from '../../host/abi/codes.ts';
import { Dispatcher } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { allocateStats } from '../../host/channel/stats.ts';

const PAGE = 4096;
const allZero = (bytes: Uint8Array): boolean => bytes.every((b) => b === 0);

function bound(memory: { buffer: ArrayBuffer }): GuestMemory {
  const gm = new GuestMemory();
  gm.bind(memory);
  return gm;
}

describe('GuestMemory.scrub', () => {
  it('zeroes the first and the last byte of every 4 KiB page of a wasm memory, and its very last byte', () => {
    const memory = new WebAssembly.Memory({ initial: 3 });
    const bytes = new Uint8Array(memory.buffer);
    for (let at = 0; at < bytes.length; at += PAGE) {
      bytes[at] = 0xff;
      bytes[at + PAGE - 1] = 1;
    }
    bound(memory).scrub();
    expect(allZero(bytes)).toBe(true);
  });

  it('zeroes any single non-zero byte, wherever it is (property), and leaves a zero memory zero', () => {
    const memory = new WebAssembly.Memory({ initial: 2 });
    const bytes = new Uint8Array(memory.buffer);
    const gm = bound(memory);
    gm.scrub();
    expect(allZero(bytes)).toBe(true);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, value) => {
        bytes[at] = value;
        gm.scrub();
        return allZero(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('zeroes a memory that is not a whole number of pages, including its short last page', () => {
    for (const size of [1, 100, PAGE - 1, PAGE + 1, 3 * PAGE + 17]) {
      const buffer = new ArrayBuffer(size);
      const bytes = new Uint8Array(buffer);
      bytes[size - 1] = 9;
      bytes[0] = 9;
      bound({ buffer }).scrub();
      expect(allZero(bytes), `size ${size}`).toBe(true);
    }
  });

  it('zeroes what the guest wrote after its memory grew (the pages past the first size)', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const gm = bound(memory);
    memory.grow(2);
    const bytes = new Uint8Array(memory.buffer);
    bytes.fill(0x5a, 65536 + 123, 3 * 65536);
    gm.scrub();
    expect(bytes.length).toBe(3 * 65536);
    expect(allZero(bytes)).toBe(true);
  });
});

describe('Dispatcher.scrub', () => {
  it('zeroes the last hypercall input and output its scratch held, whole', () => {
    const memory = new WebAssembly.Memory({ initial: 2 });
    const bytes = new Uint8Array(memory.buffer);
    const d = new Dispatcher({ memory: bound(memory), devices: [], args: ['a secret argument'], stats: new Float64Array(allocateStats()), onViolation: () => {} });
    // A full-size input (its last byte included), and the argument block as output.
    bytes.fill(0x5a, 0, HV_MAX_TRANSFER);
    expect(d.hypercall(HvCall.ARGS_GET, 0, HV_MAX_TRANSFER, HV_MAX_TRANSFER, 64)).toBeGreaterThan(0);
    const scratch = d as unknown as { inBuf: Uint8Array; outBuf: Uint8Array };
    expect(scratch.inBuf[HV_MAX_TRANSFER - 1]).toBe(0x5a);
    expect(new TextDecoder().decode(scratch.outBuf.subarray(0, 17))).toBe('a secret argument');
    d.scrub();
    expect(allZero(scratch.inBuf)).toBe(true);
    expect(allZero(scratch.outBuf)).toBe(true);
  });
});
