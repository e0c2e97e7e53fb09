import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Locations of files that ship beside the code. This file runs either from source
 * (host/paths.ts, in the test suite) or bundled (into an entry point such as dist/index.js or a
 * shared dist/chunk-*.js beside it). Both sit one level below the package root.
 */

/** The package's root directory, as a file URL ending in '/'. */
export const packageRoot: URL = new URL('../', import.meta.url);

/** The bundled partition worker script. */
export const workerScript: URL = new URL('dist/worker.js', packageRoot);

/** The bundled loader worker script: the module pipeline's own thread (loader/offthread.ts). */
export const loaderWorkerScript: URL = new URL('dist/loader-worker.js', packageRoot);
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

/** Set once a worker refused the process's flags: from then on workers start without them. */
let flagsRefused = false;

/**
 * Starts a worker with the process's flags (WORKER_EXEC_ARGV), or without any when Node refuses
 * one of them in a worker (V8 flags such as --expose-gc are per process:
 * ERR_WORKER_INVALID_EXEC_ARGV), so the embedder's flags never cost it its partitions.
 */
export function spawnWorker(script: URL, options: WorkerOptions): Worker {
  if (!flagsRefused) {
    try {
      return new Worker(script, { ...options, execArgv: [...WORKER_EXEC_ARGV] });
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw error;
      flagsRefused = true;
    }
  }
  return new Worker(script, { ...options, execArgv: [] });
}

/** The dashboard's page and its bundled script and style sheet (built by scripts/build.mjs). */
export const labsWebDir: URL = new URL('dist/labs/web/', packageRoot);

/** The labs' bundle (dist/labs.js): the dashboard and the labs, loaded by the CLI only for `lab` and `serve --dashboard`. */
export const labsModule: URL = new URL('dist/labs.js', packageRoot);
