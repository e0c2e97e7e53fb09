/**
 * Ed25519 keys in the serialization of the WebAssembly tool-conventions signature format
 * (Signatures.md, "Signature algorithms and key serialization"), as wasmsign2 writes them:
 *
 *   public key  33 bytes: 0x01 ‖ public key (32)
 *   key pair    65 bytes: 0x81 ‖ secret key (32, the RFC 8032 seed) ‖ public key (32)
 *
 * Also read, for convenience: PEM (SPKI / PKCS#8) and OpenSSH `ssh-ed25519` public keys, and the
 * 33-byte form as hex (how a policy file names a key inline). Everything else is refused with
 * ERR_INVALID_ARGUMENT naming the file.
 *
 * A key's default identifier is wasmsign2's: the first 12 bytes of HMAC-SHA-256 keyed with the
 * 32-byte public key over the ASCII string `key_id`.
 */
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, StorageError } from '../errors.ts';
import { readRegularFile, readRegularFileSync } from '../files.ts';
import { checkBytesArgument, checkPathArgument, given } from '../schema/check.ts';
import { bytesEqual, concat, fromHex, toHex } from './wire.ts';

/** Identifier byte of a serialized Ed25519 public key. */
export const ED25519_PUBLIC_KEY_ID = 0x01;
/** Identifier byte of a serialized Ed25519 key pair. */
export const ED25519_KEY_PAIR_ID = 0x81;
/** Length of a default key identifier (wasmsign2's). */
export const DEFAULT_KEY_ID_BYTES = 12;
/** Largest key file read, bytes: any key format fits in far less. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

/** An Ed25519 public key with the identifier signatures may name it by. */
export interface PublicKey {
  /** The 32 raw bytes. */
  readonly raw: Uint8Array;
  /** Key id: explicit (policy `keyId`) or the default one derived from the key. */
  readonly keyId: Uint8Array;
  readonly keyObject: KeyObject;
}

/** An Ed25519 key pair. */
export interface SecretKey {
  /** The 32-byte RFC 8032 secret (seed). */
  readonly seed: Uint8Array;
  readonly publicKey: PublicKey;
  readonly keyObject: KeyObject;
}

/** wasmsign2's default key identifier: HMAC-SHA-256(key = public key, "key_id")[0..12]. */
export function defaultKeyId(raw: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', raw).update('key_id').digest().subarray(0, DEFAULT_KEY_ID_BYTES));
}

/** A public key from its 32 raw bytes (and an explicit key id, or the default one). */
export function publicKeyFromRaw(raw: Uint8Array, keyId?: Uint8Array): PublicKey {
  if (raw.length !== 32) throw new InvalidArgumentError(`an Ed25519 public key has 32 bytes, got ${raw.length}`);
  const copy = Uint8Array.from(raw);
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: Buffer.from(concat([SPKI_PREFIX, copy])), format: 'der', type: 'spki' });
  } catch (error) {
    throw new InvalidArgumentError(`not a usable Ed25519 public key: ${(error as Error).message}`);
  }
  return { raw: copy, keyId: keyId ? Uint8Array.from(keyId) : defaultKeyId(copy), keyObject };
}

/** A key pair from its 32-byte seed. */
export function secretKeyFromSeed(seed: Uint8Array): SecretKey {
  if (seed.length !== 32) throw new InvalidArgumentError(`an Ed25519 secret key has 32 bytes, got ${seed.length}`);
  const keyObject = createPrivateKey({ key: Buffer.from(concat([PKCS8_PREFIX, seed])), format: 'der', type: 'pkcs8' });
  return { seed: Uint8Array.from(seed), publicKey: publicKeyFromRaw(rawPublic(createPublicKey(keyObject))), keyObject };
}

/** A fresh random key pair. */
export function generateKeyPair(): SecretKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return secretKeyFromSeed(new Uint8Array(Buffer.from(jwk.d!, 'base64url')));
}

