/**
 * TypeBox schemas of the management API: request bodies, parameters, query strings and the
 * files the daemon keeps in its config directory. They validate requests (through the shared
 * checker in host/schema/check.ts, so a wrong field is named the same way everywhere) and are
 * the same objects the OpenAPI document is generated from (openapi.ts).
 *
 * The partition spec here is the library's `PartitionSpec` *as a remote caller may send it*:
 * JSON only (the module travels as base64 next to the spec), and without the two fields that
 * name host paths — `devices.block.path` and `wasi.preopens[].hostPath` — because those are the
 * embedder's privilege: a remote principal must not copy arbitrary host folders into a guest or
 * put a disk image anywhere on the host. The deep limits (ranges of every device setting) are
 * checked by the Hypervisor itself, whose messages name the field too. When the `usage` work
 * lands a TypeBox schema of PartitionSpec in host/schema/, `ApiPartitionSpec` becomes that
 * schema with those two fields omitted.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { PERMISSIONS, SCOPE_PATTERN } from './rbac.ts';

export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const Name = Type.String({ pattern: NAME_PATTERN, description: 'expects: a name of 1-64 letters, digits, ".", "_" or "-" (not starting with "." or "-")' });
const Int = (o: { minimum?: number; maximum?: number } = {}) => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, ...o });
const Num = () => Type.Number({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Str = (max = 4096) => Type.String({ maxLength: max });
const obj = <T extends Record<string, TSchema>>(props: T, description?: string) =>
  Type.Object(props, { additionalProperties: false, ...(description ? { description } : {}) });

const RateLimit = obj({
  bytesPerSecond: Type.Optional(Num()),
  burstBytes: Type.Optional(Num()),
  opsPerSecond: Type.Optional(Num()),
  burstOps: Type.Optional(Num()),
  oneTimeBurstBytes: Type.Optional(Num()),
  oneTimeBurstOps: Type.Optional(Num()),
  mode: Type.Optional(Type.Union([Type.Literal('reject'), Type.Literal('block')])),
});

const Limits = obj({
  memoryPages: Type.Optional(Int({ minimum: 1, maximum: 65536 })),
  tableElements: Type.Optional(Int({ maximum: 10_000_000 })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31, description: 'Wall-clock budget, ms; 0 for none (a long-running service).' })),
  fuel: Type.Optional(Int({ minimum: 1 })),
  cpu: Type.Optional(obj({ maxPercent: Int({ minimum: 1, maximum: 100 }), periodMs: Type.Optional(Int({ minimum: 1, maximum: 10_000 })) })),
  hypercallRate: Type.Optional(RateLimit),
  maxInputBytes: Type.Optional(Int({ maximum: 1 << 26 })),
  maxOutputBytes: Type.Optional(Int({ maximum: 1 << 26 })),
  maxQueuedCalls: Type.Optional(Int({ maximum: 1_000_000 })),
  callTimeoutMs: Type.Optional(Int({ minimum: 1, maximum: 2 ** 31 })),
});

const Devices = obj({
  console: Type.Optional(
    Type.Union([
      Type.Boolean(),
      obj({
        maxLineBytes: Type.Optional(Int()),
        linesPerSecond: Type.Optional(Num()),
        burstLines: Type.Optional(Num()),
        inputBufferBytes: Type.Optional(Int()),
        rateLimit: Type.Optional(RateLimit),
      }),
    ]),
  ),
  clock: Type.Optional(
    Type.Union([
      Type.Boolean(),
      obj({
        resolutionMs: Type.Optional(Num()),
        deterministic: Type.Optional(Type.Union([Type.Boolean(), obj({ startMs: Type.Optional(Num()), stepMs: Type.Optional(Num()) })])),
      }),
    ]),
  ),
  entropy: Type.Optional(Type.Union([Type.Boolean(), obj({ seed: Type.Optional(Type.Union([Str(256), Type.Number()])) })])),
  block: Type.Optional(
    Type.Union([
      Type.Literal(false),
      obj(
        {
          sizeMiB: Int({ minimum: 1, maximum: 4096 }),
          bytesPerSecond: Type.Optional(Num()),
          burstBytes: Type.Optional(Num()),
          opsPerSecond: Type.Optional(Num()),
          burstOps: Type.Optional(Num()),
          rateLimitMode: Type.Optional(Type.Union([Type.Literal('block'), Type.Literal('reject')])),
        },
        'A persistent encrypted disk kept under the partition name in the host data directory (no `path`: host paths are the embedder\'s).',
      ),
    ]),
  ),
  net: Type.Optional(
    Type.Union([
      Type.Literal(false),
      obj({
        segment: Name,
        mtu: Type.Optional(Int()),
        rxQueueBytes: Type.Optional(Int()),
        sendBytesPerSecond: Type.Optional(Num()),
        sendFramesPerSecond: Type.Optional(Num()),
        recvBytesPerSecond: Type.Optional(Num()),
        recvFramesPerSecond: Type.Optional(Num()),
        host: Type.Optional(Type.Boolean()),
      }),
    ]),
  ),
});

const Wasi = obj({
  args: Type.Optional(Type.Array(Str(), { maxItems: 1024 })),
  env: Type.Optional(Type.Union([Type.Record(Type.String({ maxLength: 256 }), Str()), Type.Array(Str(), { maxItems: 1024 })])),
  preopens: Type.Optional(
    Type.Array(obj({ guestPath: Str(1024), readonly: Type.Optional(Type.Boolean()) }, 'An empty virtual directory (no `hostPath`: host folders are the embedder\'s).'), { maxItems: 64 }),
  ),
  stdin: Type.Optional(Str(65536)),
  quotas: Type.Optional(
    obj({ maxBytes: Type.Optional(Int()), maxInodes: Type.Optional(Int()), maxFds: Type.Optional(Int()), maxPathBytes: Type.Optional(Int()) }),
  ),
});

export const ReactorRestart = Type.Union([
  Type.Literal('never'),
  Type.Literal('on-failure'),
  obj({
    mode: Type.Optional(Type.Union([Type.Literal('never'), Type.Literal('on-failure')])),
    maxRestarts: Type.Optional(Int({ maximum: 1_000_000 })),
    backoffMs: Type.Optional(Int({ maximum: 3_600_000 })),
    maxBackoffMs: Type.Optional(Int({ maximum: 3_600_000 })),
  }),
]);

/** The partition spec a remote caller sends (see the file comment for what is left out and why). */
export const ApiPartitionSpec = obj({
  name: Name,
  sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$' })),
  args: Type.Optional(Type.Array(Str(), { maxItems: 1024 })),
  limits: Type.Optional(Limits),
  devices: Type.Optional(Devices),
  kind: Type.Optional(Type.Union([Type.Literal('command'), Type.Literal('reactor')])),
  restart: Type.Optional(ReactorRestart),
  wasi: Type.Optional(Wasi),
});
export type ApiPartitionSpec = Static<typeof ApiPartitionSpec>;

