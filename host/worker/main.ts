/**
 * The worker entry point (dist/worker.js): the inside of a logical processor. A shared worker
 * runs the scheduler of host/worker/shared.ts for as long as it lives. A dedicated worker
 * is started before it is needed (the root's warm pool), waits for one assignment, runs that
 * partition to its end on this thread and reports how it ended; then it ends, unless the
 * embedder opted in to reusing workers (host/scheduler/warm-pool.ts says why that is off by default).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AssignMessage, SharedEvent, WarmMessage, WorkerBoot, WorkerMessage, WorkerOutcome } from '../channel/protocol.ts';
import { SharedScheduler } from './shared.ts';
import { holdGuestMemory, runDedicated } from './context.ts';
import { classify } from './outcome.ts';
import { warmUp } from './warmup.ts';

/** How long a parked worker sits idle before it warms up. */
const WARM_UP_DELAY_MS = 25;
/**
 * Runs of the warm-up: one compiles the start path to bytecode; more give V8 the feedback to
 * tier it up, so the partition's own start runs it faster (a few ms of an idle worker's time,
 * once). Sixteen, not four: after four, V8's baseline compiler (Sparkplug, which compiles the
 * functions that became due in one batch) ran its batch inside the partition's own start, 60-70
 * µs in the middle of the dispatcher's construction (session 10: gone with --no-sparkplug, and
 * with eight runs); with eight, the context build still took ~40 µs more than with sixteen
 * (165-183 against 130-138 µs, four alternated pairs).
 */
const WARM_UP_RUNS = 16;

/**
 * Runs one assignment to its end and reports how it ended. The warm-up runs its guests through
 * here too (posting nothing): a function a worker first calls after sitting idle in the pool
 * cost its partition's start ~0.1 ms to compile (this one did, measured with timestamps).
 */
function serve(message: AssignMessage, spin: SharedArrayBuffer, post: (message: WorkerMessage) => void): void {
  let outcome: WorkerOutcome;
  try {
    outcome = runDedicated(message.init, post, spin);
  } catch (error) {
    outcome = classify(error);
  }
  post({ type: 'done', outcome });
}

/** What the warm-up's runs report: nothing reaches the root. */
const discard = (): void => {};

if (parentPort !== null && (workerData as WorkerBoot).role === 'shared') {
  const boot = workerData as Extract<WorkerBoot, { role: 'shared' }>;
  const port = parentPort;
  new SharedScheduler({ ...boot, post: (event: SharedEvent) => port.postMessage(event) }).run();
} else if (parentPort !== null) {
  const boot = workerData as Extract<WorkerBoot, { role: 'dedicated' }>;
  const port = parentPort;
  // The port's own (native) postMessage, bound: no function of ours to compile on the start's
  // path ('running' is the first message a worker sends; a wrapper cost ~50 µs there).
  const post: (message: WorkerMessage) => void = port.postMessage.bind(port);
  let warming: NodeJS.Timeout | null = null;
  let assigned = false;
  // A `warm` message (the pool's first, see WarmMessage) is received and nothing more.
  const onMessage = (message: AssignMessage | WarmMessage): void => {
    // Never a second partition in a worker that was not made for reuse: the root enforces it
    // too, and this side refuses even if the root were wrong. A flag, not `port.off`: removing
    // the port's last listener costs ~0.1 ms the first time a thread does it (measured), on
    // the start path; the port is closed right after the run anyway.
    if (message?.type !== 'assign' || (assigned && !boot.reuse)) return;
    assigned = true;
    if (warming !== null) clearTimeout(warming);
    warming = null;
    serve(message, boot.spin, post);
    if (!boot.reuse) port.close();
  };
  port.on('message', onMessage);
  // While nothing is assigned: run the start path (WARM_UP_RUNS times), so the first start is
  // not cold. Only in a worker parked in the pool, and only once it has sat idle a moment: a
  // partition that is already waiting (taken from the pool at once) is served first.
  // One run per turn of the event loop, so an assignment that arrives meanwhile waits for one
  // run at most; none after it.
  if (boot.warmUp) {
    let runs = 0;
    const step = (): void => {
      warming = null;
      try {
        warmUp((init) => serve({ type: 'assign', init }, boot.spin, discard));
      } catch {
        // Only an optimisation: a worker that could not warm up still serves its partition.
        return;
      }
      if (assigned) return;
      if (++runs < WARM_UP_RUNS) {
        warming = setTimeout(step, 0);
        warming.unref();
      } else {
        // Last, so the warm-up's own partitions do not take it: the GuestMemory the start would
        // make, which took a thread just woken by its assignment ~0.1 ms (issue #15).
        holdGuestMemory();
        if (boot.warmed !== undefined) Atomics.store(new Int32Array(boot.warmed), 0, 1);
      }
    };
    warming = setTimeout(step, WARM_UP_DELAY_MS);
    warming.unref();
  }
}
