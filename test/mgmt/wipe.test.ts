/**
 * `DELETE /partitions/{name}?wipe=true` scrubs the disk of the name, and answers `wiped: true`
 * only then: also when the declaration being deleted grants no disk but an earlier declaration
 * of the same name, deleted without a wipe, left its image (a disk belongs to a name).
 * `POST /partitions/{name}/disk/wipe` wipes such an image too; with none left it is a 400.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { guest } from '../helpers.ts';
import { createBody, startHost, type Harness } from './harness.ts';

let h: Harness;
let owner: string;

beforeAll(async () => {
  h = await startHost();
  owner = (await h.token('Owner', '/', 'owner')).token;
}, 30_000);

afterAll(async () => {
  await h?.close();
});

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
    expect(records.filter((r) => r.action === 'disk.wipe' && r.target === '/partitions/y').at(-1)).toMatchObject({ outcome: 'success', reason: 'the image an earlier declaration of the name left' });
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
    // DELETE ?wipe=true looks at the name's place, finds bee's image there and refuses (422), untouched.
    const del = await c.request('DELETE', '/partitions/cw?wipe=true');
    expect(del.status, del.body.toString()).toBe(422);
    expect(JSON.parse(del.body.toString()).error).toMatchObject({ code: 'ERR_INTEGRITY', message: expect.stringContaining('it is the block image of partition bee') });
    expect(readFileSync(foreign).equals(bytes)).toBe(true);
    // The refused wipe does not stick to the partition: a DELETE without a wipe undeclares it.
    expect(await c.json('DELETE', '/partitions/cw')).toEqual({ destroyed: 'cw', wiped: false });
  });
});
