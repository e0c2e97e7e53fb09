/** Types for scripts/build-guests.mjs (so TypeScript tests can import it). */
export interface BuildGuestsOptions {
  /** Print nothing on success (errors are still thrown). */
  quiet?: boolean;
  /** Rebuild every guest, ignoring the cache. */
  force?: boolean;
}

export interface BuildGuestsResult {
  /** Absolute path of build/guests. */
  outDir: string;
  /** Guests compiled in this run. */
  built: string[];
  /** Guests whose cached output was up to date. */
  cached: string[];
  /** Wall time of the run in milliseconds. */
  ms: number;
}

/** Builds guests/*.ts and guests/*.wat into build/guests/<name>.wasm; rejects naming each failed guest. */
export function buildGuests(options?: BuildGuestsOptions): Promise<BuildGuestsResult>;
