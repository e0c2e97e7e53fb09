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
import { Policy } from '../security/policy.ts';
import { readSignatureSource } from '../security/spec.ts';
import { parse } from './options.ts';

export const VERIFY_USAGE = `  wasmvisor verify <guest.wasm> --key <public.pub> [--key …] [--signature <sig-file>] [--allow-partial]`;

export async function verify(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    key: { type: 'string', multiple: true },
    signature: { type: 'string' },
    'allow-partial': { type: 'boolean' },
  });
  if (positionals.length !== 1) throw new InvalidArgumentError(`verify takes one module, got ${positionals.length}`);
  const keys = values.key ?? [];
  if (keys.length === 0) throw new InvalidArgumentError('verify needs at least one --key <public key file>');
  // The keys as a policy of one publisher each (named after the file): the same admission code.
  const publishers: Record<string, { keys: { file: string }[] }> = {};
  keys.forEach((k, i) => {
    const base = path.basename(k).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]/, 'k') || 'key';
    publishers[publishers[base] ? `${base}-${i}` : base] = { keys: [{ file: path.resolve(k) }] };
  });
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
