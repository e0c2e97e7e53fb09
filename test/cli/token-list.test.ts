/**
 * `wasmvisor token list` prints what docs/MANAGEMENT.md says it prints, checked against the
 * document itself: the header line, the column starts, the six values of every line (long ones
 * included: a value as long as its column is still followed by a space), the values' forms, and
 * `--json`'s array with exactly the documented fields, in the same order, never a secret.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { TOKEN_LIST_WIDTHS } from '../../host/cli/token.ts';
import type { TokenRecord } from '../../host/mgmt/tokens.ts';
import { cli } from './harness.ts';
import { startHost } from '../mgmt/harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-token-list-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const manual = readFileSync(new URL('../../docs/MANAGEMENT.md', import.meta.url), 'utf8');
/** The paragraph of the manual about `token list`, spaces collapsed. */
const paragraph = manual.slice(manual.indexOf('- `token list` prints'), manual.indexOf('- A token is `wvt_')).replace(/\s+/g, ' ');
/** The manual's example table: header and one row. */
const example = /```text\n([\s\S]*?)\n\s*```/.exec(manual.slice(manual.indexOf('- `token list` prints')))![1]!.split('\n').map((l) => l.replace(/^ {2}/, ''));
const documentedStarts = /Columns start at characters ([\d, and]+);/.exec(paragraph)![1]!.split(/, | and /).map(Number);
const documentedFields = /objects with exactly these fields: (.*?) and `status`\./.exec(paragraph)![1]!.match(/`(\w+)`/g)!.map((f) => f.slice(1, -1)).filter((f) => f !== 'null').concat('status');

/** What `token list --json` prints of each token: the record without its secret's hash, and its status. */
type Listed = Omit<TokenRecord, 'sha256'> & { status: string };

