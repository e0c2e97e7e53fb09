/**
 * newestAuditRecords, what `GET /audit` reads the durable log with: the same answer as reading
 * every record and keeping the newest matches, but reading the files newest first and stopping
 * once it has them (or at a file older than `since`), so a query does not cost the whole log.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { newestAuditRecords, readAuditRecords, type AuditRecord } from '../../host/security/audit.ts';

function record(seq: number): AuditRecord {
  const time = new Date(Date.UTC(2026, 0, 1) + seq * 60_000).toISOString();
  return { seq, time, actor: seq % 3 === 0 ? 'token:a' : 'token:b', action: 'api.authorize', target: `/partitions/p${seq % 5}`, outcome: 'success', reason: 'r', prev: 'a'.repeat(64), mac: 'b'.repeat(64) } as AuditRecord;
}

/** Five files of 20 records each, seq 1..100, a minute apart. */
function log(): string {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'wv-auditq-')), 'audit');
  mkdirSync(dir);
  for (let f = 0; f < 5; f++) {
    const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify(record(f * 20 + i + 1))).join('\n');
    writeFileSync(path.join(dir, `audit-${String(f + 1).padStart(6, '0')}.jsonl`), `${lines}\nnot a record\n`);
  }
  return dir;
}

describe('newestAuditRecords', () => {
  it('answers what filtering every record and keeping the newest `limit` answers', async () => {
    const dir = log();
    const all = readAuditRecords(dir).records;
    const cases: [(r: AuditRecord) => boolean, number, string | undefined][] = [
      [() => true, 1, undefined],
      [() => true, 7, undefined],
      [() => true, 1000, undefined],
      [(r) => r.actor === 'token:a', 10, undefined],
      [(r) => r.target === '/partitions/p2', 1000, undefined],
      [(r) => r.seq > 95, 1000, undefined],
      [() => false, 5, undefined],
    ];
    for (const since of [record(30).time, record(61).time, record(100).time, record(101).time]) cases.push([(r) => r.time >= since, 1000, since], [(r) => r.time >= since, 3, since]);
    for (const [match, limit, since] of cases) {
      const expected = all.filter(match);
      expect((await newestAuditRecords(dir, match, limit, since)).map((r) => r.seq)).toEqual(expected.slice(Math.max(0, expected.length - limit)).map((r) => r.seq));
    }
  });

  it('stops at the files it needs: an older file it would fail to read is never opened', async () => {
    const dir = log();
    // The oldest file is now a directory: reading it is ERR_STORAGE.
    const oldest = path.join(dir, 'audit-000001.jsonl');
    const { rmSync } = await import('node:fs');
    rmSync(oldest);
    mkdirSync(oldest);
    expect((await newestAuditRecords(dir, () => true, 30)).map((r) => r.seq)).toEqual(Array.from({ length: 30 }, (_, i) => 71 + i));
    expect((await newestAuditRecords(dir, (r) => r.time >= record(50).time, 1000, record(50).time)).map((r) => r.seq)[0]).toBe(50);
    // A query that needs it does read it, and says what is wrong.
    await expect(newestAuditRecords(dir, () => true, 1000)).rejects.toMatchObject({ code: 'ERR_STORAGE' });
    // So does a filter that matches fewer than `limit` records without `since`, however new its
    // matches: it reads every file (docs/MANAGEMENT.md says its cost grows with the log); `since` bounds it.
    await expect(newestAuditRecords(dir, (r) => r.seq === 99, 2)).rejects.toMatchObject({ code: 'ERR_STORAGE' });
    expect((await newestAuditRecords(dir, (r) => r.seq === 99, 2, record(50).time)).map((r) => r.seq)).toEqual([99]);
  });
});

describe('readAuditRecords filter', () => {
  it('a misspelt key or a value of the wrong kind is ERR_INVALID_ARGUMENT naming it (an `outcom` returned every record)', () => {
    const dir = log();
    const cases: [unknown, string][] = [
      [{ outcom: 'denied' }, 'readAuditRecords: filter: outcom: unknown key; did you mean outcome?'],
      [{ outcome: 'ok' }, 'readAuditRecords: filter: outcome: expected success, denied or failure, got the string "ok"'],
      [{ since: 'yesterday' }, 'readAuditRecords: filter: since: expected a time in ms since the epoch, got the string "yesterday"'],
      [{ until: Number.NaN }, 'readAuditRecords: filter: until: expected a time in ms since the epoch'],
      [{ partition: 5 }, 'readAuditRecords: filter: partition: expected a string, got the number 5'],
      [null, 'readAuditRecords: filter: expected an object, got null'],
    ];
    for (const [filter, message] of cases) {
      expect(() => readAuditRecords(dir, filter as never), JSON.stringify(filter)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining(message) }));
    }
    // Every documented key still filters.
    const since = Date.parse(record(90).time);
    expect(readAuditRecords(dir, { partition: '/partitions/p0', action: 'api', outcome: 'success', since, until: Infinity }).records.map((r) => r.seq)).toEqual([90, 95, 100]);
  });
});
