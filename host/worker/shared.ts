/**
 * A shared worker: many partitions on one thread, each its own instance, memory, dispatcher,
 * devices and counters (a PartitionContext), scheduled like virtual processors on a logical one.
 *
 * - Run queue, first in, first out. A partition runs for one slice (`sliceMs`, default 10 ms of
 *   wall time): its fuel checkpoints come every slice of fuel (a fraction of a millisecond of
 *   work), and at the first one past its time, if another partition waits, it is unwound and
 *   goes to the back of the queue (a preemption). A guest cannot avoid checkpoints: every
 *   function entry and loop header has one.
 * - A partition that must wait (console input, a frame, room in a ring, a sleep, an idle
 *   reactor's next call) is suspended with its condition and leaves the queue; the root rings
 *   this worker's doorbell for the partition when one of its rings moves, and a timer covers
 *   deadlines.
 * - When nothing is runnable the thread polls the doorbell briefly (`spinMicros`), then sleeps on it.
 * - Control messages (add a partition, kill one) arrive on a MessagePort, pulled synchronously
 *   between slices when the doorbell's control slot rings: this loop never returns to Node's
 *   event loop, and a runaway partition is unwound at its next checkpoint, so a kill waits at
 *   most one slice.
 *
 * A partition that throws, traps or is killed ends alone: its context is dropped (memory
 * scrubbed), the others never notice.
 */
import { receiveMessageOnPort } from 'node:worker_threads';
import type { WaitCondition } from '../channel/blocker.ts';
import { CONTROL_SLOT, Doorbell } from '../channel/doorbell.ts';
import type { SharedControl, SharedEvent, WorkerBoot, WorkerMessage, WorkerOutcome } from '../channel/protocol.ts';
import { Stat, WorkerStat } from '../channel/stats.ts';
import { PartitionContext, type Step } from './context.ts';
import { classify } from './outcome.ts';
import { SUSPEND_BYTES, SuspendingPlacement } from './suspend.ts';
import { RecentWait, SpinBudget, spinUntil } from '../channel/spin.ts';

interface Slot {
  slot: number;
  context: PartitionContext;
  stats: Float64Array;
  /** What it waits for, or null while runnable (queued or running). */
  wait: WaitCondition | null;
  queued: boolean;
  /** When it became runnable (for the time it waited for a slice). */
  readySince: number;
}

/** The worker's boot data (see WorkerBoot), and how it reports to the root. */
export type SharedWorkerOptions = Omit<Extract<WorkerBoot, { role: 'shared' }>, 'role'> & {
  post(event: SharedEvent): void;
  /**
   * A partition process (host/worker/process.ts) drives the scheduler from its event loop, which
   * must run at least once per slice to read the root's frames: a slice then ends at its time
   * even when no other partition is waiting for the thread.
   */
  yieldToHost?: boolean;
  /** Called after each slice with the slot that ran (a partition process forwards what it wrote). */
  onSlice?(slot: number): void;
};

/**
 * Timer entries the heap may hold beyond one per partition before it drops its stale ones: a
 * partition woken before its deadline (a frame for a receive with a long timeout) leaves its entry
 * behind, and without this a guest that waits that way again and again (two partitions trading
 * frames, each receive with a timeout of days) would grow the shared worker's heap without bound
 * until the worker, and every partition on it, ran out of memory. The heap is cleaned when it has
 * grown to twice its live entries plus this.
 */
const TIMER_SLACK = 64;

/**
 * A min-heap of (deadline, slot) for waits with a deadline. Stale entries (the slot no longer
 * waits for that deadline) are skipped when popped, and dropped by `compact` (see pushTimer).
 */
