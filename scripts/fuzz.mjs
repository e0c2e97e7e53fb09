#!/usr/bin/env node
// `npm run fuzz -- [--minutes N] [--seed S] [--target NAME]... [--guided] [--save-corpus]`: bundles
// the fuzz targets (test/fuzz/, TypeScript) with esbuild and runs them in a plain Node process
// (accurate iteration rates, and the inspector for --guided). Build the host and guests first
// (`npm run build`): the targets read build/guests and the loader runs dist/loader-worker.js.
import { build } from 'esbuild';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// One level below the root, like dist/: host/paths.ts finds the package from there.
const out = `${root}build/fuzz.mjs`;
// The commit the bundle is built from (and whether the code had uncommitted changes), baked in:
// test/fuzz/stats.json credits a run's iterations to the code that ran, even if the tree moves on.
const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
let fuzzBuild = { commit: 'unknown', dirty: true };
try {
  const dirty = git('status', '--porcelain', '--untracked-files=no', '--', 'host', 'test/fuzz', ':(exclude)test/fuzz/stats.json', ':(exclude)test/fuzz/corpus', ':(exclude)test/fuzz/crashes') !== '';
  fuzzBuild = { commit: git('rev-parse', 'HEAD'), dirty };
} catch {
  // Not a git checkout: the run is recorded as of an unknown commit.
}
await build({ absWorkingDir: root, entryPoints: ['test/fuzz/main.ts'], outfile: out, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning', define: { __FUZZ_BUILD__: JSON.stringify(fuzzBuild) } });
// --expose-gc: the modules target collects now and then (its instances live outside the JS heap).
const result = spawnSync(process.execPath, ['--expose-gc', out, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exitCode = result.status ?? 1;
