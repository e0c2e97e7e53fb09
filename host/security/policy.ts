/**
 * The security policy: which modules may run (pinned measurements, trusted publishers' keys) and
 * the most each may be granted (devices, memory pages, fuel, disk size, network segments, WASI and
 * the host folders that may seed its preopens). A policy file is JSON checked against
 * `PolicySchema` (an unknown key or a wrong type names the field and the file).
 *
 * Admission (`admit`), for a module's bytes, before anything else reads them:
 *  - signed: a signature by a publisher's key that verifies and covers every part of the module
 *    (a signature covering only some parts counts only with `allowPartialSignatures`);
 *  - pinned: its SHA-256 is a key of `modules` (unless `requireSignature`).
 * Anything else is refused with ERR_INTEGRITY, one line saying which rule refused it.
 *
 * Grants bound one thing each; a field left out of a grants object does not bound it.
 *
 * Grants (`checkGrants`): the rules that admitted the module (its pin, then each trusted signer's
 * publisher) are tried in that order; the first whose grants cover the whole spec wins. A rule
 * without `grants` uses `defaultGrants`, and without those grants everything the hypervisor
 * allows. Nothing is filled in from a policy: a spec that asks for more (including a default it
 * did not set, such as 256 memory pages) is refused with ERR_POLICY_DENIED naming the rule and
 * the grant, so the spec can be fixed rather than silently changed.
 */
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Static } from '@sinclair/typebox';
import { IntegrityError, InvalidArgumentError, PolicyDeniedError } from '../errors.ts';
import { namesDescriptor, readRegularFileSync } from '../files.ts';
import { check, checkPathArgument, given, refuseDuplicateKeys } from '../schema/check.ts';
import { PolicyKeySchema, PolicySchema, type Grants, type PolicyDocument } from '../schema/policy.ts';
import { canonicalHash } from './canonical.ts';
import { checkIntegrity } from './integrity.ts';
import { parsePublicKey, readKeyFileSync, type PublicKey } from './keys.ts';
import { measure } from '../loader/measure.ts';
import { verifyModule, type ModuleVerification, type SignatureProblem } from './signature.ts';
import { fromHex, toHex } from './wire.ts';
import { quoted } from '../escape.ts';

export { GRANTABLE_DEVICES, GrantsSchema, PolicySchema, type GrantableDevice, type Grants, type PolicyDocument } from '../schema/policy.ts';

/** Largest policy file read, bytes. */
export const MAX_POLICY_BYTES = 1024 * 1024;

/** Grants with preopen folders resolved to absolute paths. */
interface ResolvedGrants extends Omit<Grants, 'preopens'> {
  preopens?: string[];
}

interface Publisher {
  readonly name: string;
  readonly keys: readonly PublicKey[];
  readonly grants: ResolvedGrants | null;
}

/** A rule that admitted a module; its grants bound what a spec may ask for. */
export interface GrantRule {
  /** `publisher acme`, `pinned module sha256:1234abcd… (hello)`, `the allow list`. */
  readonly label: string;
  /** null: no bound beyond the hypervisor's own. */
  readonly grants: ResolvedGrants | null;
}

/** A trusted publisher's valid signature. */
export interface SignerInfo {
  readonly publisher: string;
  /** Hex of the key's id (explicit or default). */
  readonly keyId: string;
  /** Hex of the 32-byte public key. */
  readonly publicKey: string;
  /** Covers every part of the module (false only when partial signatures are allowed). */
  readonly full: boolean;
}

/** Why a module was admitted, and the rules that bound its grants. */
export interface Admission {
  readonly measurement: string;
  readonly by: 'pin' | 'signature' | 'pin+signature';
  readonly signers: readonly SignerInfo[];
  readonly rules: readonly GrantRule[];
}

/** What a partition spec asks for, resolved (see the Hypervisor). */
export interface GrantAsk {
  readonly partition: string;
  /** Names of the devices granted by the spec. */
  readonly devices: readonly string[];
  readonly memoryPages: number;
  /** True when the spec did not set limits.memoryPages (the value is the hypervisor's default). */
  readonly memoryPagesDefault: boolean;
  /** null: no fuel budget (unlimited). */
  readonly fuel: number | null;
  readonly blockMiB: number | null;
  readonly netSegment: string | null;
  readonly netHost: boolean;
  readonly wasi: boolean;
  /** Host folders seeding WASI preopens, absolute and with symlinks resolved. */
  readonly preopenHostPaths: readonly string[];
}

