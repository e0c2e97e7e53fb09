/**
 * `DELETE /partitions/{name}?wipe=true` scrubs the disk of the name, and answers `wiped: true`
 * only then: also when the declaration being deleted grants no disk but an earlier declaration
 * of the same name, deleted without a wipe, left its image (a disk belongs to a name).
 */
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
