/**
 * WebAssembly module signatures in the tool-conventions format (Signatures.md, as implemented by
 * wasmsign2), from the spec, with node:crypto's Ed25519.
 *
 * A module's content is everything after the 8-byte preamble except the signature section (a
 * custom section named `signature`, which may only be the first section). The content is split
 * into parts by custom sections named `signature_delimiter`; a rolling SHA-256 over the raw
 * section bytes gives one hash per part: h_i = SHA-256(p1 ‖ d1 ‖ … ‖ p_i ‖ d_i), and, when
 * sections follow the last delimiter (or there is none), a final hash of the whole content.
 * A signature covers a list of hashes:
 *
 *   Ed25519(k, "wasmsig" ‖ 0x01 spec version ‖ 0x01 content type ‖ 0x01 SHA-256 ‖ h1 ‖ … ‖ hn)
 *
 * Signature data (the signature section's payload, or a detached signature file: the same bytes):
 *
 *   u8 spec_version (1) · u8 content_type (1) · u8 hash_fn (1) · varuint32 count, then per set a
 *   varuint32-length-prefixed [ varuint32 hashes_count · hashes (32 bytes each) · varuint32
 *   signature_count · per signature a varuint32-length-prefixed [ varuint32 key_id_len · key_id ·
 *   u8 algorithm (1 = Ed25519) · varuint32 signature_len · signature ] ]
 *
 * (The length prefixes around each set and each signature are wasmsign2's serialization; the
 * spec's tables list the fields inside them.)
 *
 * Verification: a signature counts for a key when its key id is absent or equals the key's, and
 * Ed25519 verifies. It is *full* when its hashes are exactly the module's part hashes, *partial*
 * when they match an in-order subset (the unmatched tail is unsigned), and a *mismatch* otherwise
 * (the module changed after signing).
 *
 * Every parser here is a pure function of its bytes: it returns a value or throws a typed error
 * (IntegrityError for signature data, ModuleInvalidError for the module's section framing) —
 * never a RangeError, never a hang. Cost is linear in the input: each count is checked against a
 * limit and against the bytes left before any loop or allocation; at most
 * MAX_SIGNATURES_TOTAL signatures are verified per key.
 */
import { createHash, KeyObject, randomBytes, type Hash } from 'node:crypto';
import { IntegrityError, InvalidArgumentError, ModuleInvalidError } from '../errors.ts';
import { checkBytesArgument, given } from '../schema/check.ts';
import { signBytes, verifyBytes, type PublicKey, type SecretKey } from './keys.ts';
import { ByteReader } from '../loader/sections.ts';
import { bytesEqual, concat, leb128, lengthPrefixed, toHex, utf8 } from './wire.ts';

export const SIGNATURE_SECTION = 'signature';
export const DELIMITER_SECTION = 'signature_delimiter';
export const SPEC_VERSION = 0x01;
export const CONTENT_TYPE_MODULE = 0x01;
export const HASH_SHA256 = 0x01;
export const ALG_ED25519 = 0x01;
/** Signed hash sets per signature data; wasmsign2's MAX_HASHES. */
export const MAX_SIGNED_HASH_SETS = 64;
/** Hashes per set, and so the most parts a module can have and still be fully signed; wasmsign2's MAX_HASHES. */
export const MAX_HASHES = 64;
/** Signatures per set; wasmsign2's MAX_SIGNATURES. */
export const MAX_SIGNATURES_PER_SET = 256;
/** Signatures in all sets together: bounds the Ed25519 work one module can ask for (per trusted key). */
export const MAX_SIGNATURES_TOTAL = 256;
/** Longest key identifier accepted. wasmsign2's default ids have 12 bytes. */
export const MAX_KEY_ID_BYTES = 256;
/** Delimiter payload length the spec prescribes (random bytes). */
export const DELIMITER_BYTES = 16;

