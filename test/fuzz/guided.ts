/**
 * Coverage-guided mutation for the byte targets, on V8's own block coverage (jazzer.js cannot
 * run here: it needs glibc 2.38). The inspector's precise coverage, in count mode, reports which
 * blocks of code ran since the last take; an input that runs a block no earlier input ran is
 * kept in the corpus, and new inputs are mutations of kept ones. Taking coverage costs about a
 * millisecond, so this mode trades iterations for direction; the CI run stays plain fast-check.
 */
import { Session } from 'node:inspector';
import { prng } from '../block/sim-disk.ts';
import { checkParse, mutate, type Mutation, type Parser } from './targets/bytes.ts';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface Coverage {
  result: { scriptId: string; url: string; functions: { functionName: string; ranges: Range[] }[] }[];
}


function post<T>(session: Session, method: string, params: object = {}): T {
  let out: T | undefined;
  let failure: Error | null = null;
  session.post(method, params, (error, result) => {
    failure = error;
    out = result as T;
  });
  if (failure) throw failure;
  if (out === undefined) throw new Error(`inspector ${method} did not answer synchronously`);
  return out;
}

export interface GuidedOutcome {
  iterations: number;
  corpus: Uint8Array[];
  blocks: number;
  failure: { bytes: Uint8Array; error: string } | null;
}

/** Fuzzes `parser` for `millis`, guided by coverage, starting from its real inputs. */
export function guided(parser: Parser, millis: number, seed: number): GuidedOutcome {
  const random = prng(seed);
  const pick = (n: number) => Math.floor(random() * n);
  const session = new Session();
  session.connect();
  post(session, 'Profiler.enable');
  post(session, 'Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  const seen = new Set<string>();
  /** Blocks this input ran that no earlier one did. */
  const fresh = (): number => {
    const { result } = post<Coverage>(session, 'Profiler.takePreciseCoverage');
    let added = 0;
    for (const script of result) {
      for (const fn of script.functions) {
        for (const r of fn.ranges) {
          if (r.count === 0) continue;
          const key = `${script.scriptId}:${r.startOffset}:${r.endOffset}`;
          if (!seen.has(key)) {
            seen.add(key);
            added++;
          }
        }
      }
    }
    return added;
  };
  const corpus = parser.bases();
  for (const bytes of corpus) {
    try {
      checkParse(parser, bytes);
    } catch {
      // A base that fails is reported by the plain run; here it only seeds coverage.
    }
    fresh();
  }
  const ops: Mutation['op'][] = ['flip', 'set', 'truncate', 'insert', 'delete', 'leb', 'duplicate'];
  const randomMutation = (): Mutation => {
    const op = ops[pick(ops.length)]!;
    const at = pick(1 << 20);
    switch (op) {
      case 'flip':
        return { op, at, bit: pick(8) };
      case 'set':
        return { op, at, value: pick(256) };
      case 'truncate':
        return { op, at };
      case 'insert':
        return { op, at, bytes: Uint8Array.from({ length: 1 + pick(8) }, () => pick(256)) };
      case 'delete':
      case 'duplicate':
        return { op, at, length: 1 + pick(32) };
      case 'leb':
        return { op, at, extra: 1 + pick(6) };
    }
  };
  const deadline = performance.now() + millis;
  let iterations = 0;
  let failure: GuidedOutcome['failure'] = null;
  try {
    while (performance.now() < deadline && failure === null) {
      const parent = corpus[pick(corpus.length)]!;
      const child = mutate(parent, Array.from({ length: 1 + pick(4) }, randomMutation));
      iterations++;
      try {
        checkParse(parser, child);
      } catch (error) {
        failure = { bytes: child, error: error instanceof Error ? error.message : String(error) };
      }
      if (fresh() > 0) corpus.push(child);
    }
  } finally {
    post(session, 'Profiler.stopPreciseCoverage');
    session.disconnect();
  }
  return { iterations, corpus, blocks: seen.size, failure };
}