class Timers {
  private heap: { at: number; slot: Slot }[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(at: number, slot: Slot): void {
    const h = this.heap;
    h.push({ at, slot });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  /**
   * Keeps only the entries `live` accepts, one per slot at the most (a slot's live entries all
   * hold its one deadline), as a heap again: a sorted array is one. Linear in the entries plus the sort of the survivors (at most one per
   * partition).
   */
  compact(live: (at: number, slot: Slot) => boolean): void {
    const seen = new Set<Slot>();
    const kept = this.heap.filter((t) => {
      if (seen.has(t.slot) || !live(t.at, t.slot)) return false;
      seen.add(t.slot);
      return true;
    });
    kept.sort((a, b) => a.at - b.at);
    this.heap = kept;
  }

  /** The earliest deadline, or Infinity. */
  get next(): number {
    return this.heap[0]?.at ?? Infinity;
  }

  pop(): { at: number; slot: Slot } | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.at < h[m]!.at) m = l;
        if (r < h.length && h[r]!.at < h[m]!.at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

export class SharedScheduler {
  private readonly slots = new Map<number, Slot>();
  private readonly queue: Slot[] = [];
  private readonly timers = new Timers();
  /** The timer heap's size at which its stale entries are dropped (see pushTimer). */
  private timerLimit = TIMER_SLACK;
  private readonly doorbell: Doorbell;
  private readonly wstats: Float64Array;
  private readonly scratch = new Uint8Array(SUSPEND_BYTES);
  private running: Slot | null = null;
  private readonly budget: SpinBudget;
  /** How long the thread recently waited for news when idle. */
  private readonly gaps = new RecentWait();
  private sliceEnd = 0;
  /**
   * The doorbell's counter as it was just before the last take of its news. A ring after that
   * read is news the slice about to run must yield for: read after the take instead, a ring
   * landing between the take and the slice would be neither taken nor seen as news, and a
   * partition that does not stop on its own would keep the thread past its slice.
   */
  private seqTaken = 0;
  /** The doorbell's callback and the idle poll's test: one closure each for the worker's life, not one per turn. */
  private readonly onRing = (slot: number): void => this.poke(slot);
  private idleSeq = 0;
  private readonly rung = (): boolean => this.doorbell.seq !== this.idleSeq;
  private readonly clock = {
    shouldYield: (): boolean => {
      // Only when someone else could run (a lone partition keeps the thread: no unwind for
      // nothing), and only past the slice. The cheap checks first: this runs after every import.
      if (this.toHost) return performance.now() >= this.sliceEnd;
      if (this.queue.length === 0 && this.doorbell.seq === this.seqTaken && this.timers.next === Infinity) return false;
      const t = performance.now();
      return t >= this.sliceEnd && (this.queue.length > 0 || this.doorbell.seq !== this.seqTaken || this.timers.next <= t);
    },
  };

  private readonly toHost: boolean;

  constructor(private readonly options: SharedWorkerOptions) {
    this.toHost = options.yieldToHost === true;
    this.doorbell = new Doorbell(options.doorbell);
    this.budget = new SpinBudget(options.spin);
    this.wstats = new Float64Array(options.stats);
  }

  /** The loop. Never returns: the worker ends when the root terminates it. */
  run(): never {
    for (;;) {
      const seq = this.doorbell.seq;
      if (!this.step()) this.idle(seq);
    }
  }

  /** One turn: takes the doorbell's news, fires due timers and runs one slice. False when nothing was runnable. */
  step(): boolean {
    this.seqTaken = this.doorbell.seq;
    this.doorbell.take(this.onRing);
    this.fireTimers();
    const next = this.queue.shift();
    this.wstats[WorkerStat.RUN_QUEUE] = this.queue.length;
    if (next === undefined) return false;
    next.queued = false;
    this.slice(next);
    return true;
  }

  /** The earliest deadline a waiting partition has (performance.now() scale), or Infinity. */
  get nextDeadline(): number {
    return this.timers.next;
  }

  /** Partitions hosted. */
  get size(): number {
    return this.slots.size;
  }

  /** Entries in the timer heap, stale ones included (tests: at most twice the partitions plus TIMER_SLACK). */
  get timerEntries(): number {
    return this.timers.size;
  }

  private idle(seq: number): void {
    const since = performance.now();
    // Poll a moment when news has been coming that fast and a core is free; else sleep.
    this.idleSeq = seq;
    if (!spinUntil(this.rung, this.options.spinMicros, this.gaps, this.budget)) {
      const next = this.timers.next;
      const timeout = next === Infinity ? Infinity : next - performance.now();
      if (timeout > 0) {
        this.wstats[WorkerStat.IDLE_WAITS]!++;
        this.doorbell.wait(seq, timeout === Infinity ? undefined : timeout);
      }
    }
    this.gaps.add((performance.now() - since) * 1000);
  }

  private poke(slot: number): void {
    if (slot === CONTROL_SLOT) {
      for (let m = receiveMessageOnPort(this.options.control); m !== undefined; m = receiveMessageOnPort(this.options.control)) {
        this.control(m.message as SharedControl);
      }
      return;
    }
    const s = this.slots.get(slot);
    if (s === undefined || s.wait === null) return;
    const w = s.wait;
    // An event ring with room again: first move the partition's queued lines along.
    if (w.what === 'writable') s.context.outbox.flush();
    if (satisfied(w)) {
      this.ready(s);
      return;
    }
    // Rung, yet the wait still holds: this ring may be the root's answer to an ask of an earlier
    // wait, and the root cleared the ask of this one with it (see `ask`). Ask again, then look.
    ask(w);
    if (satisfied(w)) this.ready(s);
  }

  private fireTimers(): void {
    // No clock read when no partition waits with a deadline (an idle reactor has none).
    if (this.timers.next === Infinity) return;
    const now = performance.now();
    while (this.timers.next <= now) {
      const t = this.timers.pop()!;
      const s = t.slot;
      if (this.slots.get(s.slot) === s && s.wait !== null && s.wait.deadline === t.at) this.ready(s);
    }
  }

  private ready(s: Slot): void {
    s.wait = null;
    if (s.queued || this.running === s) return;
    s.queued = true;
    s.readySince = performance.now();
    this.queue.push(s);
  }

  /** Adds or kills a partition (a shared worker's control port; a partition process calls it between turns). */
  control(m: SharedControl): void {
    if (m?.type === 'add') {
      let context: PartitionContext;
      const placement = new SuspendingPlacement(this.clock, this.scratch);
      try {
        context = new PartitionContext(m.init, placement, (message) => this.post(m.slot, message));
      } catch (error) {
        this.post(m.slot, { type: 'done', outcome: classify(error) });
        return;
      }
      const s: Slot = { slot: m.slot, context, stats: context.stats, wait: null, queued: false, readySince: 0 };
      this.slots.set(m.slot, s);
      this.wstats[WorkerStat.CONTEXTS] = this.slots.size;
      this.ready(s);
    } else if (m?.type === 'kill') {
      const s = this.slots.get(m.slot);
      if (s === undefined) return;
      this.finish(s, s.context.kill(m.outcome));
    }
  }

  /** Runs one partition for up to one slice. */
  private slice(s: Slot): void {
    const now = performance.now();
    s.stats[Stat.SCHED_WAIT_MS]! += now - s.readySince;
    s.stats[Stat.SCHED_SLICES]!++;
    this.wstats[WorkerStat.SLICES]!++;
    this.running = s;
    this.sliceEnd = now + this.options.sliceMs;
    s.context.resumeClock();
    let step: Step;
    try {
      step = s.context.resume();
    } catch (error) {
      step = { kind: 'ended', outcome: s.context.kill(classify(error)) };
    }
    this.running = null;
    if (step.kind !== 'ended') s.context.pauseClock();
    this.options.onSlice?.(s.slot);
    if (step.kind === 'ended') {
      this.finish(s, step.outcome);
    } else if (step.kind === 'yield') {
      s.stats[Stat.SCHED_PREEMPTIONS]!++;
      this.wstats[WorkerStat.PREEMPTIONS]!++;
      this.ready(s);
    } else {
      s.stats[Stat.SCHED_WAITS]!++;
      const w = step.wait;
      s.wait = w;
      // Ask the root to ring for this ring first, then look: a move in between is never missed.
      ask(w);
      if (satisfied(w)) this.ready(s);
      else if (w.deadline !== Infinity) this.pushTimer(w.deadline, s);
    }
  }

  private pushTimer(at: number, s: Slot): void {
    // Entries of slots that no longer wait for them (woken early, or ended) go once the heap has
    // doubled since the last clean-up: at most one live entry per partition stays, so the heap
    // holds at most twice the partitions plus TIMER_SLACK, and each clean-up is paid for by the
    // pushes since the last one.
    if (this.timers.size >= this.timerLimit) {
      this.timers.compact((deadline, slot) => this.slots.get(slot.slot) === slot && slot.wait !== null && slot.wait.deadline === deadline);
      this.timerLimit = 2 * this.timers.size + TIMER_SLACK;
    }
    this.timers.push(at, s);
  }

  private finish(s: Slot, outcome: WorkerOutcome): void {
    if (this.slots.get(s.slot) !== s) return;
    this.slots.delete(s.slot);
    const at = this.queue.indexOf(s);
    if (at >= 0) this.queue.splice(at, 1);
    this.wstats[WorkerStat.CONTEXTS] = this.slots.size;
    this.post(s.slot, { type: 'done', outcome });
  }

  private post(slot: number, message: WorkerMessage): void {
    this.options.post({ slot, message });
  }
}

/**
 * Asks the root to ring this worker's doorbell at the next move of the ring `w` waits on (a wait
 * for a time has none). An ask is one bit per ring and kind, not tied to a wait: the root reads
 * it after it published its move, clears it and rings. A partition that saw that move by itself
 * (its look after asking, or the next call already in the ring when it finished the last) may run
 * it and ask again for its next wait before the root, its thread preempted between the two,
 * clears the bit: its new ask is gone, and the ring that follows finds nothing new. Every clear
 * is followed by a ring, so a ring that finds a wait unsatisfied asks again (`poke`): without
 * that, the root's next move (the next call) rang nothing and waited for its budget (issue #16).
 */
function ask(w: WaitCondition): void {
  if (w.what === 'readable') w.ring.wantRecord();
  else if (w.what === 'writable') w.ring.wantRoom();
}

function satisfied(w: WaitCondition): boolean {
  if (w.what === 'readable') return w.ring.writeSeq !== w.seq;
  if (w.what === 'writable') return w.ring.readSeq !== w.seq;
  return performance.now() >= w.deadline;
}