/** Options of `Policy.admit`. */
export interface AdmitOptions {
  /** A detached signature (signature data) for the module. */
  detachedSignature?: Uint8Array | null;
  /** A per-partition pin (spec.sha256): the measurement must also equal it. */
  sha256?: string;
}

/** A loaded, checked policy. Immutable. */
export class Policy {
  /** SHA-256 (hex) of the canonical JSON of the resolved policy (keys inlined, folders absolute). */
  readonly hash: string;
  /** Where it came from: a file path, `(document)` or `(allow list)`. */
  readonly source: string;
  private readonly publishers: readonly Publisher[];
  private readonly pins: ReadonlyMap<string, { name: string | null; grants: ResolvedGrants | null }>;
  private readonly requireSignature: boolean;
  private readonly allowPartial: boolean;
  private readonly defaultGrants: ResolvedGrants | null;
  private readonly allKeys: readonly PublicKey[];
  private readonly isAllowList: boolean;

  private constructor(doc: PolicyDocument, baseDir: string, source: string, isAllowList = false) {
    this.source = source;
    this.isAllowList = isAllowList;
    const where = isAllowList ? 'allowList' : `policy ${source}`;
    this.defaultGrants = doc.defaultGrants ? resolveGrants(doc.defaultGrants, baseDir) : null;
    this.publishers = Object.entries(doc.publishers ?? {}).map(([name, p]) => ({
      name,
      keys: p.keys.map((k, i) => loadKey(k, baseDir, `${where}: publishers.${name}.keys[${i}]`)),
      grants: p.grants ? resolveGrants(p.grants, baseDir) : null,
    }));
    const seen = new Map<string, string>();
    for (const p of this.publishers) {
      for (const k of p.keys) {
        const other = seen.get(toHex(k.raw));
        if (other !== undefined && other !== p.name) throw new InvalidArgumentError(`${where}: the same key is listed for publishers ${other} and ${p.name}`);
        seen.set(toHex(k.raw), p.name);
      }
    }
    this.allKeys = this.publishers.flatMap((p) => p.keys);
    const pins = new Map<string, { name: string | null; grants: ResolvedGrants | null }>();
    const spelt = new Map<string, string>();
    for (const [h, m] of Object.entries(doc.modules ?? {})) {
      const key = h.toLowerCase();
      // The same measurement in two letter cases: two rules for one module, and only one would apply.
      const other = spelt.get(key);
      if (other !== undefined) throw new InvalidArgumentError(`${where}: modules: ${other} and ${h} pin the same module (hex digits are not case-sensitive): give it once`);
      spelt.set(key, h);
      pins.set(key, { name: m.name ?? null, grants: m.grants ? resolveGrants(m.grants, baseDir) : null });
    }
    this.pins = pins;
    this.requireSignature = doc.requireSignature === true;
    this.allowPartial = doc.allowPartialSignatures === true;
    this.hash = canonicalHash({
      publishers: Object.fromEntries(this.publishers.map((p) => [p.name, { keys: p.keys.map((k) => ({ publicKey: toHex(k.raw), keyId: toHex(k.keyId) })), grants: p.grants }])),
      modules: Object.fromEntries(this.pins),
      requireSignature: this.requireSignature,
      allowPartialSignatures: this.allowPartial,
      defaultGrants: this.defaultGrants,
    });
  }

  /** A policy from a document (already parsed JSON). Key files and folders are relative to `baseDir` (default: the working directory). */
  static fromDocument(doc: unknown, options: { baseDir?: string; source?: string } = {}): Policy {
    const source = options.source ?? '(document)';
    const checked = check(PolicySchema, doc, source === '(document)' ? 'policy' : `policy file ${source}`);
    return new Policy(checked, path.resolve(options.baseDir ?? '.'), source);
  }

