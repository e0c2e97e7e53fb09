import { describe, expect, it } from 'vitest';
import { reserveZeroed, zeroedBytes } from '../../host/abi/zeroed.ts';

describe('zeroed buffers reserved ahead (host/abi/zeroed.ts)', () => {
  it('hands out each reserved buffer once, zeroed and whole, then allocates', () => {
    const size = 4096 + 17; // a size no other code of this thread reserves
    reserveZeroed(size, 2);
    const first = zeroedBytes(size);
    const second = zeroedBytes(size);
    const third = zeroedBytes(size);
    for (const b of [first, second, third]) {
      expect(b.length).toBe(size);
      expect(b.byteOffset).toBe(0);
      expect(b.buffer.byteLength).toBe(size); // owns its buffer: a caller may view it as words
      expect(b.every((x) => x === 0)).toBe(true);
    }
    expect(new Set([first, second, third]).size).toBe(3);
    // Written by its holder: never handed out again.
    first.fill(7);
    expect(zeroedBytes(size).every((x) => x === 0)).toBe(true);
  });

  it('allocates sizes nothing was reserved for', () => {
    const b = zeroedBytes(3);
    expect(b).toEqual(new Uint8Array(3));
  });
});