const DOMAIN = utf8('wasmsig');
const NAME_SIGNATURE = utf8(SIGNATURE_SECTION);
const NAME_DELIMITER = utf8(DELIMITER_SECTION);
const WASM_MAGIC = Uint8Array.of(0x00, 0x61, 0x73, 0x6d);
/** The binary format's version (1), the preamble's second half: the parts' hashes do not cover the preamble, so it is checked. */
const WASM_VERSION = Uint8Array.of(0x01, 0x00, 0x00, 0x00);

/** One signature record. */
export interface SignatureRecord {
  /** Public key identifier, or null when the record has none. */
  readonly keyId: Uint8Array | null;
  /** Signature algorithm: 1 is Ed25519; other values are kept and ignored (the format allows several). */
  readonly algorithm: number;
  readonly signature: Uint8Array;
}

/** Hashes and the signatures over them. */
export interface SignedHashes {
  readonly hashes: readonly Uint8Array[];
  readonly signatures: readonly SignatureRecord[];
}

/** Decoded signature data (version, content type and hash function are the only supported ones). */
export interface SignatureData {
  readonly sets: readonly SignedHashes[];
}

const sigFail = (message: string, at: number): Error => new IntegrityError(`signature data: ${message} (at byte ${at})`);

/** Decodes signature data. Pure; IntegrityError for anything malformed or unsupported. */
export function parseSignatureData(bytes: Uint8Array): SignatureData {
  checkBytesArgument(bytes, 'parseSignatureData: bytes');
  const r = new ByteReader(bytes, 0, bytes.length, sigFail);
  const version = r.u8('spec_version');
  if (version !== SPEC_VERSION) throw sigFail(`specification version 0x${hex2(version)} is not supported (only 0x01)`, 0);
  const contentType = r.u8('content_type');
  if (contentType !== CONTENT_TYPE_MODULE) throw sigFail(`content type 0x${hex2(contentType)} is not supported (0x01, WebAssembly modules)`, 1);
  const hashFn = r.u8('hash_fn');
  if (hashFn !== HASH_SHA256) throw sigFail(`hash function 0x${hex2(hashFn)} is not supported (0x01, SHA-256)`, 2);
  // Each set takes at least 3 bytes (length prefix, hashes_count, signature_count).
  const setCount = r.count('signed_hashes', MAX_SIGNED_HASH_SETS, 3);
  const sets: SignedHashes[] = [];
  let total = 0;
  for (let s = 0; s < setCount; s++) {
    const body = r.slice(`signed hash set ${s}`);
    const inner = new ByteReader(bytes, body.byteOffset - bytes.byteOffset, body.byteOffset - bytes.byteOffset + body.length, sigFail);
    const hashCount = inner.count(`set ${s}: hashes`, MAX_HASHES, 32);
    if (hashCount === 0) throw sigFail(`set ${s}: a signed hash set must hold at least one hash`, inner.pos);
    const hashes: Uint8Array[] = [];
    for (let h = 0; h < hashCount; h++) hashes.push(inner.take(32, `set ${s}: hash ${h}`));
    // Each signature takes at least 4 bytes (length prefix, key_id_len, algorithm, signature_len).
    const sigCount = inner.count(`set ${s}: signatures`, MAX_SIGNATURES_PER_SET, 4);
    total += sigCount;
    if (total > MAX_SIGNATURES_TOTAL) throw sigFail(`more than ${MAX_SIGNATURES_TOTAL} signatures in all`, inner.pos);
    const signatures: SignatureRecord[] = [];
    for (let g = 0; g < sigCount; g++) {
      const what = `set ${s}: signature ${g}`;
      const rec = inner.slice(what);
      const sr = new ByteReader(bytes, rec.byteOffset - bytes.byteOffset, rec.byteOffset - bytes.byteOffset + rec.length, sigFail);
      const keyId = sr.slice(`${what}: key_id`, MAX_KEY_ID_BYTES);
      const algorithm = sr.u8(`${what}: algorithm`);
      const signature = sr.slice(`${what}: signature`);
      if (algorithm === ALG_ED25519 && signature.length !== 64) throw sigFail(`${what}: an Ed25519 signature has 64 bytes, not ${signature.length}`, sr.pos);
      sr.expectEnd(what);
      signatures.push({ keyId: keyId.length === 0 ? null : Uint8Array.from(keyId), algorithm, signature: Uint8Array.from(signature) });
    }
    inner.expectEnd(`signed hash set ${s}`);
    sets.push({ hashes: hashes.map((h) => Uint8Array.from(h)), signatures });
  }
  // "The end of the last signature must coincide with the last byte of the data."
  r.expectEnd('signature data');
  return { sets };
}

