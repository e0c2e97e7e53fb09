/**
 * Byte-level fuzzing of the host's parsers: real inputs, mutated (truncation, bit flips, byte
 * changes, insertions and deletions, LEB128 overflows, duplicated ranges). Each parser is one
 * entry of PARSERS — a name, where its real inputs come from, the parse, and which errors are
 * its typed refusals — and becomes a target of its own (`parse:<name>`). Besides the section
 * reader: the security policy file (Policy.fromJson, then admission and grants), the management
 * host's rbac.json and token files, and manifests, each through the function the real reader
 * calls on the file's text. The signature format and the audit log reader are fuzzed by their
 * own tests (test/security/signature.test.ts, test/security/audit.test.ts).
 *
 * Invariants: the parse returns, or throws one of its typed refusals (never a RangeError, a
 * TypeError or anything untyped), within a bounded time; plus what the entry's `check` adds.
 */
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { FeatureDeniedError, InvalidArgumentError, LimitModuleError, ModuleInvalidError, WasmvisorError } from '../../../host/errors.ts';
import { parseConfigJson } from '../../../host/mgmt/config.ts';
import { PERMISSIONS, Rbac } from '../../../host/mgmt/rbac.ts';
import { RbacFile } from '../../../host/mgmt/schemas.ts';
import { Policy, type GrantAsk } from '../../../host/security/policy.ts';
import { measure } from '../../../host/loader/measure.ts';
import { parseTokenFile } from '../../../host/mgmt/tokens.ts';
import { manifestSpec } from '../../../host/schema/manifest.ts';
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

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const json = (...values: unknown[]): Uint8Array[] => values.map((v, i) => new TextEncoder().encode(JSON.stringify(v, null, i % 2 === 0 ? 2 : 0)));
const SHA = 'ab'.repeat(32);

