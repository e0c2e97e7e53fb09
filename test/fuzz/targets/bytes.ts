/**
 * Byte-level fuzzing of the host's parsers: real inputs, mutated (truncation, bit flips, byte
 * changes, insertions and deletions, LEB128 overflows, duplicated ranges). Each parser is one
 * entry of PARSERS — a name, where its real inputs come from, the parse, and which errors are
 * its typed refusals — and becomes a target of its own (`parse:<name>`). The policy file, the
 * signature format and the audit log reader (host/security/, being built) each plug in with
 * one more line here.
 *
 * Invariants: the parse returns, or throws one of its typed refusals (never a RangeError, a
 * TypeError or anything untyped), within a bounded time; plus what the entry's `check` adds.
 */
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { FeatureDeniedError, LimitModuleError, ModuleInvalidError, WasmvisorError } from '../../../host/errors.ts';
import { defaultPolicy, evaluatePolicy } from '../../../host/loader/policy.ts';
import { applyClampPlan } from '../../../host/loader/rewrite.ts';
import { readSections } from '../../../host/loader/sections.ts';
import { concat, localsBomb, nestingBomb } from '../../loader/bombs.mjs';
import { wat } from '../../loader/wat.ts';
import { REPO_ROOT, invariant, type Target } from '../framework.ts';

/** A parser under test. */
export interface Parser {
  readonly name: string;
  /** Real inputs to mutate. */
  readonly bases: () => Uint8Array[];
  /** The parse; its result goes to `check`. */
  readonly parse: (bytes: Uint8Array) => unknown;
  /** True for the errors that are this parser's documented, typed refusals. */
  readonly refusal: (error: unknown) => boolean;
  /** More invariants on an input the parser accepted or refused. */
  readonly check?: (bytes: Uint8Array, result: { ok: true; value: unknown } | { ok: false; error: unknown }) => void;
}

const file = (rel: string): Uint8Array => new Uint8Array(readFileSync(path.join(REPO_ROOT, rel)));

/** Guest modules of every kind the repository has: AssemblyScript, WAT, C, Rust, and feature-rich WAT. */
function moduleBases(): Uint8Array[] {
  const built = readdirSync(path.join(REPO_ROOT, 'build', 'guests')).filter((n) => n.endsWith('.wasm')).sort();
  return [
    ...built.slice(0, 12).map((n) => file(`build/guests/${n}`)),
    file('guests/c/hello.wasm'),
    wat(`(module (import "hv" "hypercall" (func (param i32 i32 i32 i32 i32) (result i32))) (memory (export "memory") 1 2)
      (table 2 funcref) (global (mut i32) (i32.const 0)) (tag (param i32)) (elem (i32.const 0) 0) (data (i32.const 0) "abc")
      (func (export "_start") (local v128 i64) (block (loop (br_if 1 (i32.const 1)) (br 0)))
        (drop (i32x4.extract_lane 1 (v128.const i32x4 1 2 3 4))) (try (do (throw 0 (i32.const 1))) (catch_all))
        (drop (br_table 0 0 (i32.const 7) (i32.const 0))) (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))))`),
    nestingBomb(40),
    localsBomb(3, 20),
  ];
}

const isSectionRefusal = (e: unknown): boolean => e instanceof ModuleInvalidError || e instanceof FeatureDeniedError || e instanceof LimitModuleError;

export const PARSERS: readonly Parser[] = [
  {
    name: 'sections',
    bases: moduleBases,
    parse: (bytes) => readSections(bytes),
    refusal: isSectionRefusal,
    check(bytes, result) {
      const engine = WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>);
      if (!result.ok) {
        // The reader must never call malformed what the engine accepts (a false refusal).
        const e = result.error;
        invariant(!(engine && e instanceof ModuleInvalidError), () => `the engine accepts a module the reader calls malformed: ${(e as Error).message}`);
        return;
      }
      // An admitted module's clamp rewrite stays valid whenever the original was.
      const info = result.value as ReturnType<typeof readSections>;
      const verdict = evaluatePolicy(info, defaultPolicy({ requiredExports: [], imports: new Map() }));
      if (verdict.admitted && engine) {
        const clamped = applyClampPlan(bytes, info, verdict.plan);
        invariant(WebAssembly.validate(clamped as Uint8Array<ArrayBuffer>), () => 'the clamp rewrite of a valid module is invalid');
      }
    },
  },
];