  /**
   * Reads a policy file (JSON, at most MAX_POLICY_BYTES). ERR_INVALID_ARGUMENT naming the file for
   * anything wrong with it. With `pipes` (a policy named on the command line: `--policy
   * <(make-policy)`) a pipe is read too, up to the same bound; a pipe has no folder of its own, nor
   * has a descriptor path (/dev/stdin, /dev/fd/N, whatever it leads to), so the key files and
   * preopens it names relative are resolved from the working directory.
   */
  static fromFile(file: string, options: { pipes?: boolean } = {}): Policy {
    checkPathArgument(file, 'Policy.fromFile: file');
    const pipes = options.pipes === true;
    // Only where relative names resolve from: what is read is judged on its descriptor (files.ts),
    // so a path swapped for a FIFO after this stat is refused or read as the pipe it is.
    // A descriptor path (/dev/stdin, /dev/fd/N) names no folder either, whatever is behind it:
    // `--policy /dev/stdin < policy.json` resolves as `cat policy.json | … --policy /dev/stdin`
    // does (from /dev, it looked for /dev/acme.pub).
    const piped = pipes && (namesDescriptor(file) || isFifo(file));
    const text = readRegularFileSync(file, { maxBytes: MAX_POLICY_BYTES, what: 'policy file', pipes }).toString('utf8');
    return Policy.fromJson(text, { baseDir: piped ? process.cwd() : path.dirname(path.resolve(file)), source: file });
  }

