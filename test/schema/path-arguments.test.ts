/**
 * The public entry points that read or open something by path refuse a path that is not one (a
 * number, null, an object, an empty string) with ERR_INVALID_ARGUMENT naming the argument and
 * what was given, before touching the file system. `loadManifest(5)` said "cannot be read:
 * ENOENT ... open '5'" (it took 5 for the file '5'), `readAuditRecords(5)` and `openAuditLog({
 * dataDir: 5 })` threw Node's untyped TypeError, `verifyAuditLog(5)` and `writeKeyPair(k, 5, 6)`
 * were ERR_STORAGE (a host failure, exit 74) for what is the caller's mistake.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest, openAuditLog, Policy, readAuditRecords, verifyAuditLog, writeKeyPair, generateKeyPair } from '../../host/index.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'wv-path-args-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BAD: [unknown, string][] = [
  [5, 'the number 5'],
  [null, 'null'],
  [undefined, 'nothing'],
  [{}, 'an object'],
  ['', 'the string ""'],
  [Buffer.from('x.json'), 'a Buffer of 6 bytes'],
];

/** The error `f` throws or rejects with (sync throws count: every entry point must refuse, not crash). */
async function refusal(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (error) {
    return error;
  }
  return null;
}

const entryPoints: [string, string, (v: never) => unknown][] = [
  ['loadManifest', 'loadManifest: file: expected a path (a non-empty string) or a URL', (v) => loadManifest(v)],
  ['Policy.fromFile', 'Policy.fromFile: file: expected a path (a non-empty string)', (v) => Policy.fromFile(v)],
  ['verifyAuditLog', 'verifyAuditLog: dir: expected a path (a non-empty string)', (v) => verifyAuditLog(v)],
  ['readAuditRecords', 'readAuditRecords: dir: expected a path (a non-empty string)', (v) => readAuditRecords(v)],
  ['openAuditLog', 'openAuditLog options: dataDir: expected a path (a non-empty string)', (v) => openAuditLog({ dataDir: v })],
  ['writeKeyPair', 'writeKeyPair: secretFile: expected a path (a non-empty string)', (v) => writeKeyPair(generateKeyPair(), v, path.join(dir, 'k.pub'))],
];

describe('a path argument that is not a path is ERR_INVALID_ARGUMENT naming it', () => {
  for (const [name, expects, call] of entryPoints) {
    it(name, async () => {
      const cwd = process.cwd();
      process.chdir(dir);
      try {
        for (const [value, shown] of BAD) {
          const error = await refusal(() => call(value as never));
          expect(error, `${name}(${shown})`).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: `${expects}, got ${shown}` });
        }
        // Nothing was made or read under the names the values would stringify to.
        for (const n of ['5', 'null', 'undefined', '[object Object]', 'x.json']) expect(existsSync(path.join(dir, n)), n).toBe(false);
      } finally {
        process.chdir(cwd);
      }
    });
  }

  it('the other half of each: openAuditLog of something not an object, its dir and keyDir, writeKeyPair’s publicFile', async () => {
    expect(await refusal(() => openAuditLog(5 as never))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'openAuditLog options: expected an object, got the number 5' });
    expect(await refusal(() => openAuditLog({ dataDir: dir, dir: 5 } as never))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'openAuditLog options: dir: expected a path (a non-empty string), got the number 5' });
    expect(await refusal(() => openAuditLog({ dataDir: dir, keyDir: '' }))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'openAuditLog options: keyDir: expected a path (a non-empty string), got the string ""' });
    expect(await refusal(() => writeKeyPair(generateKeyPair(), path.join(dir, 'k.key'), 6 as never))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'writeKeyPair: publicFile: expected a path (a non-empty string), got the number 6' });
    expect(existsSync(path.join(dir, 'k.key'))).toBe(false);
  });

  it('real paths still load: a manifest by path and by URL, a policy file, an audit log', async () => {
    writeFileSync(path.join(dir, 'app.json'), JSON.stringify({ module: 'app.wasm' }));
    for (const f of [path.join(dir, 'app.json'), pathToFileURL(path.join(dir, 'app.json'))]) expect((await loadManifest(f)).name).toBe('app');
    writeFileSync(path.join(dir, 'policy.json'), JSON.stringify({ modules: {} }));
    expect(Policy.fromFile(path.join(dir, 'policy.json'))).toBeInstanceOf(Policy);
    const { log, dir: auditDir } = openAuditLog({ dataDir: path.join(dir, 'data') });
    await log.record({ actor: 't', action: 'test.path', target: '/', outcome: 'success' });
    await log.close();
    expect(verifyAuditLog(auditDir).ok).toBe(true);
    expect(readAuditRecords(auditDir).records.some((r) => r.action === 'test.path')).toBe(true);
  });
});
