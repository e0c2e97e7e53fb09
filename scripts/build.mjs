#!/usr/bin/env node
// Builds the package: the host runtime (esbuild: library, worker, CLI) and the guests.
// `node scripts/build.mjs` builds both; `--host` or `--guests` builds one; `--types` emits the
// declaration files (dist/types, for packing: slower, so not part of the default build).
import { build } from 'esbuild';
import { chmod } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = new Set(process.argv.slice(2));
const all = !args.has('--host') && !args.has('--guests') && !args.has('--types');

export async function buildHost() {
  await build({
    absWorkingDir: root,
    entryPoints: { index: 'host/index.ts', worker: 'host/worker/main.ts', transform: 'host/loader/transform-worker.ts', cli: 'host/cli/main.ts', mgmt: 'host/mgmt/index.ts' },
    outdir: 'dist',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  });
  // A partition process runs its bundle from a descriptor, as CommonJS (host/scheduler/sandbox.ts).
  // It may read no file, so everything it runs is in the bundle. Two things it never runs stay
  // out: binaryen (imported dynamically by the loader, whose name constants the worker shares)
  // and file locations (host/paths.ts, evaluated but unused: import.meta has no URL in CommonJS).
  await build({
    absWorkingDir: root,
    entryPoints: { process: 'host/worker/process-entry.ts' },
    outdir: 'dist',
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['binaryen'],
    define: { 'import.meta.url': '"file:///wasmvisor-partition-process/dist/process.cjs"' },
    logLevel: 'warning',
  });
  await chmod(`${root}dist/cli.js`, 0o755);
  await writeJsonSchemas();
}

/**
 * The JSON Schema documents the package exports (`wasmvisor/schema/<name>`), written from the
 * bundle just built, so they are derived from the very schemas the runtime checks with.
 */
async function writeJsonSchemas() {
  const { mkdir, writeFile } = await import('node:fs/promises');
  const { pathToFileURL } = await import('node:url');
  const { jsonSchemas } = await import(`${pathToFileURL(`${root}dist/index.js`).href}?t=${Date.now()}`);
  await mkdir(`${root}dist/schema`, { recursive: true });
  for (const [name, schema] of Object.entries(jsonSchemas())) {
    await writeFile(`${root}dist/schema/${name}`, JSON.stringify(schema, null, 2) + '\n');
  }
}

/** Emits .d.ts files, with the source's `.ts` import specifiers rewritten to `.js` for consumers. */
export async function buildTypes() {
  const { execFileSync } = await import('node:child_process');
  const { readdir, readFile, writeFile } = await import('node:fs/promises');
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}tsconfig.build.json`], { stdio: 'inherit' });
  for (const entry of await readdir(`${root}dist/types`, { recursive: true })) {
    if (!entry.endsWith('.d.ts')) continue;
    const file = `${root}dist/types/${entry}`;
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace(/(['"]\.{1,2}\/[^'"\n]*?)\.ts(['"])/g, '$1.js$2'));
  }
}

if (all || args.has('--host')) await buildHost();
if (args.has('--types')) await buildTypes();
if (all || args.has('--guests')) {
  const { buildGuests } = await import('./build-guests.mjs');
  await buildGuests({ quiet: true });
}
