/**
 * Schema of the Hypervisor's options (`new Hypervisor(options)`). Add an option here, with its
 * range and description; its default stays in the constructor.
 */
import { CloneType, Type, type Static } from '@sinclair/typebox';
import { MAX_AUDIT_FILE_BYTES, MIN_AUDIT_FILE_BYTES } from '../security/audit.ts';
import { MAX_NONCE_BYTES } from '../security/guest-report.ts';
import { Policy } from '../security/policy.ts';
import { AuditSinkObject, CLOSED, IterableObject, jsKind, Sha256 } from './kinds.ts';
import { PartitionLimitsSchema } from './limits.ts';
import { DEFAULT_MODULE_LIMITS, MODULE_LIMIT_KEYS } from '../loader/bounds.ts';
import { IsolationSchema, PlacementSchema } from './partition.ts';
import { DEFAULT_PARTITIONS_PER_PROCESS, MAX_PARTITIONS_PER_PROCESS, MAX_SHARED_PROCESSES } from '../scheduler/bounds.ts';
import { PolicySchema } from './policy.ts';
import { ImagePath } from './devices.ts';

/** A loaded Policy object (`Policy.fromFile`, `Policy.fromDocument`). */
const PolicyObject = jsKind<Policy>('Wasmvisor:Policy', 'a Policy', (v) => v instanceof Policy);

/** `HypervisorOptions.audit` as an object: where the log lives and how durable a noted record is. */
export const AuditOptionsSchema = Type.Object(
  {
    dir: Type.Optional(Type.String({ minLength: 1, description: 'The log directory. Default <dataDir>/audit.' })),
    keyDir: Type.Optional(Type.String({ minLength: 1, description: 'Where the MAC key and the checkpoint anchor live, apart from the log. Default <dataDir>/keys.' })),
    durability: Type.Optional(
      Type.Union([Type.Literal('batch'), Type.Literal('record')], {
        description: "'batch' (default): noted records are fsynced in batches (a crash loses at most 255 of them, none older than 100 ms); 'record': every record is fsynced at once.",
      }),
    ),
    maxFileBytes: Type.Optional(
      Type.Integer({ minimum: MIN_AUDIT_FILE_BYTES, maximum: MAX_AUDIT_FILE_BYTES, description: 'Size at which a log file is rotated, bytes (the chain continues in the next). Default 8 MiB.' }),
    ),
  },
  { ...CLOSED, description: 'Settings of the audit log the hypervisor opens.' },
);
/** `HypervisorOptions.audit` as an object. */
export type AuditOptions = Static<typeof AuditOptionsSchema>;