/** Encodes signature data (wasmsign2's serialization). */
export function encodeSignatureData(data: SignatureData): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [Uint8Array.of(SPEC_VERSION, CONTENT_TYPE_MODULE, HASH_SHA256), leb128(data.sets.length)];
  for (const set of data.sets) {
    const body: Uint8Array[] = [leb128(set.hashes.length), ...set.hashes, leb128(set.signatures.length)];
    for (const sig of set.signatures) {
      body.push(lengthPrefixed(concat([lengthPrefixed(sig.keyId ?? new Uint8Array(0)), Uint8Array.of(sig.algorithm), lengthPrefixed(sig.signature)])));
    }
    parts.push(lengthPrefixed(concat(body)));
  }
  return concat(parts);
}

/** One top-level section of a module, by byte range. */
export interface SectionRef {
  readonly id: number;
  /** Offset of the id byte. */
  readonly start: number;
  /** Offset just past the section. */
  readonly end: number;
  /** Offset of the payload (for a custom section, after its name). */
  readonly payloadStart: number;
  readonly kind: 'signature' | 'delimiter' | 'custom' | 'standard';
}

const modFail = (message: string, at: number): Error => new ModuleInvalidError(`module framing: ${message} (at byte ${at})`);

/**
 * The module's top-level sections (framing only: ids and lengths, custom section names).
 * Pure; ModuleInvalidError for a bad preamble or a length past the end.
 */
export function scanSections(bytes: Uint8Array): SectionRef[] {
  checkBytesArgument(bytes, 'scanSections: bytes');
  if (bytes.length < 8 || !bytesEqual(bytes.subarray(0, 4), WASM_MAGIC)) throw modFail('not a WebAssembly binary (no \\0asm preamble)', 0);
  // Found by fuzzing (parse:signature): a module whose version was changed verified as fully signed.
  if (!bytesEqual(bytes.subarray(4, 8), WASM_VERSION)) throw modFail(`binary format version ${toHex(bytes.subarray(4, 8))} is not supported (01000000)`, 4);
  const r = new ByteReader(bytes, 8, bytes.length, modFail);
  const out: SectionRef[] = [];
  while (r.remaining > 0) {
    const start = r.pos;
    const id = r.u8('section id');
    const size = r.u32(`section ${out.length} size`);
    r.take(size, `section ${out.length}`);
    const end = r.pos;
    let kind: SectionRef['kind'] = 'standard';
    let payloadStart = end - size;
    if (id === 0) {
      const nr = new ByteReader(bytes, payloadStart, end, modFail);
      const name = nr.slice(`custom section ${out.length} name`);
      payloadStart = nr.pos;
      kind = bytesEqual(name, NAME_SIGNATURE) ? 'signature' : bytesEqual(name, NAME_DELIMITER) ? 'delimiter' : 'custom';
    }
    out.push({ id, start, end, payloadStart, kind });
  }
  return out;
}

/** One part's hash and where the part ends. */
export interface PartHash {
  readonly hash: Uint8Array;
  /** Offset just past the part (its delimiter included) in the module. */
  readonly end: number;
  /** True when the part ends with a delimiter (false for a final, undelimited part). */
  readonly delimited: boolean;
}

/** The module as the signature format sees it. */
export interface ModuleDigest {
  readonly parts: readonly PartHash[];
  /** The embedded signature data (the first section's payload), or null. */
  readonly embedded: Uint8Array | null;
  /** Bytes of content (the module after the preamble, without the signature section). */
  readonly contentBytes: number;
}

