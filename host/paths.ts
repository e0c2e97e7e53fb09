/**
 * Locations of files that ship beside the code. This file runs either from source
 * (host/paths.ts, in the test suite) or bundled into an entry point (dist/index.js,
 * dist/cli.js; the build does not split chunks). Both sit one level below the package root.
 */

/** The package's root directory, as a file URL ending in '/'. */
export const packageRoot: URL = new URL('../', import.meta.url);

/** The bundled partition worker script. */
export const workerScript: URL = new URL('dist/worker.js', packageRoot);

/** The bundled partition process (CommonJS: a sandboxed child reads it from a descriptor and runs it; host/scheduler/sandbox.ts). */
export const processScript: URL = new URL('dist/process.cjs', packageRoot);

/** The directory of built guests (build/guests/). */
export const guestsDir: URL = new URL('build/guests/', packageRoot);

/** The bundled transform worker (binaryen passes off the root's thread). */
export const transformScript: URL = new URL('dist/transform.js', packageRoot);
/** The management plane's bundle (dist/mgmt.js), loaded by the CLI only for serve, token and cert. */
export const mgmtModule: URL = new URL('dist/mgmt.js', packageRoot);

/**
 * The flags a worker starts with: the process's Node flags, less those a worker refuses (an app
 * started as `node --input-type=module -e …` would otherwise get no worker at all).
 */
export const WORKER_EXEC_ARGV: readonly string[] = process.execArgv.filter((arg, i, all) => !arg.startsWith('--input-type') && all[i - 1] !== '--input-type');
