/**
 * Schemas of the device grants in a partition spec (`devices`): one object schema per device,
 * each closed, so a misspelt option is an error. A device that is absent or `false` is not
 * granted. Defaults and derived values (burst from rate, ring sizes) are devices/config.ts's.
 */
import { MAX_LINE_BYTES, MIN_LINE_BYTES } from '../limits/sizes.ts';
import { CloneType, Type, type Static } from '@sinclair/typebox';
import { HV_MAX_TRANSFER, HV_NET_MAX_MTU } from '../abi/codes.ts';
import { CLOSED, Name } from './kinds.ts';
import { rateLimitSchema } from './limits.ts';

/** Largest disk, MiB. */
export const MAX_DISK_MIB = 4096;
/** The most bytes one block request moves (16 sectors): a smaller bucket could never admit it. */
export const MIN_BLOCK_BURST_BYTES = 65536;

export const ConsoleSchema = Type.Object(
  {
    maxLineBytes: Type.Optional(
      Type.Integer({
        minimum: MIN_LINE_BYTES,
        maximum: MAX_LINE_BYTES,
        description: "Line calls (CONSOLE_WRITE*): longest line, bytes; the rest of a longer line is dropped and counted. Also the length of the 'console' event's pieces. Default 4096.",
      }),
    ),
    linesPerSecond: Type.Optional(Type.Number({ minimum: 1, maximum: 1_000_000, description: 'Line calls (CONSOLE_WRITE*): sustained lines per second; excess lines are dropped and counted. Default 1000.' })),
    burstLines: Type.Optional(Type.Number({ minimum: 1, maximum: 1_000_000, description: 'Lines that may be printed at once after an idle period. Default: linesPerSecond.' })),
    inputBufferBytes: Type.Optional(
      Type.Integer({ minimum: 64, maximum: 1 << 24, description: "Bytes of console input buffered for the guest before the host's writes are refused (rounded up to a power of two). Default 65536." }),
    ),
    rateLimit: Type.Optional(
      // A write moves at most one hypercall buffer: a bucket that size can always admit it.
      CloneType(rateLimitSchema(HV_MAX_TRANSFER), {
        description:
          "Rate limit of output writes (CONSOLE_WRITE*, CONSOLE_STREAM_WRITE*, WASI fd 1 and 2), in bytes and calls, on top of the lines bucket; mode 'reject' (default: refused bytes are counted and reported as dropped) or 'block'. Default: none (a writer faster than its reader waits).",
      }),
    ),
    outputFd: Type.Optional(
      Type.Object(
        {
          stdout: Type.Optional(Type.Integer({ minimum: 0, maximum: 0x7fffffff, description: 'An open fd of a regular file or a non-terminal character device (/dev/null).' })),
          stderr: Type.Optional(Type.Integer({ minimum: 0, maximum: 0x7fffffff, description: 'As stdout.' })),
        },
        {
          ...CLOSED,
          description:
            "Host fds the partition writes a stream to directly from its worker (no output/console events for it): only a regular file or a non-terminal character device, checked at createPartition. The fd stays the embedder's. Default: none.",
        },
      ),
    ),
  },
  { ...CLOSED, description: 'The console: byte streams for stdout, stderr and input (and the 1.0 line calls on top).' },
);
export type ConsoleSpec = Static<typeof ConsoleSchema>;

export const DeterministicClockSchema = Type.Object(
  {
    startMs: Type.Optional(Type.Number({ minimum: 0, maximum: 8.64e15, description: 'Wall clock at the first reading, ms since the epoch. Default 0.' })),
    stepMs: Type.Optional(Type.Number({ minimum: 0, maximum: 8.64e7, description: 'How far each reading advances, ms. Default 1.' })),
  },
  CLOSED,
);

export const ClockSchema = Type.Object(
  {
    resolutionMs: Type.Optional(Type.Number({ minimum: 0.001, maximum: 4000, description: 'Clock readings are rounded down to a multiple of this, ms. Default 1.' })),
    deterministic: Type.Optional(
      Type.Union([Type.Boolean(), DeterministicClockSchema], {
        description: 'Fixed clocks for teaching and tests: each reading advances by stepMs from startMs (wall; monotonic starts at 0).',
      }),
    ),
  },
  { ...CLOSED, description: 'Monotonic and wall clocks, coarse by default.' },
);
export type ClockSpec = Static<typeof ClockSchema>;

export const EntropySchema = Type.Object(
  {
    seed: Type.Optional(Type.Union([Type.String(), Type.Number()], { description: 'Makes the byte stream reproducible (a keyed AES-CTR stream). For tests and teaching only.' })),
  },
  { ...CLOSED, description: 'Random bytes.' },
);
export type EntropySpec = Static<typeof EntropySchema>;

