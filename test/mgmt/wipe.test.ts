/**
 * `DELETE /partitions/{name}?wipe=true` scrubs the disk of the name, and answers `wiped: true`
 * only then: also when the declaration being deleted grants no disk but an earlier declaration
 * of the same name, deleted without a wipe, left its image (a disk belongs to a name).
 * `POST /partitions/{name}/disk/wipe` wipes such an image too; with none left it is a 400.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import type { AuditRecord } from '../../host/mgmt/audit.ts';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { guest } from '../helpers.ts';
import { createBody, type Harness, startOwnedHost } from './harness.ts';

let h: Harness;
let owner: string;

beforeAll(async () => {
  ({ h, owner } = await startOwnedHost());
}, 30_000);
afterAll(() => h?.close());

describe('DELETE ?wipe=true', () => {
  it("scrubs the name's disk even when the declaration deleted grants none", async () => {
    const c = h.client(owner);
    const image = `${h.config}/data/images/x.img`;
    await c.json('POST', '/partitions', createBody('x', 'counter', { start: true }, { devices: { block: { sizeMiB: 1 } } }));
    for (const deadline = Date.now() + 10_000; (await c.json<{ state: string }>('GET', '/partitions/x')).state === 'running' && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    expect(await c.json('DELETE', '/partitions/x')).toEqual({ destroyed: 'x', wiped: false });
    expect(existsSync(image)).toBe(true);
    // The same name again, without a disk: the image is still the name's.
    await c.json('POST', '/partitions', createBody('x', 'hello'));
    const fd = openSync(image, 'r');
    try {
      expect(await c.json('DELETE', '/partitions/x?wipe=true')).toEqual({ destroyed: 'x', wiped: true });
      // Gone from the folder, and the inode the open fd still reads is all zeros.
      expect(existsSync(image)).toBe(false);
      const buf = Buffer.alloc(1 << 16);
      let nonZero = 0;
      for (let at = 0, n; (n = readSync(fd, buf, 0, buf.length, at)) > 0; at += n) nonZero += buf.subarray(0, n).filter((b) => b !== 0).length;
      expect(nonZero).toBe(0);
    } finally {
      closeSync(fd);
    }
    // The wipe is on the record, with the image it removed.
    expect((await h.records()).filter((r) => r.action === 'disk.wipe' && r.target === 'x').at(-1)).toMatchObject({ outcome: 'success', details: { removedImage: true } });
  });

  it('POST …/disk/wipe on a declaration without a disk wipes the image an earlier one left, and is a 400 when none is left', async () => {
    const c = h.client(owner);
    const image = `${h.config}/data/images/y.img`;
    await c.json('POST', '/partitions', createBody('y', 'counter', { start: true }, { devices: { block: { sizeMiB: 1 } } }));
    for (const deadline = Date.now() + 10_000; (await c.json<{ state: string }>('GET', '/partitions/y')).state === 'running' && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    await c.json('DELETE', '/partitions/y');
    expect(existsSync(image)).toBe(true);
    await c.json('POST', '/partitions', createBody('y', 'hello'));
    const wiped = await c.request('POST', '/partitions/y/disk/wipe');
    expect(wiped.status, wiped.body.toString()).toBe(200);
    expect(JSON.parse(wiped.body.toString())).toMatchObject({ name: 'y', state: 'created' });
    expect(existsSync(image)).toBe(false);
    const records = await h.records();
    expect(records.filter((r) => r.action === 'disk.wipe' && r.target === 'y').at(-1)).toMatchObject({ outcome: 'success', details: { removedImage: true, removedKey: true } });
    expect(records.filter((r) => r.action === 'disk.wipe' && r.target === '/partitions/y').at(-1)).toMatchObject({ outcome: 'success', reason: 'disk wiped: 1 image scrubbed and removed, key removed (the image an earlier declaration of the name left)', details: { wiped: true } });
    // Nothing of the name is left now: the answer is the one for a partition without a disk.
    const again = await c.request('POST', '/partitions/y/disk/wipe');
    expect(again.status).toBe(400);
    expect(JSON.parse(again.body.toString())).toEqual({ error: { code: 'ERR_INVALID_ARGUMENT', message: 'partition y has no disk: its spec grants none, and no image of its name is left to wipe' } });
    // A key left without its image (the image removed by hand) is the name's too: the next
    // declaration with a disk would be refused ERR_STORAGE over it. The wipe removes it.
    await c.json('DELETE', '/partitions/y');
    await c.json('POST', '/partitions', createBody('y', 'counter', { start: true }, { devices: { block: { sizeMiB: 1 } } }));
    for (const deadline = Date.now() + 10_000; (await c.json<{ state: string }>('GET', '/partitions/y')).state === 'running' && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    await c.json('DELETE', '/partitions/y');
    rmSync(image);
    await c.json('POST', '/partitions', createBody('y', 'hello'));
    expect(readFileSync(`${h.config}/data/keystore`).includes(Buffer.from('y.img'))).toBe(true);
    expect((await c.request('POST', '/partitions/y/disk/wipe')).status).toBe(200);
    expect(readFileSync(`${h.config}/data/keystore`).includes(Buffer.from('y.img'))).toBe(false);
  });
});

describe("the name's images, and only those", () => {
  it("POST …/disk/wipe finds the name's image at a custom path; another partition's image at the name's place is neither wiped nor counted as the name's", async () => {
    const c = h.client(owner);
    const data = path.join(h.config, 'data');
    // An embedder (or `wasmvisor run`) on the host's data directory left two disks: cz's at a
    // path of its own, and bee's at cw's default place.
    const custom = path.join(h.config, 'elsewhere', 'cz.img');
    const foreign = path.join(data, 'images', 'cw.img');
    const hv = new Hypervisor({ dataDir: data });
    try {
      await (await hv.createPartition({ name: 'cz', module: guest('hello'), devices: { block: { sizeMiB: 1, path: custom } } })).destroy();
      await (await hv.createPartition({ name: 'bee', module: guest('hello'), devices: { block: { sizeMiB: 1, path: 'images/cw.img' } } })).destroy();
    } finally {
      await hv.close();
    }
    await c.json('POST', '/partitions', createBody('cz', 'hello'));
    const wiped = await c.request('POST', '/partitions/cz/disk/wipe');
    expect(wiped.status, wiped.body.toString()).toBe(200);
    expect(existsSync(custom)).toBe(false);
    await c.json('POST', '/partitions', createBody('cw', 'hello'));
    const bytes = readFileSync(foreign);
    const none = await c.request('POST', '/partitions/cw/disk/wipe');
    expect(none.status).toBe(400);
    expect(JSON.parse(none.body.toString()).error.message).toBe('partition cw has no disk: its spec grants none, and no image of its name is left to wipe');
    // DELETE ?wipe=true finds no disk of the name either: it destroys cw, scrubs nothing (the
    // other partition's image stays as it was) and says so.
    expect(await c.json('DELETE', '/partitions/cw?wipe=true')).toEqual({ destroyed: 'cw', wiped: false });
    expect(readFileSync(foreign).equals(bytes)).toBe(true);
    expect((await c.request('GET', '/partitions/cw')).status).toBe(404);
    expect((await h.records()).filter((r) => r.action === 'partition.destroy' && r.target === '/partitions/cw')).toMatchObject([
      { outcome: 'success', reason: 'no disk to wipe: its spec grants none, and no image of its name was left', details: { wiped: false } },
    ]);
  });
});

describe('what a wipe answers and records is what it did', () => {
  it('DELETE ?wipe=true of a partition without a disk destroys it and answers and records that nothing was wiped (POST …/disk/wipe is 400)', async () => {
    const c = h.client(owner);
    await c.json('POST', '/partitions', createBody('nd', 'limits', { start: true, restartPolicy: 'always' }, { kind: 'reactor' }));
    const wipe = await c.request('POST', '/partitions/nd/disk/wipe');
    expect(wipe.status, wipe.body.toString()).toBe(400);
    expect(JSON.parse(wipe.body.toString()).error).toEqual({ code: 'ERR_INVALID_ARGUMENT', message: 'partition nd has no disk: its spec grants none, and no image of its name is left to wipe' });
    expect(await c.json('DELETE', '/partitions/nd?wipe=true')).toEqual({ destroyed: 'nd', wiped: false });
    expect((await c.request('GET', '/partitions/nd')).status).toBe(404);
    expect((await h.records()).filter((r) => r.action === 'partition.destroy' && r.target === '/partitions/nd')).toMatchObject([
      { actor: 'token:owner', outcome: 'success', reason: 'no disk to wipe: its spec grants none, and no image of its name was left', details: { wiped: false } },
    ]);
    // Without ?wipe the record says the disk was kept.
    await c.json('POST', '/partitions', createBody('nd', 'limits', {}, { kind: 'reactor' }));
    expect(await c.json('DELETE', '/partitions/nd')).toEqual({ destroyed: 'nd', wiped: false });
    expect((await h.records()).filter((r) => r.action === 'partition.destroy' && r.target === '/partitions/nd')[1]).toMatchObject({ reason: 'disk kept', details: { wiped: false } });
  });

  it('a refused DELETE ?wipe=true leaves the partition declared and stopped, its disk untouched, on the record as refused; the wipe can be asked for again', async () => {
    const c = h.client(owner);
    const data = path.join(h.config, 'data');
    // rw's disk is at a path of its own (the keystore files it under rw); another partition's
    // image sits at rw's default place, where a wipe of the name looks first.
    const custom = path.join(h.config, 'elsewhere', 'rw.img');
    const foreign = path.join(data, 'images', 'rw.img');
    const hv = new Hypervisor({ dataDir: data });
    try {
      await (await hv.createPartition({ name: 'rw', module: guest('hello'), devices: { block: { sizeMiB: 1, path: custom } } })).destroy();
      await (await hv.createPartition({ name: 'bee2', module: guest('hello'), devices: { block: { sizeMiB: 1, path: 'images/rw.img' } } })).destroy();
    } finally {
      await hv.close();
    }
    const [ours, theirs] = [readFileSync(custom), readFileSync(foreign)];
    await c.json('POST', '/partitions', createBody('rw', 'limits', { start: true, restartPolicy: 'always' }, { kind: 'reactor' }));
    expect(await c.json('GET', '/partitions/rw')).toMatchObject({ state: 'running' });
    const del = await c.request('DELETE', '/partitions/rw?wipe=true');
    expect(del.status, del.body.toString()).toBe(422);
    expect(JSON.parse(del.body.toString()).error).toMatchObject({ code: 'ERR_INTEGRITY', message: expect.stringContaining('it is the block image of partition bee2') });
    // Nothing lost: both images as they were.
    expect([readFileSync(custom).equals(ours), readFileSync(foreign).equals(theirs)]).toEqual([true, true]);
    // Coherent: declared, stopped as by `stop` (a fresh instance, not the destroyed one), on disk too, and no restart policy brings it back.
    const after = { state: 'created', desired: 'stopped', lastRun: 'stopped', error: null };
    expect(await c.json('GET', '/partitions/rw')).toMatchObject(after);
    expect(JSON.parse(readFileSync(path.join(h.config, 'partitions', 'rw.json'), 'utf8'))).toMatchObject({ desired: 'stopped', lastRun: 'stopped' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await c.json('GET', '/partitions/rw')).toMatchObject({ ...after, restarts: 0 });
    const destroys = (records: AuditRecord[]) => records.filter((r) => r.action === 'partition.destroy' && r.target === '/partitions/rw');
    expect(destroys(await h.records())).toEqual([
      expect.objectContaining({ actor: 'token:owner', outcome: 'denied', code: 'ERR_INTEGRITY', reason: expect.stringMatching(/^the disk wipe was refused, the disk left as it was \(.*bee2.*\); the partition is still declared, stopped, not destroyed$/) }),
    ]);
    // The cause gone (bee2's image wiped as bee2's), the same request succeeds and says what it scrubbed.
    const owner2 = new Hypervisor({ dataDir: data });
    try {
      expect((await owner2.wipeStorage('bee2')).images).toEqual([foreign]);
    } finally {
      await owner2.close();
    }
    expect(await c.json('DELETE', '/partitions/rw?wipe=true')).toEqual({ destroyed: 'rw', wiped: true });
    expect(existsSync(custom)).toBe(false);
    expect((await c.request('GET', '/partitions/rw')).status).toBe(404);
    expect(destroys(await h.records()).at(-1)).toMatchObject({ actor: 'token:owner', outcome: 'success', reason: 'disk wiped: 1 image scrubbed and removed, key removed', details: { wiped: true } });
  });

  it('a refused POST …/disk/wipe leaves a loadable partition, not a destroyed one, and is on the record by the caller', async () => {
    const c = h.client(owner);
    const data = path.join(h.config, 'data');
    const custom = path.join(h.config, 'elsewhere', 'rp.img');
    const foreign = path.join(data, 'images', 'rp.img');
    const hv = new Hypervisor({ dataDir: data });
    try {
      await (await hv.createPartition({ name: 'rp', module: guest('hello'), devices: { block: { sizeMiB: 1, path: custom } } })).destroy();
      await (await hv.createPartition({ name: 'bee3', module: guest('hello'), devices: { block: { sizeMiB: 1, path: 'images/rp.img' } } })).destroy();
    } finally {
      await hv.close();
    }
    await c.json('POST', '/partitions', createBody('rp', 'hello'));
    const wipe = await c.request('POST', '/partitions/rp/disk/wipe');
    expect(wipe.status, wipe.body.toString()).toBe(422);
    expect(await c.json('GET', '/partitions/rp')).toMatchObject({ state: 'created', desired: 'stopped', error: null });
    expect(existsSync(custom)).toBe(true);
    expect((await h.records()).filter((r) => r.action === 'disk.wipe' && r.target === '/partitions/rp')).toEqual([
      expect.objectContaining({ actor: 'token:owner', outcome: 'denied', code: 'ERR_INTEGRITY', reason: expect.stringMatching(/^the disk wipe was refused, the disk left as it was \(.*\); the partition is still declared, stopped$/) }),
    ]);
    // It starts as before (its disk, none granted, was never the point).
    expect(await c.json('POST', '/partitions/rp/start')).toMatchObject({ name: 'rp' });
    await c.json('DELETE', '/partitions/rp');
  });
});

describe('a wipe that happened is answered as done', () => {
  it('POST …/disk/wipe whose partition cannot load again afterwards (a policy since) answers the partition refused, not an error, and records the wipe', async () => {
    const c = h.client(owner);
    const image = `${h.config}/data/images/pw.img`;
    await c.json('POST', '/partitions', createBody('pw', 'counter', {}, { devices: { block: { sizeMiB: 1 } } }));
    expect(existsSync(image)).toBe(true);
    // An empty policy admits no module: the declaration no longer loads.
    await h.running.host.setPolicy({}, 'test');
    try {
      const wiped = await c.request('POST', '/partitions/pw/disk/wipe');
      expect(wiped.status, wiped.body.toString()).toBe(200);
      expect(JSON.parse(wiped.body.toString())).toMatchObject({ name: 'pw', state: 'refused', error: { code: expect.stringMatching(/^ERR_(INTEGRITY|POLICY_DENIED)$/) } });
      expect(existsSync(image)).toBe(false);
      expect((await h.records()).filter((r) => r.action === 'disk.wipe' && r.target === '/partitions/pw')).toMatchObject([
        { actor: 'token:owner', outcome: 'success', reason: 'disk wiped: 1 image scrubbed and removed, key removed', details: { wiped: true } },
      ]);
    } finally {
      await h.running.host.setPolicy(null, 'test');
    }
    await c.json('DELETE', '/partitions/pw');
  });
});
