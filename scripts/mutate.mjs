#!/usr/bin/env node
// Mutation testing of one folder of the trusted core (StrykerJS; not run in CI: it is slow).
//
//   npm run mutate -- <folder> [--files host/storage/image.ts,...] [--concurrency 1]
//
// <folder> is one of abi, loader, storage, wasi, net, limits. The mutants are made in
// host/<folder>/ (or only in --files), and only that folder's tests run against them (TESTS
// below), so a run stays small. It builds the host and guests first (the tests need dist/ and
// build/), runs at low priority, and writes reports/mutation/<folder>/index.html and mutation.json
// (with --files: reports/mutation/<folder>/<file+file>/). Runs are incremental: a second run tests
// again only the mutants whose code or tests changed (delete incremental.json for a full run).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** The tests that exercise each folder. */
const TESTS = {
  abi: ['test/abi/**/*.test.ts', 'test/devices/**/*.test.ts', 'test/sdk/**/*.test.ts'],
  loader: ['test/loader/**/*.test.ts'],
  storage: ['test/block/**/*.test.ts'],
  wasi: ['test/wasi/**/*.test.ts'],
  net: ['test/net/**/*.test.ts'],
  limits: ['test/limits/**/*.test.ts'],
};

const root = fileURLToPath(new URL('..', import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { files: { type: 'string' }, concurrency: { type: 'string', default: '1' } },
});
const folder = positionals[0];
if (positionals.length !== 1 || !(folder in TESTS)) {
  console.error(`usage: npm run mutate -- <${Object.keys(TESTS).join('|')}> [--files a.ts,b.ts] [--concurrency n]`);
  process.exit(2);
}
if (!/^[1-9]\d*$/.test(values.concurrency)) {
  console.error(`--concurrency must be a positive whole number, got ${JSON.stringify(values.concurrency)}`);
  process.exit(2);
}
const env = {
  ...process.env,
  WV_MUTATE_FOLDER: folder,
  WV_MUTATE_TESTS: TESTS[folder].join(','),
  WV_MUTATE_CONCURRENCY: values.concurrency,
  // Instrumented code is several times slower: the tests' own hang guards stretch (test/helpers.ts).
  WV_TIMEOUT_SCALE: '10',
  // The long randomized workloads run a smaller sample (test/helpers.ts).
  WV_MUTATING: '1',
  ...(values.files ? { WV_MUTATE_FILES: values.files } : {}),
};
const step = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, env, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
step(process.execPath, ['scripts/build.mjs']);
const stryker = fileURLToPath(new URL('../node_modules/@stryker-mutator/core/bin/stryker.js', import.meta.url));
// nice: a mutation run must not starve the other work on the machine.
step('nice', ['-n', '10', process.execPath, stryker, 'run', 'stryker.config.mjs']);
