/**
 * Operations on one partition that race (two operators, or one retrying): each waits for the one
 * before it (host/mgmt/host.ts serializes them per partition), and one that finds the partition
 * destroyed meanwhile is ERR_NOT_FOUND (404). It must not act on the destroyed partition: a stop
 * must not write its declaration back (it would come back when the host restarts), a start must
 * not run a guest no API call can reach, a create must not declare what a delete removed.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBody, startHost, type Harness } from './harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHost();
}, 30_000);

afterAll(async () => {
  await h?.close();
});

const declared = (name: string) => existsSync(path.join(h.config, 'partitions', `${name}.json`));
/** Partitions the Hypervisor holds, whatever their state (a destroyed one is gone from it). */
const held = () => h.running.host.hv.partitions().map((p) => p.name).sort();

describe('operations on one partition that race with its destruction', () => {
  it('a stop queued behind a destroy is ERR_NOT_FOUND and does not declare the partition again', async () => {
    const host = h.running.host;
    await host.create(createBody('stopped-late', 'limits', {}, { kind: 'reactor' }), 'test');
    const destroyed = host.destroy('stopped-late', { wipe: false }, 'test');
    const stopped = host.stop('stopped-late', 'test');
    await destroyed;
    await expect(stopped).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    expect(declared('stopped-late')).toBe(false);
    expect(host.list().map((p) => p.name)).not.toContain('stopped-late');
  });

  it('a start queued behind a destroy is ERR_NOT_FOUND and runs nothing (the module is still stored for a neighbour)', async () => {
    const host = h.running.host;
    // Same module: the destroy keeps it stored, so the late start would find it.
    await host.create(createBody('twin-a', 'limits', {}, { kind: 'reactor' }), 'test');
    await host.create(createBody('twin-b', 'limits', {}, { kind: 'reactor' }), 'test');
    const destroyed = host.destroy('twin-a', { wipe: false }, 'test');
    const started = host.start('twin-a', 'test');
    await destroyed;
    await expect(started).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    expect(held()).not.toContain('twin-a');
    expect(declared('twin-a')).toBe(false);
    await host.destroy('twin-b', { wipe: false }, 'test');
  });

  it('a start and a delete of a name being created wait for the creation: no start before the module is stored', async () => {
    const host = h.running.host;
    const created = host.create(createBody('early', 'limits', {}, { kind: 'reactor' }), 'test');
    // The name is reserved at once; these queue behind the creation.
    const started = host.start('early', 'test');
    const destroyed = host.destroy('early', { wipe: false }, 'test');
    expect((await created).name).toBe('early');
    expect((await started).state).toBe('running');
    await destroyed;
    expect(declared('early')).toBe(false);
    expect(held()).not.toContain('early');
    expect(host.list().map((p) => p.name)).not.toContain('early');
  });

  it('over HTTP: create, start, stop and delete of one name at once answer with typed errors, and the host ends consistent', async () => {
    const owner = (await h.token('Owner', '/', 'racer')).token;
    const c = h.client(owner);
    const body = createBody('race', 'limits', { start: true }, { kind: 'reactor' });
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all([
        c.request('POST', '/partitions', body),
        c.request('POST', '/partitions/race/start'),
        c.request('POST', '/partitions/race/stop'),
        c.request('DELETE', '/partitions/race'),
        c.request('POST', '/partitions', body),
      ]);
      for (const a of answers) {
        if (a.status >= 400) expect(['ERR_NOT_FOUND', 'ERR_INVALID_STATE'], `answer ${answers.indexOf(a)}: ${a.body.toString()}`).toContain(JSON.parse(a.body.toString()).error.code);
      }
      const listed = h.running.host.list().some((p) => p.name === 'race');
      expect(declared('race')).toBe(listed);
      expect(held().includes('race')).toBe(listed);
      if (listed) expect((await c.request('DELETE', '/partitions/race')).status).toBe(200);
      expect(held()).not.toContain('race');
    }
  }, 60_000);
});
