/**
 * scripts/mutation-merge.mjs: the incremental files of runs over parts of a folder merged into one
 * for the whole folder. Checked against Stryker's own incremental diff (@stryker-mutator/core 9.6.1,
 * pinned): with the merged file Stryker reuses, file by file, exactly the results it would reuse
 * from the part's own file, although the parts number their tests alike and hold different copies
 * of a test file.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mergeIncrementalReports } from '../../scripts/mutation-merge.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const core = path.join(root, 'node_modules/@stryker-mutator/core/dist/src/mutants');

interface Loc { start: { line: number; column: number }; end: { line: number; column: number } }
interface Mutant { id: string; mutatorName: string; replacement: string; status: string; location: Loc; coveredBy?: string[]; killedBy?: string[]; static?: boolean }
interface Report { files: Record<string, { language: string; source: string; mutants: Mutant[] }>; testFiles: Record<string, { source?: string; tests: { id: string; name: string }[] }>; schemaVersion: string }

// The project as it is now: two source files, two test files. Each mutant sits on a line of its own.
const now: Record<string, string | undefined> = {
  'host/x/a.ts': 'export const a = 1;\nexport const b = 2;\nexport const c = 3;\n',
  'host/x/b.ts': 'export const d = 4;\nexport const e = 5;\n',
  'test/x/one.test.ts': 'one, as it is now\n',
  'test/x/two.test.ts': 'two, as it is now\n',
};
const src = (f: string): string => now[f] ?? '';
const at = (line: number): Loc => ({ start: { line, column: 14 }, end: { line, column: 15 } }); // report positions: 1-based
const m = (id: string, line: number, status: string, killedBy: string[], coveredBy: string[]): Mutant => ({ id, mutatorName: 'NumberLiteral', replacement: '0', status, location: at(line), killedBy, coveredBy, static: false });

// Part 1 (older): a.ts. Its test "0" is in one.test.ts, "1" in an older copy of two.test.ts.
const part1: Report = {
  schemaVersion: '1.0',
  files: { 'host/x/a.ts': { language: 'typescript', source: src('host/x/a.ts'), mutants: [m('0', 1, 'Killed', ['0'], ['0', '1']), m('1', 2, 'Survived', [], ['1']), m('2', 3, 'Killed', ['1'], ['1'])] } },
  testFiles: {
    'test/x/one.test.ts': { source: src('test/x/one.test.ts'), tests: [{ id: '0', name: 'one kills' }] },
    'test/x/two.test.ts': { source: 'two, before it was changed\n', tests: [{ id: '1', name: 'two kills' }] },
  },
};
// Part 2 (newer): b.ts. Its ids collide with part 1's: "0" is two.test.ts's test here.
const part2: Report = {
  schemaVersion: '1.0',
  files: { 'host/x/b.ts': { language: 'typescript', source: src('host/x/b.ts'), mutants: [m('0', 1, 'Killed', ['0'], ['0']), m('1', 2, 'Survived', [], ['0', '1'])] } },
  testFiles: {
    'test/x/two.test.ts': { source: src('test/x/two.test.ts'), tests: [{ id: '0', name: 'two kills' }] },
    'test/x/one.test.ts': { source: src('test/x/one.test.ts'), tests: [{ id: '1', name: 'one kills' }] },
  },
};

/** Stryker's incremental diff over the current project, each test covering the mutants given. */
async function reused(report: Report): Promise<Map<string, string>> {
  const { IncrementalDiffer } = (await import(path.join(core, 'incremental-differ.js'))) as { IncrementalDiffer: new (...a: unknown[]) => { diff(...a: unknown[]): { id: string; fileName: string; status?: string }[] } };
  const { TestCoverage } = (await import(path.join(core, 'test-coverage.js'))) as { TestCoverage: { from(r: unknown, log: unknown): unknown } };
  const abs = (f: string) => path.join(root, f);
  const tests = [
    { id: 'test/x/one.test.ts#one kills', name: 'one kills', fileName: abs('test/x/one.test.ts'), status: 0, timeSpentMs: 1 },
    { id: 'test/x/two.test.ts#two kills', name: 'two kills', fileName: abs('test/x/two.test.ts'), status: 0, timeSpentMs: 1 },
  ];
  // Current mutants (0-based positions, as Stryker holds them), and which tests cover them now.
  const current = [
    ['a1', 'host/x/a.ts', 0], ['a2', 'host/x/a.ts', 1], ['a3', 'host/x/a.ts', 2], ['b1', 'host/x/b.ts', 0], ['b2', 'host/x/b.ts', 1],
  ].map(([id, file, line]) => ({ id, fileName: abs(file as string), mutatorName: 'NumberLiteral', replacement: '0', location: { start: { line, column: 13 }, end: { line, column: 14 } } }));
  const perTest = { 'test/x/one.test.ts#one kills': { a1: 1, a3: 1, b2: 1 }, 'test/x/two.test.ts#two kills': { a1: 1, a2: 1, a3: 1, b1: 1, b2: 1 } };
  const log = { isInfoEnabled: () => false, isDebugEnabled: () => false, isTraceEnabled: () => false, info() {}, debug() {}, trace() {}, warn() {} };
  const coverage = TestCoverage.from({ tests, mutantCoverage: { perTest, static: {} } }, log);
  const differ = new IncrementalDiffer(log, { force: false }, Object.fromEntries(current.map((c) => [c.fileName, { mutate: true }])));
  // As Stryker's ProjectReader reads a report: positions become 0-based.
  const toStryker = (r: Report) => ({
    ...r,
    files: Object.fromEntries(Object.entries(r.files).map(([f, file]) => [f, { ...file, mutants: file.mutants.map((x) => ({ ...x, location: { start: { line: x.location.start.line - 1, column: x.location.start.column - 1 }, end: { line: x.location.end.line - 1, column: x.location.end.column - 1 } } })) }])),
  });
  const out = differ.diff(current, coverage, toStryker(report), new Map(Object.entries(now) as [string, string][]));
  return new Map(out.filter((x) => x.status !== undefined).map((x) => [x.id, x.status as string]));
}

