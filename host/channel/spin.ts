import os from 'node:os';

/**
 * Adaptive spinning. A thread that expects news within microseconds (the root waiting for a
 * reactor's reply, a reactor's worker waiting for its next call) can poll instead of sleeping
 * and save the wake-up (tens of µs), but a poller holds a core. Two rules keep it paying:
 *
 * - spin only when it is likely to pay: when recent waits (`RecentWait`, a moving average of
 *   what this waiter actually waited) were shorter than the spin window;
 * - never spin with more busy threads than the machine has cores: one `SpinBudget` (shared
 *   memory) of as many places as cores serves the whole process. The root holds a place while it
 *   has calls in flight (it is busy taking their replies, polling or not); a worker takes one for
 *   the length of its poll, or sleeps when none is free. So with the root busy on a 2-core machine
 *   one worker may poll, never two.
 */

const SPINNERS = 0;
const LIMIT = 1;

export class SpinBudget {
  private readonly a: Int32Array;

  /** A budget for `limit` concurrent spinners. */
  static allocate(limit: number): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(8);
    Atomics.store(new Int32Array(sab), LIMIT, Math.max(0, limit));
    return sab;
  }

  constructor(readonly sab: SharedArrayBuffer) {
    this.a = new Int32Array(sab);
  }

  /** Takes a place whatever the count (a thread that is busy anyway, e.g. the root with calls in flight). */
  hold(): void {
    Atomics.add(this.a, SPINNERS, 1);
  }

  /** Takes a place to spin; false (and nothing taken) when the budget is full. */
  enter(): boolean {
    if (Atomics.add(this.a, SPINNERS, 1) < Atomics.load(this.a, LIMIT)) return true;
    Atomics.sub(this.a, SPINNERS, 1);
    return false;
  }

  leave(): void {
    Atomics.sub(this.a, SPINNERS, 1);
  }

  /** Threads spinning now. */
  get spinning(): number {
    return Atomics.load(this.a, SPINNERS);
  }
}

let processBudget: SpinBudget | null = null;

/** The root process's budget, one for every Hypervisor and worker: as many places as cores. */
export function processSpinBudget(): SpinBudget {
  // Asked on every call that starts or ends the root's busy spell: the core count (a syscall
  // under os.availableParallelism) is read once, when the budget is made.
  return (processBudget ??= new SpinBudget(SpinBudget.allocate(typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length)));
}

/** Share of recent waits that must have ended within the spin window for a spin to pay. */
const SPIN_HIT_SHARE = 0.75;

/**
 * Recent waits of one waiter, µs: their moving average and the share of them that ended within
 * the spin window last asked about (each new sample weighs 1/8 in both).
 *
 * A spin pays only when it usually sees the news: one that runs out wastes its whole window of
 * CPU and then sleeps anyway. On a machine whose cores are busy with other work, replies come
 * late often enough that an average under the window still means many wasted spins (measured on
 * the 2-core machine at load 20: a root and a reactor both spinning used ~1.5x the CPU per call of
 * neither); so besides the average, at least SPIN_HIT_SHARE of recent waits must have ended within
 * the window. Waits are recorded whether or not the waiter spun, so spinning resumes by itself
 * once replies come quickly again.
 *
 * A waiter that has not waited yet does not spin; from its first recorded wait on it starts from
 * "spin" (the average at 0, every wait a hit), so a reactor called in a loop spins from its second
 * call. A reactor called now and then (a random one of thousands) has no wait to go by; its worker
 * sleeps and must be woken first. Spinning for its first call made the root spin its whole window
 * for nearly every such call, and on a busy machine take the core the woken worker needed (issue
 * #15: a random one of 10,000 shared partitions, 97-111 µs median with the spin, 50-73 µs
 * without, load 5-9). Starting from "no spin" instead (no hits) was worse where spinning pays: a
 * wait the root did not spin for includes its own wake-up, so a reactor that answers within the
 * window when the root spins looked slower than the window when it did not, and never started.
 */
export class RecentWait {
  value = 0;
  /** Moving share (0..1) of waits that ended within `window`. */
  hits = 1;
  private window = Infinity;
  /** A wait was recorded: until then the waiter does not spin. */
  private seen = false;

  add(micros: number): void {
    this.seen = true;
    this.value += (micros - this.value) / 8;
    this.hits += ((micros <= this.window ? 1 : 0) - this.hits) / 8;
  }

  /** True when a spin of `windowMicros` is likely to see the news. */
  within(windowMicros: number): boolean {
    this.window = windowMicros;
    return this.seen && this.value <= windowMicros && this.hits >= SPIN_HIT_SHARE;
  }
}

/**
 * Polls `ready` for up to `micros` when recent waits say it pays and the budget has a place.
 * True when `ready()` became true while polling.
 */
export function spinUntil(ready: () => boolean, micros: number, recent: RecentWait, budget: SpinBudget | null): boolean {
  if (micros <= 0 || !recent.within(micros)) return false;
  // `null`: the caller already holds a place (the root with a call in flight).
  if (budget !== null && !budget.enter()) return false;
  try {
    const end = performance.now() + micros / 1000;
    while (!ready()) if (performance.now() >= end) return false;
    return true;
  } finally {
    budget?.leave();
  }
}
