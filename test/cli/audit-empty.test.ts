/**
 * `audit verify` of a log with no record: a tamper-evident log whose records were all deleted
 * (and its anchor with them) must not read as verified. It is refused with ERR_INTEGRITY (exit
 * 125, the evidence does not verify) naming the folder and what it lacks, unless `--allow-empty`
 * says an empty log is what the caller expects; with the anchor left, the deletion is named by the
 * anchor check, `--allow-empty` or not. It exited 0, "audit log verified: 0 records". Through the
 * real CLI, on a log a real run wrote.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { guest } from '../helpers.ts';
import { cli } from './harness.ts';

vi.setConfig({ testTimeout: 90_000 });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'wv-audit-empty-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A data directory whose audit log a real `run --audit` wrote. */
async function audited(name: string): Promise<{ dataDir: string; log: string; keys: string }> {
  const dataDir = path.join(tmp, name);
  const r = await cli(['run', '--audit', '--data-dir', dataDir, guest('hello')], { cwd: tmp });
  expect(r.code, r.stderr).toBe(0);
  const log = path.join(dataDir, 'audit');
  expect(readdirSync(log).length).toBeGreaterThan(0);
  return { dataDir, log, keys: path.join(dataDir, 'keys') };
}

describe('audit verify: a log with no record is not "verified"', () => {
  it('an empty folder without an anchor: ERR_INTEGRITY (125) naming it, unless --allow-empty (0)', async () => {
    const empty = path.join(tmp, 'empty');
    mkdirSync(empty);
    const r = await cli(['audit', 'verify', empty], { cwd: tmp });
    expect(r).toMatchObject({ code: 125, stdout: '' });
    expect(r.stderr).toBe(
      `ERR_INTEGRITY: audit log ${empty} holds no record (no audit file; no anchor, audit.head, used from ${path.join(tmp, 'keys')}): a log whose records were all deleted reads the same; give --allow-empty if an empty log is expected; see wasmvisor audit verify --help\n`,
    );
    const allowed = await cli(['audit', 'verify', empty, '--allow-empty'], { cwd: tmp });
    expect(allowed).toMatchObject({ code: 0, stderr: '' });
    expect(allowed.stdout).toMatch(/^audit log verified: 0 records in 0 files \(chain\)\n/);
  });

  it('every record of a real log deleted, its anchor too: refused; the anchor left: the anchor check fails, --allow-empty or not', async () => {
    const { dataDir, log, keys } = await audited('deleted');
    expect((await cli(['audit', 'verify', '--data-dir', dataDir], { cwd: tmp })).code).toBe(0);
    for (const f of readdirSync(log)) rmSync(path.join(log, f));
    for (const extra of [[], ['--allow-empty']]) {
      const anchored = await cli(['audit', 'verify', '--data-dir', dataDir, ...extra], { cwd: tmp });
      expect(anchored.code, extra.join(' ')).toBe(125);
      expect(anchored.stderr).toMatch(/^ERR_INTEGRITY: audit log: .*the log was deleted\n$/);
    }
    rmSync(path.join(keys, 'audit.head'));
    const r = await cli(['audit', 'verify', '--data-dir', dataDir], { cwd: tmp });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^ERR_INTEGRITY: audit log .* holds no record \(no audit file; no anchor, audit\.head, used from .*\): a log whose records were all deleted reads the same; give --allow-empty/);
  });

  it('files emptied of their records, no anchor: refused naming the files', async () => {
    const { dataDir, log, keys } = await audited('emptied');
    rmSync(path.join(keys, 'audit.head'));
    const files = readdirSync(log);
    for (const f of files) truncateSync(path.join(log, f), 0);
    const r = await cli(['audit', 'verify', '--data-dir', dataDir], { cwd: tmp });
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`holds no record (${files.length} file${files.length === 1 ? '' : 's'} without a record; no anchor`);
    expect((await cli(['audit', 'verify', '--data-dir', dataDir, '--allow-empty'], { cwd: tmp })).code).toBe(0);
  });

  it('a log with records verifies as before, --allow-empty or not', async () => {
    const { dataDir } = await audited('kept');
    for (const extra of [[], ['--allow-empty']]) {
      const r = await cli(['audit', 'verify', '--data-dir', dataDir, ...extra], { cwd: tmp });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^audit log verified: [1-9]\d* records in 1 file \(MACs, chain, \d+ checkpoint signatures, anchor\)\n/);
    }
  });
});