/** A mutation of a base input. */
export type Mutation =
  | { readonly op: 'flip'; readonly at: number; readonly bit: number }
  | { readonly op: 'set'; readonly at: number; readonly value: number }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly op: 'delete'; readonly at: number; readonly length: number }
  | { readonly op: 'leb'; readonly at: number; readonly extra: number }
  | { readonly op: 'duplicate'; readonly at: number; readonly length: number };

/** A base input and mutations of it, or (a corpus entry from the guided run) the bytes themselves. */
export type Mutated = { readonly base: number; readonly mutations: readonly Mutation[] } | { readonly bytes: Uint8Array };

const at = fc.nat({ max: 1 << 20 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at, value: fc.oneof(fc.constantFrom(0x00, 0x7f, 0x80, 0xff, 0x0b, 0x02, 0x40, 0x60), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ op: fc.constant('truncate' as const), at }),
  fc.record({ op: fc.constant('insert' as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('leb' as const), at, extra: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ op: fc.constant('duplicate' as const), at, length: fc.integer({ min: 1, max: 64 }) }),
);

/** Applies the mutations in order; positions wrap around the current length. */
export function mutate(base: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b = base;
  for (const m of mutations) {
    const n = b.length;
    const p = n === 0 ? 0 : m.at % n;
    switch (m.op) {
      case 'flip':
        if (n > 0) {
          b = b.slice();
          b[p] = b[p]! ^ (1 << m.bit);
        }
        break;
      case 'set':
        if (n > 0) {
          b = b.slice();
          b[p] = m.value;
        }
        break;
      case 'truncate':
        b = b.subarray(0, p);
        break;
      case 'insert':
        b = concat([b.subarray(0, p), m.bytes, b.subarray(p)]);
        break;
      case 'delete':
        b = concat([b.subarray(0, p), b.subarray(Math.min(n, p + m.length))]);
        break;
      case 'leb': {
        // Over-long LEB128: set the continuation bit on the byte and add bytes that keep going.
        if (n === 0) break;
        const head = b.slice(0, p + 1);
        head[p] = head[p]! | 0x80;
        b = concat([head, new Uint8Array(m.extra).fill(0x80), Uint8Array.of(0x7f), b.subarray(p + 1)]);
        break;
      }
      case 'duplicate':
        b = concat([b.subarray(0, p), b.subarray(p, Math.min(n, p + m.length)), b.subarray(p)]);
        break;
    }
  }
  return b;
}


/** Slowest a parse may be on any input of the corpus's size (ms): a bound, far above the typical. */
const PARSE_BUDGET_MS = 2000;

/** Runs bytes through a parser and its invariants; throws on a finding. */
export function checkParse(parser: Parser, bytes: Uint8Array): void {
  const started = performance.now();
  let result: { ok: true; value: unknown } | { ok: false; error: unknown };
  try {
    result = { ok: true, value: parser.parse(bytes) };
  } catch (error) {
    invariant(parser.refusal(error), () => `${parser.name} threw an untyped error: ${error instanceof WasmvisorError ? `${error.code}: ${error.message}` : error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    result = { ok: false, error };
  }
  const ms = performance.now() - started;
  invariant(ms < PARSE_BUDGET_MS, () => `${parser.name} took ${ms.toFixed(0)} ms on ${bytes.length} bytes`);
  parser.check?.(bytes, result);
}

/** The byte target of a parser: a base input and a few mutations of it. */
export function byteTarget(parser: Parser): Target<Mutated> {
  let bases: Uint8Array[] = [];
  return {
    name: `parse:${parser.name}`,
    surface: `byte-level mutations of real inputs through the ${parser.name} parser`,
    input: fc.record({ base: fc.nat({ max: 1000 }), mutations: fc.array(mutation, { minLength: 1, maxLength: 6 }) }) as fc.Arbitrary<Mutated>,
    async setup() {
      bases = parser.bases();
    },
    run(input) {
      checkParse(parser, 'bytes' in input ? input.bytes : mutate(bases[input.base % bases.length]!, input.mutations));
    },
  };
}
