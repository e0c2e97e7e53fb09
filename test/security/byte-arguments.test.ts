/**
 * The security entry points that take bytes or keys refuse anything else with ERR_INVALID_ARGUMENT
 * naming the argument and what was given, as the path-taking ones do
 * (test/schema/path-arguments.test.ts). `parsePublicKey(5)` threw "bytes is not iterable",
 * `verifyModule(5, [])` "bytes.subarray is not a function", `signModule(m, undefined)` "Cannot
 * read properties of undefined": untyped TypeErrors, where every bad input is to have a code.
 */
import { describe, expect, it } from 'vitest';
import { detachSignature, digestModule, encodePublicKey, encodeSecretKey, generateKeyPair, parsePublicKey, parseSecretKey, parseSignatureData, Policy, scanSections, signModule, verifyAuditFiles, verifyModule } from '../../host/index.ts';
import { guest } from '../helpers.ts';
import { readFileSync } from 'node:fs';

const key = generateKeyPair();
const module = new Uint8Array(readFileSync(guest('hello')));

const refusals: [string, () => unknown, string][] = [
  ['parsePublicKey(5)', () => parsePublicKey(5 as never, 'k'), 'parsePublicKey: bytes: expected a Uint8Array, got the number 5'],
  ['parseSecretKey("k")', () => parseSecretKey('k' as never, 'k'), 'parseSecretKey: bytes: expected a Uint8Array, got the string "k"'],
  ['parseSignatureData(null)', () => parseSignatureData(null as never), 'parseSignatureData: bytes: expected a Uint8Array, got null'],
  ['scanSections([0, 97])', () => scanSections([0, 97] as never), 'scanSections: bytes: expected a Uint8Array, got an array of 2'],
  ['digestModule(5)', () => digestModule(5 as never), 'digestModule: bytes: expected a Uint8Array, got the number 5'],
  ['detachSignature({})', () => detachSignature({} as never), 'detachSignature: bytes: expected a Uint8Array, got an object'],
  ['verifyModule(5, [])', () => verifyModule(5 as never, []), 'verifyModule: bytes: expected a Uint8Array, got the number 5'],
  ['verifyModule(m, 5)', () => verifyModule(module, 5 as never), 'verifyModule: keys: expected an array of public keys (parsePublicKey), got the number 5'],
  ['verifyModule(m, [raw bytes])', () => verifyModule(module, [encodePublicKey(key.publicKey)] as never), 'verifyModule: keys: expected an array of public keys (parsePublicKey), got an array of 1'],
  ['verifyModule(m, [], { detached: "x" })', () => verifyModule(module, [], { detached: 'x' as never }), 'verifyModule: options.detached: expected a Uint8Array, got the string "x"'],
  ['signModule(5, key)', () => signModule(5 as never, key), 'signModule: bytes: expected a Uint8Array, got the number 5'],
  ['signModule(m, undefined)', () => signModule(module, undefined as never), 'signModule: key: expected a secret key (parseSecretKey, generateKeyPair), got nothing'],
  ['signModule(m, publicKey)', () => signModule(module, key.publicKey as never), 'signModule: key: expected a secret key (parseSecretKey, generateKeyPair), got an object'],
  ['Policy.fromAllowList(5)', () => Policy.fromAllowList(5 as never), 'Policy.fromAllowList: measurements: expected an iterable of SHA-256 hex strings, got the number 5'],
  ['verifyAuditFiles(5)', () => verifyAuditFiles(5 as never), 'verifyAuditFiles: files: expected an array of { name, read }, got the number 5'],
  ['encodePublicKey(null)', () => encodePublicKey(null as never), 'encodePublicKey: key: expected a public key (parsePublicKey, generateKeyPair().publicKey), got null'],
  ['encodePublicKey(raw bytes)', () => encodePublicKey(new Uint8Array(32) as never), 'encodePublicKey: key: expected a public key (parsePublicKey, generateKeyPair().publicKey), got a Uint8Array of 32 bytes'],
  ['encodeSecretKey(publicKey)', () => encodeSecretKey(key.publicKey as never), 'encodeSecretKey: key: expected a secret key (parseSecretKey, generateKeyPair), got an object'],
  ['encodeSecretKey(undefined)', () => encodeSecretKey(undefined as never), 'encodeSecretKey: key: expected a secret key (parseSecretKey, generateKeyPair), got nothing'],
];

describe('a bytes or key argument that is not one is ERR_INVALID_ARGUMENT naming it', () => {
  for (const [name, call, message] of refusals) {
    it(name, () => {
      expect(call).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message }));
    });
  }

  it('the real arguments still work: sign, verify, detach, parse keys, an allow list', () => {
    const { module: signed } = signModule(module, key);
    const pub = parsePublicKey(encodePublicKey(key.publicKey), 'k');
    expect(parseSecretKey(encodeSecretKey(key), 'k').publicKey.raw).toEqual(key.publicKey.raw);
    expect(verifyModule(signed, [pub]).signers).toHaveLength(1);
    expect(verifyModule(Buffer.from(signed), [pub]).signers).toHaveLength(1);
    expect(detachSignature(signed).signature).not.toBeNull();
    expect(digestModule(signed).embedded).not.toBeNull();
    expect(Policy.fromAllowList(new Set(['a'.repeat(64)]))).toBeInstanceOf(Policy);
    expect(verifyAuditFiles([]).ok).toBe(true);
  });
});
