// The vitest configuration StrykerJS runs (stryker.config.mjs): only the tests of the folder being
// mutated (scripts/mutate.mjs sets WV_MUTATE_TESTS), with room for a slowed-down, instrumented run.
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The test file that killed the last mutant first, then the cheapest. A mutant's run stops at its
 * first failing test (Stryker sets bail 1), so the order decides what a killed mutant costs.
 * vitest's own order runs the longest file first (made for parallel runs), which made every mutant
 * covered by the power-loss or crash workloads pay for them even when a unit test would have killed
 * it in milliseconds. Mutants come in source order, so neighbours are usually killed by the same
 * file: a file whose last run failed goes first (vitest's cache keeps each file's last outcome).
 * A file's cost is the longest it has taken (a whole run of it: Stryker's dry run); files not yet
 * timed go by size.
 */
class KillerThenCheapest extends BaseSequencer {
  private readonly cost = new Map<string, number>();

  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const cache = this.ctx.cache;
    const keyed = files.map((spec) => {
      const key = `${spec.project.name}:${relative(this.ctx.config.root, spec.moduleId)}`;
      const last = cache.getFileTestResults(key);
      const cost = Math.max(this.cost.get(key) ?? 0, last?.duration ?? 0) || undefined;
      if (cost !== undefined) this.cost.set(key, cost);
      return { spec, failed: last?.failed === true ? 0 : 1, cost: cost ?? Number.POSITIVE_INFINITY, size: cache.getFileStats(key)?.size ?? 0 };
    });
    keyed.sort((a, b) => a.failed - b.failed || a.cost - b.cost || a.size - b.size);
    return keyed.map((k) => k.spec);
  }
}

export default defineConfig({
  test: {
    include: (process.env.WV_MUTATE_TESTS ?? 'test/**/*.test.ts').split(','),
    // Speed guards compare against a baseline: instrumented code is slower by design, and a guard
    // kills no mutant that a behavioural test would not.
    exclude: ['**/node_modules/**', '**/bench-guard.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    sequence: { sequencer: KillerThenCheapest },
    // Each test file keeps its own worker (isolate, the default): suites mock modules (vi.mock of
    // node:worker_threads in test/block/secrets), which a worker shared between files would break.
    // Folders whose suites do not (scripts/mutate.mjs, SHARED_WORKER) run a mutant's files in one
    // worker: one start and one import of the host code per mutant instead of one per file.
    isolate: process.env.WV_MUTATE_ISOLATE !== '0',
  },
});
