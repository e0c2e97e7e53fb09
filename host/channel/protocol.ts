import type { ErrorCode } from '../errors.ts';
import type { ResolvedDevices } from '../devices/config.ts';
import type { ResolvedWasi } from '../wasi/config.ts';
import type { ResolvedRateLimit } from '../limits/rate-limiter.ts';
import type { NetInit } from '../devices/net.ts';
import type { MessagePort } from 'node:worker_threads';
import type { AttestationInit } from '../devices/attestation.ts';
import type { BlockWorkerInit } from '../storage/storage.ts';

/**
 * What crosses the worker boundary. Only plain data and shared buffers: the worker never
 * receives a function, an object with methods or anything of the root's state.
 */

/** Message kinds on the event ring (worker → root); see host/channel/message.ts for the framing. */
export const EventKind = {
  /** A chunk of the guest's stdout: bytes exactly as written (no framing, no added newline). */
  STDOUT: 1,
  /** A chunk of the guest's stderr. */
  STDERR: 2,
  VIOLATION: 3,
  /** A reactor call's result: i32 return value (LE), then the output bytes. */
  RESULT: 4,
  /**
   * Output the console dropped since its last report: u8 stream (1 stdout, 2 stderr), 3 bytes 0,
   * then f64 (LE) bytes the rate limit refused, lines the lines bucket dropped, bytes cut from over-long lines.
   */
  DROPPED: 5,
} as const;

/** Largest violation message (JSON) on the event ring; the worker shortens longer reasons. */
export const MAX_VIOLATION_BYTES = 4096;

/** Message kinds on the call ring (root → worker). */
export const CallKind = {
  /** f64 fuel budget (LE; 0: the partition's own), u16 export-name length (LE), the name (UTF-8), then the input bytes. */
  CALL: 1,
} as const;

/** Record kinds on the input ring (root → worker). */
export const InputKind = {
  /** One line without its newline (the guest reads it followed by `\n`). */
  LINE: 1,
  /** Raw bytes of the input stream, exactly as the host received them. */
  BYTES: 2,
} as const;

/**
 * The console's shared output state (an Int32Array over `WorkerInit.stdio`), written by the
 * root, read by the worker: a non-zero slot means that stream's reader has gone (EPIPE).
 */
export const StdioSlot = {
  STDOUT_CLOSED: 0,
  STDERR_CLOSED: 1,
} as const;
export const STDIO_SLOTS = 2;

/** workerData for a partition's worker. */
export interface WorkerInit {
  name: string;
  module: WebAssembly.Module;
  args: string[];
  devices: ResolvedDevices;
  /** Per-partition counters (see stats.ts). */
  stats: SharedArrayBuffer;
  /** Event ring, worker → root: console output, violations, call results. */
  events: SharedArrayBuffer;
  /** Console input ring, root → worker. */
  input: SharedArrayBuffer;
  /** Console output state (see StdioSlot), root → worker. */
  stdio: SharedArrayBuffer;
  /** Violation reports per second before further ones are only counted. */
  violationsPerSecond: number;
  /** `command` runs _start once; `reactor` runs _initialize (if any) then serves calls. */
  kind: 'command' | 'reactor';
  /** Call ring, root → worker (reactors). */
  calls: SharedArrayBuffer;
  /** Most bytes a call's input may have (the worker bounds what it accepts from the call ring). */
  maxInputBytes: number;
  /** Most bytes a call's output may reach. */
  maxOutputBytes: number;
  /** How long an idle reactor may poll for the next call before it sleeps, in microseconds (adaptive: see spin.ts). */
  spinMicros: number;
  /** WASI preview1 settings and file-system seeds, or null when WASI is not enabled. */
  wasi: ResolvedWasi | null;
  /** Fuel budget, or null for none. The module is metered (needs the instrumenter's imports) when `fuel` or `cpu` is set. */
  fuel: number | null;
  /** The CPU cap, or null for none. */
  cpu: CpuCap | null;
  /** Fuel between two checkpoints that may preempt the guest (shared placement); absent: the CPU cap's, or the whole budget. */
  sliceFuel?: number;
  /** Rate limit of hypercalls as a whole, or null for none. */
  hypercallRate: ResolvedRateLimit | null;
  /** The block device's image, opened and checked by the root; null when block is not granted. */
  block: BlockInit | null;
  /** The NIC's rings and counters on the root's switch; null when net is not granted. */
  net: NetInit | null;
  /** The partition's own attestation key and certificate (never the host key); null when attestation is not granted. */
  attestation?: AttestationInit | null;
}

