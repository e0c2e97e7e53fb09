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
import { MAX_KEY_FILE_BYTES, parseSecretKey, readKeyFile } from '../security/keys.ts';
import { signModule } from '../security/signature.ts';
import { readSignatureSource } from '../security/spec.ts';
import { DEFAULT_MAX_MODULE_BYTES, readModuleSource } from '../loader/read.ts';
import { namesDescriptor } from '../files.ts';
import { fromHex, toHex } from '../security/wire.ts';
import { badValue, flag, needsOption, parseOrHelp, filePath, value, type CommandSpec, type OptionTable } from './options.ts';

/** `--key-id <hex>|none`: 1 to 256 bytes of hex, or null for a signature without a key id. */
function keyIdOption(raw: string, name: string): Uint8Array | null {
  if (raw === 'none') return null;
  const id = fromHex(raw);
  if (id === null || id.length === 0 || id.length > 256) throw badValue(name, '1 to 256 bytes of hex, or none', raw);
  return id;
}

export const signCommand = {
  name: 'sign',
  summary: 'sign a module (WebAssembly tool-conventions signature format: embedded or detached)',
  usage: ['wasmvisor sign <guest.wasm> --key <secret.key> [--out <file> | --detached <sig-file>] [--key-id <hex>|none] [--delimit]'],
  options: {
    key: value('<file>', `the secret key to sign with (from wasmvisor keygen or wasmsign2), a file or a pipe (/dev/stdin, <(cmd)) of at most ${MAX_KEY_FILE_BYTES} bytes; required`, filePath),
    out: value('<file>', 'where the signed module goes', filePath, { default: '<guest>.signed.wasm' }),
    detached: value('<file>', 'leave the module as it is and write the signature to this file (added to the signatures already in it)', filePath),
    'key-id': value('<hex>|none', "the key id the signature names (none: no key id)", keyIdOption, { default: "wasmsign2's id derived from the key" }),
    delimit: flag('append a signature_delimiter section, so sections added later leave this signature valid for what it covered (embedded signatures only: refused with --detached)'),
  },
  positionals: { names: ['guest.wasm'], min: 1 },
  notes: `Embedded: the signature becomes the module's first section (a module already signed keeps its
signatures and gains this one). Verify with wasmvisor verify, or admit with run --policy.`,
} satisfies CommandSpec<OptionTable>;

export async function sign(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(signCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  if (values.key === undefined) throw needsOption('sign', '--key <secret key file>', 'sign');
  if (values.detached !== undefined && values.out !== undefined) throw new InvalidArgumentError('--detached leaves the module as it is: give --out or --detached, not both');
  // --delimit adds signature_delimiter sections to the module, which --detached leaves as it is: it was ignored.
  if (values.detached !== undefined && values.delimit === true) throw new InvalidArgumentError('--delimit goes with an embedded signature (it adds signature_delimiter sections to the module, which --detached leaves as it is): give --delimit or --detached, not both');
  const file = positionals[0]!;
  // A module through a pipe (`sign /dev/stdin`, `<(…)`) has no name to put .signed.wasm after.
  if (namesDescriptor(file) && values.out === undefined && values.detached === undefined) {
    throw new InvalidArgumentError(`sign ${file}: a module read through a pipe needs --out <file> or --detached <file>`);
  }
  const key = parseSecretKey(await readKeyFile(values.key, { pipes: true }), values.key);
  const keyId = values['key-id'];
  const bytes = await readModuleSource(file, DEFAULT_MAX_MODULE_BYTES, { pipes: true });
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