describe('token list, as docs/MANAGEMENT.md states it', () => {
  it('the manual’s column starts are the table’s, and its example lines are in that format', () => {
    const starts = TOKEN_LIST_WIDTHS.reduce<number[]>((at, w) => [...at, at.at(-1)! + w], [0]);
    expect(documentedStarts).toEqual(starts);
    for (const line of example) {
      const values = line.split(/ +/);
      expect(values, line).toHaveLength(6);
      // Each value starts where its column does (the example's values are shorter than their columns).
      for (const [i, v] of values.entries()) expect(line.indexOf(v, i === 0 ? 0 : starts[i]! - 1), `${v} in ${line}`).toBe(starts[i]);
    }
    expect(documentedFields).toEqual(['id', 'name', 'role', 'scope', 'createdAt', 'expiresAt', 'revokedAt', 'createdBy', 'status']);
  });

  it('an empty store: the header alone, and [] with --json', async () => {
    const config = path.join(tmp, 'empty');
    expect((await cli(['token', 'create', '--config', config, '--name', 'x', '--role', 'Reader', '--scope', '/'])).code).toBe(0);
    const [id] = ((await cli(['token', 'list', '--config', config, '--json'])).stdout.match(/"id": "([0-9a-f]{16})"/) ?? []).slice(1);
    expect((await cli(['token', 'revoke', id!, '--config', config])).code).toBe(0);
    rmSync(path.join(config, 'tokens', `${id}.json`));
    expect(await cli(['token', 'list', '--config', config])).toMatchObject({ code: 0, stdout: `${example[0]}\n`, stderr: '' });
    expect(await cli(['token', 'list', '--config', config, '--json'])).toMatchObject({ code: 0, stdout: '[]\n', stderr: '' });
  });

  it('every line splits into its six values, long ones too; --json lists the same tokens in the same order with exactly the documented fields', async () => {
    const config = path.join(tmp, 'host');
    const long = 'n'.repeat(64);
    const made: string[] = [];
    for (const args of [
      ['--name', 'ci', '--role', 'Operator', '--scope', '/partitions/web', '--expires', '7d'],
      ['--name', long, '--role', 'Auditor', '--scope', `/partitions/${long}`, '--expires', 'never'],
      ['--name', 'exactly-twenty-chars', '--role', 'Reader', '--scope', '/'],
      ['--name', 'soon', '--role', 'Reader', '--scope', '/segments/lan', '--expires', '1s'],
      ['--name', 'gone', '--role', 'Reader', '--scope', '/'],
    ]) {
      const r = await cli(['token', 'create', '--config', config, ...args]);
      expect(r.code, r.stderr).toBe(0);
      made.push(r.stdout.trim());
    }
    const all = JSON.parse((await cli(['token', 'list', '--config', config, '--json'])).stdout) as Listed[];
    const goneId = all.find((t) => t.name === 'gone')!.id;
    expect((await cli(['token', 'revoke', goneId, '--config', config])).code).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // 'soon' expires

    const json = await cli(['token', 'list', '--config', config, '--json']);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    expect(json.stdout).toBe(JSON.stringify(JSON.parse(json.stdout), null, 2) + '\n');
    const listed = JSON.parse(json.stdout) as Listed[];
    expect(listed.map((t) => t.name)).toEqual(['ci', long, 'exactly-twenty-chars', 'soon', 'gone']);
    for (const t of listed) expect(Object.keys(t).sort()).toEqual([...documentedFields].sort());
    expect(listed.map((t) => t.status)).toEqual(['active', 'active', 'active', 'expired', 'revoked']);
    expect([...listed.map((t) => t.createdAt)].sort()).toEqual(listed.map((t) => t.createdAt));
    expect(listed[1]!.expiresAt).toBeNull();
    expect(listed[4]!.revokedAt).not.toBeNull();
    for (const t of listed) expect(t.createdBy).toMatch(/^local:/);
    // Never a secret, nor its digest.
    for (const token of made) expect(json.stdout).not.toContain(token.slice('wvt_0123456789abcdef_'.length));
    expect(json.stdout).not.toContain('sha256');

    const table = await cli(['token', 'list', '--config', config]);
    expect(table).toMatchObject({ code: 0, stderr: '' });
    const lines = table.stdout.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines[0]).toBe(example[0]);
    expect(lines.slice(1).map((l) => l.split(/ +/))).toEqual(listed.map((t) => [t.id, t.name, t.role, t.scope, t.status, t.expiresAt ?? 'never']));
    for (const t of listed) if (t.expiresAt !== null) expect(new Date(t.expiresAt).toISOString()).toBe(t.expiresAt);
    // A value as long as its column or longer is followed by one space; shorter ones keep the columns.
    const twenty = lines.find((l) => l.includes('exactly-twenty-chars'))!;
    expect(twenty).toContain('exactly-twenty-chars Reader');
    const longLine = lines.find((l) => l.includes(long))!;
    expect(longLine).toContain(`${long} Auditor`);
    expect(longLine).toContain(`/partitions/${long} active`);
    const ci = lines.find((l) => / ci /.test(l))!;
    for (const [i, start] of documentedStarts.entries()) expect(ci[start - 1] === undefined || ci[start - 1] === ' ', `column ${i}`).toBe(true);
    expect(ci.slice(documentedStarts[1]!, documentedStarts[2]!).trim()).toBe('ci');
    expect(ci.slice(documentedStarts[2]!, documentedStarts[3]!).trim()).toBe('Operator');
    expect(ci.slice(documentedStarts[3]!, documentedStarts[4]!).trim()).toBe('/partitions/web');
  });

  it('a token file written by hand with a space or a control character in its role or scope still loads, and its line still splits into six values', async () => {
    const config = path.join(tmp, 'by-hand');
    expect((await cli(['token', 'create', '--config', config, '--name', 'ci', '--role', 'Reader', '--scope', '/'])).code).toBe(0);
    const [t] = JSON.parse((await cli(['token', 'list', '--config', config, '--json'])).stdout) as Listed[];
    const file = path.join(config, 'tokens', `${t!.id}.json`);
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), role: 'Read er', scope: '/ x\nID' }));
    const table = await cli(['token', 'list', '--config', config]);
    expect(table).toMatchObject({ code: 0, stderr: '' });
    const lines = table.stdout.split('\n').slice(1, -1);
    expect(lines.map((l) => l.split(/ +/))).toEqual([[t!.id, 'ci', 'Read\\x20er', '/\\x20x\\nID', 'active', t!.expiresAt]]);
    expect(JSON.parse((await cli(['token', 'list', '--config', config, '--json'])).stdout)).toMatchObject([{ role: 'Read er', scope: '/ x\nID' }]);
  });

  it('through --host, token list prints what the local one prints of the same store: the same table, and with --json the same array', async () => {
    const h = await startHost({ config: path.join(tmp, 'served') });
    try {
      const { token } = await h.token('Auditor', '/', 'lister', null);
      await h.token('Operator', '/partitions/web', 'exactly-twenty-chars');
      const tokenFile = path.join(tmp, 'lister.token');
      writeFileSync(tokenFile, token);
      const remote = ['--host', h.running.url, '--token-file', tokenFile, '--ca', h.running.caFile!, 'token', 'list'];
      for (const json of [[], ['--json']]) {
        const local = await cli(['token', 'list', '--config', h.config, ...json]);
        expect(local).toMatchObject({ code: 0, stderr: '' });
        const through = await cli([...remote, ...json]);
        expect(through).toMatchObject({ code: 0, stderr: '', stdout: local.stdout });
      }
      const listed = JSON.parse((await cli([...remote, '--json'])).stdout) as Listed[];
      expect(listed.map((t) => t.name)).toEqual(['lister', 'exactly-twenty-chars']);
      for (const t of listed) expect(Object.keys(t).sort()).toEqual([...documentedFields].sort());
    } finally {
      await h.close();
    }
  });
});
