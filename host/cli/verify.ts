/**
 * `wasmvisor verify <module.wasm> --key <public key> [--key …] [--signature <file>] [--allow-partial]`
 *
 * Exit 0 when at least one of the keys signed every part of the module (or some parts, with
 * --allow-partial), naming each valid signer; otherwise ERR_INTEGRITY (exit 125) with the one-line
 * reason a policy trusting these keys would give.
 */
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import { readModuleSource } from '../loader/read.ts';
import { MAX_KEY_FILE_BYTES, encodePublicKey, parsePublicKey, readKeyFile } from '../security/keys.ts';
import { Policy } from '../security/policy.ts';
import { toHex } from '../security/wire.ts';
import { readSignatureSource } from '../security/spec.ts';
import { flag, list, parseOrHelp, text, value, type CommandSpec, type OptionTable } from './options.ts';

export const verifyCommand = {
  name: 'verify',
  summary: "check a module's signatures against public keys",
  usage: ['wasmvisor verify <guest.wasm> --key <public.pub> [--key ...] [--signature <sig-file>] [--allow-partial]'],
  options: {
    key: list('<file>', `a public key to trust (repeatable; the format, OpenSSH or PEM), a file or a pipe of at most ${MAX_KEY_FILE_BYTES} bytes; at least one`, text),
    signature: value('<file>', 'a detached signature for the module', text),
    'allow-partial': flag('accept a signature that covers only some parts of the module'),
  },
  positionals: { names: ['guest.wasm'], min: 1 },
  notes: `Exit status: 0 when one of the keys signed every part of the module (naming each valid signer);
otherwise 125 with ERR_INTEGRITY and the reason a policy trusting these keys would give.`,
} satisfies CommandSpec<OptionTable>;

export async function verify(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(verifyCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const keys = values.key ?? [];
  if (keys.length === 0) throw new InvalidArgumentError('verify needs at least one --key <public key file>; see wasmvisor verify --help');
  // The keys as a policy of one publisher each (named after the file): the same admission code.
  // Each key is read here, as a file or a pipe (`--key <(curl …)`), and handed to the policy as its bytes.
  const publishers: Record<string, { keys: { publicKey: string }[] }> = {};
  for (const [i, k] of keys.entries()) {
    const key = parsePublicKey(await readKeyFile(k, { pipes: true }), `key file ${k}`);
    const base = path.basename(k).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]/, 'k') || 'key';
    publishers[publishers[base] ? `${base}-${i}` : base] = { keys: [{ publicKey: toHex(encodePublicKey(key)) }] };
  }
  const policy = Policy.fromDocument({ publishers, allowPartialSignatures: values['allow-partial'] === true }, { source: '(command line keys)' });
  const bytes = await readModuleSource(positionals[0]!);
  const detached = values.signature === undefined ? null : await readSignatureSource(values.signature);
  const admission = policy.admit(bytes, { detachedSignature: detached });
  for (const s of admission.signers) {
    process.stdout.write(`valid signature by ${s.publisher} (key id ${s.keyId}${s.full ? '' : ', partial: some sections are unsigned'})\n`);
  }
  process.stdout.write(`sha256: ${admission.measurement}\n`);
  return 0;
}
