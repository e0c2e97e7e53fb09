/**
 * Token files as the store reads them (tokens.ts parseTokenFile): a file whose times are not
 * dates is refused and reported, never kept. Found by the fuzzer (parse:token-file): an expiry
 * `Date.parse` cannot read compared as never reached, so such a token never expired.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TokenStore } from '../../host/mgmt/tokens.ts';
import { tempDir } from './harness.ts';

describe('token files', () => {
  it('an expiry that is not a date is refused (reported, the token unknown), not taken as never', async () => {
    const dir = tempDir();
    const store = new TokenStore(dir);
    await store.load();
    const { token, record } = await store.create({ name: 'ci', role: 'Owner', scope: '/', lifetimeMs: 60_000, createdBy: 'test' });
    expect(store.verify(token).id).toBe(record.id);
    const file = path.join(dir, `${record.id}.json`);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    for (const bad of ['2020-13-45T99:00:00Z', 'yesterday', '']) {
      writeFileSync(file, JSON.stringify({ ...saved, expiresAt: bad }));
      const reported: string[] = [];
      await store.load((f, why) => reported.push(`${f}: ${why}`));
      expect(reported).toEqual([`${record.id}.json: token file ${record.id}.json: expiresAt: ${JSON.stringify(bad)} is not a date`]);
      expect(() => store.verify(token)).toThrow(expect.objectContaining({ code: 'ERR_UNAUTHENTICATED' }));
    }
    // The same file with a real date is taken again; one in the past is expired.
    writeFileSync(file, JSON.stringify({ ...saved, expiresAt: '2020-01-01T00:00:00Z' }));
    await store.load();
    expect(() => store.verify(token)).toThrow(/expired/);
    store.close();
  });
});
