/**
 * What the session-14 audit of the CLI found beyond the listed defects, each at its edge, through
 * the real CLI: empty values that were taken as a seed or a filter of nothing (an unset "$VAR"),
 * a flag ignored where it does not apply (`sign --delimit --detached`), a remote name refused by
 * the host's body path instead of its flag, and a remote host's text printed raw to a terminal
 * (`ps`'s table: a name with an escape sequence or a newline broke or recoloured the table).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { guest } from '../helpers.ts';
import { cli } from './harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-cli-edges-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const tokenFile = path.join(tmp, 'token');
writeFileSync(tokenFile, `wvt_${'0'.repeat(16)}_${'A'.repeat(43)}\n`);
const remote = ['--host', 'https://127.0.0.1:1', '--token-file', tokenFile, '--fingerprint', 'AA'.repeat(32)];

describe.concurrent('empty values and flags that do not apply: refused by their flag (exit 2)', () => {
  const cases: [string[], string][] = [
    // A seed of nothing was a fixed stream the user never chose.
    [['run', '--seed', '', guest('hello')], '--seed: expected a non-empty value, got ""'],
    [['run', '--seed=', guest('hello')], '--seed: expected a non-empty value, got ""'],
    // A filter of nothing matched nothing, and show printed nothing, exit 0.
    [['audit', 'show', tmp, '--partition', ''], '--partition: expected a non-empty value, got ""'],
    [['audit', 'show', tmp, '--action', ''], '--action: expected a non-empty value, got ""'],
    [[...remote, 'audit', '--partition', ''], '--partition: expected a non-empty value, got ""'],
    [[...remote, 'audit', '--limit', '5', '--actor='], '--actor: expected a non-empty value, got ""'],
    // The remote run's --name, checked as the local run's (the host said `body: spec.name: …`).
    [[...remote, 'run', guest('hello'), '--name', ''], `--name: expected 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got ""`],
    [[...remote, 'run', guest('hello'), '--name', 'a b'], `--name: expected 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got "a b"`],
    // --delimit adds sections to the module, which --detached leaves as it is: it was ignored.
    [['sign', guest('hello'), '--key', 'k.key', '--detached', 's.sig', '--delimit'], '--delimit goes with an embedded signature (it adds signature_delimiter sections to the module, which --detached leaves as it is): give --delimit or --detached, not both'],
    [['sign', guest('hello'), '--key', 'k.key', '--key-id', ''], '--key-id: expected 1 to 256 bytes of hex, or none, got ""'],
    // serve's TLS files: `cannot read TLS file : ENOENT` named neither the flag nor a file.
    [['serve', '--config', 'h', '--port', '0', '--tls-cert', '', '--tls-key', 'k.pem'], '--tls-cert: expected a file, got ""'],
    [['serve', '--config', 'h', '--port', '0', '--tls-cert', 'c.pem', '--tls-key='], '--tls-key: expected a file, got ""'],
    [['serve', '--config', 'h', '--port', '0', '--tls-self-signed', '--client-ca', ''], '--client-ca: expected a file, got ""'],
  ];
  for (const [args, verdict] of cases) {
    it(args.map((a) => (a === tokenFile ? 't' : a.length > 40 ? '…' : a)).join(' '), async () => {
      expect(await cli(args, { cwd: tmp })).toMatchObject({ code: 2, stdout: '', stderr: `ERR_INVALID_ARGUMENT: ${verdict}\n` });
    });
  }

  it('the values next to the edge are taken: a one-character seed runs, --delimit alone signs', async () => {
    expect((await cli(['run', '--seed', 'x', guest('hello')], { cwd: tmp })).code).toBe(0);
    expect((await cli(['keygen', 'k'], { cwd: tmp })).code).toBe(0);
    const signed = await cli(['sign', guest('hello'), '--key', 'k.key', '--out', 'h.wasm', '--delimit'], { cwd: tmp });
    expect(signed.code, signed.stderr).toBe(0);
  });
});

describe('the remote ps table, audit lines and token create escape the host\'s text', () => {
  it('a partition name or state with control characters stays one escaped row', async () => {
    const hostile = { name: 'evil\x1b[31m\nFAKE', kind: 'command', state: 'running\r', restartPolicy: 'never', restarts: 0, measurement: 'ab\x07'.repeat(5) };
    const server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      const answers: Record<string, unknown> = {
        '/partitions': { partitions: [hostile] },
        '/audit': { durable: true, records: [{ seq: '1\x1b]0;pwned\x07', time: 't', actor: 'a', action: 'x', target: 'y', outcome: 'success', reason: 'r' }] },
        '/tokens': { token: 'wvt_x', id: 'id\x1b[2J', expiresAt: '2030\n' },
      };
      res.end(JSON.stringify(answers[req.url ?? ''] ?? {}));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const r = await cli(['--host', url, '--token-file', tokenFile, 'ps'], { cwd: tmp });
      expect(r.code, r.stderr).toBe(0);
      const rows = r.stdout.split('\n');
      expect(rows).toHaveLength(3);
      expect(rows[1]).toMatch(/^evil\\x1b\[31m\\nFAKE +command +running\\r +never +0 +ab\\x07ab\\x07ab/);
      expect(r.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
      // The audit lines' seq and the token's id and expiry too (they were printed raw).
      const audit = await cli(['--host', url, '--token-file', tokenFile, 'audit'], { cwd: tmp });
      expect(audit).toMatchObject({ code: 0, stdout: '1\\x1b]0;pwned\\x07 t a x y success r\n' });
      const created = await cli(['--host', url, '--token-file', tokenFile, 'token', 'create', '--name', 'n', '--role', 'Owner', '--scope', '/'], { cwd: tmp });
      expect(created).toMatchObject({ code: 0, stdout: 'wvt_x\n', stderr: 'token id\\x1b[2J, expires 2030\\n; shown only this once\n' });
    } finally {
      server.close();
    }
  });
});
