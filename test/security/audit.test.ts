/**
 * The audit log: chain, MACs, signed checkpoints and the anchor; every kind of tampering named at
 * the first bad record; rotation; the durability bound; and what the hypervisor and storage record.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/hypervisor.ts';
import { InvalidArgumentError, StorageError, WasmvisorError } from '../../host/errors.ts';
import { AuditLog, BATCH_RECORDS, WRITE_RECORDS, readAuditRecords, verifyAuditFiles, verifyAuditLog, type AuditRecord, type AuditSink, type AuditVerification } from '../../host/security/audit.ts';
import { AUDIT_KEY_FILE, keysDir } from '../../host/security/host-keys.ts';
import { generateKeyPair } from '../../host/security/keys.ts';
import { guest, runToExit } from '../helpers.ts';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'wv-audit-'));
const signing = generateKeyPair();
const macKey = new Uint8Array(32).fill(7);

function open(dir: string, extra: Partial<Parameters<typeof AuditLog.open>[0]> = {}) {
  return AuditLog.open({ dir: path.join(dir, 'audit'), macKey, signingKey: signing, headFile: path.join(dir, 'keys', 'audit.head'), ...extra });
}
function verify(dir: string, keys: { mac?: boolean; pub?: boolean; head?: boolean } = { mac: true, pub: true, head: true }): AuditVerification {
  let head: string | null = null;
  try {
    head = keys.head ? readFileSync(path.join(dir, 'keys', 'audit.head'), 'utf8') : null;
  } catch {
    head = null;
  }
  return verifyAuditLog(path.join(dir, 'audit'), { macKey: keys.mac ? macKey : null, publicKey: keys.pub ? signing.publicKey : null, head });
}
const file1 = (dir: string) => path.join(dir, 'audit', 'audit-000001.jsonl');
const lines = (f: string) => readFileSync(f, 'utf8').split('\n').filter(Boolean);
const write = (f: string, ls: string[]) => writeFileSync(f, ls.join('\n') + '\n');

async function sample(dir: string, n = 10): Promise<void> {
  const log = open(dir);
  for (let i = 0; i < n; i++) await log.record({ action: 'test.step', target: `t${i}`, outcome: i % 3 ? 'success' : 'denied', reason: `step ${i}`, details: { i } });
  await log.close();
}

describe('writing and verifying', () => {
  it('records chain, carry MACs, end with a signed checkpoint; files 0600 in a 0700 directory', async () => {
    const dir = tmp();
    await sample(dir);
    const v = verify(dir);
    expect(v).toMatchObject({ ok: true, files: 1, macsChecked: true, signaturesChecked: true, anchorChecked: true, uncheckpointed: 0 });
    expect(v.records).toBe(13); // open, 10 steps, close, checkpoint
    const recs = lines(file1(dir)).map((l) => JSON.parse(l) as AuditRecord);
    expect(recs.map((r) => r.seq)).toEqual(recs.map((_, i) => i + 1));
    expect(recs[0]!.prev).toBe('0'.repeat(64));
    expect(Object.keys(recs[1]!)).toEqual(['seq', 'time', 'actor', 'action', 'target', 'outcome', 'reason', 'details', 'prev', 'mac']);
    expect(recs.at(-1)!.action).toBe('audit.checkpoint');
    expect(statSync(file1(dir)).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, 'audit')).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, 'keys', 'audit.head')).mode & 0o777).toBe(0o600);
  });

  it('record() refuses an entry with a key it does not know, naming it, and writes nothing for it', async () => {
    const dir = tmp();
    const log = open(dir);
    const entry = { action: 'test.step', outcome: 'success', reason: 'r', detials: { i: 1 } } as unknown as Parameters<typeof log.record>[0];
    await expect(log.record(entry)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'audit entry: detials: unknown key; did you mean details?' });
    await log.record({ action: 'test.step', outcome: 'success', reason: 'r', code: 'ERR_X', details: { i: 1 } });
    await log.close();
    expect(lines(file1(dir)).map((l) => (JSON.parse(l) as AuditRecord).action)).toEqual(['audit.open', 'test.step', 'audit.close', 'audit.checkpoint']);
  });

  it('continues the chain when reopened, and after a torn last line (a crash), which it cuts and records', async () => {
    const dir = tmp();
    await sample(dir, 3);
    appendFileSync(file1(dir), '{"seq":7,"time":"20'); // a write cut short by a crash
    expect(verify(dir).ok).toBe(true);
    expect(verify(dir).notes.join(' ')).toMatch(/ends with an incomplete record/);
    const log = open(dir);
    await log.record({ action: 'test.after', outcome: 'success' });
    await log.close();
    const v = verify(dir);
    expect(v.ok).toBe(true);
    const recs = readAuditRecords(path.join(dir, 'audit')).records;
    expect(recs.map((r) => r.action)).toContain('audit.recovered');
    expect(recs.find((r) => r.action === 'audit.recovered')!.details).toMatchObject({ droppedBytes: 19 });
  });

  it('rotates by size; the chain continues across files; a deleted file is found', async () => {
    const dir = tmp();
    const log = open(dir, { maxFileBytes: 4096 });
    for (let i = 0; i < 60; i++) await log.record({ action: 'test.fill', target: 'x'.repeat(100), outcome: 'success', reason: 'filling' });
    await log.close();
    const files = readdirSync(path.join(dir, 'audit')).sort();
    expect(files.length).toBeGreaterThan(2);
    expect(verify(dir)).toMatchObject({ ok: true, files: files.length });
    unlinkSync(path.join(dir, 'audit', files[1]!));
    const v = verify(dir);
    expect(v.ok).toBe(false);
    expect(v.first).toMatchObject({ file: files[2], line: 1 });
    expect(v.first!.problem).toMatch(/missing \(deleted\)/);
  });
});

describe('tampering, each named at the first bad record', () => {
  async function tampered(change: (ls: string[]) => string[], keys?: Parameters<typeof verify>[1]): Promise<AuditVerification> {
    const dir = tmp();
    await sample(dir);
    write(file1(dir), change(lines(file1(dir))));
    return verify(dir, keys);
  }

  it('an edited record fails its MAC; without the key, the next record does not chain', async () => {
    const edit = (ls: string[]) => ls.map((l, i) => (i === 4 ? l.replace('"step 3"', '"step X"') : l));
    const v = await tampered(edit);
    expect(v.first).toMatchObject({ line: 5, seq: 5 });
    expect(v.first!.problem).toMatch(/MAC does not verify: the record was edited/);
    const nokey = await tampered(edit, { pub: true, head: true });
    expect(nokey.first).toMatchObject({ line: 6, seq: 6 });
    expect(nokey.first!.problem).toMatch(/does not chain to the record before it/);
  });

  it('a deleted record', async () => {
    const v = await tampered((ls) => ls.filter((_, i) => i !== 3));
    expect(v.first).toMatchObject({ line: 4, seq: 5 });
    expect(v.first!.problem).toMatch(/has seq 5 where 4 was expected: record 4 missing \(deleted\)/);
  });

  it('an inserted record (a copy, or a forged one)', async () => {
    const copy = await tampered((ls) => [...ls.slice(0, 3), ls[2]!, ...ls.slice(3)]);
    expect(copy.first).toMatchObject({ line: 4, seq: 3 });
    expect(copy.first!.problem).toMatch(/out of order or inserted/);
    const forged = await tampered((ls) => {
      const r = JSON.parse(ls[2]!) as Record<string, unknown>;
      r['reason'] = 'forged';
      return [...ls.slice(0, 3), JSON.stringify(r), ...ls.slice(3)];
    });
    expect(forged.first!.line).toBe(4);
  });

  it('reordered records', async () => {
    const v = await tampered((ls) => {
      const out = [...ls];
      [out[5], out[6]] = [out[6]!, out[5]!];
      return out;
    });
    expect(v.first).toMatchObject({ line: 6, seq: 7 });
    expect(v.first!.problem).toMatch(/has seq 7 where 6 was expected/);
  });

  it('a truncated tail: caught by the anchor beside the key; without it, a note says it would not show', async () => {
    const v = await tampered((ls) => ls.slice(0, 8));
    expect(v.ok).toBe(false);
    expect(v.first!.problem).toMatch(/the log ends at seq 8, but the anchor \(audit.head\) records checkpoint seq 13: records were removed from the end \(truncated\)/);
    const blind = await tampered((ls) => ls.slice(0, 8), { mac: true, pub: true, head: false });
    expect(blind.ok).toBe(true);
    expect(blind.notes.join(' ')).toMatch(/a truncation of the tail would not show/);
    const gone = tmp();
    await sample(gone);
    unlinkSync(file1(gone));
    expect(verify(gone).first!.problem).toMatch(/the log was deleted/);
  });

  it('a checkpoint signed by another key, and a line that is not JSON or too long', async () => {
    const dir = tmp();
    await sample(dir);
    const other = verifyAuditLog(path.join(dir, 'audit'), { macKey, publicKey: generateKeyPair().publicKey });
    expect(other.first!.problem).toMatch(/checkpoint's signature does not verify/);
    const notJson = await tampered((ls) => [...ls.slice(0, 2), 'hello', ...ls.slice(2)]);
    expect(notJson.first).toMatchObject({ line: 3, problem: 'not JSON' });
    const long = await tampered((ls) => [...ls.slice(0, 2), 'x'.repeat(70_000), ...ls.slice(2)]);
    expect(long.first!.problem).toMatch(/longer than 65536 bytes/);
    const shape = await tampered((ls) => [...ls.slice(0, 2), '{"seq":3}', ...ls.slice(2)]);
    expect(shape.first!.problem).toMatch(/not an audit record: time: is required/);
  });

  it('a file in the log that is a FIFO, a directory or a device: verify names it, show and reopening refuse it by name; none is waited on', async () => {
    for (const [make, what] of [
      [(f: string) => execFileSync('mkfifo', [f]), 'a FIFO'],
      [(f: string) => mkdirSync(f), 'a directory'],
      [(f: string) => symlinkSync('/dev/zero', f), 'a device'],
    ] as const) {
      const dir = tmp();
      await sample(dir, 3);
      // The next file of the log: what a rotation would have made.
      const next = path.join(dir, 'audit', 'audit-000002.jsonl');
      make(next);
      const v = verify(dir);
      expect(v.ok).toBe(false);
      expect(v.first).toEqual({ file: 'audit-000002.jsonl', line: 0, seq: v.lastSeq + 1, problem: `audit file ${next} is ${what}, not a regular file` });
      expect(() => readAuditRecords(path.join(dir, 'audit'))).toThrow(new StorageError(`audit file ${next} is ${what}, not a regular file`));
      expect(() => open(dir)).toThrow(new StorageError(`audit file ${next} is ${what}, not a regular file`));
    }
  });

  it('hostile files as bytes: every outcome is a verification result', () => {
    let seed = 99;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 300; i++) {
      const bytes = new Uint8Array(Math.floor(rnd() * 400));
      for (let j = 0; j < bytes.length; j++) bytes[j] = rnd() < 0.1 ? 10 : Math.floor(rnd() * 256);
      const v = verifyAuditFiles([{ name: 'audit-000001.jsonl', index: 1, read: () => bytes }], { macKey });
      expect(typeof v.ok).toBe('boolean');
    }
  });
});

describe('durability', () => {
  it('note() keeps at most BATCH_RECORDS − 1 records unsynced; record() resolves once durable', async () => {
    const dir = tmp();
    const log = open(dir);
    for (let i = 1; i < BATCH_RECORDS; i++) {
      log.note({ action: 'test.note', outcome: 'success' });
      expect(log.unsynced).toBe(i);
    }
    log.note({ action: 'test.note', outcome: 'success' });
    expect(log.unsynced).toBe(0); // the 256th forced the batch out, synchronously
    log.note({ action: 'test.note', outcome: 'success' });
    const rec = await log.record({ action: 'test.record', outcome: 'success' });
    expect(log.unsynced).toBe(0);
    expect(lines(file1(dir)).map((l) => (JSON.parse(l) as AuditRecord).seq)).toContain(rec.seq);
    await log.close();
  });

  it('WRITE_RECORDS noted records are written at once and fsynced off the event loop, in order', async () => {
    const dir = tmp();
    // A frozen clock: no time-due checkpoint joins the batch, however slowly this runs.
    const log = open(dir, { now: () => 1_700_000_000_000 });
    const before = lines(file1(dir)).length;
    for (let i = 1; i < WRITE_RECORDS; i++) log.note({ action: 'test.note', outcome: 'success', details: { i } });
    expect(lines(file1(dir)).length).toBe(before); // still waiting for their batch
    log.note({ action: 'test.note', outcome: 'success', details: { i: WRITE_RECORDS } });
    // Written (a killed process would not lose them), and the fsync runs in libuv's pool: this
    // thread did not wait for it, so they still count as unsynced.
    expect(lines(file1(dir)).length).toBe(before + WRITE_RECORDS);
    expect(log.unsynced).toBe(WRITE_RECORDS);
    // Noting on while it runs: still in order, still within the bound.
    for (let i = 1; i <= 10; i++) log.note({ action: 'test.more', outcome: 'success', details: { i } });
    const deadline = Date.now() + 5000;
    while (log.unsynced > 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(log.unsynced).toBeLessThanOrEqual(10);
    await log.flush();
    expect(log.unsynced).toBe(0);
    const seqs = lines(file1(dir)).map((l) => (JSON.parse(l) as AuditRecord).seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    await log.close();
    expect(verify(dir).ok).toBe(true);
  });

  it('rotation while an fsync runs off the event loop: the chain continues, every file is closed', async () => {
    const dir = tmp();
    const fds = () => readdirSync('/proc/self/fd').length;
    const fdsBefore = fds();
    // Files of a few batches: a batch of WRITE_RECORDS starts an fsync in libuv's pool, and while
    // it runs (no await in between) the bound's synchronous fsync at BATCH_RECORDS rotates the file under it.
    const log = open(dir, { maxFileBytes: 100_000 });
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 1000; i++) {
        log.note({ action: 'test.rotate', target: 'x'.repeat(40), outcome: 'success', details: { round, i } });
        expect(log.unsynced).toBeLessThan(BATCH_RECORDS);
      }
      await new Promise((r) => setImmediate(r));
    }
    await log.flush();
    expect(log.unsynced).toBe(0);
    await log.close();
    // Files retired while their fsync was in flight are closed when it returns.
    const deadline = Date.now() + 10_000;
    while (fds() > fdsBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(fds()).toBeLessThanOrEqual(fdsBefore);
    expect(readdirSync(path.join(dir, 'audit')).length).toBeGreaterThan(10);
    const v = verify(dir);
    expect(v.ok, JSON.stringify(v.first)).toBe(true);
    expect(readAuditRecords(path.join(dir, 'audit')).records.filter((r) => r.action === 'test.rotate')).toHaveLength(10_000);
  });

  it('an idle log still gets its checkpoint (and anchor) CHECKPOINT_MS after the last one, without a write or close', async () => {
    const dir = tmp();
    // A frozen clock: no write finds a checkpoint due, however slowly this runs; only the timer (real time) adds it.
    const log = open(dir, { now: () => 1_700_000_000_000 });
    await log.record({ action: 'test.burst', outcome: 'success' });
    const last = () => JSON.parse(lines(file1(dir)).at(-1)!) as AuditRecord;
    expect(last().action).toBe('test.burst');
    const deadline = Date.now() + 10_000;
    while (last().action !== 'audit.checkpoint' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(last().action).toBe('audit.checkpoint');
    // The anchor follows once the checkpoint is durable; a verifier with it sees no uncheckpointed tail.
    const anchored = () => {
      const v = verify(dir);
      return v.uncheckpointed === 0 && v.anchorChecked;
    };
    while (!anchored() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(verify(dir)).toMatchObject({ ok: true, anchorChecked: true, uncheckpointed: 0 });
    // Nothing more is written while the log stays idle.
    const n = lines(file1(dir)).length;
    await new Promise((r) => setTimeout(r, 1200));
    expect(lines(file1(dir)).length).toBe(n);
    await log.close();
  });

  it('a noted record is written within BATCH_MS without any further call', async () => {
    const dir = tmp();
    const log = open(dir);
    const before = lines(file1(dir)).length;
    log.note({ action: 'test.note', outcome: 'success' });
    expect(log.unsynced).toBe(1);
    // Written when its batch's timer fires, fsynced off the event loop right after (polled: the
    // fsync's time is the disk's, not ours to bound in a test).
    await new Promise((r) => setTimeout(r, 250));
    expect(lines(file1(dir)).length).toBeGreaterThan(before);
    const deadline = Date.now() + 10_000;
    while (log.unsynced > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(log.unsynced).toBe(0);
    await log.close();
  });

  it('durability "record": every note is written at once', async () => {
    const dir = tmp();
    const log = open(dir, { durability: 'record' });
    log.note({ action: 'test.note', outcome: 'success' });
    expect(log.unsynced).toBe(0);
    await log.close();
  });

  it('bad entries are typed errors; an unwritable log fails closed', async () => {
    const dir = tmp();
    const log = open(dir);
    await expect(log.record({ action: 'Bad Action', outcome: 'success' })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(log.record({ action: 'x.y', outcome: 'maybe' as 'success' })).rejects.toBeInstanceOf(InvalidArgumentError);
    // Text fields are strings, and a code is an error code, whole: a number, an object, free text
    // or a code over 64 characters is refused naming the field (it was written as "5",
    // "[object Object]", the text, or cut with an ellipsis), and nothing is written for it.
    for (const [entry, message] of [
      [{ code: 5 }, /^audit code must be a string, got /],
      [{ code: {} }, /^audit code must be a string, got /],
      [{ actor: 7 }, /^audit actor must be a string, got /],
      [{ target: null }, /^audit target must be a string, got /],
      [{ reason: ['x'] }, /^audit reason must be a string, got /],
      [{ code: 'banana' }, /^audit code must be an error code \(ERR_ and capitals, digits or _, at most 64 characters\), got "banana"$/],
      [{ code: 'ERR_' }, /^audit code must be an error code/],
      [{ code: `ERR_${'X'.repeat(61)}` }, /^audit code must be an error code/],
    ] as const) {
      const bad = { action: 'x.y', outcome: 'failure', ...entry } as unknown as Parameters<typeof log.record>[0];
      await expect(log.record(bad), JSON.stringify(entry)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(message) });
      expect(() => log.note(bad), JSON.stringify(entry)).toThrow(InvalidArgumentError);
    }
    expect((await log.record({ action: 'x.y', outcome: 'failure', code: `ERR_${'X'.repeat(60)}` })).code).toBe(`ERR_${'X'.repeat(60)}`);
    // Long and control-laden text is capped and stays one JSON line.
    const rec = await log.record({ action: 'x.y', outcome: 'success', reason: 'a\nb\u0000'.repeat(1000), target: 'z'.repeat(1000) });
    expect(rec.reason.length).toBeLessThanOrEqual(1025);
    await log.close();
    // Closed is a state (ERR_INVALID_STATE), not a storage failure: ERR_STORAGE is for a log that cannot be written.
    await expect(log.record({ action: 'x.y', outcome: 'success' })).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: 'the audit log is closed' });
    expect(verify(dir).ok).toBe(true);
    const notDir = path.join(tmp(), 'file');
    writeFileSync(notDir, '');
    expect(() => AuditLog.open({ dir: notDir, macKey, signingKey: signing, headFile: null })).toThrow(StorageError);
    // Reading a log that is not there is ERR_STORAGE naming it, as verifying one is (it was a raw ENOENT Error).
    const missing = path.join(tmp(), 'no-audit');
    for (const read of [() => readAuditRecords(missing), () => verifyAuditLog(missing)]) {
      expect(read).toThrow(expect.objectContaining({ code: 'ERR_STORAGE', message: expect.stringContaining(`cannot read the audit log directory ${missing}`) }));
    }
  });
});

describe('what the hypervisor records', () => {
  const hvs: Hypervisor[] = [];
  afterEach(async () => {
    await Promise.all(hvs.splice(0).map((h) => h.close()));
  });

  it('a pool refused before any partition is made is recorded as createPartition records a refusal; one refused later, once', async () => {
    const dataDir = tmp();
    const hv = new Hypervisor({ dataDir, audit: true, actor: 'principal:alice' });
    hvs.push(hv);
    const module = guest('transform');
    const long = 'p'.repeat(63);
    // Up front: the options, the spec, a name without room for its suffixes.
    await expect(hv.createPool({ name: 'opts', module }, { size: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(hv.createPool({ name: 'spec', module, memory: 1 } as never, { size: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(hv.createPool({ name: long, module }, { size: 2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(hv.createPool(undefined as never, { size: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    // Later: its first partition's module is refused by createPartition, which records it.
    await expect(hv.createPool({ name: 'imports', module: guest('attack-import') }, { size: 2 })).rejects.toMatchObject({ code: 'ERR_IMPORT_DENIED' });
    expect(hv.partitions()).toEqual([]);
    await hv.close();
    const refused = readAuditRecords(path.join(dataDir, 'audit')).records.filter((r) => r.action === 'partition.create');
    expect(refused.map((r) => [r.target, r.outcome, r.code, r.actor])).toEqual([
      ['opts', 'denied', 'ERR_INVALID_ARGUMENT', 'principal:alice'],
      ['spec', 'denied', 'ERR_INVALID_ARGUMENT', 'principal:alice'],
      [long, 'denied', 'ERR_INVALID_ARGUMENT', 'principal:alice'],
      ['(invalid name)', 'denied', 'ERR_INVALID_ARGUMENT', 'principal:alice'],
      ['imports-0', 'denied', 'ERR_IMPORT_DENIED', 'principal:alice'],
    ]);
    expect(refused[0]!.reason).toMatch(/^pool options: size: /);
    expect(refused[1]!.reason).toMatch(/^pool spec: /);
    expect(refused[2]!.reason).toMatch(/the pool's name may have at most 62$/);
  });

  it('a refused wipe is recorded with its code, by every route (wipeStorage and destroy)', async () => {
    const dataDir = tmp();
    const hv = new Hypervisor({ dataDir, audit: true });
    hvs.push(hv);
    // bee's disk sits at ann's default place: ann's wipes must refuse it, and say so on the record.
    const bee = await hv.createPartition({ name: 'bee', module: guest('hello'), devices: { block: { sizeMiB: 1, path: 'images/ann.img' } } });
    await bee.destroy();
    await expect(hv.wipeStorage('ann')).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    const ann = await hv.createPartition({ name: 'ann', module: guest('hello') });
    await expect(ann.destroy({ wipe: true })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await hv.close();
    const image = path.join(dataDir, 'images', 'ann.img');
    const wipes = readAuditRecords(path.join(dataDir, 'audit')).records.filter((r) => r.action === 'disk.wipe');
    expect(wipes.map((r) => [r.target, r.outcome, r.code, r.details?.['path']])).toEqual([
      ['ann', 'denied', 'ERR_INTEGRITY', image],
      ['ann', 'denied', 'ERR_INTEGRITY', image],
    ]);
    expect(wipes[0]!.reason).toMatch(/it is the block image of partition bee/);
  });

  it('lifecycle, refusals with their code, violations aggregated per second, attestation, wipes, keys', async () => {
    const dataDir = tmp();
    const hv = new Hypervisor({ dataDir, audit: true, actor: 'principal:alice' });
    hvs.push(hv);
    await expect(hv.createPartition({ name: 'bad', module: guest('attack-import') })).rejects.toMatchObject({ code: 'ERR_IMPORT_DENIED' });
    const p = await hv.createPartition({ name: 'noisy', module: guest('attack-device'), devices: { console: true } });
    await runToExit(p);
    const q = await hv.createPartition({ name: 'att', module: guest('attest'), devices: { console: true, attestation: true }, args: ['aa', 'bb'] });
    await runToExit(q);
    const disk = await hv.createPartition({ name: 'disk', module: guest('hello'), devices: { block: { sizeMiB: 1 } } });
    await disk.destroy({ wipe: true });
    await hv.attest({ nonce: '01' });
    await hv.audit!.record({ actor: 'principal:bob', action: 'api.request', target: '/partitions/att', outcome: 'denied', reason: 'role reader may not stop', code: 'ERR_ACCESS_DENIED' });
    await p.destroy();
    await q.destroy();
    await hv.close();
    const dir = path.join(dataDir, 'audit');
    const v = verifyAuditLog(dir, { macKey: new Uint8Array(readFileSync(path.join(dataDir, 'keys', 'audit.key'))), head: readFileSync(path.join(dataDir, 'keys', 'audit.head'), 'utf8') });
    expect(v.ok).toBe(true);
    const recs = readAuditRecords(dir).records;
    const find = (action: string, target?: string) => recs.filter((r) => r.action === action && (target === undefined || r.target === target));
    expect(find('key.create').map((r) => path.basename(r.target))).toEqual(expect.arrayContaining(['audit.key', 'host.key', 'disk']));
    expect(find('partition.create', 'bad')[0]).toMatchObject({ outcome: 'denied', code: 'ERR_IMPORT_DENIED', actor: 'principal:alice' });
    expect(find('partition.create', 'noisy')[0]).toMatchObject({ outcome: 'success' });
    expect(find('partition.start', 'noisy')).toHaveLength(1);
    expect(find('partition.exit', 'noisy')).toHaveLength(1);
    const violations = find('partition.violation', 'noisy');
    expect(violations.length).toBeGreaterThan(0);
    expect(violations.length).toBeLessThan(5); // aggregated, not one record per violation
    const counted = violations.reduce((n, r) => n + Number(r.details!['count']), 0);
    expect(counted).toBe((await p.exited).metrics.violations);
    expect(find('attestation.request', 'att')[0]!.details).toMatchObject({ count: 1 });
    expect(find('attestation.request', 'host')).toHaveLength(1);
    expect(find('disk.wipe', 'disk')[0]).toMatchObject({ outcome: 'success' });
    expect(find('api.request')[0]).toMatchObject({ actor: 'principal:bob', outcome: 'denied', code: 'ERR_ACCESS_DENIED' });
    expect(find('partition.destroy').map((r) => r.target)).toEqual(expect.arrayContaining(['noisy', 'att', 'disk']));
    // Filters of audit show.
    expect(readAuditRecords(dir, { partition: 'noisy', outcome: 'denied' }).records.every((r) => r.target === 'noisy' && r.outcome === 'denied')).toBe(true);
    expect(readAuditRecords(dir, { action: 'partition' }).records.every((r) => r.action.startsWith('partition.'))).toBe(true);
    expect(readAuditRecords(dir, { since: Date.now() + 60_000 }).records).toEqual([]);
  });

  it('records through an AuditSink the embedder gives; a sink that fails refuses the creation', async () => {
    const seen: string[] = [];
    const sink: AuditSink = {
      record: async (e) => {
        seen.push(`${e.actor} ${e.action} ${e.target} ${e.outcome}`);
        return { seq: seen.length, time: '', actor: e.actor ?? '', action: e.action, target: e.target ?? '', outcome: e.outcome, reason: e.reason ?? '', prev: '', mac: '' };
      },
      note: (e) => void seen.push(`${e.actor} ${e.action} ${e.target} ${e.outcome}`),
    };
    const hv = new Hypervisor({ dataDir: tmp(), audit: sink, actor: 'principal:carol' });
    hvs.push(hv);
    expect(hv.audit).toBe(sink);
    const p = await hv.createPartition({ name: 'viasink', module: guest('hello') });
    expect(seen).toContain('principal:carol partition.create viasink success');
    await p.destroy();
    const failing = new Hypervisor({ dataDir: tmp(), audit: { record: () => Promise.reject(new StorageError('disk full')), note: () => undefined } });
    hvs.push(failing);
    await expect(failing.createPartition({ name: 'nope', module: guest('hello') })).rejects.toThrow(/disk full/);
    expect(failing.partitions()).toEqual([]);
    // A policy change the log refuses is not made: the caller is told it failed, and it did.
    const events = failing.eventLog().events.length;
    await expect(failing.setPolicy({ requireSignature: true })).rejects.toThrow(/disk full/);
    expect(failing.policy).toBeNull();
    expect(failing.eventLog().events.length).toBe(events);
  });

  it('an audit log that cannot be opened fails the hypervisor at construction (fail closed)', () => {
    const dataDir = tmp();
    writeFileSync(path.join(dataDir, 'audit'), 'not a directory');
    expect(() => new Hypervisor({ dataDir, audit: true })).toThrow(WasmvisorError);
  });

  it('a key file that is a FIFO fails the hypervisor at construction, naming it (read synchronously, it was waited on for good)', () => {
    const dataDir = tmp();
    mkdirSync(keysDir(dataDir));
    const file = path.join(keysDir(dataDir), AUDIT_KEY_FILE);
    execFileSync('mkfifo', [file]);
    expect(() => new Hypervisor({ dataDir, audit: true })).toThrow(new StorageError(`key file ${file} is a FIFO, not a regular file`));
  });
});