describe('merging the incremental files of a folder’s parts', () => {
  it('lets Stryker reuse, file by file, exactly what each part’s own file gives it, although their test ids collide', async () => {
    const own1 = await reused(part1);
    const own2 = await reused(part2);
    // The parts on their own: a1 killed by an unchanged test; a2, a3 re-tested (two.test.ts changed
    // since part 1); b1 killed by an unchanged test; b2 survived and no test was added since.
    expect([...own1]).toEqual([['a1', 'Killed']]);
    expect([...own2]).toEqual([['b1', 'Killed'], ['b2', 'Survived']]);

    const { report, summary } = mergeIncrementalReports([{ name: 'p1', report: part1 }, { name: 'p2', report: part2 }], (f: string) => now[f]);
    expect(await reused(report as Report)).toEqual(new Map([...own1, ...own2]));
    expect(summary.droppedTests).toEqual({ p1: ['test/x/two.test.ts'] });
    expect(summary.files).toEqual({ 'host/x/a.ts': 'p1 (current source)', 'host/x/b.ts': 'p2 (current source)' });

    // Concatenated without renumbering, part 1's "1" (the changed two.test.ts) would be read as part
    // 2's "1" (one.test.ts, unchanged, which covers a3 now): a3's kill would be reused, wrongly.
    const naive = { ...part2, files: { ...part1.files, ...part2.files } };
    expect((await reused(naive)).get('a3')).toBe('Killed');
  });

  it('keeps the copy of a test file that is the current source, even from an older part', () => {
    const stale: Report = { ...part2, testFiles: { ...part2.testFiles, 'test/x/one.test.ts': { source: 'one, changed and changed back later\n', tests: [{ id: '1', name: 'one kills' }] } } };
    const { report, summary } = mergeIncrementalReports([{ name: 'p1', report: part1 }, { name: 'p2', report: stale }], (f: string) => now[f]);
    expect(summary.testFiles['test/x/one.test.ts']).toEqual({ from: 'p1', current: true });
    expect(summary.testFiles['test/x/two.test.ts']).toEqual({ from: 'p2', current: true });
    // a1's killer (one.test.ts) is kept under a fresh id; part 2's tests of its stale copy are dropped.
    const merged = report as Report;
    // The kept copies come from two parts that both numbered their tests from 0: numbered afresh.
    const ids = Object.values(merged.testFiles).flatMap((f) => f.tests.map((t) => t.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(merged.files['host/x/a.ts']?.mutants[0]?.killedBy).toEqual([merged.testFiles['test/x/one.test.ts']?.tests[0]?.id]);
    expect(merged.files['host/x/b.ts']?.mutants[1]?.coveredBy).toEqual([merged.testFiles['test/x/two.test.ts']?.tests[0]?.id]);
  });

  it('takes each source file from the newest part that has it, and refuses what it cannot merge soundly', () => {
    const newer: Report = { ...part1, files: { 'host/x/a.ts': { language: 'typescript', mutants: [], source: 'older still\n' } } };
    const { summary } = mergeIncrementalReports([{ name: 'p1', report: part1 }, { name: 'p1b', report: newer }], () => 'neither\n');
    expect(summary.files['host/x/a.ts']).toBe('p1b');
    expect(() => mergeIncrementalReports([], () => undefined)).toThrow(/no report/);
    expect(() => mergeIncrementalReports([{ name: 'x', report: { files: {} } }], () => undefined)).toThrow(/x: no "testFiles"/);
    expect(() => mergeIncrementalReports([{ name: 'y', report: { files: {}, testFiles: { '': { tests: [] } } } }], () => undefined)).toThrow(/without a file name/);
    expect(() => mergeIncrementalReports([{ name: 'z', report: [] }], () => undefined)).toThrow(/z: not a Stryker incremental report/);
  });
});
