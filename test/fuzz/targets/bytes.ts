/**
 * Byte-level fuzzing of the host's parsers: real inputs, mutated (truncation, bit flips, byte
 * changes, insertions and deletions, LEB128 overflows, duplicated ranges). Each parser is one
 * entry of PARSERS — a name, where its real inputs come from, the parse, and which errors are
 * its typed refusals — and becomes a target of its own (`parse:<name>`). Besides the section
 * reader: the security policy file (Policy.fromJson, then admission and grants), the management
 * host's rbac.json and token files, and manifests, each through the function the real reader
 * calls on the file's text; the signature format (verifyModule over signed modules: the
 * tool-conventions section framing, the signature data's LEB128 counts and lengths) and the audit
 * log reader (verifyAuditFiles over a real log with MACs, signed checkpoints and its anchor).
 *
 * Invariants: the parse returns, or throws one of its typed refusals (never a RangeError, a
 * TypeError or anything untyped), within a bounded time; plus what the entry's `check` adds.
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { AuditLog, verifyAuditFiles, type AuditVerification } from '../../../host/security/audit.ts';
import { secretKeyFromSeed } from '../../../host/security/keys.ts';
import { detachSignature, signModule, verifyModule, type ModuleVerification } from '../../../host/security/signature.ts';
import { concat, localsBomb, nestingBomb } from '../../loader/bombs.mjs';
import { wat } from '../../loader/wat.ts';
import { REPO_ROOT, invariant, scratchDir, type Target } from '../framework.ts';

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

/** The publisher key of the signature target and the host key of the audit target (fixed: reproducible). */
const PUBLISHER = secretKeyFromSeed(new Uint8Array(32).fill(3));
const HOST_KEY = secretKeyFromSeed(new Uint8Array(32).fill(5));
const AUDIT_MAC = new Uint8Array(32).fill(9);
const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
/** Measurements of the modules the signature target's bases sign (as signed: canonical sections, no signature). */
const signedContent = new Set<string>();

/** Signed modules: embedded signatures, one and two signers, with and without a delimiter (partial signatures). */
function signatureBases(): Uint8Array[] {
  const other = secretKeyFromSeed(new Uint8Array(32).fill(4));
  const out: Uint8Array[] = [];
  for (const base of moduleBases().slice(0, 4)) {
    const once = signModule(base, PUBLISHER).module;
    const twice = signModule(once, other).module;
    const delimited = signModule(base, PUBLISHER, { delimit: true, keyId: null }).module;
    for (const m of [once, twice, delimited]) {
      signedContent.add(sha(detachSignature(m).module));
      out.push(m);
    }
  }
  return out;
}

/**
 * A real audit log, written once by AuditLog (MACs, signed checkpoints, the anchor) and committed
 * in fixtures/ so the bases are the same bytes on every run (the writer records its pid and folder,
 * so a log written afresh would differ each time, and a saved corpus entry would no longer be a
 * mutation of a base). Missing fixtures are written afresh.
 */
const AUDIT_FIXTURE = path.join(REPO_ROOT, 'test', 'fuzz', 'fixtures', 'audit');
let auditHead: string | null = null;
function auditBases(): Uint8Array[] {
  const logFile = path.join(AUDIT_FIXTURE, 'audit-000001.jsonl');
  const headFile = path.join(AUDIT_FIXTURE, 'audit.head');
  if (!existsSync(logFile) || !existsSync(headFile)) writeAuditFixture(logFile, headFile);
  const bytes = new Uint8Array(readFileSync(logFile));
  auditHead = readFileSync(headFile, 'utf8');
  // The whole log, and its first half (a log that is still being written).
  const half = bytes.indexOf(0x0a, bytes.length >> 1) + 1;
  return [bytes, bytes.slice(0, half)];
}

function writeAuditFixture(logFile: string, headFile: string): void {
  const dir = mkdtempSync(path.join(scratchDir(), 'wasmvisor-fuzz-audit-'));
  try {
    let t = 1_700_000_000_000;
    // Each record 250 ms after the last: a signed checkpoint every few records (CHECKPOINT_MS).
    const log = AuditLog.open({ dir: path.join(dir, 'audit'), macKey: AUDIT_MAC, signingKey: HOST_KEY, headFile: path.join(dir, 'audit.head'), durability: 'record', now: () => (t += 250) });
    const actions = ['partition.create', 'partition.start', 'api.request', 'disk.wipe', 'key.create'];
    for (let i = 0; i < 12; i++) log.note({ action: actions[i % actions.length]!, target: `/partitions/p${i % 3}`, outcome: i % 4 === 3 ? 'denied' : 'success', reason: i % 4 === 3 ? 'role Reader may not write' : undefined, details: { i, note: 'x"y\\\\z' } });
    void log.close();
    mkdirSync(path.dirname(logFile), { recursive: true });
    writeFileSync(logFile, readFileSync(path.join(dir, 'audit', 'audit-000001.jsonl')));
    writeFileSync(headFile, readFileSync(path.join(dir, 'audit.head')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
let auditBaseBytes: Uint8Array[] = [];

const isSectionRefusal = (e: unknown): boolean => e instanceof ModuleInvalidError || e instanceof FeatureDeniedError || e instanceof LimitModuleError;

/** The signature format: a (mutated) signed module through verifyModule, as admission reads it. */
const SECURITY_PARSERS: readonly Parser[] = [
  {
    name: 'signature',
    bases: signatureBases,
    parse: (bytes) => verifyModule(bytes, [PUBLISHER.publicKey]),
    // Malformed framing (ERR_MODULE_INVALID) or signature data (ERR_INTEGRITY); a signature that does not verify is a result.
    refusal: (e) => e instanceof WasmvisorError && (e.code === 'ERR_INTEGRITY' || e.code === 'ERR_MODULE_INVALID'),
    check(bytes, result) {
      if (!result.ok) return;
      const v = result.value as ModuleVerification;
      // No forgery: a module fully signed by the publisher is, without its signature, one the publisher signed.
      if (v.signers.some((s) => s.full)) {
        invariant(signedContent.has(sha(detachSignature(bytes).module)), () => 'a mutated module verified as fully signed by the publisher');
      }
    },
  },
  {
    name: 'audit',
    bases: () => (auditBaseBytes = auditBases()),
    // As `wasmvisor audit verify` reads a file, with every key and the anchor.
    parse: (bytes) => verifyAuditFiles([{ name: 'audit-000001.jsonl', index: 1, read: () => bytes }], { macKey: AUDIT_MAC, publicKey: HOST_KEY.publicKey, head: auditHead }),
    // Never throws for a bad log: that is the result.
    refusal: () => false,
    check(bytes, result) {
      if (!result.ok) return;
      const v = result.value as AuditVerification;
      // Tampering shows: a log that verifies is a real log, or (without the anchor's last checkpoint) a prefix of one.
      if (v.ok) invariant(auditBaseBytes.some((b) => b.length >= bytes.length && Buffer.compare(b.subarray(0, bytes.length), bytes) === 0), () => `a tampered audit log verified (${v.records} records)`);
    },
  },
];

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
  ...SECURITY_PARSERS,
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
