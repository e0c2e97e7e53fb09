/**
 * The fuzzing framework: a target is an input space (a fast-check arbitrary, so every finding
 * is shrunk to a small reproducer) and a run that throws when an invariant breaks. The same
 * targets run three ways:
 * - in CI (test/fuzz/ci.test.ts): a fixed seed and a small fixed budget, plus every committed
 *   reproducer (crashes/) and corpus entry (corpus/) replayed as a regression test;
 * - long (`npm run fuzz -- --minutes N`): fresh seeds until the time is up, iterations counted,
 *   a finding saved as a reproducer;
 * - guided (`--guided`, byte targets only): a corpus mutator kept by V8's own block coverage
 *   (guided.ts).
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** One surface under test. */
export interface Target<T> {
  readonly name: string;
  /** What the surface is, in one line (printed with the iteration counts). */
  readonly surface: string;
  /** The input space. */
  readonly input: fc.Arbitrary<T>;
  /** Once, before the first input (may be slow: modules, images). */
  setup?(): Promise<void>;
  /** Once, at the end. */
  teardown?(): Promise<void>;
  /**
   * Runs one input; throws an Error naming the broken invariant. Returns the iterations the input
   * stood for (the calls a call-sequence target made and checked); nothing means one.
   */
  run(input: T): void | number | Promise<void | number>;
  /** JSON form of an input, for reproducers and the corpus (default: the input itself). */
  toJSON?(input: T): unknown;
  fromJSON?(json: unknown): T;
  /** For byte targets: the raw bytes an input stands for (lets the guided mutator drive it). */
  fromBytes?(bytes: Uint8Array): T;
}

/** How long to fuzz: `runs` inputs, or until `millis` have passed, from `seed`. */
export interface Budget {
  readonly seed: number;
  readonly runs?: number;
  readonly millis?: number;
}

export interface Outcome {
  readonly target: string;
  /** Inputs run. */
  readonly inputs: number;
  /** Iterations: calls made and checked (call-sequence targets), parses (byte targets), modules. */
  readonly iterations: number;
  readonly millis: number;
  readonly failure: { readonly seed: number; readonly path: string | undefined; readonly input: unknown; readonly error: string } | null;
}

/** The repository's root (this file runs from test/fuzz/ or bundled elsewhere by scripts/fuzz.mjs). */
export const REPO_ROOT = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();
/** Reproducers of findings: each becomes a regression test (ci.test.ts). */
export const CRASH_DIR = path.join(REPO_ROOT, 'test', 'fuzz', 'crashes');
/** Interesting inputs, committed and replayed on every CI run. */
export const CORPUS_DIR = path.join(REPO_ROOT, 'test', 'fuzz', 'corpus');

/** Chunk of inputs per fast-check run in a long fuzz (a fresh seed per chunk). */
const CHUNK = 200;

/** Fuzzes `target` within `budget`; the first failing input (shrunk) is the outcome's failure. */
export async function fuzz<T>(target: Target<T>, budget: Budget): Promise<Outcome> {
  const started = performance.now();
  const deadline = budget.millis === undefined ? Infinity : started + budget.millis;
  const maxRuns = budget.runs ?? Infinity;
  let inputs = 0;
  let iterations = 0;
  let seed = budget.seed;
  while (inputs < maxRuns && performance.now() < deadline) {
    const numRuns = Math.min(CHUNK, maxRuns - inputs);
    const property = fc.asyncProperty(target.input, async (input) => {
      inputs++;
      const n = await target.run(input);
      iterations += typeof n === 'number' ? n : 1;
    });
    const left = deadline - performance.now();
    const details = await fc.check(property, {
      seed,
      numRuns,
      ...(Number.isFinite(left) ? { interruptAfterTimeLimit: Math.max(1, Math.floor(left)), markInterruptAsFailure: false } : {}),
    });
    if (details.failed && details.counterexample !== null) {
      const [input] = details.counterexample as [T];
      const error = details.errorInstance instanceof Error ? (details.errorInstance.stack ?? details.errorInstance.message) : String(details.errorInstance);
      return { target: target.name, inputs, iterations, millis: performance.now() - started, failure: { seed, path: details.counterexamplePath ?? undefined, input: (target.toJSON ?? ((x: T) => x))(input), error } };
    }
    if (details.interrupted) break;
    seed = (seed + 0x9e3779b1) | 0;
  }
  return { target: target.name, inputs, iterations, millis: performance.now() - started, failure: null };
}

/** Saves a finding as `crashes/<target>/<hash>.json`; returns its path. */
export function saveReproducer(outcome: Outcome): string {
  const failure = outcome.failure!;
  const body = JSON.stringify({ target: outcome.target, seed: failure.seed, path: failure.path, error: failure.error.split('\n')[0], input: failure.input }, replacer, 2);
  const dir = path.join(CRASH_DIR, dirName(outcome.target));
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${createHash('sha256').update(body).digest('hex').slice(0, 16)}.json`);
  writeFileSync(file, body + '\n');
  return file;
}

/** Saves an interesting input in the corpus. */
export function saveCorpus(target: string, input: unknown): string {
  const body = JSON.stringify(input, replacer);
  const dir = path.join(CORPUS_DIR, dirName(target));
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${createHash('sha256').update(body).digest('hex').slice(0, 16)}.json`);
  writeFileSync(file, body + '\n');
  return file;
}

/** A target's directory name under crashes/ and corpus/ (`parse:sections` → `parse-sections`). */
export function dirName(target: string): string {
  return target.replace(/[^A-Za-z0-9._-]/g, '-');
}

/** The committed inputs of a directory (`crashes/<target>` or `corpus/<target>`), decoded. */
export function savedInputs(dir: string): { file: string; json: unknown }[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return names.map((n) => {
    const parsed = JSON.parse(readFileSync(path.join(dir, n), 'utf8'), reviver) as { input?: unknown };
    return { file: path.join(dir, n), json: dir.startsWith(CRASH_DIR) ? parsed.input : parsed };
  });
}

/** JSON of an input (Uint8Arrays and bigints tagged, as in reproducers). */
export function stringify(input: unknown): string {
  return JSON.stringify(input, replacer);
}

/** Uint8Arrays and bigints survive JSON as tagged objects. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('base64') };
  if (typeof value === 'bigint') return { $bigint: value.toString() };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null) {
    const v = value as { $bytes?: unknown; $bigint?: unknown };
    if (typeof v.$bytes === 'string') return new Uint8Array(Buffer.from(v.$bytes, 'base64'));
    if (typeof v.$bigint === 'string') return BigInt(v.$bigint);
  }
  return value;
}

/**
 * Where targets keep their block images and seeded files: /dev/shm when there is one (memory: the
 * disk's fsyncs cost nothing there, and a fuzzer makes thousands), else the temp folder.
 */
export function scratchDir(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
}

/** Throws an Error naming a broken invariant when `ok` is false. */
export function invariant(ok: boolean, message: () => string): asserts ok {
  if (!ok) throw new Error(`invariant broken: ${message()}`);
}

/** u32 values at and around every boundary that matters to a (ptr, len) pair. */
export function boundaryU32(edges: readonly number[]): fc.Arbitrary<number> {
  const near = edges.flatMap((e) => [e - 2, e - 1, e, e + 1, e + 2]).map((v) => v >>> 0);
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...near) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 4096 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
  );
}
