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
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(`${root}package.json`, 'utf8'));
  const common = {
    absWorkingDir: root,
    metafile: true,
    outdir: 'dist',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // TypeBox is bundled: as one file it loads about 8x faster than as its hundreds of ESM
    // modules (measured: ~60 vs ~500 ms on a loaded 2-core machine), which every CLI run and
    // every hypervisor would pay. Every other package stays external, as before.
    external: [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})].filter((d) => d !== '@sinclair/typebox'),
    sourcemap: true,
    logLevel: 'warning',
  };
  const results = await Promise.all([
    // One copy of each module across the entry points an embedder imports: code shared by the
    // library, the CLI and the management plane lives in dist/chunk-*.js, so `err instanceof
    // WasmvisorError` (or a Hypervisor from 'wasmvisor' handed to 'wasmvisor/mgmt') holds across
    // them. Chunks sit beside the entries: host/paths.ts resolves the package root from whichever
    // file it lands in.
    build({ ...common, entryPoints: { index: 'host/index.ts', cli: 'host/cli/main.ts', mgmt: 'host/mgmt/index.ts', labs: 'host/labs/index.ts' }, splitting: true, chunkNames: 'chunk-[hash]' }),
    // The partition worker runs in its own thread (its own realm: no class is shared with the
    // root anyway) and starts for every partition: one self-contained file, only what it uses.
    // The same holds for the loader's transform worker (binaryen stays an external package).
    build({ ...common, entryPoints: { worker: 'host/worker/main.ts', transform: 'host/loader/transform-worker.ts' } }),
    // The loader's worker (off-thread validation and compile) is likewise its own thread and
    // realm: a self-contained entry, never importing a shared chunk.
    build({ ...common, entryPoints: { 'loader-worker': 'host/loader/loader-worker.ts' } }),
    // A partition process runs its bundle from a descriptor, as CommonJS (host/scheduler/sandbox.ts).
    // It may read no file, so everything it runs is in the bundle. Two things it never runs stay
    // out: binaryen (imported dynamically by the loader, whose name constants the worker shares)
    // and file locations (host/paths.ts, evaluated but unused: import.meta has no URL in CommonJS).
    build({
      absWorkingDir: root,
      metafile: true,
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
    }),
  ]);
  await chmod(`${root}dist/cli.js`, 0o755);
  // Chunks of an earlier build are not imported by this one: remove them (they would be measured).
  const { readdir, rm } = await import('node:fs/promises');
  const wanted = new Set(results.flatMap((r) => Object.keys(r.metafile.outputs)).map((f) => f.replace(/^dist\//, '')));
  for (const f of await readdir(`${root}dist`)) {
    if (/^chunk-[A-Z0-9]+\.js(\.map)?$/.test(f) && !wanted.has(f)) await rm(`${root}dist/${f}`);
  }
  await writeJsonSchemas();
  await buildDashboard();
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

/**
 * The dashboard's page (host/labs/web/): one script and one style sheet for the browser, with
 * uPlot bundled in, so the page works offline and loads nothing from anywhere else.
 */
export async function buildDashboard() {
  const { copyFile, mkdir } = await import('node:fs/promises');
  await mkdir(`${root}dist/labs/web`, { recursive: true });
  await build({
    absWorkingDir: root,
    entryPoints: { app: 'host/labs/web/app.ts' },
    outdir: 'dist/labs/web',
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    legalComments: 'eof',
    sourcemap: false,
    logLevel: 'warning',
  });
  await copyFile(`${root}host/labs/web/index.html`, `${root}dist/labs/web/index.html`);
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
