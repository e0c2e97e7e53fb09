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

/** The directory of built guests (build/guests/). */
export const guestsDir: URL = new URL('build/guests/', packageRoot);

/** The management plane's bundle (dist/mgmt.js), loaded by the CLI only for serve, token and cert. */
export const mgmtModule: URL = new URL('dist/mgmt.js', packageRoot);

/** The dashboard's page and its bundled script and style sheet (built by scripts/build.mjs). */
export const labsWebDir: URL = new URL('dist/labs/web/', packageRoot);

/** The labs' bundle (dist/labs.js): the dashboard and the labs, loaded by the CLI only for `lab` and `serve --dashboard`. */
export const labsModule: URL = new URL('dist/labs.js', packageRoot);
