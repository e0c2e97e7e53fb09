/**
 * The names of the management plane at their length limit and one past it: a token's name, its
 * role's name and its scope's partition or segment name are MAX_NAME_LENGTH (a partition's own
 * limit, host/schema/patterns.ts), a certificate's name MAX_CERT_NAME_LENGTH (X.509's bound on a
 * common name). Each refusal is ERR_INVALID_ARGUMENT naming the value, and writes nothing.
 */
import { X509Certificate } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureSelfSigned, issueClientCert } from '../../host/mgmt/tls.ts';
import { TokenStore } from '../../host/mgmt/tokens.ts';
import { MAX_CERT_NAME_LENGTH, MAX_NAME_LENGTH } from '../../host/schema/kinds.ts';
import { tempDir } from './harness.ts';

describe('management names at their length limit', () => {
  it('the limits are the documented 64', () => {
    expect([MAX_NAME_LENGTH, MAX_CERT_NAME_LENGTH]).toEqual([64, 64]);
  });

  it('a token: name, role and scope name of 64 characters are taken; 65 are refused, naming the value', async () => {
    const dir = tempDir();
    const store = new TokenStore(dir);
    await store.load();
    const at = 'n'.repeat(MAX_NAME_LENGTH);
    const past = 'n'.repeat(MAX_NAME_LENGTH + 1);
    const base = { name: 'ci', role: 'Reader', scope: '/', lifetimeMs: 60_000, createdBy: 'test' };
    for (const [field, value, message] of [
      ['name', past, `token name "${past}" is not valid: use 1-64 letters, digits, '.', '_' or '-'`],
      ['role', past, `token role "${past}" is not valid: a role name is 1-64 letters, digits, '.', '_' or '-'`],
      ['scope', `/partitions/${past}`, `/partitions/${past}`],
      ['scope', `/segments/${past}`, `/segments/${past}`],
    ] as const) {
      await expect(store.create({ ...base, [field]: value })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining(message) });
    }
    expect(readdirSync(dir)).toEqual([]);
    for (const [field, value] of [['name', at], ['role', at], ['scope', `/partitions/${at}`], ['scope', `/segments/${at}`]] as const) {
      const { record } = await store.create({ ...base, [field]: value });
      expect(record[field]).toBe(value);
    }
    // Each reads back from its file (the file's schema takes the same lengths).
    const again = new TokenStore(dir);
    const reported: string[] = [];
    await again.load((f, why) => reported.push(`${f}: ${why}`));
    expect(reported).toEqual([]);
    expect(again.list().map((t) => [t.name, t.role, t.scope]).sort()).toEqual(store.list().map((t) => [t.name, t.role, t.scope]).sort());
    store.close();
    again.close();
  });

  it('a certificate: a name of 64 characters is issued as the CN; 65 is refused, naming it', async () => {
    const dir = path.join(tempDir(), 'tls');
    await ensureSelfSigned(dir);
    const at = `${'c'.repeat(MAX_CERT_NAME_LENGTH - 2)} x`;
    const { cert } = await issueClientCert(dir, at);
    expect(new X509Certificate(cert).subject).toBe(`CN=${at}`);
    const past = 'c'.repeat(MAX_CERT_NAME_LENGTH + 1);
    await expect(issueClientCert(dir, past)).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: `certificate name "${past}" is not valid: 1-64 letters, digits, '.', '_', '-' or spaces`,
    });
  });
});
