/**
 * Bench guard for the network path: partition-to-partition throughput may not regress, measured
 * only as a ratio to a bare MessageChannel between two workers in the same run
 * (bench/lib/net.mjs: both timed first frame to last at the receiver), never as a time.
 *
 * 64-byte frames between two partitions ran at 0.7x to 1.9x a MessageChannel in single runs on
 * the 2-core development machine under a load average of 10-20 (the median of three about
 * 1.1-1.6x), and lower in short runs, where V8's warm-up of a fresh worker weighs more. The guard
 * compares the best of up to five interleaved attempts on each side (it stops once ours is
 * ahead) and fails below 0.5x: a path 3x slower peaks at 0.35-0.6x and fails unless the machine
 * favoured it in every attempt. The real path's best stayed above 0.9x with the whole test suite
 * running beside it, but with three more engineers' builds and tests on the 2 cores (load 11-12)
 * single attempts ranged from 0.49x to 2.9x and a best of three once came out at 0.42x (the
 * MessageChannel had one lucky attempt): hence five. It also pins what must hold in every run: nothing lost, every
 * frame delivered directly into the receiver's port.
 */
import { describe, expect, it } from 'vitest';
import { channelThroughput, partitionsThroughput } from '../../bench/lib/net.mjs';
import { Hypervisor } from '../../host/index.ts';

const FRAMES = 100_000;
const MIN_RATIO = 0.5;
const ATTEMPTS = 5;
const guests = new URL('../../build/guests/', import.meta.url);

describe('bench guard: network (ratio to a MessageChannel in the same run)', () => {
  it('64-byte frames between two partitions: nothing lost, all direct, at least 0.5x a MessageChannel', async () => {
    let oursBest = 0;
    let baseBest = 0;
    for (let attempt = 0; attempt < ATTEMPTS && (attempt === 0 || oursBest < baseBest); attempt++) {
      const ours = await partitionsThroughput(Hypervisor, guests, FRAMES, 64);
      expect(ours.lost).toBe(0);
      expect(ours.queueDrops).toBe(0);
      expect(ours.direct).toBe(FRAMES);
      const base = await channelThroughput(FRAMES, 64);
      expect(base.lost).toBe(0);
      oursBest = Math.max(oursBest, ours.received / ours.ms);
      baseBest = Math.max(baseBest, base.received / base.ms);
    }
    const ratio = oursBest / baseBest;
    expect(ratio, `best ${(oursBest * 1000).toFixed(0)} vs ${(baseBest * 1000).toFixed(0)} frames/s: ratio ${ratio.toFixed(2)} (limit ${MIN_RATIO})`).toBeGreaterThanOrEqual(MIN_RATIO);
  }, 180_000);
});
