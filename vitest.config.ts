import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Partitions run in worker threads; the suite itself is fine in forks with the default pool.
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
