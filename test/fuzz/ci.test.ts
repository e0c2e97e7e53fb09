/**
 * The fuzzers in CI: every target with a fixed seed and a small fixed budget (the whole file
 * stays well under the 2 minutes the issue allows), then every committed reproducer and corpus
 * entry replayed as a regression test. `npm run fuzz -- --minutes N` runs the same targets long.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORPUS_DIR, CRASH_DIR, dirName, fuzz, savedInputs, stringify } from './framework.ts';
import { TARGETS } from './targets/index.ts';

/** Fixed, so a CI failure reproduces exactly. */
const SEED = 20261129;
/**
 * Inputs per target per CI run: for hypercall and wasi an input is a device configuration and up
 * to 3 × REFRESH calls (thousands), for the parsers one mutated input, for modules one module.
 */
const CI_RUNS: Record<string, number> = { hypercall: 6, wasi: 6, 'parse:sections': 1500, 'parse:policy': 1000, 'parse:rbac': 1000, 'parse:token-file': 1000, 'parse:manifest': 1000, 'parse:signature': 400, 'parse:audit': 200, modules: 12 };
/** The whole file's wall time (the bound is 2 minutes), printed at the end. */
const fileStarted = performance.now();
afterAll(() => {
  console.log(`fuzz CI budget: ${((performance.now() - fileStarted) / 1000).toFixed(1)} s wall time for every target and replay (bound: 120 s)`);
});

for (const target of TARGETS) {
  describe(`fuzz target ${target.name}: ${target.surface}`, () => {
    beforeAll(() => target.setup?.(), 60_000);
    afterAll(() => target.teardown?.());

    it(`${CI_RUNS[target.name] ?? 100} inputs from seed ${SEED}: no invariant broken`, async () => {
      const outcome = await fuzz(target, { seed: SEED, runs: CI_RUNS[target.name] ?? 100 });
      if (outcome.failure !== null) expect.fail(`${target.name}: ${outcome.failure.error}\ninput: ${stringify(outcome.failure.input)}`);
      expect(outcome.inputs).toBe(CI_RUNS[target.name] ?? 100);
      expect(outcome.iterations).toBeGreaterThanOrEqual(outcome.inputs);
    }, 120_000);

    const fromJSON = target.fromJSON ?? ((json: unknown) => json as never);
    for (const dir of [path.join(CRASH_DIR, dirName(target.name)), path.join(CORPUS_DIR, dirName(target.name))]) {
      for (const saved of savedInputs(dir)) {
        it(`replays ${path.relative(path.dirname(CRASH_DIR), saved.file)}`, async () => {
          await target.run(fromJSON(saved.json));
        }, 60_000);
      }
    }
  });
}
