/**
 * A guest that never finishes starting (a reactor whose start function spins, with no start-up
 * budget: the API accepts `timeoutMs: 0`) holds nothing of the host: the request that started it
 * answers, the partition can be stopped, and the host shuts down and comes back up with it
 * declared to run. Every wait is bounded, so a hang fails the test instead of stalling it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createBody, startHost, tempDir, type Harness } from './harness.ts';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

/** `p`, or a failure naming `what` after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

describe('a partition that never finishes starting', () => {
  it('holds neither its start request, nor its stop, nor the host\'s shutdown or start-up', async () => {
    const config = tempDir();
    h = await startHost({ config });
    const body = createBody('spin', 'attack-start-spin', { start: true, restartPolicy: 'always' }, { kind: 'reactor', limits: { timeoutMs: 0 } });
    const info = await within(h.running.host.create(body, 'test'), 10_000, 'create with start');
    expect(info.state).toBe('running');
    const stopped = await within(h.running.host.stop('spin', 'test'), 10_000, 'stop');
    expect(stopped.state).toBe('killed');
    await within(h.running.host.start('spin', 'test'), 10_000, 'start again');
    await within(h.close(), 10_000, 'the host\'s shutdown');
    // Declared to run (restartPolicy always): the host starts it again as it comes back up.
    h = await within(startHost({ config }), 10_000, 'the host\'s start-up');
    expect(h.running.host.get('spin').info().state).toBe('running');
  });
});
