/**
 * `wasmvisor sign <module.wasm> --key <secret key> [--out <file>] [--detached <file>] [--key-id <hex>|none] [--delimit]`
 *
 * Embedded (default): writes the module with the signature as its first section to --out (default
 * `<module>.signed.wasm`); a module that is already signed keeps its signatures and gains this one.
 * `--detached <file>`: the module is not changed; the signature data goes to the file, and when the
 * file already holds signature data the new signature is added to it. `--delimit` appends a
 * `signature_delimiter` so sections added later leave this signature valid for what it covered.
 */
import { writeFile, stat } from 'node:fs/promises';
import { InvalidArgumentError, StorageError } from '../errors.ts';
import { parseSecretKey, readKeyFile } from '../security/keys.ts';
import { signModule } from '../security/signature.ts';
import { readSignatureSource } from '../security/spec.ts';
import { readModuleSource } from '../loader/read.ts';
import { fromHex, toHex } from '../security/wire.ts';
import { parse } from './options.ts';

export const SIGN_USAGE = `  wasmvisor sign <guest.wasm> --key <secret.key> [--out <file>] [--detached <sig-file>] [--key-id <hex>|none] [--delimit]`;

export async function sign(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    key: { type: 'string' },
    out: { type: 'string' },
    detached: { type: 'string' },
    'key-id': { type: 'string' },
    delimit: { type: 'boolean' },
  });
  if (positionals.length !== 1) throw new InvalidArgumentError(`sign takes one module, got ${positionals.length}`);
  if (values.key === undefined) throw new InvalidArgumentError('sign needs --key <secret key file>');
  if (values.detached !== undefined && values.out !== undefined) throw new InvalidArgumentError('--detached leaves the module as it is: give --out or --detached, not both');
  const file = positionals[0]!;
  const key = parseSecretKey(await readKeyFile(values.key), values.key);
  let keyId: Uint8Array | null | undefined;
  if (values['key-id'] === 'none') keyId = null;
  else if (values['key-id'] !== undefined) {
    keyId = fromHex(values['key-id']);
    if (keyId === null || keyId.length === 0 || keyId.length > 256) throw new InvalidArgumentError(`--key-id must be 1 to 256 bytes of hex, or none; got ${JSON.stringify(values['key-id'])}`);
  }
  const bytes = await readModuleSource(file);
  if (values.detached !== undefined) {
    const exists = await stat(values.detached).then((s) => s.isFile(), () => false);
    const previous = exists ? await readSignatureSource(values.detached) : null;
    const { signature } = signModule(bytes, key, { detached: true, previous, ...(keyId !== undefined ? { keyId } : {}) });
    await write(values.detached, signature);
    process.stdout.write(`${exists ? 'added a signature to' : 'wrote'} ${values.detached} (${signature.length} bytes, detached; ${file} unchanged)\n`);
  } else {
    const out = values.out ?? `${file.replace(/\.wasm$/, '')}.signed.wasm`;
    const { module } = signModule(bytes, key, { delimit: values.delimit === true, ...(keyId !== undefined ? { keyId } : {}) });
    await write(out, module);
    process.stdout.write(`wrote ${out} (${module.length} bytes, signature embedded)\n`);
  }
  process.stdout.write(`key id: ${keyId === null ? '(none)' : toHex(keyId ?? key.publicKey.keyId)}\n`);
  return 0;
}

async function write(file: string, bytes: Uint8Array): Promise<void> {
  try {
    await writeFile(file, bytes);
  } catch (error) {
    throw new StorageError(`cannot write ${file}: ${(error as Error).message}`, { cause: error });
  }
}