export const HypervisorOptionsSchema = Type.Object(
  {
    maxModuleBytes: Type.Optional(Type.Integer({ minimum: 8, maximum: 1 << 30, description: 'Largest module accepted, bytes. Default 16 MiB.' })),
    moduleLimits: Type.Optional(
      Type.Object(
        Object.fromEntries(MODULE_LIMIT_KEYS.map((key) => [key, Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffff_ffff, description: `Default ${DEFAULT_MODULE_LIMITS[key]}.` }))])),
        {
          ...CLOSED,
          description: 'Structural bounds of a module (docs/ABI.md, "Module bounds"), checked before the engine validates or compiles it; over one, ERR_LIMIT_MODULE.',
        },
      ),
    ),
    moduleCacheSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: 'Compiled modules kept, by measurement and limits. Default 64.' })),
    allowList: Type.Optional(
      Type.Union([Type.Array(Sha256('A SHA-256 measurement.')), IterableObject()], {
        description: 'If given, only modules with these measurements (SHA-256 hex) may run; an empty list admits nothing. The same as a policy that only pins measurements: give one or the other.',
      }),
    ),
    policy: Type.Optional(
      Type.Union([PolicyObject(), CloneType(PolicySchema), Type.String({ minLength: 1, title: 'a path' })], {
        description:
          'The security policy (docs/SECURITY.md): a Policy, a policy document, or the path of a policy file (JSON). With one, every module must be signed by a trusted publisher or pinned (ERR_INTEGRITY), and its spec must stay within its grants (ERR_POLICY_DENIED), before any guest code runs.',
      }),
    ),
    audit: Type.Optional(
      Type.Union([Type.Boolean(), AuditOptionsSchema, AuditSinkObject()], {
        description: 'The audit log: true for one in <dataDir>/audit (MAC key and checkpoint anchor in <dataDir>/keys), its settings, or an AuditSink to record through (e.g. a log a daemon shares with its API). Default: none.',
      }),
    ),
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "Who the embedder's actions are recorded as in the audit log. Default 'embedder'." })),
    defaultLimits: Type.Optional(CloneType(PartitionLimitsSchema, { description: 'Defaults for partitions that do not set a limit.' })),
    violationsPerSecond: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Violation events per second per partition before further ones are only counted. Default 100.' })),
    memoryBudgetBytes: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: Number.MAX_SAFE_INTEGER,
        description:
          "Memory the hypervisor may promise to its partitions, bytes: each reserves its worst case when created and releases it when destroyed; one that would not fit is refused with ERR_LIMIT_MEMORY. Default: half of the machine's memory.",
      }),
    ),
    callSpinMicros: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 10_000, description: "How long the root polls for a reactor call's result before it waits asynchronously, µs; 0 disables it. Default 50." }),
    ),
    dataDir: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Directory for persistent block storage: images and (without storageKey) the keystore. Default .wasmvisor under the working directory. Created (mode 0700) only when needed.',
      }),
    ),
    storageKey: Type.Optional(
      Type.Uint8Array({
        minByteLength: 32,
        maxByteLength: 32,
        description: "A 32-byte master key for block storage: each image's key derives from it. Without it each image gets a random key kept in the keystore file.",
      }),
    ),
    keystorePath: Type.Optional(Type.String({ minLength: 1, description: 'Where the keystore file lives when there is no storageKey. Default <dataDir>/keystore (a format-1 <dataDir>/keystore.json is taken over).' })),
    placement: Type.Optional(CloneType(PlacementSchema, { description: "Placement of partitions whose spec does not choose one. Default 'dedicated'." })),
    warmWorkers: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 64,
        description: 'Dedicated workers started ahead of need (refilled in the background; filled when the first dedicated partition is created), so start() hands a partition a running thread. 0: spawn each on demand. Default 2.',
      }),
    ),
    reuseWorkers: Type.Optional(
      Type.Boolean({ description: 'Let a dedicated worker that has run a partition serve the next one. Default false: a thread that ran a guest is never handed to another partition (docs/THREAT-MODEL.md, "Worker reuse").' }),
    ),
    sharedWorkers: Type.Optional(Type.Integer({ minimum: 1, maximum: 256, description: 'Most shared worker threads, started on demand. Default: the number of cores.' })),
    sliceMs: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, description: 'Longest a shared partition holds its worker while others wait, ms; it is then preempted at its next fuel checkpoint. Default 10.' }),
    ),
    sharedWorkerHeapMb: Type.Optional(
      Type.Integer({
        minimum: 16,
        maximum: 16384,
        description: 'JS heap limit of each shared worker, MiB. A shared worker that runs out ends every partition on it with ERR_KILLED (reactors restart per their policy). Default 2048.',
      }),
    ),
    isolation: Type.Optional(CloneType(IsolationSchema, { description: "Isolation of partitions whose spec does not choose one. Default 'thread'." })),
    process: Type.Optional(
      Type.Object(
        {
          user: Type.Optional(
            Type.Object(
              {
                uid: Type.Integer({ minimum: 1, maximum: 0x7fffffff, description: 'User id (not 0: a partition process never runs as root).' }),
                gid: Type.Integer({ minimum: 1, maximum: 0x7fffffff, description: 'Group id (not 0).' }),
              },
              { ...CLOSED, description: "The identity partition processes take when the host runs as root. Default: the 'nobody' account. Not root, they keep the host's identity." },
            ),
          ),
          maxOpenFiles: Type.Optional(Type.Integer({ minimum: 16, maximum: 65536, description: 'Open files of a partition process (RLIMIT_NOFILE). Default 64.' })),
          addressSpaceMb: Type.Optional(
            Type.Integer({
              minimum: 16384,
              maximum: 1 << 24,
              description: "Address space of a partition process, MiB (RLIMIT_AS). A Wasm memory reserves about 10 GiB of it for its guard regions. Default 32768.",
            }),
          ),
          cpuSeconds: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 1 << 30, description: 'CPU time of a partition process, s (RLIMIT_CPU; past it the partition ends with ERR_LIMIT_CPU). Default: none.' }),
          ),
          heapMb: Type.Optional(Type.Integer({ minimum: 16, maximum: 16384, description: 'JS heap of a partition process (old generation), MiB. Default 64.' })),
          sharedProcesses: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: MAX_SHARED_PROCESSES,
              description: "Most shared partition processes (isolation 'process' with placement 'shared'), started on demand; each partition goes to the one hosting the fewest. Default: the number of cores.",
            }),
          ),
          partitionsPerProcess: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: MAX_PARTITIONS_PER_PROCESS,
              description: `Most partitions one shared partition process hosts (each still its own instance, memory, devices and counters). Bounded by the ~13,000 Wasm memories a 64-bit process can reserve; its address-space limit grows by 10 GiB per partition. Default ${DEFAULT_PARTITIONS_PER_PROCESS}.`,
            }),
          ),
        },
        { ...CLOSED, description: "Settings of partition processes (isolation 'process'). Limits are set with /bin/sh's ulimit where it exists." },
      ),
    ),
  },
  {
    ...CLOSED,
    title: 'Wasmvisor hypervisor options',
    description: 'Options of new Hypervisor(options). Every option has a safe default.',
  },
);
export type HypervisorOptions = Static<typeof HypervisorOptionsSchema>;

