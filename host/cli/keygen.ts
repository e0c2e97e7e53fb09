/**
 * `wasmvisor keygen <name>`: a new Ed25519 key pair in the WebAssembly signature format's
 * serialization: `<name>.key` (65 bytes, mode 0600) and `<name>.pub` (33 bytes). Or name the files:
 * `--secret-key <file> --public-key <file>` (wasmsign2's flags). Never overwrites a file.
 */
import { InvalidArgumentError } from '../errors.ts';
import { generateKeyPair, keyIdHex, writeKeyPair } from '../security/keys.ts';
import { toHex } from '../security/wire.ts';
import { parse } from './options.ts';

export const KEYGEN_USAGE = `  wasmvisor keygen <name> | --secret-key <file> --public-key <file>`;

export async function keygen(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { 'secret-key': { type: 'string' }, 'public-key': { type: 'string' } });
  const named = values['secret-key'] !== undefined || values['public-key'] !== undefined;
  if (named ? positionals.length !== 0 || values['secret-key'] === undefined || values['public-key'] === undefined : positionals.length !== 1) {
    throw new InvalidArgumentError('keygen takes a name (writing <name>.key and <name>.pub), or both --secret-key and --public-key');
  }
  const secretFile = values['secret-key'] ?? `${positionals[0]}.key`;
  const publicFile = values['public-key'] ?? `${positionals[0]}.pub`;
  const key = generateKeyPair();
  await writeKeyPair(key, secretFile, publicFile);
  process.stdout.write(`secret key: ${secretFile} (mode 0600; keep it private)\npublic key: ${publicFile}\nkey id:     ${keyIdHex(key.publicKey)}\npublic:     01${toHex(key.publicKey.raw)}\n`);
  return 0;
}
