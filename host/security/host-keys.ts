/**
 * The host's own keys, in `<dataDir>/keys/` (mode 0700), each created on first use:
 *
 *   host.key    Ed25519 key pair (65 bytes, the signature format's serialization), mode 0600:
 *               signs attestation reports, partition certificates and audit checkpoints
 *   host.pub    its public half (33 bytes), for verifiers
 *   audit.key   32 random bytes, mode 0600: the audit log's HMAC key (kept apart from the log)
 *   audit.head  the audit log's latest checkpoint (see audit.ts), beside the key, not the log
 *
 * Creation is O_EXCL: two processes racing to create a key end up with the same one (the loser
 * reads the winner's). A key file that exists but does not parse is an error, never replaced.
 * These run once per hypervisor, at start-up or on first use, so they are synchronous.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, writeSync, fchmodSync } from 'node:fs';
import path from 'node:path';
import { StorageError } from '../errors.ts';
import { isMissingFile, makeDirsSync, readRegularFileSync } from '../files.ts';
import { encodePublicKey, encodeSecretKey, generateKeyPair, MAX_KEY_FILE_BYTES, parseSecretKey, type SecretKey } from './keys.ts';

export const KEYS_DIR = 'keys';
export const HOST_KEY_FILE = 'host.key';
export const HOST_PUBLIC_KEY_FILE = 'host.pub';
export const AUDIT_KEY_FILE = 'audit.key';
export const AUDIT_HEAD_FILE = 'audit.head';

/** The keys directory of a data directory. */
export function keysDir(dataDir: string): string {
  return path.join(dataDir, KEYS_DIR);
}

/** Creates `file` with `bytes` (O_EXCL, `mode`, fsynced). False when it already exists. */
function createExclusive(file: string, bytes: Uint8Array, mode: number): boolean {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new StorageError(`cannot create ${file}: ${(error as Error).message}`, { cause: error });
  }
  try {
    fchmodSync(fd, mode);
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Reads `file`, or creates it with `make()` (mode 0600) when it does not exist. */
export function loadOrCreate(file: string, make: () => Uint8Array): { bytes: Uint8Array; created: boolean } {
  try {
    return { bytes: readKeyDirFile(file), created: false };
  } catch (error) {
    if (!isMissingFile(error)) throw error;
  }
  try {
    makeDirsSync(path.dirname(file), 0o700);
  } catch (error) {
    throw new StorageError(`cannot create ${path.dirname(file)}: ${(error as Error).message}`, { cause: error });
  }
  const bytes = make();
  if (createExclusive(file, bytes, 0o600)) return { bytes, created: true };
  // Another process created it first: use theirs.
  return { bytes: readKeyDirFile(file), created: false };
}

/** A file of the keys directory: a regular file of at most MAX_KEY_FILE_BYTES, never waited on (ERR_STORAGE naming it). */
function readKeyDirFile(file: string): Uint8Array {
  return new Uint8Array(readRegularFileSync(file, { maxBytes: MAX_KEY_FILE_BYTES, what: 'key file', error: (message, cause) => new StorageError(message, { cause }) }));
}

/** The host's Ed25519 key, created (with its .pub beside it) on first use. */
export function loadOrCreateHostKey(dataDir: string): { key: SecretKey; created: boolean; file: string } {
  const dir = keysDir(dataDir);
  const file = path.join(dir, HOST_KEY_FILE);
  const { bytes, created } = loadOrCreate(file, () => encodeSecretKey(generateKeyPair()));
  let key: SecretKey;
  try {
    key = parseSecretKey(bytes, file);
  } catch (error) {
    throw new StorageError(`the host key ${file} is unusable: ${(error as Error).message}`);
  }
  // The public half is derived; (re)write it when missing.
  createExclusive(path.join(dir, HOST_PUBLIC_KEY_FILE), encodePublicKey(key.publicKey), 0o644);
  return { key, created, file };
}

/** The audit log's HMAC key (32 bytes), created on first use. */
export function loadOrCreateAuditKey(file: string): { key: Uint8Array; created: boolean } {
  const { bytes, created } = loadOrCreate(file, () => new Uint8Array(randomBytes(32)));
  if (bytes.length !== 32) throw new StorageError(`the audit key ${file} has ${bytes.length} bytes, not 32`);
  return { key: bytes, created };
}
