/**
 * `wasmvisor verify <module.wasm> --key <public key> [--key …] [--signature <file>] [--allow-partial]`
 *
 * Exit 0 when at least one of the keys signed every part of the module (or some parts, with
 * --allow-partial), naming each valid signer; otherwise ERR_INTEGRITY (exit 125) with the one-line
 * reason a policy trusting these keys would give.
 */
import path from 'node:path';
import { namesDescriptor } from '../files.ts';
import { DEFAULT_MAX_MODULE_BYTES, readModuleSource } from '../loader/read.ts';
import { MAX_KEY_FILE_BYTES, encodePublicKey, keyIdHex, parsePublicKey, publicKeyComment, readKeyFile, type PublicKey } from '../security/keys.ts';
import { Policy } from '../security/policy.ts';
import { toHex } from '../security/wire.ts';
import { readSignatureSource } from '../security/spec.ts';
import { flag, list, needsOption, parseOrHelp, filePath, value, type CommandSpec, type OptionTable } from './options.ts';

export const verifyCommand = {
  name: 'verify',
  summary: "check a module's signatures against public keys",
  usage: ['wasmvisor verify <guest.wasm> --key <public.pub> [--key ...] [--signature <sig-file>] [--allow-partial]'],
  options: {
    key: list('<file>', `a public key to trust (repeatable; the format, OpenSSH or PEM), a file or a pipe of at most ${MAX_KEY_FILE_BYTES} bytes; at least one`, filePath),
    signature: value('<file>', 'a detached signature for the module, a file or a pipe', filePath),
    'allow-partial': flag('accept a signature that covers only some parts of the module'),
  },
  positionals: { names: ['guest.wasm'], min: 1 },
  notes: `A key's publisher is named after its file (acme.pub: acme), or, through /dev/stdin or <(cmd),
after the key: its OpenSSH comment, else key- and the first 8 hex digits of its key id.
Exit status: 0 when one of the keys signed every part of the module (naming each valid signer);
otherwise 125 with ERR_INTEGRITY and the reason a policy trusting these keys would give.`,
} satisfies CommandSpec<OptionTable>;

/**
 * What a key's publisher is called in verify's lines and errors: a key file's base name without
 * its extension (`acme.pub`: acme); a key read through a descriptor path is named after the key:
 * its OpenSSH line's comment (`ssh-ed25519 AAAA… alice@laptop`: alice_laptop), else `key-` and the
 * first 8 hex digits of its key id.
 */
function publisherLabel(file: string, bytes: Uint8Array, key: PublicKey): string {
  if (!namesDescriptor(file)) return path.basename(file).replace(/\.[^.]*$/, '');
  return publicKeyComment(bytes) ?? `key-${keyIdHex(key).slice(0, 8)}`;
}

/** `label` as a publisher name a policy takes: letters, digits, `.`, `_`, `-` (others `_`), a letter or digit first, at most 56 characters (room for `-<n>`). */
function publisherName(label: string): string {
  return label.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]/, 'k').slice(0, 56) || 'key';
}

export async function verify(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(verifyCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const keys = values.key ?? [];
  // Worded as every missing option (options.ts needsOption); the help says a key may be given again.
  if (keys.length === 0) throw needsOption('verify', '--key <public key file>', 'verify');
  // The keys as a policy of one publisher each (named as publisherLabel says): the same admission code.
  // Each key is read here, as a file or a pipe (`--key <(curl …)`), and handed to the policy as its bytes.
  const publishers: Record<string, { keys: { publicKey: string }[] }> = {};
  for (const [i, k] of keys.entries()) {
    const bytes = await readKeyFile(k, { pipes: true });
    const key = parsePublicKey(bytes, `key file ${k}`);
    const base = publisherName(publisherLabel(k, bytes, key));
    publishers[publishers[base] ? `${base}-${i}` : base] = { keys: [{ publicKey: toHex(encodePublicKey(key)) }] };
  }
  const policy = Policy.fromDocument({ publishers, allowPartialSignatures: values['allow-partial'] === true }, { source: '(command line keys)' });
  // The module and the signature are read once each, so either may be a pipe (`verify <(curl …)`).
  const bytes = await readModuleSource(positionals[0]!, DEFAULT_MAX_MODULE_BYTES, { pipes: true });
  const detached = values.signature === undefined ? null : await readSignatureSource(values.signature, { pipes: true });
  const admission = policy.admit(bytes, { detachedSignature: detached });
  for (const s of admission.signers) {
    process.stdout.write(`valid signature by ${s.publisher} (key id ${s.keyId}${s.full ? '' : ', partial: some sections are unsigned'})\n`);
  }
  process.stdout.write(`sha256: ${admission.measurement}\n`);
  return 0;
}
