import type { ViolationRecord, WorkerInit, WorkerOutcome } from '../channel/protocol.ts';
import type { ErrorCode } from '../errors.ts';

/**
 * Where one run of a partition executes, as the root sees it: the seam between a partition's
 * handle (host/partition/) and the logical processors the scheduler owns. A dedicated worker
 * from the warm pool, a slot on a shared worker, and a child process all look alike to
 * a run: it launches with its init (plain data, the module and its channels), hears lifecycle
 * messages and the executor's end, and can kill it.
 *
 * The run's traffic itself (console, calls, results, violations) does not pass through here:
 * it flows on the channels in the init (host/channel/), which every placement carries.
 */
/** Where a run executes: a dedicated worker, a shared worker, a partition process of its own, or a slot on a shared partition process. */
export type RunPlacement = 'dedicated' | 'shared' | 'process' | 'shared-process';

export interface RunHost {
  readonly placement: RunPlacement;
  /** Hands the run to its executor; what the executor says comes back through `events`. */
  launch(init: WorkerInit, events: RunHostEvents): void;
  /** Ends the run now with `outcome` (a dedicated worker is terminated; a shared one drops the partition). */
  kill(outcome: WorkerOutcome): void;
  /** The run reported `done`: the executor is free (a dedicated worker ends, or returns to the pool with reuse). */
  release(): void;
  /** Whether the run keeps the app's process alive (an idle reactor does not; work in flight does). */
  keepAlive(on: boolean): void;
  /** Tells the executor that one of the run's rings moved (a shared worker sleeps on one doorbell for all its partitions). */
  wake(): void;
  /** Which worker runs it, for `hv.scheduler()` (null before launch or after the end). */
  readonly workerId: number | null;
}

export interface RunHostEvents {
  /** A lifecycle message of this run (unchecked: the run validates it). */
  message(message: unknown): void;
  /** The executor broke its channel's protocol (a partition process: a forged frame); its end follows. */
  violation?(violation: ViolationRecord): void;
  /** The executor reported an error (e.g. it ran out of heap); its exit follows. */
  error(error: unknown): void;
  /**
   * The executor can no longer report for this run (it exited, or was terminated). `outcome`:
   * how the run ended, when the host knows better than the exit code (a shared worker that died
   * ends each of its runs with ERR_KILLED and the reason).
   */
  exit(code: number, outcome?: { kind: 'error'; error: ErrorCode; message: string }): void;
}