/**
 * Hashes the module's parts. Pure; ModuleInvalidError for bad framing, IntegrityError for a
 * signature section that is not the first section or more than MAX_HASHES parts.
 */
export function digestModule(bytes: Uint8Array, sections?: readonly SectionRef[]): ModuleDigest {
  checkBytesArgument(bytes, 'digestModule: bytes');
  sections ??= scanSections(bytes);
  let embedded: Uint8Array | null = null;
  const parts: PartHash[] = [];
  const hash: Hash = createHash('sha256');
  let contentBytes = 0;
  let lastWasDelimiter = false;
  for (let i = 0; i < sections.length; i++) {
    const s = sections[i]!;
    if (s.kind === 'signature') {
      if (i !== 0) throw new IntegrityError(`a signature section at section ${i} (byte ${s.start}): only the first section may hold signatures`);
      embedded = bytes.subarray(s.payloadStart, s.end);
      continue;
    }
    hash.update(bytes.subarray(s.start, s.end));
    contentBytes += s.end - s.start;
    lastWasDelimiter = s.kind === 'delimiter';
    if (lastWasDelimiter) {
      if (parts.length >= MAX_HASHES) throw new IntegrityError(`the module has more than ${MAX_HASHES} signature_delimiter sections; no signature can cover them`);
      parts.push({ hash: new Uint8Array(hash.copy().digest()), end: s.end, delimited: true });
    }
  }
  if (!lastWasDelimiter) {
    if (parts.length >= MAX_HASHES) throw new IntegrityError(`the module has more than ${MAX_HASHES} parts; no signature can cover them`);
    parts.push({ hash: new Uint8Array(hash.digest()), end: bytes.length, delimited: false });
  }
  return { parts, embedded, contentBytes };
}

/** The message a signature over `hashes` signs. */
export function signedMessage(hashes: readonly Uint8Array[]): Uint8Array {
  return concat([DOMAIN, Uint8Array.of(SPEC_VERSION, CONTENT_TYPE_MODULE, HASH_SHA256), ...hashes]);
}

/** A valid signature by a known key, and how much of the module it covers. */
export interface Signer {
  readonly key: PublicKey;
  /** The key id as written in the signature (null when it had none). */
  readonly keyId: Uint8Array | null;
  /** All parts, in order: the whole module is signed. */
  readonly full: boolean;
  /** Parts up to (and including) the last one the signature covers. */
  readonly partsCovered: number;
  readonly partsTotal: number;
  /** Bytes of the module (from its start) the signature covers. */
  readonly coveredBytes: number;
}

/** Why a signature did not count. */
export interface SignatureProblem {
  readonly set: number;
  readonly index: number;
  readonly keyId: Uint8Array | null;
  readonly problem: 'unsupported-algorithm' | 'unknown-key' | 'bad-signature' | 'content-mismatch';
  /** For content-mismatch: the key whose signature verified over hashes the module does not have. */
  readonly key?: PublicKey;
}

/** What verification found. */
export interface ModuleVerification {
  /** Signature data was present (embedded or detached). */
  readonly signed: boolean;
  /** Where it came from. */
  readonly source: 'embedded' | 'detached' | 'both' | 'none';
  readonly parts: number;
  /** Valid signatures by the given keys (one per key and set). */
  readonly signers: readonly Signer[];
  readonly problems: readonly SignatureProblem[];
}

/**
 * Verifies the module's signatures (embedded, and/or `detached`: signature data from a file)
 * against `keys`. Never throws for a signature that merely does not verify: that is a problem in
 * the result. Throws (typed) for malformed framing or signature data.
 */
/** A key as keys.ts makes them (its KeyObject is what signs and verifies): anything else is the caller's mistake. */
function isKeyLike(k: unknown): boolean {
  return typeof k === 'object' && k !== null && (k as { keyObject?: unknown }).keyObject instanceof KeyObject;
}

