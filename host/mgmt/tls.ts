/**
 * Certificates for the management API: a local certificate authority and the server's
 * certificate (`serve --tls-self-signed`), client certificates for mutual TLS
 * (`wasmvisor cert create`), and fingerprints for pinning. ECDSA P-256 with SHA-256 (every TLS
 * stack speaks it), made with @peculiar/x509 over node's WebCrypto. Keys are written 0600.
 * Loaded only by the management plane (the library never imports this file).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { InvalidArgumentError, StorageError, WasmvisorError } from '../errors.ts';
import { makeDirsSync, readRegularFile } from '../files.ts';
import { MAX_TLS_FILE_BYTES } from '../limits/sizes.ts';
import { quoted } from '../escape.ts';
import { CERT_NAME_PATTERN, MAX_CERT_NAME_LENGTH } from '../schema/patterns.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface TlsFiles {
  cert: string;
  key: string;
  /** The CA that issued `cert` (and client certificates), if it is ours. */
  ca: string | null;
}

/** `AB:CD:...` SHA-256 fingerprint of a PEM certificate, as node and openssl print it. */
export function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** Normalizes a fingerprint given by a user: hex with or without colons, any case. */
export function normalizeFingerprint(text: string): string {
  const hex = text.replace(/:/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) throw new InvalidArgumentError(`fingerprint ${quoted(text)} is not a SHA-256 fingerprint (64 hex digits, colons optional)`);
  return hex.match(/../g)!.join(':');
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function importPkcs8(pem: string): Promise<CryptoKey> {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return webcrypto.subtle.importKey('pkcs8', Buffer.from(b64, 'base64'), ALG, false, ['sign']);
}

function serial(): string {
  // Positive, 16 bytes.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

async function writeSecret(file: string, text: string): Promise<void> {
  await writeFile(file, text, { mode: 0o600 });
}

/** A PEM file of the local CA's directory: ERR_STORAGE naming it when it is not a regular file of at most MAX_TLS_FILE_BYTES. */
async function readPem(file: string): Promise<string> {
  return (await readRegularFile(file, { maxBytes: MAX_TLS_FILE_BYTES, what: 'TLS file', error: (message, cause) => new StorageError(message, { cause }) })).toString('utf8');
}

/**
 * The local CA and server certificate in `dir` (ca.crt, ca.key, server.crt, server.key),
 * created when absent and reused afterwards, so the fingerprint a client pinned stays valid.
 * `names` are the server's DNS names and IP addresses (loopback ones are always included).
 */
export async function ensureSelfSigned(dir: string, names: string[] = []): Promise<TlsFiles & { ca: string; created: boolean }> {
  const files = { caCert: path.join(dir, 'ca.crt'), caKey: path.join(dir, 'ca.key'), cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key') };
  try {
    makeDirsSync(dir, 0o700);
    if (Object.values(files).every((f) => existsSync(f))) {
      const [ca, cert, key] = await Promise.all([readPem(files.caCert), readPem(files.cert), readPem(files.key)]);
      const server = new X509Certificate(cert);
      const wanted = new Set(['localhost', '127.0.0.1', '::1', ...names]);
      const covers = [...wanted].every((n) => (isIP(n) ? server.checkIP(n) : server.checkHost(n)) !== undefined);
      if (covers && Date.parse(server.validTo) > Date.now() + DAY) return { ca, cert, key, created: false };
      // Names changed or expiring: a new server certificate from the same CA.
      const issued = await issue(await readPem(files.caKey), ca, 'wasmvisor host', [...wanted], 'server');
      await Promise.all([writeFile(files.cert, issued.cert, { mode: 0o644 }), writeSecret(files.key, issued.key)]);
      return { ca, ...issued, created: true };
    }
    const caKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: 'CN=Wasmvisor local CA',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3650 * DAY),
      keys: caKeys,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
      ],
    });
    const ca = caCert.toString('pem') + '\n';
    const caKey = await pkcs8Pem(caKeys.privateKey);
    await writeSecret(files.caKey, caKey);
    await writeFile(files.caCert, ca, { mode: 0o644 });
    const issued = await issue(caKey, ca, 'wasmvisor host', ['localhost', '127.0.0.1', '::1', ...names], 'server');
    await Promise.all([writeFile(files.cert, issued.cert, { mode: 0o644 }), writeSecret(files.key, issued.key)]);
    return { ca, ...issued, created: true };
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw error;
    throw new StorageError(`cannot create or read the TLS files in ${dir}: ${(error as Error).message}`, { cause: error });
  }
}

/** Issues a certificate from the local CA in `dir`: a client certificate whose CN is the principal's name. */
export async function issueClientCert(dir: string, name: string, lifetimeDays = 365): Promise<{ cert: string; key: string }> {
  const caKeyFile = path.join(dir, 'ca.key');
  if (!existsSync(caKeyFile)) throw new InvalidArgumentError(`no local CA in ${dir}: run wasmvisor serve --tls-self-signed once first`);
  const [caKey, ca] = await Promise.all([readPem(caKeyFile), readPem(path.join(dir, 'ca.crt'))]);
  try {
    return await issue(caKey, ca, name, [], 'client', lifetimeDays);
  } catch (error) {
    // A CA whose files are not a key and a certificate (edited, truncated) is the config
    // directory's fault, as ensureSelfSigned says for the server's: not a fault of the runtime.
    if (error instanceof WasmvisorError) throw error;
    throw new StorageError(`cannot issue a certificate from the local CA in ${dir}: ${(error as Error).message}`, { cause: error });
  }
}

/** A certificate's name (its CN), as the server reads it back from a client's certificate. */
const CERT_NAME = new RegExp(CERT_NAME_PATTERN);

async function issue(caKeyPem: string, caPem: string, cn: string, names: string[], usage: 'server' | 'client', lifetimeDays = 825): Promise<{ cert: string; key: string }> {
  if (!CERT_NAME.test(cn)) throw new InvalidArgumentError(`certificate name ${quoted(cn)} is not valid: 1-${MAX_CERT_NAME_LENGTH} letters, digits, '.', '_', '-' or spaces`);
  const signingKey = await importPkcs8(caKeyPem);
  const caCert = new x509.X509Certificate(caPem);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${cn}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + lifetimeDays * DAY),
    signingKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions,
  });
  return { cert: cert.toString('pem') + '\n', key: await pkcs8Pem(keys.privateKey) };
}
