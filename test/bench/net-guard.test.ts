/**
 * Bench guard for the network path: partition-to-partition throughput may not regress, measured
 * only as a ratio to a bare MessageChannel between two workers in the same run
 * (bench/lib/net.mjs: both timed first frame to last at the receiver), never as a time.
 *
 * 64-byte frames between two partitions ran at 0.7x to 1.9x a MessageChannel in single runs on
 * the 2-core development machine under a load average of 10-20 (the median of three about
 * 1.1-1.6x). The guard takes the best of up to three interleaved attempts (it stops at the first
 * at or above 1x) and fails below 0.6x: a path 3x slower would peak at 0.3-0.6x and fails, while
 * three unlucky runs in a row below 0.6x were never seen. It also pins what must hold in every
 * run: nothing lost, every frame delivered directly into the receiver's port.
 */
import { describe, expect, it } from 'vitest';
import { channelThroughput, partitionsThroughput } from '../../bench/lib/net.mjs';
import { Hypervisor } from '../../host/index.ts';

const FRAMES = 40_000;
const MIN_RATIO = 0.6;
const guests = new URL('../../build/guests/', import.meta.url);

describe('bench guard: network (ratio to a MessageChannel in the same run)', () => {
  it('64-byte frames between two partitions: nothing lost, all direct, at least 0.6x a MessageChannel', async () => {
    let best = 0;
    for (let attempt = 0; attempt < 3 && best < 1; attempt++) {
      const ours = await partitionsThroughput(Hypervisor, guests, FRAMES, 64);
      expect(ours.lost).toBe(0);
      expect(ours.queueDrops).toBe(0);
      expect(ours.direct).toBe(FRAMES);
      const base = await channelThroughput(FRAMES, 64);
      expect(base.lost).toBe(0);
      best = Math.max(best, ours.received / ours.ms / (base.received / base.ms));
    }
    expect(best, `best ratio ${best.toFixed(2)} (limit ${MIN_RATIO})`).toBeGreaterThanOrEqual(MIN_RATIO);
  }, 120_000);
});
