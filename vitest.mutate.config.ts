// The vitest configuration of a mutation run (stryker.config.mjs): the suite's, with only the
// unit tests of the folder being mutated (WASMVISOR_MUTATE_TESTS, a glob). Not mergeConfig: it
// would append to the suite's include list instead of replacing it.
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

export default defineConfig({ ...base, test: { ...base.test, include: [process.env.WASMVISOR_MUTATE_TESTS ?? 'test/**/*.test.ts'] } });
