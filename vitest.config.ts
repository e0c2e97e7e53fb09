import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Every suite runs once with partitions in dedicated workers. The partition suites (the ones
 * that make partitions through `hypervisor()` in test/helpers.ts) run a second time with
 * partitions in shared workers: the same tests prove both placements behave the same.
 */
const PLACED = [
  'test/partition/**/*.test.ts',
  'test/block/partition.test.ts',
  'test/net/partitions.test.ts',
  'test/limits/rate-limits.test.ts',
  'test/wasi/partition.test.ts',
  'test/wasi/fixtures.test.ts',
  'test/wasi/stdio.test.ts',
];

/**
 * The partition suites that also run with each partition in a partition process: the ones whose
 * traffic crosses the process channel (host/channel/frames.ts) or whose devices and limits are
 * wired in the child — lifecycle and exit codes, reactor calls (restarts, timeouts, payloads past
 * 16 MiB), memory and output limits, fuel, guest attacks, the event-ring invariants, the block
 * device, the NIC, WASI and console streams (backpressure, EPIPE, outputFd). Left out, each for a
 * reason: the suites that make their partitions without `hypervisor()` (copies, keepalive: they
 * would repeat the dedicated run exactly), the WASI fixtures (more programs through the same WASI
 * code as wasi/partition, minutes of Asyncify transforms), and the two suites that hold guests to
 * rates in real time (CPU caps, hypercall rate limits), whose time bounds a child process on a
 * loaded machine does not keep (the caps and limits are the same code in the child: host/worker/).
 * What only a process has (its sandbox, its channel under attack, host folders by descriptor, the
 * attestation device, the CPU-seconds limit) is test/scheduler/process.test.ts, in the dedicated run.
 */
const IN_PROCESS = PLACED.filter((f) => f !== 'test/wasi/fixtures.test.ts' && f !== 'test/limits/rate-limits.test.ts');
const NOT_IN_PROCESS = [...configDefaults.exclude, 'test/partition/cpu.test.ts', 'test/partition/copies.test.ts', 'test/partition/keepalive.test.ts'];

export default defineConfig({
  test: {
    // Partitions run in worker threads; the suite itself is fine in forks with the default pool.
    testTimeout: 20_000,
    hookTimeout: 20_000,
    projects: [
      { extends: true, test: { name: 'dedicated', include: ['test/**/*.test.ts'], env: { WASMVISOR_TEST_PLACEMENT: 'dedicated' } } },
      // A shared partition's module is transformed (fuel, then Asyncify) on first use in each test
      // process: a large guest (the Rust fixture) takes seconds, more on a loaded machine.
      { extends: true, test: { name: 'shared', include: PLACED, env: { WASMVISOR_TEST_PLACEMENT: 'shared' }, testTimeout: 120_000, hookTimeout: 120_000 } },
      // Partition processes (isolation 'process'): the same suites, each partition in a sandboxed
      // child process; a module is transformed as for shared placement.
      { extends: true, test: { name: 'process', include: IN_PROCESS, exclude: NOT_IN_PROCESS, env: { WASMVISOR_TEST_PLACEMENT: 'process' }, testTimeout: 120_000, hookTimeout: 120_000 } },
    ],
  },
});
