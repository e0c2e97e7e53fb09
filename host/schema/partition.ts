/**
 * Schema of a partition spec (what `hv.createPartition` takes) and of the options of the calls
 * made on a partition. This is the one place a spec field is declared: add a field here (its
 * type, range and description), and its default or cross-field rule in the resolver that
 * consumes it; the TypeScript type, the checks, the JSON Schema and the manifest follow.
 */
import { CloneType, Type, type Static } from '@sinclair/typebox';
import { DevicesSchema } from './devices.ts';
import { AbortSignalObject, ArrayBufferObject, CLOSED, Name, Sha256, Timeout, UrlObject } from './kinds.ts';
import { PartitionLimitsSchema, RestartSchema } from './limits.ts';
import { NO_NUL, WasiSchema } from './wasi.ts';

/** Where a partition runs (host/scheduler/). */
export const PlacementSchema = Type.Union([Type.Literal('dedicated'), Type.Literal('shared')], {
  description:
    "Where the partition runs: 'dedicated', a worker thread of its own (a warm one when the pool has one); 'shared', a worker thread that time-slices many partitions, each still its own instance, memory, devices and counters (with isolation 'process': a shared partition process, which gives no descriptor: no block device, console outputFd or WASI host folder). Default: the hypervisor's placement.",
});

/** What walls a partition's place has around it (host/scheduler/sandbox.ts). */
export const IsolationSchema = Type.Union([Type.Literal('thread'), Type.Literal('process')], {
  description:
    "'thread' (default): the partition runs in a worker thread of the hypervisor's process (its placement says which). 'process': in an OS process (of its own; with placement 'shared', one shared with other partitions), under Node's permission model (no file, child process, worker or addon), as an unprivileged user when the host runs as root, with OS resource limits; the same devices and calls, over a validated channel. A module run this way needs a memory of at least one page. Default: the hypervisor's isolation.",
});

/** Where a module comes from: a path, bytes, or a `file:` URL. */
export const ModuleSourceSchema = Type.Union(
  [Type.String({ minLength: 1, title: 'a path' }), Type.Uint8Array(), ArrayBufferObject(), UrlObject()],
  { description: 'The module: a path to a .wasm file (relative to the working directory; in a manifest, to the manifest), its bytes, or a file: URL.' },
);

/** A detached signature (WebAssembly tool-conventions format): its bytes, or the path of a file holding them. */
export const SignatureSourceSchema = Type.Union([Type.Uint8Array(), Type.String({ minLength: 1, title: 'a path' })], {
  description: 'A detached signature for the module (the signature data, or the path of a file holding it; in a manifest, relative to the manifest). Needs a policy with publisher keys.',
});

/** The fields of a spec, shared by the library's spec and the manifest (manifest.ts). */
export const partitionSpecFields = {
  name: Name('Unique among the hypervisor\'s live partitions (a name in use is ERR_INVALID_STATE); also the name its disk is kept under.'),
  module: ModuleSourceSchema,
  sha256: Type.Optional(Sha256("Pins the module's measurement: a different SHA-256 refuses it with ERR_INTEGRITY.")),
  signature: Type.Optional(SignatureSourceSchema),
  // ARGS_GET writes each argument NUL-terminated: one with a NUL in it would reach the guest cut there.
  args: Type.Optional(Type.Array(Type.String({ pattern: NO_NUL, title: 'a string without NUL characters' }), { description: 'Arguments the guest reads with ARGS_GET (each without NUL). At most 64 KiB together.' })),
  limits: Type.Optional(PartitionLimitsSchema),
  devices: Type.Optional(DevicesSchema),
  kind: Type.Optional(
    Type.Union([Type.Literal('command'), Type.Literal('reactor')], {
      description:
        "'command' (default): the guest exports _start, which runs once. 'reactor': the guest stays alive and the host calls its exports (functions () -> i32); _initialize, if exported, runs once at start.",
    }),
  ),
  restart: Type.Optional(RestartSchema),
  wasi: Type.Optional(WasiSchema),
  placement: Type.Optional(PlacementSchema),
  isolation: Type.Optional(IsolationSchema),
};

export const PartitionSpecSchema = Type.Object(partitionSpecFields, {
  ...CLOSED,
  title: 'Wasmvisor partition spec',
  description: 'What to run in a partition and what it may use.',
});
/** What to run and what it may use. */
export type PartitionSpec = Static<typeof PartitionSpecSchema>;

export const CallOptionsSchema = Type.Object(
  {
    timeoutMs: Type.Optional(Timeout("Wall-clock budget for this call, ms. Default: the partition's limits.callTimeoutMs.")),
    signal: Type.Optional(AbortSignalObject()),
    fuel: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: Number.MAX_SAFE_INTEGER,
        description: "Fuel budget of this call (a partition created with limits.fuel, which is otherwise each call's budget). Running out rejects with ERR_LIMIT_CPU and poisons the instance.",
      }),
    ),
  },
  { ...CLOSED, description: 'Options of one call to a reactor export.' },
);
/** Options of one call to a reactor export. */
export type CallOptions = Static<typeof CallOptionsSchema>;

export const PoolOptionsSchema = Type.Object(
  { size: Type.Integer({ minimum: 1, maximum: 1024, description: 'Reactor partitions in the pool.' }) },
  { ...CLOSED, description: 'Options of hv.createPool.' },
);
export type PoolOptions = Static<typeof PoolOptionsSchema>;

export const InspectOptionsSchema = Type.Object(
  {
    wasi: Type.Optional(Type.Boolean({ description: 'Judge the module with WASI preview1 imports admitted.' })),
    kind: Type.Optional(
      Type.Union([Type.Literal('command'), Type.Literal('reactor')], { description: "Judge it as createPartition would for this kind: a command must export _start, a reactor only memory. Default 'command'." }),
    ),
    sha256: Type.Optional(Sha256('Judge it against this pinned measurement too, as a spec with sha256 would be.')),
    signature: Type.Optional(SignatureSourceSchema),
    devices: Type.Optional(
      CloneType(DevicesSchema, {
        description: "With a security policy in force: judge the policy's grants for these devices (with the limits and WASI given), as createPartition holds a spec to them. Default: none, as a spec without devices.",
      }),
    ),
  },
  { ...CLOSED, description: 'Options of hv.inspect.' },
);
export type InspectOptions = Static<typeof InspectOptionsSchema>;
