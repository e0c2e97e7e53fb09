/**
 * Failed authentications from many addresses (an attacker with a range of source addresses:
 * 127.0.0.0/8 on a loopback host, an IPv6 prefix): each address has its own rate limit, and the
 * audit log records at most a bounded number of failures one by one per second from all of them
 * together; the rest are counted in one summary record a second. Nothing is lost (every failure
 * is in a record or a count), and the log does not grow with the number of addresses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, type Harness } from './harness.ts';

let h: Harness;
const PER_ADDRESS = 2;
// server.ts: one by one at most 5 × the per-address rate a second, burst twice that.
const BURST = PER_ADDRESS * 5 * 2;
const RATE = PER_ADDRESS * 5;

beforeAll(async () => {
  h = await startHost({ limits: { authFailuresPerSecond: PER_ADDRESS } });
}, 30_000);

afterAll(async () => {
  await h?.close();
});

describe('failed authentications from many addresses', () => {
  it('are recorded one by one up to a bound a second; the rest are counted in a summary record', async () => {
    const n = 300;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const r = await h.running.server.app.inject({ method: 'GET', url: '/whoami', headers: { authorization: 'Bearer nope' }, remoteAddress: `127.0.${i >> 8}.${i & 255}` });
      expect(r.statusCode).toBe(401);
    }
    // Many from one address: those over its own limit are 429, counted too.
    for (let i = 0; i < PER_ADDRESS * 10; i++) await h.running.server.app.inject({ method: 'GET', url: '/whoami', remoteAddress: '10.9.9.9' });
    const seconds = (performance.now() - t0) / 1000;
    const total = n + PER_ADDRESS * 10;
    // The summary is written once a second: wait for the one that holds the last failure.
    let records = await h.records();
    const summarized = () => records.filter((r) => r.action === 'api.authenticate' && r.target === '(summary)').reduce((sum, r) => sum + Number(r.details!['count']), 0);
    const oneByOne = () => records.filter((r) => r.action === 'api.authenticate' && r.target !== '(summary)').length;
    for (let i = 0; i < 100 && oneByOne() + summarized() < total; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      records = await h.records();
    }
    expect(oneByOne() + summarized()).toBe(total);
    // Refilled at RATE a second while the requests ran (the slower the machine, the more one by one).
    expect(oneByOne()).toBeLessThanOrEqual(BURST + Math.ceil(RATE * (seconds + 1)));
    const summaries = records.filter((r) => r.target === '(summary)');
    expect(summaries.length).toBeGreaterThan(0);
    expect(summaries.some((r) => Number(r.details!['rateLimited']) > 0)).toBe(true);
    expect(summaries[0]!.reason).toMatch(/^\d+ failed authentications? from \d+ address(es)? not recorded one by one \(\d+ over an address's rate limit, answered 429\)$/);
  }, 60_000);
});
