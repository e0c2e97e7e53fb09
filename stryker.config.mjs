// StrykerJS over one folder of the trusted core at a time (scripts/mutate.mjs sets the folder):
// the folder's sources are mutated and only the unit tests of that folder run against each
// mutant (vitest.mutate.config.ts), so a run takes minutes per folder, not the whole suite per mutant.
// Tests that drive partitions in workers run the built bundles (dist/), which Stryker does not
// rebuild: mutants only those tests would kill count as survivors, so the score is a floor.
const folder = process.env.WASMVISOR_MUTATE ?? 'limits';
/**
 * The in-thread unit tests of each folder (comma-separated globs): tests that run partitions or
 * the CLI run dist/ bundles, which carry no mutant, and only add time and load-sensitive timing.
 */
export const TESTS = {
  abi: 'test/abi/*.test.ts',
  loader: 'test/loader/{sections,policy,rewrite,validate,read,integrity}.test.ts',
  storage: 'test/block/{image,crash,powerloss}.test.ts',
  wasi: 'test/wasi/calls.test.ts',
  net: 'test/net/switch.test.ts',
  limits: 'test/limits/{token-bucket,rate-limiter,cpu-governor}.test.ts',
};
if (!(folder in TESTS)) throw new Error(`WASMVISOR_MUTATE=${folder}: one of ${Object.keys(TESTS).join(', ')}`);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.mutate.config.ts', related: false },
  disableTypeChecks: 'host/**/*.ts',
  mutate: [`host/${folder}/**/*.ts`],
  coverageAnalysis: 'perTest',
  concurrency: Number(process.env.WASMVISOR_MUTATE_CONCURRENCY ?? 2),
  timeoutMS: 60_000,
  reporters: ['clear-text', 'json', 'progress'],
  jsonReporter: { fileName: `reports/mutation/${folder}.json` },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  ignorePatterns: ['reports', '.stryker-tmp', '.wasmvisor'],
};
