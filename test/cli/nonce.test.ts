/**
 * `--nonce` wherever it is taken (`run --attest`, `attest verify`; the remote `attest` is in
 * mgmt-usage.test.ts) holds 1 to 64 bytes of hex. An empty one (an unset "$NONCE") is refused by
 * its flag, as every empty value is (exit 2): to the library '' is no nonce, so `attest verify
 * --nonce ""` listed "nonce" among the checks it passed while it had checked none, and `run
 * --nonce ""` wrote a report any replay matches. Both bounds are taken, one past each refused;
 * through the real CLI.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { guest } from '../helpers.ts';
import { cli } from './harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-nonce-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const dataDir = path.join(tmp, 'wv');
const report = path.join(tmp, 'report.json');
const hostPub = path.join(tmp, 'host.pub');

/** The verdict (a value past 80 characters is shown cut, as every quoted value). */
const refusal = (nonce: string): string => `ERR_INVALID_ARGUMENT: --nonce: expected hex of 1 to 64 bytes, got ${nonce.length > 80 ? `${JSON.stringify(nonce.slice(0, 80))}… (${nonce.length - 80} more characters)` : JSON.stringify(nonce)}\n`;

describe('--nonce: 1 to 64 bytes of hex, an empty one refused by its flag', () => {
  it('run --attest refuses an empty, odd or 65-byte nonce before anything is run or written', async () => {
    for (const nonce of ['', 'a', '00'.repeat(65), 'zz']) {
      const r = await cli(['run', '--data-dir', dataDir, '--attest', report, '--nonce', nonce, guest('hello')], { cwd: tmp });
      expect(r, nonce).toMatchObject({ code: 2, stdout: '', stderr: refusal(nonce) });
    }
    // --nonce= is the same empty value.
    expect(await cli(['run', '--data-dir', dataDir, '--attest', report, '--nonce=', guest('hello')], { cwd: tmp })).toMatchObject({ code: 2, stderr: refusal('') });
  });

  it('attest verify refuses an empty nonce (it said "verified: …, nonce" having checked none); 1 and 64 bytes verify, and a different nonce fails', async () => {
    for (const nonce of ['ab', 'AB'.repeat(64)]) {
      const made = await cli(['run', '--data-dir', dataDir, '--attest', report, '--nonce', nonce, guest('hello')], { cwd: tmp });
      expect(made.code, made.stderr).toBe(0);
      expect((await cli(['attest', 'key', '--data-dir', dataDir, '--out', hostPub], { cwd: tmp })).code).toBe(0);
      const ok = await cli(['attest', 'verify', report, '--key', hostPub, '--nonce', nonce], { cwd: tmp });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/^host report verified: format, key, signature, nonce, /);
      expect(await cli(['attest', 'verify', report, '--key', hostPub, '--nonce', ''], { cwd: tmp })).toMatchObject({ code: 2, stdout: '', stderr: refusal('') });
      expect(await cli(['attest', 'verify', report, '--key', hostPub, '--nonce', '00'.repeat(65)], { cwd: tmp })).toMatchObject({ code: 2, stdout: '', stderr: refusal('00'.repeat(65)) });
      const other = await cli(['attest', 'verify', report, '--key', hostPub, '--nonce', 'cd'], { cwd: tmp });
      expect(other.code).toBe(125);
      expect(other.stderr).toMatch(/^ERR_INTEGRITY: attestation nonce check failed/);
    }
  });
});