/** What the host does when a partition's run ends, and when the host itself comes back. */
export const RestartPolicy = Type.Union([Type.Literal('never'), Type.Literal('on-failure'), Type.Literal('always')], {
  description: 'never: run only when started; on-failure: start again after a failure (also after the host died under it); always: keep it running unless an operator stopped it.',
});
export type HostRestartPolicy = Static<typeof RestartPolicy>;

/** Largest module accepted through the API (the loader's default cap), and its base64 length. */
export const MAX_MODULE_BYTES = 16 << 20;
export const MAX_MODULE_BASE64 = Math.ceil(MAX_MODULE_BYTES / 3) * 4;

export const CreatePartitionBody = obj({
  spec: ApiPartitionSpec,
  /** The module's bytes, base64. */
  module: Type.String({ maxLength: MAX_MODULE_BASE64, pattern: '^[A-Za-z0-9+/]*={0,2}$', description: 'expects: the module bytes in base64 (at most 16 MiB decoded)' }),
  restartPolicy: Type.Optional(RestartPolicy),
  start: Type.Optional(Type.Boolean({ description: 'Start it at once (default false).' })),
});
export type CreatePartitionBody = Static<typeof CreatePartitionBody>;

/** A declared partition as the config directory keeps it: `partitions/<name>.json`. */
export const DeclaredPartition = obj({
  version: Type.Literal(1),
  spec: ApiPartitionSpec,
  moduleSha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  restartPolicy: RestartPolicy,
  /** What the operator asked for last: `running` (created with start, or started) or `stopped`. */
  desired: Type.Union([Type.Literal('running'), Type.Literal('stopped')]),
  /** How the last run ended, as known when it ended: `running` if the host went down under it. */
  lastRun: Type.Union([
    Type.Literal('none'),
    Type.Literal('running'),
    Type.Literal('succeeded'),
    Type.Literal('failed'),
    Type.Literal('stopped'),
    Type.Literal('host-shutdown'),
  ]),
  createdAt: Type.String({ maxLength: 40 }),
  createdBy: Type.String({ maxLength: 200 }),
});
export type DeclaredPartition = Static<typeof DeclaredPartition>;

export const NameParams = obj({ name: Name });
export const TokenParams = obj({ id: Type.String({ pattern: '^[0-9a-f]{16}$' }) });