const BLOCK_MODE = Type.Union([Type.Literal('block'), Type.Literal('reject')], {
  description: "Over the limit: 'block' (default) the request waits in the partition's worker for its tokens; 'reject' it returns HV_STATUS_RATE_LIMITED at once, having done nothing.",
});

/** A block image's path as the embedder names it (a spec's `devices.block.path`, `hv.wipeStorage`'s `path`). */
export const ImagePath = (description: string) => Type.String({ minLength: 1, pattern: '^[^\\u0000]+$', title: 'a non-empty path without NUL characters', description });

export const BlockSchema = Type.Object(
  {
    sizeMiB: Type.Integer({ minimum: 1, maximum: MAX_DISK_MIB, description: 'Disk size in MiB. Required; an existing image must have this size.' }),
    path: Type.Optional(
      ImagePath("Where the image lives, chosen by the embedder (never by the guest): absolute, or relative to the hypervisor's dataDir. Default <dataDir>/images/<name>.img."),
    ),
    bytesPerSecond: Type.Optional(Type.Number({ minimum: 1, maximum: 2 ** 40, description: 'Sustained bytes per second moved by reads, writes and discards. Default 256 MiB.' })),
    burstBytes: Type.Optional(Type.Number({ minimum: MIN_BLOCK_BURST_BYTES, maximum: 2 ** 40, description: 'Bytes that may be moved at once after an idle period. Default: bytesPerSecond, at least 65536.' })),
    opsPerSecond: Type.Optional(Type.Number({ minimum: 1, maximum: 1e9, description: 'Sustained requests per second (read, write, flush, discard). Default 20000.' })),
    burstOps: Type.Optional(Type.Number({ minimum: 1, maximum: 1e9, description: 'Requests that may be made at once after an idle period. Default: opsPerSecond.' })),
    rateLimitMode: Type.Optional(BLOCK_MODE),
  },
  { ...CLOSED, description: 'A persistent, encrypted block device, kept under the partition name in the data directory.' },
);
export type BlockSpec = Static<typeof BlockSchema>;

export const NetSchema = Type.Object(
  {
    segment: Name('The switch segment the NIC plugs into; frames only flow between NICs of one segment. Required.'),
    mtu: Type.Optional(Type.Integer({ minimum: 64, maximum: HV_NET_MAX_MTU, description: 'Largest payload of one frame, bytes. Default 1500.' })),
    rxQueueBytes: Type.Optional(
      Type.Integer({
        minimum: 64,
        maximum: 1 << 24,
        description: 'Bytes of frames queued for the guest (headers included); more are dropped and counted. Default 65536 (rounded up to a power of two, at least one frame of MTU).',
      }),
    ),
    sendBytesPerSecond: Type.Optional(Type.Number({ minimum: 1, maximum: 2 ** 40, description: "Sustained payload bytes per second the guest may send. Default 64 MiB. Burst: one second's worth, at least one MTU." })),
    sendFramesPerSecond: Type.Optional(Type.Number({ minimum: 1, maximum: 1e9, description: "Sustained frames per second the guest may send. Default 100000. Burst: one second's worth." })),
    recvBytesPerSecond: Type.Optional(Type.Number({ minimum: 1, maximum: 2 ** 40, description: 'Sustained payload bytes per second delivered to the guest; more are dropped and counted. Default 64 MiB.' })),
    recvFramesPerSecond: Type.Optional(Type.Number({ minimum: 1, maximum: 1e9, description: 'Sustained frames per second delivered to the guest; more are dropped and counted. Default 100000.' })),
    host: Type.Optional(
      Type.Boolean({ description: "Lets the NIC exchange frames with the host: the embedder's endpoints (hv.attachNet) and forwarded TCP ports (hv.forwardPort). Default false." }),
    ),
  },
  { ...CLOSED, description: "A network interface on the hypervisor's virtual switch." },
);
export type NetSpec = Static<typeof NetSchema>;

export const DevicesSchema = Type.Object(
  {
    console: Type.Optional(Type.Union([Type.Boolean(), ConsoleSchema])),
    clock: Type.Optional(Type.Union([Type.Boolean(), ClockSchema])),
    entropy: Type.Optional(Type.Union([Type.Boolean(), EntropySchema])),
    block: Type.Optional(Type.Union([Type.Literal(false), BlockSchema])),
    net: Type.Optional(Type.Union([Type.Literal(false), NetSchema])),
    attestation: Type.Optional(
      Type.Boolean({ description: 'The attestation device (ABI 1.3): the guest may read its measurement and ask for host-signed reports of itself. Default false.' }),
    ),
  },
  { ...CLOSED, description: 'Devices granted to the partition (true, or an options object). Nothing is granted by default: an absent device is invisible to the guest.' },
);
export type DevicesSpec = Static<typeof DevicesSchema>;
