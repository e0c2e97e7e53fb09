#!/usr/bin/env node
// Builds the package: the host runtime (esbuild: library, worker, CLI) and the guests.
// `node scripts/build.mjs` builds both; `--host` or `--guests` builds one.
import { build } from 'esbuild';
import { chmod } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = new Set(process.argv.slice(2));
const all = !args.has('--host') && !args.has('--guests');

export async function buildHost() {
  await build({
    absWorkingDir: root,
    entryPoints: { index: 'host/index.ts', worker: 'host/partition/worker.ts', cli: 'host/cli/main.ts' },
    outdir: 'dist',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  });
  await chmod(`${root}dist/cli.js`, 0o755);
}

if (all || args.has('--host')) await buildHost();
if (all || args.has('--guests')) {
  const { buildGuests } = await import('./build-guests.mjs');
  await buildGuests({ quiet: true });
}
