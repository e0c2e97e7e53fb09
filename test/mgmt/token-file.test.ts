/**
 * Token files as the store reads them (tokens.ts parseTokenFile): a file whose times are not
 * dates is refused and reported, never kept. Found by the fuzzer (parse:token-file): an expiry
 * `Date.parse` cannot read compared as never reached, so such a token never expired.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_TOKEN_FILE_BYTES, TokenStore } from '../../host/mgmt/tokens.ts';
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

  it('a key given twice (a role widened by hand after the first) is refused, reported and the token unknown, not read as the last', async () => {
    const dir = tempDir();
    const store = new TokenStore(dir);
    await store.load();
    const { token, record } = await store.create({ name: 'ci', role: 'Reader', scope: '/partitions/a', lifetimeMs: 60_000, createdBy: 'test' });
    const file = path.join(dir, `${record.id}.json`);
    const saved = readFileSync(file, 'utf8');
    writeFileSync(file, saved.replace(/\}\s*$/, ', "role": "Owner"}'));
    const reported: string[] = [];
    await store.load((f, why) => reported.push(`${f}: ${why}`));
    expect(reported).toEqual([`${record.id}.json: token file ${record.id}.json: key "role" is given twice`]);
    expect(() => store.verify(token)).toThrow(expect.objectContaining({ code: 'ERR_UNAUTHENTICATED' }));
    writeFileSync(file, saved);
    await store.load();
    expect(store.verify(token).role).toBe('Reader');
    store.close();
  });

  it('what is not a small regular file is reported by name and skipped: a FIFO, a directory, a device behind a symlink, an oversized file; the store never waits on one', async () => {
    const dir = tempDir();
    const store = new TokenStore(dir);
    await store.load();
    const { token } = await store.create({ name: 'ci', role: 'Owner', scope: '/', lifetimeMs: 60_000, createdBy: 'test' });
    // Each under a name a token file could have. A FIFO opened for reading waits for a writer:
    // the store reloads on every change and every second, and would hang on it for good.
    execFileSync('mkfifo', [path.join(dir, 'aaaaaaaaaaaaaaaa.json')]);
    mkdirSync(path.join(dir, 'bbbbbbbbbbbbbbbb.json'));
    symlinkSync('/dev/zero', path.join(dir, 'cccccccccccccccc.json'));
    writeFileSync(path.join(dir, 'dddddddddddddddd.json'), ' '.repeat(MAX_TOKEN_FILE_BYTES + 1));
    // At the bound: read, then judged by its content.
    writeFileSync(path.join(dir, 'eeeeeeeeeeeeeeee.json'), ' '.repeat(MAX_TOKEN_FILE_BYTES));
    const reported: string[] = [];
    await store.load((f, why) => reported.push(`${f}: ${why}`));
    expect(reported.sort()).toEqual([
      expect.stringMatching(/^aaaaaaaaaaaaaaaa\.json: token file \S+aaaaaaaaaaaaaaaa\.json is a FIFO, not a regular file$/),
      expect.stringMatching(/^bbbbbbbbbbbbbbbb\.json: token file \S+bbbbbbbbbbbbbbbb\.json is a directory, not a regular file$/),
      expect.stringMatching(/^cccccccccccccccc\.json: cannot read token file \S+cccccccccccccccc\.json: ELOOP/),
      expect.stringMatching(new RegExp(`^dddddddddddddddd\\.json: token file \\S+dddddddddddddddd\\.json is ${MAX_TOKEN_FILE_BYTES + 1} bytes, over the ${MAX_TOKEN_FILE_BYTES}-byte limit$`)),
      expect.stringMatching(/^eeeeeeeeeeeeeeee\.json: token file eeeeeeeeeeeeeeee\.json is not JSON/),
    ]);
    expect(store.verify(token).name).toBe('ci');
    store.close();
  }, 20_000);

  it('a role with a space or a control character is refused at creation, naming it, and nothing is written; a stored file holding one still loads', async () => {
    const dir = tempDir();
    const store = new TokenStore(dir);
    await store.load();
    for (const role of ['Read er', 'Reader\nID', 'Reader\t', ' Reader', '']) {
      await expect(store.create({ name: 'ci', role, scope: '/', lifetimeMs: 60_000, createdBy: 'test' })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
        message: `token role ${JSON.stringify(role).replace(/\n/g, '\\n').replace(/\t/g, '\\t')} is not valid: a role name is 1-64 letters, digits, '.', '_' or '-'`,
      });
    }
    await expect(store.create({ name: 'ci', role: 'Reader', scope: '/partitions/a b', lifetimeMs: 60_000, createdBy: 'test' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('"/partitions/a b"') });
    expect(readdirSync(dir)).toEqual([]);
    expect(store.list()).toEqual([]);
    // Written before the check (or by hand): it loads, and verifies, as before.
    const { token, record } = await store.create({ name: 'ci', role: 'Reader', scope: '/', lifetimeMs: 60_000, createdBy: 'test' });
    const file = path.join(dir, `${record.id}.json`);
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), role: 'Read er', scope: '/ x' }));
    const reported: string[] = [];
    await store.load((f, why) => reported.push(`${f}: ${why}`));
    expect(reported).toEqual([]);
    expect(store.verify(token)).toMatchObject({ role: 'Read er', scope: '/ x' });
    store.close();
  });
});