/** Who an action is recorded as in the audit log: the embedder's default actor, or a caller it acts for. */
const Actor = (description: string) => Type.String({ minLength: 1, maxLength: 256, description });

export const AttestOptionsSchema = Type.Object(
  {
    nonce: Type.Optional(
      Type.Union([Type.String({ pattern: `^([0-9a-fA-F]{2}){0,${MAX_NONCE_BYTES}}$`, title: `hex of at most ${MAX_NONCE_BYTES} bytes` }), Type.Uint8Array({ maxByteLength: MAX_NONCE_BYTES })], {
        description: `The verifier's nonce, hex or bytes (at most ${MAX_NONCE_BYTES} bytes). Default: none (the report may then be a replay).`,
      }),
    ),
    actor: Type.Optional(Actor("Who asked, for the audit record (e.g. a management API principal). Default: the hypervisor's actor.")),
  },
  { ...CLOSED, description: 'Options of hv.attest.' },
);
export type AttestOptions = Static<typeof AttestOptionsSchema>;

/** What hv.setPolicy takes: a policy as the `policy` option takes it, or null for none. */
export const PolicySourceSchema = Type.Union([PolicyObject(), CloneType(PolicySchema), Type.String({ minLength: 1, title: 'a path' }), Type.Null()], {
  description: 'A Policy, a policy document, the path of a policy file, or null for no policy.',
});

export const SetPolicyOptionsSchema = Type.Object(
  { actor: Type.Optional(Actor("Who replaced the policy, for the audit record. Default: the hypervisor's actor.")) },
  { ...CLOSED, description: 'Options of hv.setPolicy.' },
);
export type SetPolicyOptions = Static<typeof SetPolicyOptionsSchema>;

export const WipeStorageOptionsSchema = Type.Object(
  { path: Type.Optional(ImagePath("The image to wipe, as the spec's devices.block.path names it (absolute, or relative to dataDir). Default: every image of the name (see hv.wipeStorage).")) },
  { ...CLOSED, description: 'Options of hv.wipeStorage.' },
);
export type WipeStorageOptions = Static<typeof WipeStorageOptionsSchema>;