function rawPublic(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new InvalidArgumentError(`not an Ed25519 key (${String(jwk.crv ?? key.asymmetricKeyType)})`);
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

/** The spec's 33-byte serialization of a public key. */
export function encodePublicKey(key: PublicKey): Uint8Array {
  // An untyped TypeError ("reading 'raw'") for anything but a key, as verifyModule and signModule refuse theirs.
  if (!hasRaw(key)) throw new InvalidArgumentError(`encodePublicKey: key: expected a public key (parsePublicKey, generateKeyPair().publicKey), got ${given(key)}`);
  return concat([Uint8Array.of(ED25519_PUBLIC_KEY_ID), key.raw]);
}

function hasRaw(k: unknown): boolean {
  const raw = typeof k === 'object' && k !== null ? (k as { raw?: unknown }).raw : null;
  return raw instanceof Uint8Array && raw.length === 32;
}

/** The spec's 65-byte serialization of a key pair. */
export function encodeSecretKey(key: SecretKey): Uint8Array {
  const seed = typeof key === 'object' && key !== null ? (key as { seed?: unknown }).seed : null;
  if (!(seed instanceof Uint8Array) || seed.length !== 32 || !hasRaw((key as { publicKey?: unknown }).publicKey)) {
    throw new InvalidArgumentError(`encodeSecretKey: key: expected a secret key (parseSecretKey, generateKeyPair), got ${given(key)}`);
  }
  return concat([Uint8Array.of(ED25519_KEY_PAIR_ID), key.seed, key.publicKey.raw]);
}

/** Ed25519 signature (64 bytes). */
export function signBytes(key: SecretKey, message: Uint8Array): Uint8Array {
  return new Uint8Array(edSign(null, message, key.keyObject));
}

/** Ed25519 verification; false (never a throw) for a signature of the wrong length. */
export function verifyBytes(key: PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return edVerify(null, message, key.keyObject, signature);
  } catch {
    return false;
  }
}

/**
 * Parses a public key: the spec's 33 bytes, the same as hex text, PEM (SPKI), or an OpenSSH
 * `ssh-ed25519` line. `where` names the source in errors.
 */
export function parsePublicKey(bytes: Uint8Array, where: string, keyId?: Uint8Array): PublicKey {
  checkBytesArgument(bytes, 'parsePublicKey: bytes');
  if (bytes.length === 33 && bytes[0] === ED25519_PUBLIC_KEY_ID) return publicKeyFromRaw(bytes.subarray(1), keyId);
  const text = asText(bytes);
  if (text !== null) {
    const trimmed = text.trim();
    const hex = fromHex(trimmed);
    if (hex !== null && hex.length === 33 && hex[0] === ED25519_PUBLIC_KEY_ID) return publicKeyFromRaw(hex.subarray(1), keyId);
    if (trimmed.startsWith('-----BEGIN PUBLIC KEY-----')) {
      try {
        return publicKeyFromRaw(rawPublic(createPublicKey({ key: trimmed, format: 'pem' })), keyId);
      } catch (error) {
        throw new InvalidArgumentError(`${where}: not an Ed25519 PEM public key (${(error as Error).message})`);
      }
    }
    const ssh = /^ssh-ed25519\s+([A-Za-z0-9+/]+={0,2})(\s|$)/.exec(trimmed);
    if (ssh) {
      const raw = openSshKey(new Uint8Array(Buffer.from(ssh[1]!, 'base64')));
      if (raw !== null) return publicKeyFromRaw(raw, keyId);
      throw new InvalidArgumentError(`${where}: malformed OpenSSH ssh-ed25519 key`);
    }
  }
  if (bytes.length === 65 && bytes[0] === ED25519_KEY_PAIR_ID) {
    throw new InvalidArgumentError(`${where} is a secret key (0x81 …), not a public key: give the .pub file`);
  }
  throw new InvalidArgumentError(
    `${where} is not an Ed25519 public key (expected the 33-byte 0x01 ‖ key serialization, its hex, PEM or an OpenSSH ssh-ed25519 line; got ${bytes.length} bytes)`,
  );
}

/** Parses a key pair: the spec's 65 bytes, or PEM (PKCS#8). The stored public half must match the secret. */
export function parseSecretKey(bytes: Uint8Array, where: string): SecretKey {
  checkBytesArgument(bytes, 'parseSecretKey: bytes');
  if (bytes.length === 65 && bytes[0] === ED25519_KEY_PAIR_ID) {
    const key = secretKeyFromSeed(bytes.subarray(1, 33));
    if (!bytesEqual(key.publicKey.raw, bytes.subarray(33))) {
      throw new InvalidArgumentError(`${where}: the public half stored in the key pair does not belong to its secret key (corrupted file?)`);
    }
    return key;
  }
  const text = asText(bytes);
  if (text !== null && /-----BEGIN PRIVATE KEY-----/.test(text)) {
    try {
      const keyObject = createPrivateKey({ key: text, format: 'pem' });
      const jwk = keyObject.export({ format: 'jwk' });
      if (jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string') throw new Error(`a ${String(jwk.crv ?? keyObject.asymmetricKeyType)} key`);
      return secretKeyFromSeed(new Uint8Array(Buffer.from(jwk.d, 'base64url')));
    } catch (error) {
      throw new InvalidArgumentError(`${where}: not an Ed25519 PEM private key (${(error as Error).message})`);
    }
  }
  if (bytes.length === 33 && bytes[0] === ED25519_PUBLIC_KEY_ID) throw new InvalidArgumentError(`${where} is a public key, not a secret key: give the secret key file`);
  throw new InvalidArgumentError(`${where} is not an Ed25519 secret key (expected the 65-byte 0x81 ‖ secret ‖ public serialization or a PEM private key; got ${bytes.length} bytes)`);
}

/** The comment of an OpenSSH `ssh-ed25519 <key> <comment>` line (what `ssh-keygen -l` names the key by), or null. */
export function publicKeyComment(bytes: Uint8Array): string | null {
  const text = asText(bytes);
  const m = text === null ? null : /^ssh-ed25519\s+[A-Za-z0-9+/]+={0,2}[ \t]+([^\r\n]*\S)/.exec(text.trim());
  return m ? m[1]! : null;
}

/** OpenSSH wire format: string "ssh-ed25519", string key(32). */
function openSshKey(blob: Uint8Array): Uint8Array | null {
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length < 4) return null;
  const n = dv.getUint32(0);
  if (n !== 11 || blob.length < 4 + n + 4) return null;
  if (Buffer.from(blob.subarray(4, 15)).toString('latin1') !== 'ssh-ed25519') return null;
  const k = dv.getUint32(15);
  if (k !== 32 || blob.length !== 19 + 32) return null;
  return blob.subarray(19);
}