export const CallBody = obj({
  export: Type.String({ pattern: '^[A-Za-z0-9_$.-]{1,128}$' }),
  input: Type.Optional(Type.String({ maxLength: 1 << 22 })),
  encoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('base64')], { description: 'How `input` and `output` are encoded (default utf8).' })),
  timeoutMs: Type.Optional(Int({ minimum: 1, maximum: 600_000 })),
});
export type CallBody = Static<typeof CallBody>;

export const ConsoleInputBody = obj({
  lines: Type.Array(Type.String({ maxLength: 65536 }), { maxItems: 1024 }),
  end: Type.Optional(Type.Boolean({ description: 'End the input after these lines (the guest reads end-of-stream).' })),
});

export const ConsoleQuery = obj({
  tail: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'Lines of backlog sent first (default 100).' })),
  follow: Type.Optional(Type.Boolean({ description: 'Keep the stream open for new lines (default true).' })),
});

export const DestroyQuery = obj({ wipe: Type.Optional(Type.Boolean({ description: 'Also scrub and remove its disk.' })) });

const IsoTime = Type.String({
  pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$',
  maxLength: 40,
  description: 'expects: an ISO-8601 date or time, e.g. 2025-01-31 or 2025-01-31T12:00:00Z',
});

export const AuditQueryString = obj({
  actor: Type.Optional(Type.String({ maxLength: 200 })),
  action: Type.Optional(Type.String({ maxLength: 100 })),
  target: Type.Optional(Type.String({ maxLength: 200 })),
  partition: Type.Optional(Name),
  outcome: Type.Optional(Type.Union([Type.Literal('success'), Type.Literal('denied'), Type.Literal('failure')])),
  since: Type.Optional(IsoTime),
  until: Type.Optional(IsoTime),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
});
export type AuditQueryString = Static<typeof AuditQueryString>;

export const AttestQuery = obj({ nonce: Type.String({ pattern: '^[0-9a-fA-F]{16,128}$', description: 'expects: 8 to 64 bytes in hex' }) });

/** The admission policy the daemon applies before creating a partition (`policy.json`). */
export const HostPolicy = obj({
  version: Type.Literal(1),
  allowMeasurements: Type.Optional(
    Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { maxItems: 100_000, description: 'If present, only modules with these SHA-256 measurements are admitted.' }),
  ),
  maxMemoryPages: Type.Optional(Int({ minimum: 1, maximum: 65536 })),
  allowDevices: Type.Optional(
    Type.Array(Type.Union([Type.Literal('console'), Type.Literal('clock'), Type.Literal('entropy'), Type.Literal('block'), Type.Literal('net')]), { maxItems: 5, description: 'If present, the only devices a spec may ask for.' }),
  ),
  allowWasi: Type.Optional(Type.Boolean()),
});
export type HostPolicy = Static<typeof HostPolicy>;

const Permission = Type.Union(PERMISSIONS.map((p) => Type.Literal(p)));
const PermissionPattern = Type.String({ pattern: '^(\\*|[a-z]+/(\\*|[a-z]+))$', maxLength: 64 });
export const Scope = Type.String({ pattern: SCOPE_PATTERN, maxLength: 80, description: 'expects: /, /partitions/<name> or /segments/<name>' });

/** `rbac.json`: custom roles, role assignments, deny assignments. */
export const RbacFile = obj({
  roles: Type.Optional(
    Type.Array(
      obj({ name: Name, description: Type.Optional(Str(400)), permissions: Type.Array(PermissionPattern, { maxItems: 64 }), notPermissions: Type.Optional(Type.Array(PermissionPattern, { maxItems: 64 })) }),
      { maxItems: 256 },
    ),
  ),
  assignments: Type.Optional(Type.Array(obj({ principal: Type.String({ maxLength: 200 }), role: Name, scope: Scope }), { maxItems: 10_000 })),
  denyAssignments: Type.Optional(
    Type.Array(obj({ name: Type.Optional(Name), principal: Type.String({ maxLength: 200 }), permissions: Type.Array(PermissionPattern, { maxItems: 64 }), scope: Scope }), { maxItems: 10_000 }),
  ),
});
export type RbacFile = Static<typeof RbacFile>;

export const CreateTokenBody = obj({
  name: Name,
  role: Name,
  scope: Scope,
  expires: Type.Optional(Type.String({ pattern: '^([1-9][0-9]{0,6}[smhd]|never)$', description: 'expects: a duration like 7d, 12h, 30m, 90s, or never (default 30d)' })),
});

export { Permission };

/** The error body of every non-2xx answer. */
export const ErrorBody = obj({ error: obj({ code: Type.String(), message: Type.String() }) });
