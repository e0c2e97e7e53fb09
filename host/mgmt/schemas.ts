/**
 * TypeBox schemas of the management API: request bodies, parameters, query strings and the
 * files the daemon keeps in its config directory. They validate requests (through the shared
 * checker in host/schema/check.ts, so a wrong field is named the same way everywhere) and are
 * the same objects the OpenAPI document is generated from (openapi.ts).
 *
 * The partition spec here is the library's `PartitionSpecSchema` (host/schema/) *as a remote
 * caller may send it*: JSON only (the module travels as base64 next to the spec), and without
 * the fields that name host paths or fds — `signature` (a file), `devices.block.path`,
 * `devices.console.outputFd` and `wasi.preopens[].hostPath` — because those are the embedder's
 * privilege: a remote principal must not copy arbitrary host folders into a guest, put a disk
 * image anywhere on the host, or have its guest write into a file the daemon holds open.
 * Every other field, range and message is the library's, so the API accepts exactly what the
 * library accepts.
 */
import { CloneType, Type, type Static, type TSchema } from '@sinclair/typebox';
import { BlockSchema, ConsoleSchema, DevicesSchema, MAX_NAME_LENGTH, NAME_PATTERN, PreopenSchema, WasiSchema, partitionSpecFields } from '../schema/index.ts';
import { GrantsSchema, PolicyKeySchema, PolicySchema } from '../schema/policy.ts';
import { PERMISSIONS, SCOPE_PATTERN } from './rbac.ts';

// A partition's name: the library's pattern, from its one source.
export { NAME_PATTERN };
export const Name = Type.String({ pattern: NAME_PATTERN, description: `expects: a name of 1-${MAX_NAME_LENGTH} letters, digits, ".", "_" or "-" (not starting with "." or "-")` });
const Int = (o: { minimum?: number; maximum?: number } = {}) => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, ...o });
const Str = (max = 4096) => Type.String({ maxLength: max });
const CLOSED = { additionalProperties: false } as const;
const obj = <T extends Record<string, TSchema>>(props: T, description?: string) => Type.Object(props, { ...CLOSED, ...(description ? { description } : {}) });

// The library's partition spec (host/schema/), minus what a remote caller may not send.
const { module: _module, signature: _signature, ...remoteSpecFields } = partitionSpecFields;

const ApiBlock = Type.Omit(BlockSchema, ['path'], {
  description: "A persistent encrypted disk kept under the partition name in the host's data directory (no `path`: host paths are the embedder's).",
});
// Host fds the worker writes to directly are the embedder's too: a remote spec naming one would
// write guest bytes into whatever the daemon holds open (its audit log, another partition's disk).
const ApiConsole = Type.Omit(ConsoleSchema, ['outputFd'], { description: `${ConsoleSchema.description} (no \`outputFd\`: host fds are the embedder's).` });
const ApiDevices = Type.Object(
  {
    ...CloneType(DevicesSchema).properties,
    console: Type.Optional(Type.Union([Type.Boolean(), ApiConsole])),
    block: Type.Optional(Type.Union([Type.Literal(false), ApiBlock])),
  },
  { ...CLOSED, description: DevicesSchema.description },
);
const ApiPreopen = Type.Omit(PreopenSchema, ['hostPath', 'mode'], { description: "An empty virtual directory (no `hostPath`, so no `mode`: host folders are the embedder's)." });
const ApiWasi = Type.Object({ ...CloneType(WasiSchema).properties, preopens: Type.Optional(Type.Array(ApiPreopen)) }, { ...CLOSED, description: WasiSchema.description });

/**
 * The partition spec a remote caller sends: the library's PartitionSpecSchema field for field
 * (same ranges, same messages), without `module` (it travels base64 beside the spec),
 * `signature` (a detached signature file is a host path; embed signatures instead), the two
 * host paths, `devices.block.path` and `wasi.preopens[].hostPath`, and the host fds of
 * `devices.console.outputFd`.
 */
export const ApiPartitionSpec = Type.Object(
  { ...CloneType(Type.Object(remoteSpecFields)).properties, devices: Type.Optional(ApiDevices), wasi: Type.Optional(ApiWasi) },
  { ...CLOSED, title: 'Wasmvisor partition spec (management API)', description: 'What to run in a partition and what it may use, as a remote caller sends it.' },
);
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

/** Longest path parameter the router takes (a name is at most 64 characters). */
export const MAX_PARAM_LENGTH = 100;

export const NameParams = obj({ name: Name });
/**
 * A token id is any path segment: the store (tokens.ts) decides, and an id that names no token,
 * well-formed or not, is 404 ERR_NOT_FOUND, as `wasmvisor token revoke` answers locally.
 */
export const TokenParams = obj({ id: Type.String({ maxLength: MAX_PARAM_LENGTH, description: 'a token id (16 hex digits, from GET /tokens); any other is 404' }) });

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

// Whole bytes: 17 hex digits passed the pattern and met the library's refusal ("at most 64 bytes") instead.
export const AttestQuery = obj({ nonce: Type.String({ pattern: '^(?:[0-9a-fA-F]{2}){8,64}$', description: 'expects: 8 to 64 bytes in hex' }) });

/**
 * The host's admission policy is host/security's policy file (`<config>/policy.json`, schema
 * PolicySchema): trusted publishers, pinned measurements, grants. Through the API a publisher's
 * key is given inline (`publicKey`): `file` names a file on the host, which, like a spec's host
 * paths, is the host administrator's to write, not a remote principal's.
 */
const ApiPolicyKey = Type.Object(
  { publicKey: CloneType(PolicyKeySchema.properties.publicKey), keyId: Type.Optional(CloneType(PolicyKeySchema.properties.keyId)) },
  { additionalProperties: false, description: 'A trusted key, inline (hex of 0x01 ‖ key, an OpenSSH line, or PEM).' },
);
export const ApiPolicy = Type.Object(
  {
    ...CloneType(PolicySchema).properties,
    publishers: Type.Optional(
      Type.Record(Type.String({ pattern: NAME_PATTERN }), Type.Object({ keys: Type.Array(ApiPolicyKey, { minItems: 1, maxItems: 64 }), grants: Type.Optional(CloneType(GrantsSchema)) }, { additionalProperties: false }), {
        additionalProperties: false,
        maxProperties: 256,
      }),
    ),
  },
  { additionalProperties: false, description: 'A security policy (docs/SECURITY.md) as a remote caller sends it: keys inline.' },
);

/** `PUT /policy`: the new policy, or null for none (every module admitted, as without a policy file). */
export const PolicyBody = obj({ policy: Type.Union([ApiPolicy, Type.Null()]) });
export type PolicyBody = Static<typeof PolicyBody>;

/** `GET /policy` and the answer to `PUT /policy`: the policy file in force and its hash (as measured). */
export const PolicyAnswer = obj({
  policy: Type.Union([CloneType(PolicySchema), Type.Null()]),
  sha256: Type.Union([Type.String(), Type.Null()], { description: "The policy's hash, as in the measured-boot log and attestation reports; null without a policy." }),
});

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
