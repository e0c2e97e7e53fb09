/**
 * Schema of `wasi` in a partition spec: WASI preview1 on host folders and in-memory trees.
 * Copying or opening the host folders, and the rules that join fields (a mode needs a hostPath,
 * preopens against maxFds, copies against the quotas), are wasi/config.ts's.
 */
import { Type, type Static } from '@sinclair/typebox';
import { InvalidArgumentError } from '../errors.ts';
import { MAX_WASI_BLOCK_BYTES, MAX_WASI_STRINGS } from '../limits/sizes.ts';
import { CLOSED } from './kinds.ts';

/** A string without NUL: argv and environ strings are NUL-terminated, paths are C strings. */
export const NO_NUL = '^[^\\u0000]*$';

/** Longest string of argv or environ in UTF-16 units: a string takes at least one byte per unit, and its NUL. */
const STRING_UNITS = MAX_WASI_BLOCK_BYTES - 1;

export const PreopenSchema = Type.Object(
  {
    guestPath: Type.String({ minLength: 1, pattern: NO_NUL, title: 'a non-empty path without NUL characters', description: 'Where the guest sees it, e.g. /sandbox or `.`.' }),
    hostPath: Type.Optional(
      Type.String({
        minLength: 1,
        pattern: NO_NUL,
        title: 'a non-empty path without NUL characters',
        description: 'A host folder to give the guest, as `mode` says. Without it: an empty in-memory directory.',
      }),
    ),
    mode: Type.Optional(
      Type.Union([Type.Literal('ro'), Type.Literal('rw'), Type.Literal('copy')], {
        description:
          "How the host folder is given (only with hostPath): 'ro' (default) the folder itself, read lazily, nothing can change (EROFS); 'rw' the folder itself, written in place and never outside it; 'copy' a private in-memory copy made at createPartition (the folder is never written).",
      }),
    ),
    readonly: Type.Optional(Type.Boolean({ description: "For an in-memory directory (no hostPath, or mode 'copy'): the guest may not change it (EROFS). Default false." })),
  },
  { ...CLOSED, description: 'A preopen: a directory the guest sees at guestPath: a host folder (in place or copied) or an empty in-memory directory.' },
);
export type PreopenSpec = Static<typeof PreopenSchema>;
export type PreopenMode = NonNullable<PreopenSpec['mode']>;

export const WasiQuotasSchema = Type.Object(
  {
    maxBytes: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 2 ** 40,
        description:
          "Bytes the guest may hold or add: file contents, symlink targets and names, in in-memory preopens (a 'copy' included) and what it adds to 'rw' folders (net). Default 16 MiB.",
      }),
    ),
    maxInodes: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1 << 20, description: 'Entries the guest may hold or add: every name (file, directory, symlink, hard link), preopen roots included. Default 4096.' }),
    ),
    maxFds: Type.Optional(Type.Integer({ minimum: 3, maximum: 1 << 16, description: 'Open fds at once, stdio and preopens included. Default 128.' })),
    maxPathBytes: Type.Optional(Type.Integer({ minimum: 16, maximum: 1 << 16, description: 'Longest path a call may pass, bytes. Default 4096.' })),
  },
  { ...CLOSED, description: 'Per-partition file-system limits.' },
);
export type WasiQuotas = Static<typeof WasiQuotasSchema>;

export const WasiSchema = Type.Object(
  {
    args: Type.Optional(
      // NUL-terminated for the guest: an argument with a NUL in it would reach it cut there.
      Type.Array(Type.String({ maxLength: STRING_UNITS, pattern: NO_NUL, title: 'a string without NUL characters' }), {
        maxItems: MAX_WASI_STRINGS,
        description: `argv, argv[0] included: strings without NUL, at most ${MAX_WASI_STRINGS} of them, ${MAX_WASI_BLOCK_BYTES} bytes together (each string's UTF-8 bytes and its NUL). Default: [partition name, ...spec.args].`,
      }),
    ),
    env: Type.Optional(
      Type.Union(
        [
          Type.Record(Type.String({ maxLength: STRING_UNITS }), Type.String({ pattern: NO_NUL, maxLength: STRING_UNITS, title: 'a string without NUL characters' }), {
            maxProperties: MAX_WASI_STRINGS,
          }),
          Type.Array(Type.String({ pattern: '^[^=\\u0000]+=[^\\u0000]*$', maxLength: STRING_UNITS, title: 'KEY=VALUE (no NUL characters)' }), { maxItems: MAX_WASI_STRINGS }),
        ],
        {
          description: `Environment, as an object or KEY=VALUE strings: at most ${MAX_WASI_STRINGS} variables, ${MAX_WASI_BLOCK_BYTES} bytes together (each KEY=VALUE's UTF-8 bytes and its NUL). Default empty.`,
        },
      ),
    ),
    preopens: Type.Optional(Type.Array(PreopenSchema)),
    stdin: Type.Optional(
      Type.Union([Type.String(), Type.Uint8Array()], {
        description: "fd 0: 'console' (the console device's input stream, byte for byte; default), 'none' (end of file at once), or fixed bytes (any other string is its UTF-8 bytes).",
      }),
    ),
    quotas: Type.Optional(WasiQuotasSchema),
  },
  {
    ...CLOSED,
    description:
      'Enables WASI preview1 (imports from wasi_snapshot_preview1, refused with ERR_IMPORT_DENIED otherwise), implemented in the partition over its devices, host folders and in-memory trees.',
  },
);
/** `wasi` in a partition spec: enables WASI preview1 (`wasi_snapshot_preview1` imports). */
export type WasiSpec = Static<typeof WasiSchema>;

/** The bytes `strings` take as the guest receives them (args_sizes_get, environ_sizes_get): each string's UTF-8 bytes and its NUL. */
export function wasiBlockBytes(strings: readonly string[]): number {
  let n = 0;
  for (const s of strings) n += Buffer.byteLength(s, 'utf8') + 1;
  return n;
}

/**
 * Holds argv and environ to MAX_WASI_STRINGS strings and MAX_WASI_BLOCK_BYTES bytes each, the
 * bound the schema cannot state (a total): ERR_INVALID_ARGUMENT naming the field, its size and
 * the limit. `env` as given (an object or KEY=VALUE strings). Checked where a spec is accepted
 * (hv.createPartition's resolveWasi, the management API's create) before anything is copied.
 */
export function checkWasiBlocks(wasi: Pick<WasiSpec, 'args' | 'env'>, where = 'wasi'): void {
  const env = wasi.env === undefined ? [] : Array.isArray(wasi.env) ? wasi.env : Object.entries(wasi.env).map(([k, v]) => `${k}=${v}`);
  for (const [field, strings] of [['args', wasi.args ?? []], ['env', env]] as const) {
    if (strings.length > MAX_WASI_STRINGS) throw new InvalidArgumentError(`${where}.${field}: ${strings.length} strings, over the limit of ${MAX_WASI_STRINGS}`);
    const bytes = wasiBlockBytes(strings);
    if (bytes > MAX_WASI_BLOCK_BYTES) {
      throw new InvalidArgumentError(`${where}.${field}: takes ${bytes} bytes together (each string's UTF-8 bytes and its NUL), over the limit of ${MAX_WASI_BLOCK_BYTES}`);
    }
  }
}
