#!/usr/bin/env node
// `npm run mutate -- [folder...] [--check]`: mutation testing (StrykerJS, stryker.config.mjs) of
// the trusted core, one folder at a time (default: abi loader storage wasi net limits), then
// the score per folder. With --check, exits 1 when a folder is under its floor: the scheduled
// long run checks them, not every CI run (a folder takes minutes to an hour on two cores).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TESTS } from '../stryker.config.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const FOLDERS = ['abi', 'loader', 'storage', 'wasi', 'net', 'limits'];
/** Lowest acceptable score per folder (%), per issue #17: abi and storage at least 85. */
const FLOORS = { abi: 85, storage: 85 };

const args = process.argv.slice(2);
const check = args.includes('--check');
const chosen = args.filter((a) => !a.startsWith('--'));
for (const f of chosen) if (!FOLDERS.includes(f)) throw new Error(`unknown folder ${f} (one of ${FOLDERS.join(', ')})`);

/** Stryker's score (killed + timeout over valid mutants) from its JSON report. */
function score(folder) {
  const report = JSON.parse(readFileSync(`${root}reports/mutation/${folder}.json`, 'utf8'));
  const count = { killed: 0, survived: 0, timeout: 0, noCoverage: 0, other: 0 };
  for (const file of Object.values(report.files)) {
    for (const m of file.mutants) {
      const key = m.status === 'Killed' ? 'killed' : m.status === 'Survived' ? 'survived' : m.status === 'Timeout' ? 'timeout' : m.status === 'NoCoverage' ? 'noCoverage' : 'other';
      count[key]++;
    }
  }
  const valid = count.killed + count.survived + count.timeout + count.noCoverage;
  return { ...count, score: valid === 0 ? 100 : (100 * (count.killed + count.timeout)) / valid };
}

let below = 0;
const rows = [];
for (const folder of chosen.length > 0 ? chosen : FOLDERS) {
  const run = spawnSync('npx', ['stryker', 'run'], { cwd: root, stdio: 'inherit', env: { ...process.env, WASMVISOR_MUTATE: folder, WASMVISOR_MUTATE_TESTS: TESTS[folder] } });
  if (run.status !== 0) {
    rows.push(`${folder.padEnd(8)} stryker failed (exit ${run.status})`);
    below++;
    continue;
  }
  const s = score(folder);
  const floor = FLOORS[folder];
  if (floor !== undefined && s.score < floor) below++;
  rows.push(`${folder.padEnd(8)} ${s.score.toFixed(1).padStart(5)} %  killed ${s.killed}, timeout ${s.timeout}, survived ${s.survived}, no coverage ${s.noCoverage}${floor !== undefined ? `  (floor ${floor} %)` : ''}`);
}
console.log(`\nmutation score per folder (host/<folder>/):\n${rows.join('\n')}`);
if (check && below > 0) process.exitCode = 1;
