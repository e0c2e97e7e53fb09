#!/usr/bin/env node
// Merges the incremental files of several Stryker runs over parts of one folder (`npm run mutate --
// <folder> --files ...`, each at its own commit) into one incremental file for the whole folder, so
// that `npm run mutate -- <folder>` re-tests only what changed since each part's run instead of
// starting from nothing (docs/MUTATION.md, "Merging the parts' results").
//
//   node scripts/mutation-merge.mjs --out reports/mutation/storage/incremental.json older.json ... newer.json
//
// Give the parts oldest first. Stryker reuses an earlier result only when the mutant's code is
// unchanged (by file, mutator, replacement and place, after diffing the old source against the
// current one) and, for a killed mutant, one of its killing tests is unchanged, or, for any other,
// no covering test was added (@stryker-mutator/core, src/mutants/incremental-differ.ts). A test is
// known by its file and name (the vitest runner gives no place), and it is unchanged only when its
// whole file is: the old source of the file is diffed against the current one, and a test without a
// place spans its whole file. So the merge keeps, for each part, exactly what Stryker would compare:
//
// - each source file with its mutants comes whole from one part: the newest that has it, or one whose
//   copy of the file is the current source (then every mutant can be reused);
// - each test file keeps one copy: the current source if a part has it, else the newest part's;
// - a part's test ids are mapped to the merged tests only where that part's copy of the test file is
//   the kept one; the others are dropped. Stryker would have found those tests changed (their file
//   differs from the kept copy, which differs from the current file or is it), so dropping them can
//   only make Stryker re-test a mutant: a killed mutant needs an unchanged killing test to be
//   reused, any other mutant needs every covering test to be an old one.
// Test ids are only unique within a report: the merged file numbers them afresh, as mutant ids.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/**
 * @param {Array<{ name: string, report: any }>} parts oldest first
 * @param {(path: string) => string | undefined} current the current source of a file (relative path), undefined if none
 * @returns {{ report: any, summary: { files: Record<string, string>, testFiles: Record<string, { from: string, current: boolean }>, droppedTests: Record<string, string[]> } }}
 */
export function mergeIncrementalReports(parts, current) {
  if (parts.length === 0) throw new Error('no report to merge');
  for (const { name, report } of parts) {
    if (report === null || typeof report !== 'object' || typeof report.files !== 'object' || report.files === null) {
      throw new Error(`${name}: not a Stryker incremental report: no "files" object`);
    }
    if (report.testFiles === undefined || report.testFiles === null || typeof report.testFiles !== 'object') {
      throw new Error(`${name}: no "testFiles": a report without per-test coverage cannot be merged soundly`);
    }
    if (Object.hasOwn(report.testFiles, '')) throw new Error(`${name}: tests without a file name cannot be matched to a test file`);
  }
  /** The part to take for each path: one holding the current source, else the newest (last) one. */
  const choose = (section) => {
    const chosen = new Map();
    for (const [index, { report }] of parts.entries()) {
      for (const [path, entry] of Object.entries(report[section])) {
        const isCurrent = entry.source !== undefined && entry.source === current(path);
        const had = chosen.get(path);
        if (had === undefined || !had.isCurrent || isCurrent) chosen.set(path, { index, isCurrent });
      }
    }
    return chosen;
  };
  const fileChoice = choose('files');
  const testChoice = choose('testFiles');

  // The merged tests: the kept copy of each test file, its tests numbered afresh.
  const testFiles = {};
  const newIdByKey = new Map();
  let nextTest = 0;
  for (const [path, { index }] of [...testChoice].sort(([a], [b]) => a.localeCompare(b))) {
    const kept = parts[index].report.testFiles[path];
    const tests = [];
    for (const test of kept.tests) {
      const key = `${path}\n${test.name}`;
      if (newIdByKey.has(key)) continue; // the same name twice in a file is one test to Stryker
      const id = String(nextTest++);
      newIdByKey.set(key, id);
      tests.push({ ...test, id });
    }
    testFiles[path] = { ...kept, tests };
  }
  // Each part's test ids, mapped where its copy of the test file is the kept one.
  const droppedTests = {};
  const idMaps = parts.map(({ name, report }) => {
    const map = new Map();
    for (const [path, file] of Object.entries(report.testFiles)) {
      const kept = testFiles[path];
      if (file.source === undefined || file.source !== kept.source) {
        (droppedTests[name] ??= []).push(path);
        continue;
      }
      for (const test of file.tests) map.set(test.id, newIdByKey.get(`${path}\n${test.name}`));
    }
    return map;
  });

  const files = {};
  let nextMutant = 0;
  for (const [path, { index }] of [...fileChoice].sort(([a], [b]) => a.localeCompare(b))) {
    const file = parts[index].report.files[path];
    const map = idMaps[index];
    const remap = (ids) => ids?.map((id) => map.get(id)).filter((id) => id !== undefined);
    const mutants = file.mutants.map((m) => {
      const out = { ...m, id: String(nextMutant++) };
      if (m.coveredBy !== undefined) out.coveredBy = remap(m.coveredBy);
      if (m.killedBy !== undefined) out.killedBy = remap(m.killedBy);
      return out;
    });
    files[path] = { ...file, mutants };
  }
  const newest = parts[parts.length - 1].report;
  const report = { ...newest, files, testFiles };
  const summary = {
    files: Object.fromEntries([...fileChoice].map(([path, { index, isCurrent }]) => [path, `${parts[index].name}${isCurrent ? ' (current source)' : ''}`])),
    testFiles: Object.fromEntries([...testChoice].map(([path, { index, isCurrent }]) => [path, { from: parts[index].name, current: isCurrent }])),
    droppedTests,
  };
  return { report, summary };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { out: { type: 'string' } } });
  if (!values.out || positionals.length === 0) {
    console.error('usage: node scripts/mutation-merge.mjs --out <folder incremental.json> <part incremental.json>... (oldest first)');
    process.exit(2);
  }
  const root = fileURLToPath(new URL('..', import.meta.url));
  const current = (path) => {
    try {
      return readFileSync(resolve(root, path), 'utf8');
    } catch {
      return undefined;
    }
  };
  const parts = positionals.map((name) => ({ name, report: JSON.parse(readFileSync(name, 'utf8')) }));
  const { report, summary } = mergeIncrementalReports(parts, current);
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, JSON.stringify(report, null, 2));
  console.log(JSON.stringify(summary, null, 2));
}
