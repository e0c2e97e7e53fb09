/**
 * A refused operation leaves the declaration as it was: a start the admission policy refuses
 * (the policy changed since the partition was declared) does not mark it `desired: running`,
 * in memory or on disk, and the partition says why it cannot load.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBody, type Harness, startOwnedHost } from './harness.ts';

let h: Harness;
let owner: string;

beforeAll(async () => {
  ({ h, owner } = await startOwnedHost());
}, 30_000);
afterAll(() => h?.close());

describe('a refused start', () => {
  it('keeps desired and lastRun as they were; the partition is refused with why, and starts once admitted again', async () => {
    const c = h.client(owner);
    await c.json('POST', '/partitions', createBody('sr', 'hello'));
    const started = await c.json<{ state: string; lastExit: { code: number | null } | null }>('POST', '/partitions/sr/start');
    // The record says what the start did, as the answer shows it (hello may have exited within the wait).
    expect((await h.records()).filter((x) => x.action === 'partition.start' && x.target === '/partitions/sr').at(-1)).toMatchObject({
      reason: started.state === 'running' ? 'run begun' : `run begun and ended already: ${started.state} (exit, code ${started.lastExit?.code})`,
    });
    for (const deadline = Date.now() + 10_000; (await c.json<{ state: string }>('GET', '/partitions/sr')).state === 'running' && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    await c.json('POST', '/partitions/sr/stop');
    const before = await c.json<Record<string, unknown>>('GET', '/partitions/sr');
    expect(before).toMatchObject({ state: 'exited', desired: 'stopped', lastRun: 'succeeded' });
    // An empty policy admits no module.
    await h.running.host.setPolicy({}, 'test');
    try {
      const r = await c.request('POST', '/partitions/sr/start');
      expect(r.status, r.body.toString()).toBe(422);
      const after = await c.json<Record<string, unknown>>('GET', '/partitions/sr');
      expect(after).toMatchObject({ state: 'refused', desired: 'stopped', lastRun: 'succeeded', error: { code: JSON.parse(r.body.toString()).error.code } });
      expect(JSON.parse(readFileSync(path.join(h.config, 'partitions', 'sr.json'), 'utf8'))).toMatchObject({ desired: 'stopped', lastRun: 'succeeded' });
      expect((await h.records()).filter((x) => x.action === 'partition.start' && x.target === '/partitions/sr')).toHaveLength(1);
    } finally {
      await h.running.host.setPolicy(null, 'test');
    }
    expect(await c.json('POST', '/partitions/sr/start')).toMatchObject({ desired: 'running', error: null });
  });

  it('a partition created under one policy and started after another replaced it is judged by the one in force', async () => {
    const c = h.client(owner);
    await c.json('POST', '/partitions', createBody('sc', 'hello'));
    expect(await c.json('GET', '/partitions/sc')).toMatchObject({ state: 'created', desired: 'stopped' });
    // An empty policy admits no module: the instance made before it must not run.
    await h.running.host.setPolicy({}, 'test');
    try {
      const r = await c.request('POST', '/partitions/sc/start');
      expect(r.status, r.body.toString()).toBe(422);
      expect(await c.json('GET', '/partitions/sc')).toMatchObject({ state: 'refused', desired: 'stopped', error: { code: JSON.parse(r.body.toString()).error.code } });
      expect((await h.records()).filter((x) => x.action === 'partition.start' && x.target === '/partitions/sc')).toHaveLength(0);
    } finally {
      await h.running.host.setPolicy(null, 'test');
    }
    // Under the policy in force again (none), the same partition starts.
    expect(await c.json('POST', '/partitions/sc/start')).toMatchObject({ desired: 'running', error: null });
  });
});
