/**
 * The first size report of a memory, whatever its size. GuestMemory takes any MemoryLike (a plain
 * object included: guest-memory.ts), and the partition's memory counters start from the first size
 * it reports: a "nothing reported yet" marker that a real size could equal would swallow that first
 * report and leave the counters at 0. Memories of 0 and 1 bytes are the edges (a Wasm memory of 0
 * pages is real; 1 byte is the smallest a MemoryLike can be).
 */
import { describe, expect, it } from 'vitest';
import { Dispatcher } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { allocateStats, readMetrics } from '../../host/channel/stats.ts';

describe('the first size report of a memory', () => {
  it('GuestMemory reports the size at bind for memories of 0, 1 and 2 bytes, and once only', () => {
    for (const size of [0, 1, 2]) {
      const gm = new GuestMemory();
      const sizes: number[] = [];
      gm.onResize = (n) => sizes.push(n);
      gm.bind({ buffer: new ArrayBuffer(size) });
      expect(gm.size(), `size ${size}`).toBe(size);
      expect(sizes, `size ${size}`).toEqual([size]);
    }
  });

  it('the dispatcher records a memory of 1 byte in the partition’s counters', () => {
    const gm = new GuestMemory();
    gm.bind({ buffer: new ArrayBuffer(1) });
    const sab = allocateStats();
    const d = new Dispatcher({ memory: gm, devices: [], args: [], stats: new Float64Array(sab), onViolation: () => {} });
    d.updateMemoryStats();
    expect(readMetrics(sab)).toMatchObject({ memoryBytes: 1, peakMemoryBytes: 1 });
  });
});
