#!/usr/bin/env node
// Runs every benchmark in bench/ one after another, each in its own process (each prints ours vs
// a baseline measured in the same run). `node bench/run.mjs core plugin` runs only those.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const benches = readdirSync(dir)
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs')
  .map((f) => f.slice(0, -4))
  .filter((name) => only.length === 0 || only.includes(name))
  .sort();
let failed = 0;
for (const name of benches) {
  console.log(`\n== bench/${name}.mjs`);
  const r = spawnSync(process.execPath, ['--no-warnings', `${dir}${name}.mjs`, ...flags], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed > 0 ? 1 : 0;
