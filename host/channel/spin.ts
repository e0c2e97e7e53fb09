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

  /** Places in all: the cores of the machine, for the process's budget. */
  get limit(): number {
    return Atomics.load(this.a, LIMIT);
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
 * Before its first recorded wait a waiter has nothing to go by: it asks `first` (a SpinChoice the
 * process shares among such waiters), or does not spin without one. From its first wait on it
 * starts from "spin" (the average at 0, every wait a hit), so a reactor called in a loop spins
 * from its second call. See SpinChoice for why the first wait is not simply a spin.
 */
export class RecentWait {
  value = 0;
  /** Moving share (0..1) of waits that ended within `window`. */
  hits = 1;
  private window = Infinity;
  /** A wait was recorded: from then on this waiter's own waits decide. */
  private seen = false;
  /** What `first` chose for the wait in progress: 0 nothing asked, 1 spin, 2 sleep. */
  private chose = 0;

  constructor(private readonly first: SpinChoice | null = null) {}

  add(micros: number): void {
    if (this.chose !== 0) this.first!.record(this.chose === 1, micros);
    this.chose = 0;
    this.seen = true;
    this.value += (micros - this.value) / 8;
    this.hits += ((micros <= this.window ? 1 : 0) - this.hits) / 8;
  }

  /** True when a spin of `windowMicros` is likely to see the news. */
  within(windowMicros: number): boolean {
    this.window = windowMicros;
    if (!this.seen) {
      if (this.first === null) return false;
      const spin = this.first.choose();
      this.chose = spin ? 1 : 2;
      return spin;
    }
    return this.value <= windowMicros && this.hits >= SPIN_HIT_SHARE;
  }
}

/** Recent waits each SpinChoice keeps per choice (the median of these decides). */
const CHOICE_SAMPLES = 15;

/**
 * Whether to spin for a wait the waiter has no history for (the root waiting for the first reply
 * of a reactor: a random one of thousands is nearly always a first), chosen by how long such
 * waits took recently with a spin and without: the choice with the shorter median of its last 15,
 * and the other one time in 8, so a change of conditions is seen. One per process, shared by every
 * such waiter. A median, not an average: one wait of milliseconds (a thread that lost its core)
 * would hold an average up for dozens of waits.
 *
 * Neither fixed choice holds up: spinning for every first reply answered a random one of 10,000
 * shared partitions in 37-57 µs median in some runs at load 2-7, but in 90-111 µs in others and
 * at load 7-10 (the root's spin took the core the woken worker needed); never spinning, 47-80 µs
 * at load 5-9 but 53-78 µs where spinning did well (the root's own wake-up added to every reply)
 * (issue #15, docs/PERFORMANCE.md "Session 10"). A wait that was not spun for includes the
 * waiter's wake-up, and a spun one may include a wasted window: each is the real cost of its
 * choice, which is what the medians compare.
 */
export class SpinChoice {
  /** The last CHOICE_SAMPLES waits (µs) with a spin and without, oldest overwritten first; 0 until filled. */
  private readonly spun = new Float64Array(CHOICE_SAMPLES);
  private readonly slept = new Float64Array(CHOICE_SAMPLES);
  private spunAt = 0;
  private sleptAt = 0;
  private readonly sorted = new Float64Array(CHOICE_SAMPLES);
  private turns = 0;

  /** True to spin for this wait. */
  choose(): boolean {
    const spin = this.median(this.spun) <= this.median(this.slept);
    return (++this.turns & 7) === 0 ? !spin : spin;
  }

  record(spun: boolean, micros: number): void {
    if (spun) {
      this.spun[this.spunAt] = micros;
      this.spunAt = (this.spunAt + 1) % CHOICE_SAMPLES;
    } else {
      this.slept[this.sleptAt] = micros;
      this.sleptAt = (this.sleptAt + 1) % CHOICE_SAMPLES;
    }
  }

  /** Median of recent waits with (true) or without a spin: 0 before any (so the first choice is a spin). */
  recent(spun: boolean): number {
    return this.median(spun ? this.spun : this.slept);
  }

  private median(samples: Float64Array): number {
    const s = this.sorted;
    s.set(samples);
    s.sort();
    return s[CHOICE_SAMPLES >>> 1]!;
  }
}

let processFirstWaits: SpinChoice | null = null;

/** The process's SpinChoice for the root's first wait on each reactor run. */
export function firstReplyChoice(): SpinChoice {
  return (processFirstWaits ??= new SpinChoice());
}

/** Share of a poller's recent polls that missed the news from which it mostly stops polling. */
const OUTRUN_SHARE = 0.75;
/** While it mostly stops, it still polls for one wait in this many (so that waits that became short are seen). */
const OUTRUN_PROBE = 8;

/**
 * Whether a poll for a wait that usually ends after the window (per RecentWait) still pays: it
 * does while most recent polls saw the news. A poll of the root for a reactor called now and
 * then often sees the answer within the window where the same wait without a poll, which
 * includes the root's own wake-up, ends after it (docs/PERFORMANCE.md, "Session 14: row 3").
 * Each poll's outcome weighs 1/8 in a moving share; once OUTRUN_SHARE of recent polls missed
 * (calls that take longer than the window, or a poll its caller ended early), only one wait in
 * OUTRUN_PROBE is polled for, and an answered one brings the share down again.
 */
export class PollOutruns {
  /** Moving share (0..1) of recent polls that missed the news. */
  share = 0;
  private skipped = 0;

  /** True to poll for this wait. */
  pays(): boolean {
    if (this.share < OUTRUN_SHARE) return true;
    if (++this.skipped < OUTRUN_PROBE) return false;
    this.skipped = 0;
    return true;
  }

  /** A poll ended: `missed` when it did not see the news. */
  record(missed: boolean): void {
    this.share += ((missed ? 1 : 0) - this.share) / 8;
  }
}

/**
 * Polls `ready` for up to `micros` when recent waits say it pays and the budget has a place.
 * True when `ready()` became true while polling.
 */
export function spinUntil(ready: () => boolean, micros: number, recent: RecentWait, budget: SpinBudget | null): boolean {
  if (micros <= 0 || !recent.within(micros)) return false;
  return spinFor(ready, micros, budget);
}

/**
 * spinUntil for a caller that asked `recent.within(micros)` itself (with micros > 0) and got
 * true: polls `ready` for up to `micros` when the budget has a place. A dedicated reactor's
 * worker asks first, inline, so that the wait it nearly always takes when called now and then
 * costs one function call less (docs/PERFORMANCE.md, "Session 13: row 3").
 */
export function spinFor(ready: () => boolean, micros: number, budget: SpinBudget | null): boolean {
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
