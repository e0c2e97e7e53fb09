/**
 * `GET /partitions/{name}` answers how the last run ended (`lastExit`). Wiping the disk of an
 * ended partition, or stopping it, ends the fresh instance that waits for its next start (it is
 * `killed`, "stopped before it started"): that instance never ran, so the last run's exit stays.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBody, type Harness, startOwnedHost } from './harness.ts';

let h: Harness;
let owner: string;

beforeAll(async () => {
  ({ h, owner } = await startOwnedHost());
}, 30_000);
afterAll(() => h?.close());

interface Info {
  state: string;
  lastExit: { state: string; code: number | null; reason: string } | null;
}

describe('lastExit', () => {
  it('stays the last run\'s after a wipe, a second wipe and a stop of the instance that never ran', async () => {
    const c = h.client(owner);
    await c.json('POST', '/partitions', createBody('dk', 'counter', { start: true }, { devices: { block: { sizeMiB: 1 }, console: true } }));
    let info = await c.json<Info>('GET', '/partitions/dk');
    for (const deadline = Date.now() + 10_000; info.state === 'running' && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 50));
      info = await c.json<Info>('GET', '/partitions/dk');
    }
    const ran = { state: 'exited', code: 0, reason: 'exit' };
    expect(info).toMatchObject({ state: 'exited', lastExit: ran });
    for (const [method, path] of [['POST', '/partitions/dk/disk/wipe'], ['POST', '/partitions/dk/disk/wipe'], ['POST', '/partitions/dk/stop']] as const) {
      const after = await c.json<Info>(method, path);
      expect([path, after.lastExit]).toEqual([path, ran]);
      expect([path, (await c.json<Info>('GET', '/partitions/dk')).lastExit]).toEqual([path, ran]);
    }
    // A run that does begin is the last run again.
    await c.json('POST', '/partitions/dk/start');
    info = await c.json<Info>('GET', '/partitions/dk');
    for (const deadline = Date.now() + 10_000; info.state === 'running' && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 50));
      info = await c.json<Info>('GET', '/partitions/dk');
    }
    expect(info.lastExit).toEqual(ran);
  });
});