export function verifyModule(bytes: Uint8Array, keys: readonly PublicKey[], options: { detached?: Uint8Array | null } = {}): ModuleVerification {
  checkBytesArgument(bytes, 'verifyModule: bytes');
  if (!Array.isArray(keys) || !keys.every(isKeyLike)) throw new InvalidArgumentError(`verifyModule: keys: expected an array of public keys (parsePublicKey), got ${given(keys)}`);
  if (options.detached != null) checkBytesArgument(options.detached, 'verifyModule: options.detached');
  const digest = digestModule(bytes);
  const sources: SignatureData[] = [];
  if (digest.embedded !== null) sources.push(parseSignatureData(digest.embedded));
  if (options.detached != null) sources.push(parseSignatureData(options.detached));
  const source = digest.embedded !== null ? (options.detached != null ? 'both' : 'embedded') : options.detached != null ? 'detached' : 'none';
  const partIndex = new Map<string, number>(digest.parts.map((p, i) => [toHex(p.hash), i]));
  const signers: Signer[] = [];
  const problems: SignatureProblem[] = [];
  let setNo = 0;
  for (const data of sources) {
    for (const set of data.sets) {
      const message = signedMessage(set.hashes);
      const coverage = cover(set.hashes, partIndex, digest);
      set.signatures.forEach((sig, index) => {
        const where = { set: setNo, index, keyId: sig.keyId };
        if (sig.algorithm !== ALG_ED25519) return void problems.push({ ...where, problem: 'unsupported-algorithm' });
        const candidates = keys.filter((k) => sig.keyId === null || bytesEqual(sig.keyId, k.keyId));
        if (candidates.length === 0) return void problems.push({ ...where, problem: 'unknown-key' });
        const key = candidates.find((k) => verifyBytes(k, message, sig.signature));
        if (key === undefined) return void problems.push({ ...where, problem: sig.keyId === null ? 'unknown-key' : 'bad-signature' });
        if (coverage === null) return void problems.push({ ...where, problem: 'content-mismatch', key });
        if (!signers.some((s) => s.key === key && s.full === coverage.full && s.partsCovered === coverage.partsCovered)) {
          signers.push({ key, keyId: sig.keyId, ...coverage, partsTotal: digest.parts.length });
        }
      });
      setNo++;
    }
  }
  return { signed: sources.length > 0, source, parts: digest.parts.length, signers, problems };
}

/** How a signed hash list lines up with the module's parts: null when it does not. */
function cover(hashes: readonly Uint8Array[], partIndex: Map<string, number>, digest: ModuleDigest): { full: boolean; partsCovered: number; coveredBytes: number } | null {
  let last = -1;
  for (const h of hashes) {
    const i = partIndex.get(toHex(h));
    if (i === undefined || i <= last) return null;
    last = i;
  }
  const full = hashes.length === digest.parts.length && last === digest.parts.length - 1;
  return { full, partsCovered: last + 1, coveredBytes: digest.parts[last]!.end };
}

/** Options of `signModule`. */
export interface SignOptions {
  /** Key id written with the signature: bytes, null for none, or (default) the key's own id. */
  keyId?: Uint8Array | null;
  /** Leave the module as it is and return only the signature data. Default false (embedded). */
  detached?: boolean;
  /** Signature data to add to (a detached signature made earlier). Embedded: the module's own is used. */
  previous?: Uint8Array | null;
  /**
   * Append a `signature_delimiter` after the last section (unless one is already there), so that
   * sections added later do not invalidate this signature (they are then unsigned: a partial
   * signature, refused by default). Embedded signing only. Default false.
   */
  delimit?: boolean;
}

/**
 * Signs a module. Embedded: returns the module with the signature data as its first section
 * (section headers re-encoded minimally, as wasmsign2 writes them, so both of its verification
 * paths agree with ours). Detached: the module is unchanged and the signature data is returned.
 * An existing signature is kept and the new one added (in the same set when the hashes are the
 * same). Signing twice with the same key is refused (IntegrityError).
 */
