/**
 * SIGKILL of a host process (a Hypervisor recording through hv.audit) in the middle of heavy logging: nothing acknowledged is lost,
 * at most BATCH_RECORDS − 1 noted records are (the documented bound), and the chain verifies —
 * before the log is reopened (a torn last line is reported as crash residue) and after.
 *
 * What SIGKILL tests: writes cut short at any point, and the process's own buffering. It does not
 * cut the power: data in the page cache survives a killed process, so the fsync half of the bound
 * rests on the platform's fsync (docs/SECURITY.md says so).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AuditLog, BATCH_RECORDS, verifyAuditLog } from '../../host/security/audit.ts';
import { parseSecretKey } from '../../host/security/keys.ts';
import { guest } from '../helpers.ts';

async function killDuringLogging(killAfterMs: number) {
  const dir = mkdtempSync(path.join(tmpdir(), 'wv-audit-crash-'));
  const child = spawn(process.execPath, [fileURLToPath(new URL('./audit-crash-child.mjs', import.meta.url)), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let killed = false;
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (!killed && out.includes('ready\n')) {
        killed = true;
        setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      }
    });
    child.on('exit', () => resolve());
    child.on('error', reject);
  });
  const numbers = (word: string) => [...out.matchAll(new RegExp(`^${word} (\\d+)$`, 'gm'))].map((m) => Number(m[1]));
  const accepted = Math.max(0, ...numbers('accepted'));
  const durable = Math.max(0, ...numbers('durable'));
  const keys = path.join(dir, 'keys');
  const macKey = new Uint8Array(readFileSync(path.join(keys, 'audit.key')));
  const key = parseSecretKey(new Uint8Array(readFileSync(path.join(keys, 'host.key'))), 'host.key');
  // No checkpoint yet (killed within the first second) means no anchor yet.
  const head = () => {
    try {
      return readFileSync(path.join(keys, 'audit.head'), 'utf8');
    } catch {
      return null;
    }
  };
  const v = verifyAuditLog(path.join(dir, 'audit'), { macKey, publicKey: key.publicKey, head: head() });
  return { dir, macKey, key, accepted, durable, v, head };
}

describe('audit log: SIGKILL during heavy logging', () => {
  guest('hello'); // the child imports dist/: fail clearly when the build is missing
  for (const after of [150, 400, 900]) {
    it(`killed after ${after} ms: the chain verifies, nothing acknowledged is lost, at most the bound is`, async () => {
      const { dir, macKey, key, accepted, durable, v, head } = await killDuringLogging(after);
      expect(v.ok, JSON.stringify(v.first)).toBe(true);
      if (after >= 400) expect(accepted).toBeGreaterThan(0);
      // n counts the child's own records; the log holds more (audit.open, key creation, the
      // partition's, checkpoints), so lastSeq is at least the records accepted before the last
      // "accepted" line, less what the bound allows to be unsynced.
      expect(v.lastSeq).toBeGreaterThanOrEqual(durable);
      expect(v.lastSeq).toBeGreaterThanOrEqual(accepted - BATCH_RECORDS);
      // Reopening cuts a torn tail, records that, and continues the chain.
      const log = AuditLog.open({ dir: path.join(dir, 'audit'), macKey, signingKey: key, headFile: path.join(dir, 'keys', 'audit.head') });
      await log.record({ action: 'test.after', outcome: 'success' });
      await log.close();
      const again = verifyAuditLog(path.join(dir, 'audit'), { macKey, publicKey: key.publicKey, head: head() });
      expect(again.ok, JSON.stringify(again.first)).toBe(true);
      expect(again.notes.join(' ')).not.toMatch(/incomplete record/);
    });
  }
});
