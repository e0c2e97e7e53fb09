/**
 * Loads the management plane's bundle (dist/mgmt.js) and the labs' (dist/labs.js) on demand, so
 * `wasmvisor run` and the library never load fastify, the certificate code or the dashboard.
 */
import { errorFromCode, isErrorCode, WasmvisorError } from '../errors.ts';
import { labsModule, mgmtModule } from '../paths.ts';

export type Mgmt = typeof import('../mgmt/index.ts');

export async function loadMgmt(): Promise<Mgmt> {
  return (await import(mgmtModule.href)) as Mgmt;
}

export type Labs = typeof import('../labs/index.ts');

/** The labs' bundle (dist/labs.js), for `lab` and `serve --dashboard`. */
export async function loadLabs(): Promise<Labs> {
  return (await import(labsModule.href)) as Labs;
}

/**
 * Runs a command that uses the mgmt bundle. That bundle has its own copy of the error classes,
 * so its errors are not `instanceof` this bundle's: they are rebuilt here from their stable
 * `code` (and message), so the CLI prints and maps them like any other.
 */
export async function adopt<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown } | null;
    if (!(error instanceof WasmvisorError) && e && isErrorCode(e.code) && typeof e.message === 'string') throw errorFromCode(e.code, e.message);
    throw error;
  }
}
