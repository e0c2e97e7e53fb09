/**
 * Schema of the Hypervisor's options (`new Hypervisor(options)`). Add an option here, with its
 * range and description; its default stays in the constructor.
 */
import { CloneType, Type, type Static } from '@sinclair/typebox';
import { CLOSED, IterableObject, Sha256 } from './kinds.ts';
import { PartitionLimitsSchema } from './limits.ts';
import { IsolationSchema, PlacementSchema } from './partition.ts';

export const HypervisorOptionsSchema = Type.Object(
  {
    maxModuleBytes: Type.Optional(Type.Integer({ minimum: 8, maximum: 1 << 30, description: 'Largest module accepted, bytes. Default 16 MiB.' })),
    moduleCacheSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: 'Compiled modules kept, by measurement and limits. Default 64.' })),
    allowList: Type.Optional(
      Type.Union([Type.Array(Sha256('A SHA-256 measurement.')), IterableObject()], {
        description: 'If given, only modules with these measurements (SHA-256 hex) may run; an empty list admits nothing.',
      }),
    ),
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
        description: "A 32-byte master key for block storage: each image's key derives from it. Without it each partition gets a random key kept in the keystore file.",
      }),
    ),
    keystorePath: Type.Optional(Type.String({ minLength: 1, description: 'Where the keystore file lives when there is no storageKey. Default <dataDir>/keystore.json.' })),
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
