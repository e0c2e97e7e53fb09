/**
 * `POST /partitions/{name}/console` answers what it did: how many lines the guest's input buffer
 * took, and whether the input was ended. `end` with a line the buffer refused does not end the
 * input (that line and the later ones would be lost for good): the caller sends the rest again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBody, type Harness, startOwnedHost } from './harness.ts';

let h: Harness;
let owner: string;

beforeAll(async () => {
  ({ h, owner } = await startOwnedHost());
}, 30_000);
afterAll(() => h?.close());

describe('console input', () => {
  it('ends the input only once every line was taken, and says so', async () => {
    const c = h.client(owner);
    // A guest that never reads its input, with a 1 KiB input buffer (10-byte lines: 11 bytes each with the newline).
    await c.json('POST', '/partitions', createBody('spin', 'attack-spin', { start: true }, { devices: { console: { inputBufferBytes: 1024 } }, limits: { timeoutMs: 0 } }));
    const line = 'x'.repeat(10);
    const first = await c.json<{ accepted: number; ended: boolean }>('POST', '/partitions/spin/console', { lines: Array(200).fill(line), end: true });
    expect(first.accepted).toBeGreaterThan(0);
    expect(first.accepted).toBeLessThan(200);
    expect(first.ended).toBe(false);
    // The input is still open: nothing more fits, and an end alone (every one of its zero lines taken) ends it.
    expect(await c.json('POST', '/partitions/spin/console', { lines: [line] })).toEqual({ accepted: 0, ended: false });
    expect(await c.json('POST', '/partitions/spin/console', { lines: [], end: true })).toEqual({ accepted: 0, ended: true });
    await c.json('DELETE', '/partitions/spin');
  });
});
