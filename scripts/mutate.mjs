#!/usr/bin/env node
// Mutation testing of the trusted core (StrykerJS; not run in CI: it is slow).
//
//   npm run mutate -- <folder>... | --all [--files host/storage/image.ts,...] [--concurrency 1] [--check]
//   npm run mutate:check          (= --all --check: the scheduled long run, .github/workflows/mutation.yml)
//
// A folder is one of abi, loader, storage, wasi, net, limits. The mutants are made in host/<folder>/
// (or only in --files), and only that folder's tests run against them (TESTS below), so a run
// stays small. It builds the host and guests first (the tests need dist/ and build/), runs at low
// priority, and writes reports/mutation/<folder>/index.html and mutation.json (with --files:
// reports/mutation/<folder>/<file+file>/). Runs are incremental: a second run tests again only
// the mutants whose code or tests changed (delete incremental.json for a full run).
//
// --check: after the runs, each folder's score must reach its floor in mutation-floors.json;
// exits 1 when one does not (the scores and the commit they were measured on: docs/MUTATION.md).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readFloors, scoreReport, verdict } from './mutation-score.mjs';

/**
 * The tests that exercise each folder. Only tests that import host/ source in the test process can
 * kill a mutant (partitions run the built bundle in workers); tests that read host/ source as text
 * (test/sdk/other-languages: include/hv.h against codes.ts) fail on Stryker's instrumented copy.
 */
const TESTS = {
  abi: ['test/abi/**/*.test.ts', 'test/devices/**/*.test.ts', 'test/sdk/abi-constants.test.ts'],
  loader: ['test/loader/**/*.test.ts'],
  // Not cli, multiprocess, partition: they drive the built CLI and partitions, which mutants do not reach.
  storage: [
    'crash', 'crypto', 'engine', 'faults', 'hypercalls', 'image', 'image-edges', 'keys', 'keystore-fail', 'keystore-files', 'keystore-format', 'keystore-zeroing',
    'list', 'lock', 'lock-platform', 'powerloss', 'refusals', 'secrets', 'storage-edges', 'storage-faults',
  ].map(
    (name) => `test/block/${name}.test.ts`,
  ),
  // WASI runs in the partition's worker (the bundle): the in-thread suites (calls, hostfs, ...)
  // reach host/wasi/ source, and config calls the root's resolveWasi directly; the partition suites
  // would add only the root's resolveWasi again, at the cost of starting partitions.
  wasi: ['calls', 'config', 'fd-kinds', 'file-fd', 'hostfs', 'numbers', 'paths', 'setup', 'table-edges', 'vfs'].map((name) => `test/wasi/${name}.test.ts`),
  // Not partitions: its partitions run the switch's other half in their workers (the bundle); the
  // root's half it reaches is driven in-thread by switch, forward and port, at a tenth of the cost.
  net: ['forward', 'port', 'switch', 'switch-edges'].map((name) => `test/net/${name}.test.ts`),
  // Not rate-limits: its partition tests count throttled calls in real time, which an instrumented
  // run on a loaded machine does not reach (a slower guest is throttled less).
  limits: ['cpu-governor', 'limits-edges', 'rate-limiter', 'sizes', 'token-bucket'].map((name) => `test/limits/${name}.test.ts`),
};

/**
 * Folders whose test files may share one worker within a mutant's run (vitest `isolate: false`):
 * none of their suites mocks a module or needs a fresh copy of one, and each passes so. Each
 * covering file then skips a worker's start and a fresh import of the host code and wabt: for a
 * loader survivor (covered by 8 files) that halved the run (session 9: 8 loader files in 11 and
 * 14 s instead of 21 and 29). Every run of a mutant still starts a fresh worker, so a static mutant
 * is still imported anew. Not storage: test/block/secrets mocks node:worker_threads.
 */
const SHARED_WORKER = new Set(['loader']);

const root = fileURLToPath(new URL('..', import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    files: { type: 'string' },
    concurrency: { type: 'string', default: '1' },
    all: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
  },
});
const usage = `usage: npm run mutate -- <${Object.keys(TESTS).join('|')}>... | --all [--files a.ts,b.ts] [--concurrency n] [--check]`;
const folders = values.all ? Object.keys(TESTS) : positionals;
const fail = (message) => {
  console.error(message);
  process.exit(2);
};
if (folders.length === 0 || (values.all && positionals.length > 0)) fail(usage);
for (const folder of folders) if (!Object.hasOwn(TESTS, folder)) fail(`unknown folder ${JSON.stringify(folder)}\n${usage}`);
if (values.files && folders.length !== 1) fail('--files names files of one folder');
// A score over some files of a folder is not the folder's: the floor is not checked against it.
if (values.files && values.check) fail('--check measures whole folders: it cannot be used with --files');
if (!/^[1-9]\d*$/.test(values.concurrency)) fail(`--concurrency must be a positive whole number, got ${JSON.stringify(values.concurrency)}`);
const floors = values.check ? readFloors(`${root}mutation-floors.json`) : {};

const step = (cmd, args, env) => {
  const r = spawnSync(cmd, args, { cwd: root, env, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
step(process.execPath, ['scripts/build.mjs'], process.env);
const stryker = fileURLToPath(new URL('../node_modules/@stryker-mutator/core/bin/stryker.js', import.meta.url));
for (const folder of folders) {
  const env = {
    ...process.env,
    WV_MUTATE_FOLDER: folder,
    WV_MUTATE_TESTS: TESTS[folder].join(','),
    WV_MUTATE_CONCURRENCY: values.concurrency,
    WV_MUTATE_ISOLATE: SHARED_WORKER.has(folder) ? '0' : '1',
    // Instrumented code is several times slower: the tests' own hang guards stretch (test/helpers.ts).
    WV_TIMEOUT_SCALE: '10',
    // The long randomized workloads run a smaller sample (test/helpers.ts).
    WV_MUTATING: '1',
    ...(values.files ? { WV_MUTATE_FILES: values.files } : {}),
  };
  // nice 19: a mutation run must not starve the other work on the machine.
  step('nice', ['-n', '19', process.execPath, stryker, 'run', 'stryker.config.mjs'], env);
}
if (values.check) {
  let ok = true;
  for (const folder of folders) {
    const report = JSON.parse(readFileSync(`${root}reports/mutation/${folder}/mutation.json`, 'utf8'));
    const v = verdict(folder, scoreReport(report), floors[folder]);
    console.log(v.line);
    ok &&= v.ok;
  }
  if (!ok) {
    console.error('mutation score below its floor (mutation-floors.json): kill the surviving mutants (reports/mutation/<folder>/index.html) or explain why a floor should move');
    process.exit(1);
  }
}
