/**
 * Schema of `wasi` in a partition spec: WASI preview1 on a virtual file system. Seeding the
 * preopens from host folders, and the rules that join fields (preopens against maxFds, seeds
 * against the quotas), are wasi/config.ts's.
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
        description: 'A host folder whose contents are copied into the virtual directory when the partition is created. Never written.',
      }),
    ),
    readonly: Type.Optional(Type.Boolean({ description: 'The guest may not change anything under this preopen (EROFS). Default false.' })),
  },
  { ...CLOSED, description: 'A preopen: a virtual directory the guest sees at guestPath, optionally seeded from a host folder.' },
);
export type PreopenSpec = Static<typeof PreopenSchema>;

export const WasiQuotasSchema = Type.Object(
  {
    maxBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 30, description: 'Bytes of file contents and symlink targets across all preopens. Default 16 MiB.' })),
    maxInodes: Type.Optional(Type.Integer({ minimum: 1, maximum: 1 << 20, description: 'Files, directories and symlinks across all preopens. Default 4096.' })),
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
        description: "fd 0: 'console' (the console device's line input; default), 'none' (end of file at once), or fixed bytes (any other string is its UTF-8 bytes).",
      }),
    ),
    quotas: Type.Optional(WasiQuotasSchema),
  },
  {
    ...CLOSED,
    description:
      'Enables WASI preview1 (imports from wasi_snapshot_preview1, refused with ERR_IMPORT_DENIED otherwise), implemented in the partition over its devices and a virtual file system.',
  },
);
/** `wasi` in a partition spec: enables WASI preview1 (`wasi_snapshot_preview1` imports). */
export type WasiSpec = Static<typeof WasiSchema>;
