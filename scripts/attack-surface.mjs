#!/usr/bin/env node
// `npm run attack-surface`: regenerates docs/attack-surface.json from the code (test/surface/).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}build/attack-surface.mjs`;
await build({ absWorkingDir: root, entryPoints: ['test/surface/write.ts'], outfile: out, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' });
process.exitCode = spawnSync(process.execPath, [out], { stdio: 'inherit' }).status ?? 1;
