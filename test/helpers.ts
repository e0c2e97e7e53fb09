import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { Hypervisor, type HypervisorOptions, type Partition, type PartitionExit } from '../host/index.ts';

const root = new URL('../', import.meta.url);

/** Path of a built guest; a clear failure when the build has not run. */
export function guest(name: string): string {
  const path = fileURLToPath(new URL(`build/guests/${name}.wasm`, root));
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` first (npm test does)`);
  if (!existsSync(fileURLToPath(new URL('dist/worker.js', root)))) throw new Error('dist/worker.js is missing: run `npm run build` first');
  return path;
}

/** Collects a partition's console lines. */
export function collect(p: Partition): { stdout: string[]; stderr: string[] } {
  const out = { stdout: [] as string[], stderr: [] as string[] };
  p.on('console', (line, stream) => out[stream].push(line));
  return out;
}

/** Starts a partition and waits for its exit. */
export async function runToExit(p: Partition): Promise<PartitionExit> {
  await p.start();
  return p.exited;
}

/**
 * Where the partition suites run their partitions: vitest.config.ts runs them once per place
 * ('dedicated' and 'shared' workers, and a subset in partition processes: isolation 'process'),
 * so the same tests prove each behaves the same.
 */
export const PLACEMENT: 'dedicated' | 'shared' | 'process' = ((p) => (p === 'shared' || p === 'process' ? p : 'dedicated'))(process.env.WASMVISOR_TEST_PLACEMENT);

/** A Hypervisor whose partitions run in this run's placement (unless `options` chooses). */
export function hypervisor(options: HypervisorOptions = {}): Hypervisor {
  return new Hypervisor(PLACEMENT === 'process' ? { isolation: 'process', ...options } : { placement: PLACEMENT, ...options });
}

/**
 * A test's own time budget, in ms, stretched when the code under test is instrumented (mutation
 * runs set WV_TIMEOUT_SCALE): the budget guards against hangs, not against slowness.
 */
export function budget(ms: number): number {
  const scale = Number(process.env.WV_TIMEOUT_SCALE);
  return Number.isFinite(scale) && scale > 1 ? ms * scale : ms;
}

/**
 * True in mutation runs (scripts/mutate.mjs): the long randomized workloads (power loss, the fault
 * sweep, SIGKILL boots) run a smaller sample there, since every surviving mutant runs them all;
 * the score they give is then a lower bound of what the full suite kills.
 */
export const mutating = process.env.WV_MUTATING === '1';

/**
 * Collects every exception and rejection that reaches the test process's event loop uncaught,
 * for the whole file: a test asserts the list is empty (no partition's traffic may reach it).
 */
export function captureEscapes(): unknown[] {
  const escaped: unknown[] = [];
  const record = (error: unknown): void => {
    escaped.push(error);
  };
  beforeAll(() => {
    process.on('uncaughtException', record);
    process.on('unhandledRejection', record);
  });
  afterAll(() => {
    process.off('uncaughtException', record);
    process.off('unhandledRejection', record);
  });
  return escaped;
}
