/**
 * What keeps the app's process alive while reactor calls are waiting or running: one referenced
 * handle for the whole process, held by every partition that has calls queued or in flight.
 *
 * An idle reactor must not keep the process alive (an app that is done with it may simply end,
 * as with an idle socket); a call in flight must (its result is coming). Each run's worker
 * used to be referenced when a call was made and unreferenced when its result came: four native
 * calls per call (a Worker's handle and port, each way), and a set and its updates for a shared
 * worker. Now a run's worker (or process) is unreferenced once, when the reactor is ready, and
 * the calls are counted here: the handle is referenced when the first partition takes work and
 * unreferenced when the last one is done. A referenced handle is what Node counts, whoever holds
 * it; the workers and processes keep delivering their results while unreferenced.
 *
 * The handle is a timer that never fires in practice (the longest interval Node allows, ~24.8
 * days; if it ever fires it does nothing). Referencing a timer is JavaScript bookkeeping plus, at
 * most, one libuv call when it is the only referenced timer of the process.
 */

let holders = 0;
let handle: NodeJS.Timeout | null = null;

/** Node's timers take at most 2^31 − 1 ms. */
const NEVER_MS = 2 ** 31 - 1;

function noop(): void {}

/** A partition took work (its first call queued or in flight): the process stays alive. */
export function holdProcess(): void {
  if (holders++ === 0) {
    handle ??= setInterval(noop, NEVER_MS);
    handle.ref();
  }
}

/** A partition has no work left (every call of it answered or failed). */
export function releaseProcess(): void {
  if (holders === 0) return;
  if (--holders === 0) handle!.unref();
}

/** Partitions holding the process now (tests). */
export function processHolders(): number {
  return holders;
}
