/**
 * `GET /audit?partition=<p>` is what a principal with `audit/read` at `/partitions/<p>` may ask:
 * it answers the records about that partition, never the host's own, even those whose target is
 * a bare word the partition is named after (`host` for the host's attestation report).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBody, type Harness, startOwnedHost } from './harness.ts';

let h: Harness;
let owner: string;

beforeAll(async () => {
  ({ h, owner } = await startOwnedHost());
}, 30_000);
afterAll(() => h?.close());

describe('GET /audit?partition=<p>', () => {
  it("answers records about partition p only, not the host's own under a word p is named after", async () => {
    const c = h.client(owner);
    await c.json('POST', '/partitions', createBody('host', 'hello', { start: true }));
    await c.json('GET', `/attestation?nonce=${'ab'.repeat(8)}`);
    const { token } = await h.token('Owner', '/partitions/host', 'host-owner');
    const records = async () => (await h.client(token).json<{ records: { action: string; target: string }[] }>('GET', '/audit?partition=host')).records;
    for (const deadline = Date.now() + 5000; !(await records()).some((r) => r.action === 'partition.exit') && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    const seen = await records();
    // Who attested the host, with which nonce, is a record about the host: audit/read at / only.
    expect(seen.filter((r) => r.action === 'attestation.request')).toEqual([]);
    expect(seen.filter((r) => r.action.startsWith('audit.'))).toEqual([]);
    // The partition's own records, the API's and the Hypervisor's, are there.
    const actions = new Set(seen.map((r) => r.action));
    for (const a of ['partition.create', 'partition.start', 'partition.exit']) expect(actions.has(a), a).toBe(true);
    expect(seen.some((r) => r.target === '/partitions/host')).toBe(true);
    expect(seen.some((r) => r.target === 'host' && r.action === 'partition.exit')).toBe(true);
    // An auditor at / still reads the host's attestation record.
    const all = await c.json<{ records: { action: string; target: string }[] }>('GET', '/audit?action=attestation.request&target=host');
    expect(all.records).toHaveLength(1);
  });
});
