/**
 * Iterations per surface, accumulated across long runs in test/fuzz/stats.json (committed): the
 * honest total behind "N iterations with no crash". Each run adds one entry per target, with the
 * commit it ran on (and whether the tree had uncommitted changes), its seed, its iterations and
 * time, and its findings; the totals are the sums of the entries. Written after every target, so
 * a run stopped early keeps what it did.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './framework.ts';

export const STATS_FILE = path.join(REPO_ROOT, 'test', 'fuzz', 'stats.json');

export interface RunEntry {
  readonly target: string;
  readonly commit: string;
  readonly dirty: boolean;
  readonly started: string;
  readonly seed: number;
  readonly iterations: number;
  readonly inputs: number;
  readonly seconds: number;
  readonly findings: number;
}

export interface Stats {
  /** What one iteration is, per target kind. */
  readonly unit: string;
  /** Per target: iterations, inputs and seconds in all, and findings. */
  totals: Record<string, { iterations: number; inputs: number; seconds: number; findings: number }>;
  runs: RunEntry[];
}

const UNIT = 'hypercall, wasi: one guest call with every invariant checked after it; parse:*: one parse of one mutated input; modules: one random module through the loader and the differential fuel check';

export function readStats(file = STATS_FILE): Stats {
  if (!existsSync(file)) return { unit: UNIT, totals: {}, runs: [] };
  const stats = JSON.parse(readFileSync(file, 'utf8')) as Stats;
  return { unit: UNIT, totals: stats.totals ?? {}, runs: stats.runs ?? [] };
}

/** Baked into the bundle by scripts/fuzz.mjs: the commit it was built from. */
declare const __FUZZ_BUILD__: { commit: string; dirty: boolean } | undefined;

/** The commit the running code was built from, and whether it had uncommitted changes (host/, test/fuzz/). */
export function currentCommit(): { commit: string; dirty: boolean } {
  if (typeof __FUZZ_BUILD__ !== 'undefined') return __FUZZ_BUILD__;
  return { commit: 'unknown', dirty: true };
}

/** Adds one run's entry and rewrites the file (atomically: a stopped run never leaves half a file). */
export function recordRun(entry: RunEntry, file = STATS_FILE): Stats {
  const stats = readStats(file);
  stats.runs.push(entry);
  const t = (stats.totals[entry.target] ??= { iterations: 0, inputs: 0, seconds: 0, findings: 0 });
  t.iterations += entry.iterations;
  t.inputs += entry.inputs;
  t.seconds = Math.round((t.seconds + entry.seconds) * 10) / 10;
  t.findings += entry.findings;
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(stats, null, 1) + '\n');
  renameSync(tmp, file);
  return stats;
}
