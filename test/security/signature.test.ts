/**
 * The tool-conventions signature format: our implementation against vectors made by an independent
 * Python implementation (scripts/wasmsig.py), sign → verify round trips, and hostile signature data.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { IntegrityError, ModuleInvalidError, WasmvisorError } from '../../host/errors.ts';
import { defaultKeyId, encodePublicKey, encodeSecretKey, generateKeyPair, parsePublicKey, parseSecretKey, secretKeyFromSeed } from '../../host/security/keys.ts';
import {
  MAX_HASHES,
  MAX_KEY_ID_BYTES,
  detachSignature,
  digestModule,
  delimiterSection,
  encodeSignatureData,
  parseSignatureData,
  scanSections,
  signModule,
  verifyModule,
} from '../../host/security/signature.ts';
import { concat, fromHex, leb128, toHex } from '../../host/security/wire.ts';
import { guest } from '../helpers.ts';

const vectors = JSON.parse(readFileSync(new URL('./fixtures/signature-vectors.json', import.meta.url), 'utf8')) as {
  keys: { seed: string; public: string; secret: string; defaultKeyId: string }[];
  module: string;
  split: string;
  splitPartHashes: string[];
  wholeNoKeyId: { signer: number; signed: string; signature: string };
  twoSignersWithDelimiters: { signers: number[]; keyIds: string[]; signed: string; signature: string };
  detachedDefaultKeyId: { signer: number; signature: string };
  partialPrefix: { signer: number; signed: string; partsCovered: number; partsTotal: number };
};
const hex = (s: string): Uint8Array => fromHex(s)!;
const keys = vectors.keys.map((k) => secretKeyFromSeed(hex(k.seed)));
const pub = (i: number) => keys[i]!.publicKey;

describe('keys in the spec serialization', () => {
  it('matches the independent implementation: 0x01 ‖ pk, 0x81 ‖ sk ‖ pk, wasmsign2 default key ids', () => {
    vectors.keys.forEach((v, i) => {
      expect(toHex(encodePublicKey(pub(i)))).toBe(v.public);
      expect(toHex(encodeSecretKey(keys[i]!))).toBe(v.secret);
      expect(toHex(defaultKeyId(pub(i).raw))).toBe(v.defaultKeyId);
      expect(toHex(parseSecretKey(hex(v.secret), 'k').seed)).toBe(v.seed);
      expect(toHex(parsePublicKey(hex(v.public), 'k').raw)).toBe(v.public.slice(2));
    });
  });

  it('reads PEM and OpenSSH public keys and hex; refuses others by name', () => {
    const k = generateKeyPair();
    const pem = k.publicKey.keyObject.export({ format: 'pem', type: 'spki' }) as string;
    expect(toHex(parsePublicKey(new TextEncoder().encode(pem), 'p').raw)).toBe(toHex(k.publicKey.raw));
    const blob = concat([Uint8Array.of(0, 0, 0, 11), new TextEncoder().encode('ssh-ed25519'), Uint8Array.of(0, 0, 0, 32), k.publicKey.raw]);
    const ssh = `ssh-ed25519 ${Buffer.from(blob).toString('base64')} me@host\n`;
    expect(toHex(parsePublicKey(new TextEncoder().encode(ssh), 'p').raw)).toBe(toHex(k.publicKey.raw));
    expect(toHex(parsePublicKey(new TextEncoder().encode(toHex(encodePublicKey(k.publicKey))), 'p').raw)).toBe(toHex(k.publicKey.raw));
    expect(() => parsePublicKey(encodeSecretKey(k), 'acme.key')).toThrow(/acme.key is a secret key/);
    expect(() => parsePublicKey(new Uint8Array(10), 'x.pub')).toThrow(/x.pub is not an Ed25519 public key/);
    expect(() => parseSecretKey(encodePublicKey(k.publicKey), 'y')).toThrow(/y is a public key/);
    const bad = encodeSecretKey(k);
    bad[64]! ^= 1;
    expect(() => parseSecretKey(bad, 'z')).toThrow(/does not belong to its secret key/);
  });
});

describe('signing is byte-identical to the independent implementation (Ed25519 is deterministic)', () => {
  it('whole module, one signature, no key id (the spec\'s first example)', () => {
    const { module, signature } = signModule(hex(vectors.module), keys[0]!, { keyId: null });
    expect(toHex(signature)).toBe(vectors.wholeNoKeyId.signature);
    expect(toHex(module)).toBe(vectors.wholeNoKeyId.signed);
  });

  it('three parts with delimiters, two signers with key ids "first" and "second"', () => {
    const once = signModule(hex(vectors.split), keys[0]!, { keyId: new TextEncoder().encode('first') }).module;
    const { module, signature } = signModule(once, keys[1]!, { keyId: new TextEncoder().encode('second') });
    expect(toHex(signature)).toBe(vectors.twoSignersWithDelimiters.signature);
    expect(toHex(module)).toBe(vectors.twoSignersWithDelimiters.signed);
    expect(digestModule(hex(vectors.split)).parts.map((p) => toHex(p.hash))).toEqual(vectors.splitPartHashes);
  });

  it('detached, with the default key id', () => {
    const { module, signature } = signModule(hex(vectors.module), keys[2]!, { detached: true });
    expect(toHex(module)).toBe(vectors.module);
    expect(toHex(signature)).toBe(vectors.detachedDefaultKeyId.signature);
  });
});

describe('verifying modules signed by the independent implementation', () => {
  it('embedded, without a key id: verifies for the signer, not for another key', () => {
    const v = verifyModule(hex(vectors.wholeNoKeyId.signed), [pub(0)]);
    expect(v.signers).toHaveLength(1);
    expect(v.signers[0]).toMatchObject({ full: true, partsCovered: 1, partsTotal: 1, keyId: null });
    expect(verifyModule(hex(vectors.wholeNoKeyId.signed), [pub(1)]).signers).toHaveLength(0);
    expect(verifyModule(hex(vectors.wholeNoKeyId.signed), [pub(1)]).problems[0]!.problem).toBe('unknown-key');
  });

  it('two signers with explicit key ids: each key, with its id, verifies; a key under a wrong id is not tried', () => {
    const ids = vectors.twoSignersWithDelimiters.keyIds.map(hex);
    const k0 = parsePublicKey(encodePublicKey(pub(0)), 'k0', ids[0]);
    const k1 = parsePublicKey(encodePublicKey(pub(1)), 'k1', ids[1]);
    const v = verifyModule(hex(vectors.twoSignersWithDelimiters.signed), [k0, k1]);
    expect(v.parts).toBe(3);
    expect(v.signers.map((s) => s.full)).toEqual([true, true]);
    // With default ids the explicit ids "first"/"second" name other keys: nothing verifies.
    expect(verifyModule(hex(vectors.twoSignersWithDelimiters.signed), [pub(0), pub(1)]).signers).toHaveLength(0);
  });

  it('detached signature with a default key id', () => {
    const v = verifyModule(hex(vectors.module), [pub(2)], { detached: hex(vectors.detachedDefaultKeyId.signature) });
    expect(v).toMatchObject({ signed: true, source: 'detached' });
    expect(v.signers[0]!.full).toBe(true);
  });

  it('a signature over a prefix of the parts is partial, with its coverage', () => {
    const v = verifyModule(hex(vectors.partialPrefix.signed), [pub(0)]);
    expect(v.signers[0]).toMatchObject({ full: false, partsCovered: 2, partsTotal: 3 });
  });
});

describe('round trips', () => {
  const module = new Uint8Array(readFileSync(guest('hello')));

  it('embedded: sign, verify; detach, verify detached; the module runs unchanged in meaning', () => {
    const k = generateKeyPair();
    const signed = signModule(module, k).module;
    expect(WebAssembly.validate(signed)).toBe(true);
    expect(verifyModule(signed, [k.publicKey]).signers[0]!.full).toBe(true);
    const { module: bare, signature } = detachSignature(signed);
    expect(verifyModule(bare, [k.publicKey]).signed).toBe(false);
    expect(verifyModule(bare, [k.publicKey], { detached: signature! }).signers[0]!.full).toBe(true);
  });

  it('several signers, embedded and detached; re-signing with the same key is refused', () => {
    const [a, b, c] = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
    const signed = signModule(signModule(signModule(module, a).module, b).module, c).module;
    const v = verifyModule(signed, [a.publicKey, b.publicKey, c.publicKey]);
    expect(v.signers.map((s) => s.key)).toEqual([a.publicKey, b.publicKey, c.publicKey]);
    expect(parseSignatureData(detachSignature(signed).signature!).sets).toHaveLength(1);
    expect(() => signModule(signed, b)).toThrow(/already signed with this key/);
    const d1 = signModule(module, a, { detached: true }).signature;
    const d2 = signModule(module, b, { detached: true, previous: d1 }).signature;
    expect(verifyModule(module, [a.publicKey, b.publicKey], { detached: d2 }).signers).toHaveLength(2);
  });

  it('delimit: a section added after signing leaves a partial signature; a second signer can sign the whole', () => {
    const k = generateKeyPair();
    const signed = signModule(module, k, { delimit: true }).module;
    expect(verifyModule(signed, [k.publicKey]).signers[0]!.full).toBe(true);
    const extra = new TextEncoder().encode('later');
    const extended = concat([signed, Uint8Array.of(0, 1 + 5 + extra.length, 5), new TextEncoder().encode('extra'), extra]);
    expect(WebAssembly.validate(extended)).toBe(true);
    const v = verifyModule(extended, [k.publicKey]);
    expect(v.signers[0]).toMatchObject({ full: false, partsCovered: 1, partsTotal: 2, coveredBytes: signed.length });
    const k2 = generateKeyPair();
    const both = signModule(extended, k2).module;
    const v2 = verifyModule(both, [k.publicKey, k2.publicKey]);
    expect(v2.signers.find((s) => s.key === k2.publicKey)!.full).toBe(true);
    expect(v2.signers.find((s) => s.key === k.publicKey)!.full).toBe(false);
  });

  it('one changed byte anywhere after the preamble breaks the signature (content or signature)', () => {
    const k = generateKeyPair();
    const signed = signModule(module, k).module;
    const sigEnd = scanSections(signed)[0]!.end;
    // Every byte of the signature section and a sample of the content (each costs a full verify).
    const step = Math.max(1, Math.floor((signed.length - sigEnd) / 200));
    for (let i = 8; i < signed.length; i += i < sigEnd ? 1 : step) {
      const t = Uint8Array.from(signed);
      t[i]! ^= 0x01;
      let verdict: string;
      try {
        const v = verifyModule(t, [k.publicKey]);
        verdict = v.signers.some((s) => s.full) ? 'VALID' : 'refused';
      } catch (error) {
        expect(error).toBeInstanceOf(WasmvisorError);
        verdict = 'malformed';
      }
      expect(verdict, `byte ${i}`).not.toBe('VALID');
    }
  });

  it('a changed byte in the preamble is refused too: the version is not hashed, so it is checked (found by parse:signature)', () => {
    const k = generateKeyPair();
    const signed = signModule(module, k).module;
    for (let i = 0; i < 8; i++) {
      const t = Uint8Array.from(signed);
      t[i] = i === 4 ? 0x00 : t[i]! ^ 0x01;
      expect(() => verifyModule(t, [k.publicKey]), `byte ${i}`).toThrow(ModuleInvalidError);
      expect(() => detachSignature(t), `byte ${i}`).toThrow(ModuleInvalidError);
    }
  });
});

describe('hostile signature data: typed errors, bounded work', () => {
  const head = Uint8Array.of(1, 1, 1);
  const parse = (b: Uint8Array) => () => parseSignatureData(b);

  it('lengths past the end, counts of 2^32-1, a huge key id, trailing bytes, wrong versions', () => {
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(0), /unexpected end of spec_version/],
      [Uint8Array.of(2, 1, 1, 0), /specification version 0x02/],
      [Uint8Array.of(1, 2, 1, 0), /content type 0x02/],
      [Uint8Array.of(1, 1, 9, 0), /hash function 0x09/],
      [concat([head, leb128(0xffffffff)]), /signed_hashes count 4294967295 exceeds the limit of 64/],
      [concat([head, leb128(1), leb128(0xffffffff)]), /signed hash set 0 \(4294967295 bytes\) runs past its end/],
      [concat([head, leb128(1), leb128(5), leb128(0xffffffff)]), /set 0: hashes count 4294967295 exceeds/],
      [concat([head, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0x0f)]), /LEB128/],
      [concat([head, leb128(0), Uint8Array.of(0)]), /trailing bytes/],
      [concat([head, leb128(1), leb128(3), leb128(0), leb128(0), leb128(0)]), /at least one hash/],
    ];
    for (const [bytes, message] of cases) {
      expect(parse(bytes), toHex(bytes)).toThrow(IntegrityError);
      expect(parse(bytes), toHex(bytes)).toThrow(message);
    }
  });

  it('a 10 MB key id is refused at its length, without reading it', () => {
    const keyId = new Uint8Array(10 * 1024 * 1024);
    const sig = concat([leb128(keyId.length), keyId, Uint8Array.of(1), leb128(64), new Uint8Array(64)]);
    const set = concat([leb128(1), new Uint8Array(32), leb128(1), leb128(sig.length), sig]);
    const data = concat([head, leb128(1), leb128(set.length), set]);
    const t0 = performance.now();
    expect(parse(data)).toThrow(new RegExp(`key_id: length ${keyId.length} exceeds the limit of ${MAX_KEY_ID_BYTES}`));
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('an Ed25519 signature of the wrong length; an unknown algorithm is kept and ignored', () => {
    const rec = (alg: number, n: number) => {
      const s = concat([leb128(0), Uint8Array.of(alg), leb128(n), new Uint8Array(n)]);
      return concat([leb128(s.length), s]);
    };
    const data = (r: Uint8Array) => {
      const set = concat([leb128(1), new Uint8Array(32), leb128(1), r]);
      return concat([head, leb128(1), leb128(set.length), set]);
    };
    expect(parse(data(rec(1, 63)))).toThrow(/an Ed25519 signature has 64 bytes, not 63/);
    expect(parseSignatureData(data(rec(7, 100))).sets[0]!.signatures[0]!.algorithm).toBe(7);
  });

  it('round-trips its own encoding', () => {
    const d = { sets: [{ hashes: [new Uint8Array(32).fill(1)], signatures: [{ keyId: Uint8Array.of(1, 2), algorithm: 1, signature: new Uint8Array(64).fill(9) }] }] };
    expect(toHex(encodeSignatureData(parseSignatureData(encodeSignatureData(d))))).toBe(toHex(encodeSignatureData(d)));
  });

  it('module framing: bad preamble and section lengths past the end are ERR_MODULE_INVALID', () => {
    expect(() => scanSections(new Uint8Array(4))).toThrow(ModuleInvalidError);
    expect(() => scanSections(concat([hex(vectors.module), Uint8Array.of(1, 0x7f)]))).toThrow(/section 4 \(127 bytes\) runs past its end/);
    expect(() => scanSections(concat([hex(vectors.module), Uint8Array.of(0, 2, 5)]))).toThrow(ModuleInvalidError);
  });

  it('a signature section that is not first, and more than 64 delimiters, are refused', () => {
    const m = hex(vectors.module);
    const sig = concat([Uint8Array.of(0, 11, 9), new TextEncoder().encode('signature'), Uint8Array.of(1)]);
    expect(() => digestModule(concat([m, sig]))).toThrow(/only the first section may hold signatures/);
    const many = concat([m, ...Array.from({ length: MAX_HASHES + 1 }, () => delimiterSection())]);
    expect(() => digestModule(many)).toThrow(/more than 64 signature_delimiter sections/);
  });

  it('random mutations of a signed module: every outcome is a result or a WasmvisorError', () => {
    const k = generateKeyPair();
    const signed = signModule(hex(vectors.split), k).module;
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 2000; i++) {
      const t = Uint8Array.from(signed);
      const flips = 1 + Math.floor(rnd() * 4);
      for (let f = 0; f < flips; f++) t[8 + Math.floor(rnd() * (t.length - 8))] = Math.floor(rnd() * 256);
      const cut = rnd() < 0.2 ? t.subarray(0, 8 + Math.floor(rnd() * (t.length - 8))) : t;
      try {
        const v = verifyModule(cut, [k.publicKey]);
        if (v.signers.some((s) => s.full)) expect(toHex(cut)).toBe(toHex(signed));
      } catch (error) {
        expect(error).toBeInstanceOf(WasmvisorError);
      }
    }
  });
});

/** Runs the independent Python verifier on modules we signed (skipped where python3-cryptography is missing). */
const python = spawnSync('python3', ['-c', 'import cryptography'], { stdio: 'ignore' }).status === 0;
describe.skipIf(!python)('our signatures verify in the independent implementation', () => {
  it('embedded, detached, several signers, delimiters', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wv-sig-'));
    const script = new URL('../../scripts/wasmsig.py', import.meta.url).pathname;
    const module = new Uint8Array(readFileSync(guest('hello')));
    const [a, b] = [generateKeyPair(), generateKeyPair()];
    writeFileSync(path.join(dir, 'a.pub'), encodePublicKey(a.publicKey));
    writeFileSync(path.join(dir, 'b.pub'), encodePublicKey(b.publicKey));
    writeFileSync(path.join(dir, 'two.wasm'), signModule(signModule(module, a, { delimit: true }).module, b).module);
    writeFileSync(path.join(dir, 'plain.wasm'), module);
    writeFileSync(path.join(dir, 'plain.sig'), signModule(module, b, { detached: true }).signature);
    const verify = (...args: string[]) => execFileSync('python3', [script, 'verify', ...args.map((f) => path.join(dir, f))], { encoding: 'utf8' }).trim();
    expect(verify('two.wasm', 'a.pub')).toBe('valid');
    expect(verify('two.wasm', 'b.pub')).toBe('valid');
    expect(verify('plain.wasm', 'b.pub', 'plain.sig')).toBe('valid');
    const r = spawnSync('python3', [script, 'verify', path.join(dir, 'plain.wasm'), path.join(dir, 'a.pub'), path.join(dir, 'plain.sig')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
  });
});
