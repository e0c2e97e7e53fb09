import type { ErrorCode } from '../errors.ts';
import type { ResolvedDevices } from '../devices/config.ts';

/**
 * What crosses the worker boundary. Only plain data and shared buffers: the worker never
 * receives a function, an object with methods or anything of the root's state.
 */

/** Record kinds on the event ring (worker → root). */
export const EventKind = {
  STDOUT: 1,
  STDERR: 2,
  VIOLATION: 3,
} as const;

/** Record kinds on the input ring (root → worker). */
export const InputKind = {
  LINE: 1,
} as const;

/** workerData for a partition's worker. */
export interface WorkerInit {
  name: string;
  module: WebAssembly.Module;
  args: string[];
  devices: ResolvedDevices;
  /** Per-partition counters (see stats.ts). */
  stats: SharedArrayBuffer;
  /** Event ring, worker → root: console lines and violations. */
  events: SharedArrayBuffer;
  /** Console input ring, root → worker. */
  input: SharedArrayBuffer;
  /** Violation reports per second before further ones are only counted. */
  violationsPerSecond: number;
  /** Fuel budget when the module is fuel-metered (it then needs the instrumenter's imports), else null. */
  fuel: number | null;
}

/** How a guest's run ended, as the worker reports it. */
export type WorkerOutcome =
  | { kind: 'exit'; code: number }
  | { kind: 'error'; error: ErrorCode; message: string };

export type WorkerMessage = { type: 'running' } | { type: 'done'; outcome: WorkerOutcome };

/** A violation as carried on the event ring (JSON) and emitted by the partition. */
export interface ViolationRecord {
  call: string;
  status: string;
  reason: string;
}
