/**
 * The arithmetic behind `npm run mutate -- --check` (scripts/mutation-score.mjs): Stryker's score,
 * the verdict against a floor, and the committed floors file (mutation-floors.json) that the
 * scheduled long run (.github/workflows/mutation.yml) checks.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readFloors, scoreReport, verdict } from '../../scripts/mutation-score.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const report = (...statuses: string[][]) => ({
  schemaVersion: '2',
  files: Object.fromEntries(statuses.map((list, i) => [`host/x/f${i}.ts`, { language: 'typescript', source: '', mutants: list.map((status, j) => ({ id: `${i}.${j}`, status })) }])),
});

describe('mutation score', () => {
  it("is Stryker's: (killed + timeout) / (killed + timeout + survived + no coverage), over every file", () => {
    const r = scoreReport(report(['Killed', 'Killed', 'Survived', 'Ignored'], ['Timeout', 'NoCoverage', 'CompileError', 'RuntimeError']));
    expect(r.detected).toBe(3);
    expect(r.undetected).toBe(2);
    expect(r.score).toBe(60);
    expect(r.counts).toMatchObject({ Killed: 2, Timeout: 1, Survived: 1, NoCoverage: 1, Ignored: 1, CompileError: 1, RuntimeError: 1 });
  });

  it('is null, not 100 %, when no mutant counts; and refuses an unfinished or foreign report', () => {
    expect(scoreReport(report(['Ignored', 'CompileError'])).score).toBeNull();
    expect(() => scoreReport(report(['Killed', 'Pending']))).toThrow(/status "Pending": the run did not finish/);
    expect(() => scoreReport({ files: { 'a.ts': {} } })).toThrow(/a\.ts has no "mutants" array/);
    expect(() => scoreReport([])).toThrow(/no "files" object/);
    expect(() => scoreReport(null)).toThrow(/no "files" object/);
  });

  it('passes a folder at its floor and fails it one mutant below, or without a floor, or without mutants', () => {
    const at = scoreReport(report([...Array<string>(17).fill('Killed'), ...Array<string>(3).fill('Survived')])); // 85 %
    expect(verdict('abi', at, 85)).toEqual({ ok: true, line: expect.stringMatching(/^abi: 85\.00 % \(killed 17, timeout 0, survived 3, .*floor 85 %: ok$/) });
    const below = scoreReport(report([...Array<string>(16).fill('Killed'), ...Array<string>(4).fill('Survived')])); // 80 %
    expect(verdict('abi', below, 85)).toEqual({ ok: false, line: expect.stringMatching(/floor 85 %: BELOW THE FLOOR$/) });
    expect(verdict('net', at, undefined)).toEqual({ ok: false, line: expect.stringMatching(/no floor recorded for net$/) });
    expect(verdict('net', scoreReport(report(['Ignored'])), 0).ok).toBe(false);
    // null: recorded as not measured in full yet; the score is printed and a floor asked for.
    expect(verdict('net', below, null)).toEqual({ ok: true, line: expect.stringMatching(/^net: 80\.00 % .*no floor yet: record one in mutation-floors\.json$/) });
  });

  it('reads a floors file and names a bad floor', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wv-floors-'));
    try {
      const file = path.join(dir, 'floors.json');
      for (const [text, message] of [
        ['{"floors": {"abi": 101}}', /floors\.abi must be a percentage from 0 to 100 \(or null: not measured yet\), got 101/],
        ['{"floors": {"abi": "85"}}', /floors\.abi must be a percentage from 0 to 100 \(or null: not measured yet\), got "85"/],
        ['{"floors": [85]}', /expected \{ "floors"/],
        ['{}', /expected \{ "floors"/],
      ] as const) {
        writeFileSync(file, text);
        expect(() => readFloors(file)).toThrow(message);
      }
      writeFileSync(file, '{"floors": {"abi": 85, "net": 0, "wasi": null}}');
      expect(readFloors(file)).toEqual({ abi: 85, net: 0, wasi: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('mutation-floors.json', () => {
  it('has an entry for each folder of the trusted core (issue 17), each a percentage or null', () => {
    const floors = readFloors(path.join(root, 'mutation-floors.json'));
    expect(Object.keys(floors).sort()).toEqual(['abi', 'limits', 'loader', 'net', 'storage', 'wasi']);
    expect(floors.abi).toBeGreaterThanOrEqual(80);
  });
});
