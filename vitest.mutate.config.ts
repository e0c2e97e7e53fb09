// The vitest configuration StrykerJS runs (stryker.config.mjs): only the tests of the folder being
// mutated (scripts/mutate.mjs sets WV_MUTATE_TESTS), with room for a slowed-down, instrumented run.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: (process.env.WV_MUTATE_TESTS ?? 'test/**/*.test.ts').split(','),
    // Speed guards compare against a baseline: instrumented code is slower by design, and a guard
    // kills no mutant that a behavioural test would not.
    exclude: ['**/node_modules/**', '**/bench-guard.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
