/**
 * bench/net.mjs's ping round trip (bench/lib/net.mjs partitionRtt) against a pong guest that
 * ends before the last answer: the bench fails at once with a message naming the partition and
 * how it ended. Before, the wait for the next answer was settled only by a frame: a pong that
 * ended (killed by its budget here; a trap or its 10 s silence give-up alike) left the bench
 * awaiting for ever, and Node exited 13 (unsettled top-level await) with no message.
 */
import { describe, expect, it } from 'vitest';
import { partitionRtt } from '../../bench/lib/net.mjs';
import { Hypervisor } from '../../host/index.ts';

const guests = new URL('../../build/guests/', import.meta.url);

describe('bench/net.mjs ping round trip', () => {
  it('measures every ping while the pong answers', async () => {
    const times = await partitionRtt(Hypervisor, guests, 50);
    expect(times).toHaveLength(50);
    expect(times.every((t, i) => t > 0 && (i === 0 || t >= times[i - 1]!))).toBe(true);
  });

  it('fails at once, naming the pong and its end, when the pong is killed before the last answer', async () => {
    // A pong with a 300 ms budget and more pings than it can answer in that time.
    const t0 = performance.now();
    await expect(partitionRtt(Hypervisor, guests, 1e9, 300)).rejects.toThrow(
      /^bench: the pong guest \(partition pong\) ended killed with ERR_LIMIT_CPU: partition pong exceeded its wall-clock budget of 300 ms after answering \d+ of 1000000000 pings$/,
    );
    // Its budget, start-up and the end's delivery, far from the test's own timeout.
    expect(performance.now() - t0).toBeLessThan(15_000);
  }, 20_000);
});