export function signModule(bytes: Uint8Array, key: SecretKey, options: SignOptions = {}): { module: Uint8Array<ArrayBuffer>; signature: Uint8Array<ArrayBuffer> } {
  checkBytesArgument(bytes, 'signModule: bytes');
  if (!isKeyLike(key) || !isKeyLike((key as { publicKey?: unknown }).publicKey)) throw new InvalidArgumentError(`signModule: key: expected a secret key (parseSecretKey, generateKeyPair), got ${given(key)}`);
  const sections = scanSections(bytes);
  const detached = options.detached === true;
  if (detached && options.delimit) throw new IntegrityError('a delimiter changes the module: it cannot be added while signing detached');
  let previous: SignatureData | null = null;
  let content: Uint8Array[];
  if (detached) {
    previous = options.previous ? parseSignatureData(options.previous) : null;
    content = [];
  } else {
    const first = sections[0];
    if (first?.kind === 'signature') previous = parseSignatureData(bytes.subarray(first.payloadStart, first.end));
    content = sections.filter((s) => s.kind !== 'signature').map((s) => canonicalSection(bytes, s));
    const last = sections.at(-1);
    if (options.delimit && (last === undefined || last.kind !== 'delimiter')) content.push(delimiterSection());
  }
  // Hash exactly what will be verified: the output's content sections.
  const hashedModule = detached ? bytes : concat([bytes.subarray(0, 8), ...content]);
  const digest = digestModule(hashedModule);
  const hashes = digest.parts.map((p) => p.hash);
  const keyId = options.keyId === undefined ? key.publicKey.keyId : options.keyId;
  const record: SignatureRecord = { keyId: keyId && keyId.length > 0 ? keyId : null, algorithm: ALG_ED25519, signature: signBytes(key, signedMessage(hashes)) };
  const sets = (previous?.sets ?? []).map((s) => ({ hashes: s.hashes, signatures: [...s.signatures] }));
  const same = sets.find((s) => s.hashes.length === hashes.length && s.hashes.every((h, i) => bytesEqual(h, hashes[i]!)));
  if (same) {
    if (same.signatures.some((s) => bytesEqual(s.signature, record.signature))) throw new IntegrityError('the module is already signed with this key');
    same.signatures.push(record);
  } else {
    sets.push({ hashes, signatures: [record] });
  }
  const signature = encodeSignatureData({ sets });
  if (detached) return { module: Uint8Array.from(bytes), signature };
  const section = customSection(NAME_SIGNATURE, signature);
  return { module: concat([bytes.subarray(0, 8), section, ...content]), signature };
}

/** Removes the embedded signature: the module without it, and the signature data (null when unsigned). */
export function detachSignature(bytes: Uint8Array): { module: Uint8Array<ArrayBuffer>; signature: Uint8Array<ArrayBuffer> | null } {
  checkBytesArgument(bytes, 'detachSignature: bytes');
  const sections = scanSections(bytes);
  const first = sections[0];
  if (first?.kind !== 'signature') return { module: Uint8Array.from(bytes), signature: null };
  return { module: concat([bytes.subarray(0, first.start), bytes.subarray(first.end)]), signature: Uint8Array.from(bytes.subarray(first.payloadStart, first.end)) };
}

/** A section with a minimal size (and, for custom sections, a minimal name length). */
function canonicalSection(bytes: Uint8Array, s: SectionRef): Uint8Array<ArrayBuffer> {
  if (s.id !== 0) {
    const payload = bytes.subarray(s.payloadStart, s.end);
    return concat([Uint8Array.of(s.id), leb128(payload.length), payload]);
  }
  // Custom: re-read the name to re-encode its length.
  const r = new ByteReader(bytes, s.start + 1, s.end, modFail);
  r.u32('size');
  const name = r.slice('custom section name');
  return customSection(name, bytes.subarray(s.payloadStart, s.end));
}

function customSection(name: Uint8Array, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const body = concat([lengthPrefixed(name), payload]);
  return concat([Uint8Array.of(0), leb128(body.length), body]);
}

/** A new delimiter: a custom section `signature_delimiter` holding 16 random bytes. */
export function delimiterSection(random: Uint8Array = new Uint8Array(randomBytes(DELIMITER_BYTES))): Uint8Array<ArrayBuffer> {
  return customSection(NAME_DELIMITER, random);
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