  /**
   * A policy from JSON text: what fromFile does after reading. A pure function of the text (and of
   * the key files it names): a typed error (ERR_INVALID_ARGUMENT naming `source`) or a Policy.
   */
  static fromJson(text: string, options: { baseDir?: string; source?: string } = {}): Policy {
    const source = options.source ?? '(text)';
    if (text.length > MAX_POLICY_BYTES) throw new InvalidArgumentError(`policy file ${source} is over the ${MAX_POLICY_BYTES}-byte limit`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (error) {
      throw new InvalidArgumentError(`policy file ${source} is not JSON: ${(error as Error).message}`);
    }
    // A key given twice would be read one way by whoever reviews the file and another by JSON.parse.
    refuseDuplicateKeys(text, `policy file ${source}`);
    return Policy.fromDocument(doc, { ...options, source });
  }

  /** The allow list as a policy: pinned measurements, no publishers, no grants. An empty list admits nothing. */
  static fromAllowList(measurements: Iterable<string>): Policy {
    if (typeof (measurements as { [Symbol.iterator]?: unknown } | null)?.[Symbol.iterator] !== 'function' || typeof measurements === 'string') {
      throw new InvalidArgumentError(`Policy.fromAllowList: measurements: expected an iterable of SHA-256 hex strings, got ${given(measurements)}`);
    }
    const modules: Record<string, object> = {};
    for (const m of measurements) {
      const h = String(m);
      if (!/^[0-9a-fA-F]{64}$/.test(h)) throw new InvalidArgumentError(`allow-list entry must be 64 hex digits, got ${quoted(h)}`);
      modules[h.toLowerCase()] = {};
    }
    return new Policy({ modules }, process.cwd(), '(allow list)', true);
  }

  /** Counts for the measured-boot log and the audit record. */
  summary(): { sha256: string; source: string; publishers: number; keys: number; pins: number; requireSignature: boolean; allowPartialSignatures: boolean } {
    return {
      sha256: this.hash,
      source: this.source,
      publishers: this.publishers.length,
      keys: this.allKeys.length,
      pins: this.pins.size,
      requireSignature: this.requireSignature,
      allowPartialSignatures: this.allowPartial,
    };
  }

  /**
   * Admits a module's bytes or refuses them (ERR_INTEGRITY, one line naming the rule). Pure
   * apart from the CPU it costs: hashing the module once and at most MAX_SIGNATURES_TOTAL
   * Ed25519 verifications per matching key.
   */
  admit(bytes: Uint8Array, options: AdmitOptions = {}): Admission {
    const measurement = measure(bytes);
    if (options.sha256 !== undefined) checkIntegrity(measurement, { expectedSha256: options.sha256 });
    const pin = this.pins.get(measurement);
    const short = `sha256:${measurement.slice(0, 16)}…`;
    const pinRule: GrantRule | null = pin ? { label: this.isAllowList ? 'the allow list' : `pinned module ${short}${pin.name ? ` (${pin.name})` : ''}`, grants: pin.grants ?? this.defaultGrants } : null;

    let verification: ModuleVerification | null = null;
    if (this.allKeys.length > 0 && !(pin && !this.requireSignature && options.detachedSignature == null && !hasEmbedded(bytes))) {
      verification = verifyModule(bytes, this.allKeys, { detached: options.detachedSignature ?? null });
    }
    const signers: SignerInfo[] = [];
    const rules: GrantRule[] = pinRule ? [pinRule] : [];
    for (const s of verification?.signers ?? []) {
      if (!s.full && !this.allowPartial) continue;
      const publisher = this.publishers.find((p) => p.keys.includes(s.key))!;
      if (!signers.some((x) => x.publisher === publisher.name && x.publicKey === toHex(s.key.raw))) {
        signers.push({ publisher: publisher.name, keyId: toHex(s.key.keyId), publicKey: toHex(s.key.raw), full: s.full });
      }
      if (!rules.some((r) => r.label === `publisher ${publisher.name}`)) rules.push({ label: `publisher ${publisher.name}`, grants: publisher.grants ?? this.defaultGrants });
    }
    if (signers.length > 0) return { measurement, by: pin ? 'pin+signature' : 'signature', signers, rules };
    if (pin && !this.requireSignature) return { measurement, by: 'pin', signers, rules };
    throw new IntegrityError(this.refusal(measurement, pin !== undefined, verification));
  }

  /** The one line that says why a module was not admitted. */
  private refusal(measurement: string, pinned: boolean, v: ModuleVerification | null): string {
    const m = `module sha256:${measurement}`;
    if (this.isAllowList) return `${m} is not on the allow list (${this.pins.size} entries)`;
    const publisherOf = (p: SignatureProblem): string => {
      const key = p.key ?? (p.keyId ? this.allKeys.find((k) => toHex(k.keyId) === toHex(p.keyId!)) : undefined);
      return key ? `publisher ${this.publishers.find((x) => x.keys.includes(key))!.name}` : 'an unknown key';
    };
    if (v !== null) {
      const partial = v.signers.find((s) => !s.full);
      const mismatch = v.problems.find((p) => p.problem === 'content-mismatch');
      const bad = v.problems.find((p) => p.problem === 'bad-signature');
      if (mismatch) return `${m}: the signature by ${publisherOf(mismatch)} verifies, but the module's content does not match what was signed (changed after signing)`;
      if (bad) return `${m}: the signature with key id ${toHex(bad.keyId!)} (${publisherOf(bad)}) does not verify (the signature or the key is wrong)`;
      if (partial) {
        const pub = this.publishers.find((p) => p.keys.includes(partial.key))!.name;
        return `${m}: publisher ${pub}'s signature covers only ${partial.partsCovered} of ${partial.partsTotal} parts (the first ${partial.coveredBytes} bytes); partial signatures are refused unless the policy sets allowPartialSignatures`;
      }
      if (v.signed) {
        const ids = [...new Set(v.problems.map((p) => (p.keyId ? toHex(p.keyId) : '(none)')))].join(', ');
        return `${m} is signed only by keys the policy does not trust (key ids: ${ids || '(none)'})`;
      }
    }
    if (pinned) return `${m} is pinned, but the policy requires a signature by a trusted publisher and it is not signed`;
    if (this.allKeys.length === 0) return `${m} is not pinned by the policy (it trusts no publisher keys)`;
    return `${m} is not signed and not pinned by the policy`;
  }

  /**
   * Checks what a spec asks for against the admitting rules' grants: the first rule that grants
   * all of it wins. Throws ERR_POLICY_DENIED with the first rule's first refusal otherwise.
   */
  checkGrants(admission: Admission, ask: GrantAsk): GrantRule {
    let first: string | null = null;
    for (const rule of admission.rules) {
      const denied = rule.grants === null ? null : deny(rule.grants, ask);
      if (denied === null) return rule;
      first ??= `partition ${ask.partition}: ${rule.label} ${denied}`;
    }
    throw new PolicyDeniedError(first ?? `partition ${ask.partition}: no rule of the policy admitted the module`);
  }
}

/** The first thing `ask` wants that `g` does not grant, in words, or null. */
function deny(g: ResolvedGrants, ask: GrantAsk): string | null {
  if (g.devices !== undefined) {
    const extra = ask.devices.filter((d) => !(g.devices as readonly string[]).includes(d));
    if (extra.length > 0) return `does not grant the ${extra.join(', ')} device${extra.length > 1 ? 's' : ''} (grants: ${g.devices.join(', ') || 'none'})`;
  }
  if (g.memoryPages !== undefined && ask.memoryPages > g.memoryPages) {
    return `grants at most ${g.memoryPages} memory pages; the spec asks for ${ask.memoryPages}${ask.memoryPagesDefault ? ' (the default: set limits.memoryPages, --memory)' : ''}`;
  }
  if (g.fuel !== undefined && (ask.fuel === null || ask.fuel > g.fuel)) {
    return `grants a fuel budget of at most ${g.fuel}; the spec asks for ${ask.fuel === null ? 'none (unlimited: set limits.fuel, --fuel)' : ask.fuel}`;
  }
  if (g.blockMiB !== undefined && ask.blockMiB !== null && ask.blockMiB > g.blockMiB) return `grants a disk of at most ${g.blockMiB} MiB; the spec asks for ${ask.blockMiB}`;
  if (ask.netSegment !== null && g.netSegments !== undefined && !g.netSegments.includes(ask.netSegment)) {
    return `does not grant network segment ${ask.netSegment} (grants: ${g.netSegments.join(', ') || 'none'})`;
  }
  if (ask.netHost && g.netHost === false) return 'does not grant devices.net.host (talking to the host)';
  if (ask.wasi && g.wasi === false) return 'does not grant WASI';
  if (g.preopens !== undefined) {
    for (const p of ask.preopenHostPaths) {
      if (!g.preopens.some((allowed) => inside(p, allowed))) return `does not grant seeding a WASI preopen from ${p} (grants: ${g.preopens.join(', ') || 'none'})`;
    }
  }
  return null;
}

function inside(p: string, folder: string): boolean {
  const rel = path.relative(folder, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function resolveGrants(g: Grants, baseDir: string): ResolvedGrants {
  const { preopens, ...rest } = g;
  return preopens === undefined ? rest : { ...rest, preopens: preopens.map((p) => realFolder(path.resolve(baseDir, p))) };
}

/** A folder with symlinks resolved (as it will be compared); as given when it does not exist yet. */
export function realFolder(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Whether `file` is a FIFO now (following symlinks: `<(cmd)` is /dev/fd/N, a link to the pipe). */
function isFifo(file: string): boolean {
  try {
    return statSync(file).isFIFO();
  } catch {
    return false;
  }
}

function loadKey(k: Static<typeof PolicyKeySchema>, baseDir: string, where: string): PublicKey {
  if ((k.publicKey === undefined) === (k.file === undefined)) throw new InvalidArgumentError(`${where}: give exactly one of publicKey and file`);
  const keyId = k.keyId !== undefined ? fromHex(k.keyId)! : undefined;
  if (k.file !== undefined) {
    const file = path.resolve(baseDir, k.file);
    let bytes: Uint8Array;
    try {
      bytes = readKeyFileSync(file);
    } catch (error) {
      // The reader names the file; the policy and the field that named it are ours to add.
      if (error instanceof InvalidArgumentError) throw new InvalidArgumentError(`${where}.file: ${error.message}`);
      throw error;
    }
    return parsePublicKey(bytes, `${where}.file (${file})`, keyId);
  }
  return parsePublicKey(new TextEncoder().encode(k.publicKey!), `${where}.publicKey`, keyId);
}

/** Does the module carry an embedded signature section (first section named `signature`)? A cheap peek. */
function hasEmbedded(bytes: Uint8Array): boolean {
  // id 0, size (LEB), name length 9, "signature"
  if (bytes.length < 20 || bytes[8] !== 0) return false;
  let i = 9;
  while (i < bytes.length && i < 14 && (bytes[i]! & 0x80) !== 0) i++;
  i++;
  return bytes[i] === 9 && Buffer.from(bytes.subarray(i + 1, i + 10)).toString('latin1') === 'signature';
}