/** The smallest module (header only), and its measurement: what the policy fuzz target admits. */
const EMPTY_MODULE = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
const EMPTY_SHA = measure(EMPTY_MODULE);
/** Key files and preopen folders a mutated policy names resolve here (a folder with no keys). */
const POLICY_DIR = path.join(REPO_ROOT, 'test', 'fuzz', 'corpus');
const ask = (over: Partial<GrantAsk>): GrantAsk => ({
  partition: 'p',
  devices: [],
  memoryPages: 1,
  memoryPagesDefault: false,
  fuel: 100,
  blockMiB: null,
  netSegment: null,
  netHost: false,
  wasi: false,
  preopenHostPaths: [],
  ...over,
});
const ASKS: readonly GrantAsk[] = [
  ask({}),
  ask({ devices: ['console', 'clock'], memoryPages: 16, fuel: 1000 }),
  ask({ devices: ['console', 'block'], memoryPages: 17, memoryPagesDefault: true, fuel: null, blockMiB: 2 }),
  ask({ devices: ['net'], netSegment: 'red', netHost: true, wasi: true, preopenHostPaths: [POLICY_DIR] }),
];
/** A configuration file's refusal: ERR_INVALID_ARGUMENT naming the file. */
const isConfigRefusal = (e: unknown): boolean => e instanceof InvalidArgumentError;

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
  {
    name: 'policy',
    bases: () =>
      json(
        {},
        { modules: { [EMPTY_SHA]: { name: 'empty', grants: { devices: ['console', 'clock'], memoryPages: 16, fuel: 1000 } } }, requireSignature: false },
        { modules: { [EMPTY_SHA]: {} }, defaultGrants: { devices: [], memoryPages: 1, blockMiB: 1, netSegments: ['blue'] }, allowPartialSignatures: true },
      ),
    // As the host reads a policy file (Policy.fromJson, what fromFile calls on the text), then
    // admission of a module and of specs at and around its grants.
    parse: (bytes) => {
      const policy = Policy.fromJson(text(bytes), { baseDir: POLICY_DIR, source: 'policy.json' });
      const outcomes: string[] = [];
      let admission;
      try {
        admission = policy.admit(EMPTY_MODULE);
      } catch (error) {
        invariant(error instanceof WasmvisorError && error.code === 'ERR_INTEGRITY', () => `admission threw an untyped error: ${String(error)}`);
        return [error.code];
      }
      for (const ask of ASKS) {
        try {
          policy.checkGrants(admission, ask);
          outcomes.push('granted');
        } catch (error) {
          invariant(error instanceof WasmvisorError && error.code === 'ERR_POLICY_DENIED', () => `checkGrants threw an untyped error: ${String(error)}`);
          outcomes.push(error.code);
        }
      }
      return outcomes;
    },
    refusal: isConfigRefusal,
  },
  {
    name: 'rbac',
    bases: () =>
      json(
        {},
        {
          roles: [{ name: 'Deployer', description: 'runs things', permissions: ['partitions/*', 'metrics/read'], notPermissions: ['partitions/write'] }],
          assignments: [{ principal: 'token:ci', role: 'Deployer', scope: '/segments/blue' }, { principal: 'cert:alice', role: 'Reader', scope: '/' }],
          denyAssignments: [{ name: 'no-wipe', principal: '*', permissions: ['disks/wipe'], scope: '/partitions/db' }],
        },
        { roles: [{ name: 'All', permissions: ['*'] }], assignments: [{ principal: 'token:x', role: 'All', scope: '/partitions/a' }] },
      ),
    // As `serve` reads rbac.json, then decisions at every scope kind.
    parse: (bytes) => {
      const rbac = new Rbac(parseConfigJson(text(bytes), RbacFile, 'rbac.json'));
      const decisions: boolean[] = [];
      for (const principal of ['token:ci', 'cert:alice', 'token:x', 'token:nobody'])
        for (const permission of PERMISSIONS)
          for (const scope of ['/', '/partitions/db', '/segments/blue']) decisions.push(rbac.decide(principal, [], permission, scope, 'blue').allowed);
      return decisions;
    },
    refusal: isConfigRefusal,
  },
  {
    name: 'token-file',
    bases: () =>
      json(
        { id: '0123456789abcdef', name: 'ci', role: 'Owner', scope: '/', createdAt: '2026-11-29T10:00:00.000Z', expiresAt: '2026-12-29T10:00:00.000Z', revokedAt: null, createdBy: 'token:admin', sha256: SHA },
        { id: '0123456789abcdef', name: 'op.1', role: 'Reader', scope: '/partitions/a', createdAt: '2026-11-29T10:00:00.000Z', expiresAt: null, revokedAt: '2026-11-30T00:00:00Z', createdBy: 'cli', sha256: SHA },
      ),
    parse: (bytes) => parseTokenFile(text(bytes), '0123456789abcdef.json'),
    refusal: isConfigRefusal,
    check(_bytes, result) {
      if (!result.ok) return;
      // A record the store keeps has times it can compare: an unreadable expiry would never expire.
      const r = result.value as ReturnType<typeof parseTokenFile>;
      for (const t of [r.createdAt, r.expiresAt, r.revokedAt]) invariant(t === null || Number.isFinite(Date.parse(t)), () => `token file accepted with the time ${JSON.stringify(t)}`);
    },
  },
  {
    name: 'manifest',
    bases: () =>
      json(
        { module: 'app.wasm' },
        {
          $schema: 'https://example.invalid/manifest.json',
          name: 'web',
          module: 'guests/web.wasm',
          sha256: SHA,
          args: ['--port', '80'],
          limits: { memoryPages: 64, timeoutMs: 5000, maxInputBytes: 65536 },
          devices: { console: { maxLineBytes: 4096 }, clock: true, net: { segment: 'blue', mtu: 1500 } },
          wasi: { preopens: [{ hostPath: 'data', guestPath: '/data' }], env: { A: 'b' } },
        },
      ),
    // As loadManifest does with the file's text.
    parse: (bytes) => manifestSpec(text(bytes), 'app.json', '/srv/app'),
    refusal: isConfigRefusal,
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
