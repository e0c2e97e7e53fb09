// Mutation testing of the trusted core with StrykerJS (npm run mutate -- <folder>; see
// scripts/mutate.mjs). Not part of CI: a run takes minutes to hours. The folder, the files to
// mutate and the tests that may kill them come from the environment the script sets.
const folder = process.env.WV_MUTATE_FOLDER ?? 'storage';
const files = process.env.WV_MUTATE_FILES ? process.env.WV_MUTATE_FILES.split(',') : [`host/${folder}/**/*.ts`];
/**
 * Reports (and the incremental state) of a run over some files of a folder go beside the folder's.
 * A file may be given as line ranges (`host/storage/storage.ts:155-166`, Stryker's own syntax; several
 * ranges of one file are joined): such a run is named by its files and `.lines`, not by every range.
 */
const RANGE = /:\d+(?::\d+)?-\d+(?::\d+)?$/;
const partName = () => {
  const names = [...new Set(files.map((f) => f.replace(RANGE, '').replace(/^.*\//, '').replace(/\.ts$/, '')))];
  return `${names.join('+')}${files.some((f) => RANGE.test(f)) ? '.lines' : ''}`;
};
const out = process.env.WV_MUTATE_FILES ? `reports/mutation/${folder}/${partName()}` : `reports/mutation/${folder}`;

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.mutate.config.ts', related: false },
  coverageAnalysis: 'perTest',
  mutate: files,
  // Only the mutated host code needs its type checks off; the AssemblyScript sources are not TypeScript.
  disableTypeChecks: 'host/**/*.ts',
  // One test runner: the machine is shared, and the tests themselves start workers and processes.
  concurrency: Number(process.env.WV_MUTATE_CONCURRENCY ?? 1),
  // A hang costs this plus twice the covering tests' time: the tests' own guards stretch (WV_TIMEOUT_SCALE).
  timeoutMS: 30_000,
  timeoutFactor: 2,
  // event-recorder: each mutant's result is written as it is known (<out>/events/), so a run cut
  // short still shows its survivors and partial counts.
  reporters: ['clear-text', 'progress', 'html', 'json', 'event-recorder'],
  eventReporter: { baseDir: `${out}/events` },
  htmlReporter: { fileName: `${out}/index.html` },
  jsonReporter: { fileName: `${out}/mutation.json` },
  // A second run tests again only the mutants whose code or covering tests changed.
  incremental: true,
  incrementalFile: `${out}/incremental.json`,
  // One sandbox folder per folder (and per set of files): runs of two folders, or of two parts of
  // one folder, at once do not clean up each other's.
  tempDirName: `.stryker-tmp/${out.slice('reports/mutation/'.length).replace('/', '--')}`,
  cleanTempDir: true,
  // The suite needs the built host (dist/) and guests (build/): the sandbox is a copy of the tree.
  ignorePatterns: ['reports', '.stryker-tmp', '.wasmvisor', '*.log'],
  thresholds: { high: 90, low: 85, break: null },
};
