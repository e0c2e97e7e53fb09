/**
 * `wasmvisor keygen <name>`: a new Ed25519 key pair in the WebAssembly signature format's
 * serialization: `<name>.key` (65 bytes, mode 0600) and `<name>.pub` (33 bytes). Or name the files:
 * `--secret-key <file> --public-key <file>` (wasmsign2's flags). Never overwrites a file.
 */
import { InvalidArgumentError } from '../errors.ts';
import { quoted } from '../escape.ts';
import { generateKeyPair, keyIdHex, writeKeyPair } from '../security/keys.ts';
import { toHex } from '../security/wire.ts';
import { checkPositionals, filePath, needsOption, parseOrHelp, value, type CommandSpec, type OptionTable } from './options.ts';

export const keygenCommand = {
  name: 'keygen',
  summary: 'make an Ed25519 key pair for signing modules (<name>.key, 0600, and <name>.pub)',
  usage: ['wasmvisor keygen <name>', 'wasmvisor keygen --secret-key <file> --public-key <file>'],
  options: {
    'secret-key': value('<file>', 'where the secret key goes (65 bytes, mode 0600), instead of <name>.key', filePath),
    'public-key': value('<file>', 'where the public key goes (33 bytes), instead of <name>.pub', filePath),
  },
  positionals: { names: ['name'], min: 0 },
  notes: `Keys are in the WebAssembly tool-conventions signature format's serialization (what wasmsign2
reads and writes). An existing file is never overwritten (ERR_INVALID_ARGUMENT).`,
} satisfies CommandSpec<OptionTable>;

export async function keygen(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(keygenCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const named = values['secret-key'] !== undefined || values['public-key'] !== undefined;
  // Worded as every usage mistake (options.ts), after the two usage lines: <name>, or both files.
  if (!named) {
    if (positionals.length === 0) throw needsOption('keygen', '<name> or --secret-key <file> and --public-key <file>', 'keygen');
  } else {
    if (values['public-key'] === undefined) throw needsOption('keygen --secret-key <file>', '--public-key <file>', 'keygen');
    if (values['secret-key'] === undefined) throw needsOption('keygen --public-key <file>', '--secret-key <file>', 'keygen');
    checkPositionals('keygen --secret-key <file> --public-key <file>', positionals, [], 0, 'keygen');
  }
  // A name is the files' stem: a folder's ('keys/') would write the hidden keys/.key and keys/.pub
  // ('' is refused by the parser, as every empty argument).
  if (!named && /[\\/]$/.test(positionals[0]!)) {
    throw new InvalidArgumentError(`keygen: the name ${quoted(positionals[0]!)} names no file (it is the stem of <name>.key and <name>.pub); see wasmvisor keygen --help`);
  }
  const secretFile = values['secret-key'] ?? `${positionals[0]}.key`;
  const publicFile = values['public-key'] ?? `${positionals[0]}.pub`;
  const key = generateKeyPair();
  await writeKeyPair(key, secretFile, publicFile);
  process.stdout.write(`secret key: ${secretFile} (mode 0600; keep it private)\npublic key: ${publicFile}\nkey id:     ${keyIdHex(key.publicKey)}\npublic:     01${toHex(key.publicKey.raw)}\n`);
  return 0;
}
