/**
 * Schema of `wasi` in a partition spec: WASI preview1 on host folders and in-memory trees.
 * Copying or opening the host folders, and the rules that join fields (a mode needs a hostPath,
 * preopens against maxFds, copies against the quotas), are wasi/config.ts's.
 */
import { Type, type Static } from '@sinclair/typebox';
import { CLOSED } from './kinds.ts';

const NO_NUL = '^[^\\u0000]*$';

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
    args: Type.Optional(Type.Array(Type.String(), { description: 'argv, argv[0] included. Default: [partition name, ...spec.args].' })),
    env: Type.Optional(
      Type.Union(
        [
          Type.Record(Type.String(), Type.String({ pattern: NO_NUL, title: 'a string without NUL characters' })),
          Type.Array(Type.String({ pattern: '^[^=\\u0000]+=[^\\u0000]*$', title: 'KEY=VALUE (no NUL characters)' })),
        ],
        { description: 'Environment, as an object or KEY=VALUE strings. Default empty.' },
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
