/**
 * Every size bound that more than one layer must agree on, in one place: the spec validator
 * (hypervisor.ts, devices/config.ts), the channels between the root and a partition's worker
 * (ring sizes, message framing), the worker's own buffers and the CLI all read them from here.
 *
 * The rule this file exists for: a value the validator accepts works through every layer. The
 * channels therefore never limit what a partition may send: a message larger than its ring
 * travels in chunks (host/channel/message.ts), so a ring's size is a throughput choice, never a
 * bound on a call's input, a call's output or a console line.
 */

/** Largest `limits.maxInputBytes` and `limits.maxOutputBytes`: 64 MiB. */
export const MAX_CALL_BYTES = 1 << 26;

/**
 * WASI argv and environment (`wasi.args`, `wasi.env`): at most MAX_WASI_STRINGS strings each, and
 * at most MAX_WASI_BLOCK_BYTES bytes each as the guest receives them (args_sizes_get and
 * environ_sizes_get: every string's UTF-8 bytes and its NUL). The schema bounds the count and each
 * string; host/schema/wasi.ts's checkWasiBlocks the total, before anything is copied or started.
 * The default argv, [name, ...args], always fits: `args` is at most HV_MAX_TRANSFER (64 KiB).
 */
export const MAX_WASI_STRINGS = 1 << 17;
export const MAX_WASI_BLOCK_BYTES = 1 << 18;

/** Largest certificate, key or CA bundle file read (PEM): the daemon's own, `serve --tls-*` and the remote client's `--ca`, `--cert`, `--key`. */
export const MAX_TLS_FILE_BYTES = 1 << 20;

/** Longest console line a guest may print (`devices.console.maxLineBytes`, 16 .. 65536). */
export const MAX_LINE_BYTES = 65536;
export const MIN_LINE_BYTES = 16;

/** Longest console input line the root accepts (`partition.writeLine`), without its newline. */
export const MAX_INPUT_LINE_BYTES = 65536;

/** Ring records carry a 24-bit length; a message longer than a ring's largest record is chunked. */
export const RING_RECORD_HEADER = 4;

/** Smallest ring a partition's event and call channels use (data bytes; a power of two). */
export const MIN_RING_BYTES = 4096;

/** The smallest power of two (>= 64) that is >= n. */
export function ringCapacity(n: number): number {
  let p = 64;
  while (p < n) p *= 2;
  return p;
}

/**
 * A shared partition's call and event rings hold at least 1/SHARED_RING_FILLS of its largest
 * call input or result (from MIN_RING_BYTES up to the dedicated 64 KiB): each ring-full is a
 * hand-off between the root and the worker, which in a shared worker costs two thread wake-ups,
 * so a maximal message crosses in about this many hand-offs (1024 for 64 MiB through 64 KiB)
 * rather than one per 4 KiB (a 16 MiB input took 4096, several seconds on a loaded machine:
 * longer than the default call budget). Limits up to the default 1 MiB keep the minimum, so
 * density is unchanged for partitions that do not ask for large calls; one that does already
 * reserves its maxInputBytes + maxOutputBytes in admission.
 */
export const SHARED_RING_FILLS = 256;

/** Where a partition runs: its own worker, or a worker shared with other partitions. */
export type Placement = 'dedicated' | 'shared';

/** What the channel sizes depend on. */
export interface ChannelLimits {
  kind: 'command' | 'reactor';
  maxInputBytes: number;
  maxOutputBytes: number;
  /** The console's line limit, or null when the console is not granted. */
  maxLineBytes: number | null;
  /** The console input buffer (devices.console.inputBufferBytes), or null without a console. */
  inputBufferBytes: number | null;
  /** Where the partition runs ('process': a partition process of its own). */
  placement: Placement | 'process';
}

/** Ring sizes of a partition's channels, in data bytes. */
export interface ChannelSizes {
  /** Worker → root: console lines, violations, call results. */
  events: number;
  /** Root → worker: reactor calls. */
  calls: number;
  /** Root → worker: console input lines. */
  input: number;
}

/**
 * Ring sizes derived from the limits the rings carry. A message of any accepted size fits
 * (chunked when it exceeds a record), so the sizes only decide how often a large message waits
 * for the other side: a dedicated partition gets room for its largest line or result up to
 * 64 KiB, a shared one (thousands per process) the minimum unless its calls are large.
 *
 * The input ring is the exception: a console line is delivered whole (a guest may ask for its
 * length before it reads it), so the ring holds the longest line the root accepts; the input
 * buffer bound (`inputBufferBytes`) is applied by ConsoleInput on top of it.
 */
export function channelSizes(l: ChannelLimits): ChannelSizes {
  // Dedicated: 64 KiB of events, so bursts (violation reports are never waited for) have room;
  // with a console, 256 KiB: its byte streams move in chunks of a quarter ring (64 KiB), so the
  // guest fills one while the root drains another. Shared: fed by the outbox, as small as the
  // partition's largest call allows (see SHARED_RING_FILLS).
  const shared = (bytes: number): number => Math.max(MIN_RING_BYTES, Math.min(65536, ringCapacity(Math.ceil(bytes / SHARED_RING_FILLS))));
  const events =
    l.placement === 'shared' ? (l.kind === 'reactor' ? shared(l.maxOutputBytes) : MIN_RING_BYTES) : l.maxLineBytes !== null ? 4 * 65536 : 65536;
  // A partition process's call ring takes up to 1 MiB: each ring's worth of a large input costs a
  // round trip between two processes (forward, consume, acknowledge), not a shared-memory wake.
  const maxCalls = l.placement === 'process' ? 1 << 20 : 65536;
  const calls = l.placement === 'shared' ? shared(l.maxInputBytes) : Math.max(MIN_RING_BYTES, Math.min(maxCalls, ringCapacity(l.maxInputBytes + 1024)));
  return {
    events,
    calls: l.kind === 'reactor' ? calls : 64,
    input: l.inputBufferBytes === null ? 64 : ringCapacity(Math.max(l.inputBufferBytes, MAX_INPUT_LINE_BYTES + RING_RECORD_HEADER)),
  };
}

/** Shared memory a partition's channels take (the rings' data and control blocks), for admission. */
export function channelBytes(sizes: ChannelSizes): number {
  return sizes.events + sizes.calls + sizes.input + 3 * 32;
}