function asText(bytes: Uint8Array): string | null {
  if (bytes.length > MAX_KEY_FILE_BYTES) return null;
  for (const b of bytes) if (b < 0x09) return null;
  return Buffer.from(bytes).toString('utf8');
}

/** Reads a key file (a regular file of at most MAX_KEY_FILE_BYTES), synchronously: for configuration loaded once. */
export function readKeyFileSync(file: string): Uint8Array {
  return new Uint8Array(readRegularFileSync(file, { maxBytes: MAX_KEY_FILE_BYTES, what: 'key file' }));
}

/**
 * Reads a key file asynchronously: a regular file of at most MAX_KEY_FILE_BYTES, or with `pipes`
 * (a key named on the command line: `--key /dev/stdin`, `--key <(pass show signing-key)`, which
 * keeps a secret key off the disk) also a pipe, read up to the same bound (host/files.ts).
 */
export async function readKeyFile(file: string, options: { pipes?: boolean } = {}): Promise<Uint8Array> {
  return new Uint8Array(await readRegularFile(file, { maxBytes: MAX_KEY_FILE_BYTES, what: 'key file', pipes: options.pipes === true }));
}

/**
 * Writes a new file that must not exist yet (O_EXCL), with `mode`, and fsyncs it. Refuses to
 * overwrite: a key file is never replaced by accident.
 */
export async function writeNewFile(file: string, bytes: Uint8Array, mode: number): Promise<void> {
  let handle;
  try {
    handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new InvalidArgumentError(`${file} already exists; refusing to overwrite a key`);
    throw new StorageError(`cannot create ${file}: ${(error as Error).message}`, { cause: error });
  }
  try {
    // The umask can only remove bits, but be explicit: a secret key is the owner's alone.
    await handle.chmod(mode);
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (error) {
    // Made here (O_EXCL) and not written whole: a cut key file goes rather than stay behind.
    await handle.close().catch(() => undefined);
    handle = undefined;
    await rm(file, { force: true }).catch(() => undefined);
    throw new StorageError(`cannot write ${file}: ${(error as Error).message}`, { cause: error });
  } finally {
    await handle?.close();
  }
}

/**
 * Writes a new key pair: the secret key (65 bytes, mode 0600) and the public key (33 bytes, 0644).
 * Refuses (ERR_INVALID_ARGUMENT) when either file exists, or both name the same file, before
 * writing anything; when the public key cannot be written, the secret key just written goes too
 * (half a pair is of no use, and a stray secret key is one more to guard).
 */
export async function writeKeyPair(key: SecretKey, secretFile: string, publicFile: string): Promise<void> {
  checkPathArgument(secretFile, 'writeKeyPair: secretFile');
  checkPathArgument(publicFile, 'writeKeyPair: publicFile');
  if (path.resolve(secretFile) === path.resolve(publicFile)) {
    throw new InvalidArgumentError(`the secret and the public key would both be written to ${secretFile}: name two files`);
  }
  for (const f of [secretFile, publicFile]) {
    const exists = await stat(f).then(
      () => true,
      () => false,
    );
    if (exists) throw new InvalidArgumentError(`${f} already exists; refusing to overwrite a key`);
  }
  await writeNewFile(secretFile, encodeSecretKey(key), 0o600);
  try {
    await writeNewFile(publicFile, encodePublicKey(key.publicKey), 0o644);
  } catch (error) {
    await rm(secretFile, { force: true });
    throw error;
  }
}

/** Hex of a key id, for messages. */
export const keyIdHex = (key: PublicKey): string => toHex(key.keyId);