/** A partition's CPU cap as the worker applies it (see host/limits/cpu-governor.ts). */
export interface CpuCap {
  maxPercent: number;
  periodMs: number;
  /** Fuel between two checks of the cap. */
  sliceFuel: number;
}

/**
 * What the block front-end needs: an open image, its geometry, its id and its data key (never a
 * path, a name, the partition key or the master key). Made by storage's blockInit().
 */
export type BlockInit = BlockWorkerInit;

/** How a guest's run ended, as the worker reports it. */
export type WorkerOutcome =
  | { kind: 'exit'; code: number }
  | { kind: 'error'; error: ErrorCode; message: string };

/** Lifecycle messages of one partition's run, worker → root (a shared worker adds the partition's slot). */
export type WorkerMessage = { type: 'running' } | { type: 'ready' } | { type: 'done'; outcome: WorkerOutcome };

/** How a worker starts (its workerData): what it hosts. */
export type WorkerBoot =
  | {
      role: 'dedicated';
      /**
       * A dedicated worker serves one partition, then ends. With `reuse` (the embedder's opt-in,
       * HypervisorOptions.reuseWorkers) it takes another assignment after its partition ended.
       */
      reuse: boolean;
      /** Run the warm-up reactor first (a worker parked in the warm pool; not one spawned for a partition waiting now). */
      warmUp: boolean;
      /**
       * With `warmUp`: an Int32Array's one slot the worker sets to 1 when its warm-up is over
       * (`hv.scheduler().warmPool.ready`). A flag, not a message: a listener for messages on a
       * parked worker would keep the embedder's process alive.
       */
      warmed?: SharedArrayBuffer;
      /**
       * The process's spin budget (host/channel/spin.ts), given once at the spawn rather than in
       * each assignment: every shared buffer a message carries costs both threads ~15 µs (issue #15).
       */
      spin: SharedArrayBuffer;
    }
  | {
      role: 'shared';
      /** Rung by the root for a partition whose rings moved, or for a control message (host/channel/doorbell.ts). */
      doorbell: SharedArrayBuffer;
      /** Control messages (SharedControl), pulled synchronously by the scheduler. */
      control: MessagePort;
      /** The worker's own counters (WorkerStat). */
      stats: SharedArrayBuffer;
      /** Wall time a partition may hold the thread while others wait, ms. */
      sliceMs: number;
      /** How long the idle scheduler may poll its doorbell before it sleeps, µs (adaptive). */
      spinMicros: number;
      /** The process's spin budget (host/channel/spin.ts). */
      spin: SharedArrayBuffer;
    };

/** Root → shared worker, on its control port (then the doorbell's control slot is rung). */
export type SharedControl = { type: 'add'; slot: number; init: WorkerInit } | { type: 'kill'; slot: number; outcome: WorkerOutcome };

/** Shared worker → root: one partition's lifecycle message, by its slot. */
export interface SharedEvent {
  slot: number;
  message: WorkerMessage;
}

/** Root → dedicated worker: run this partition. */
export interface AssignMessage {
  type: 'assign';
  init: WorkerInit;
}

/**
 * Root → a worker the warm pool parks, posted with its spawn: nothing to do. The first message
 * a dedicated worker's thread receives cost it 0.1-0.14 ms more than any later one (from the
 * post to the worker's listener: 260-320 µs for a first assignment, 160-190 µs after this
 * message, session 10: the listener and the dispatch under it, compiled on first use); this one
 * takes that cost while the worker starts, off any start's path.
 */
export interface WarmMessage {
  type: 'warm';
}

/** A violation as carried on the event ring (JSON) and emitted by the partition. */
export interface ViolationRecord {
  call: string;
  status: string;
  reason: string;
}
