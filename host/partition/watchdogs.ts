/**
 * Every watchdog of the process (a run's start-up or wall-clock budget, each reactor call's
 * budget) on one timer.
 *
 * A reactor call used to arm a `setTimeout` when it was sent and clear it when its result came:
 * a timer object, a timer-list insert and removal and a libuv call per call, measurable on a call
 * that costs tens of µs in all (bench/README.md, "Where a reactor call's time goes"). Here arming
 * is a store and an array push, disarming a swap-remove, and the one timer moves only when a
 * deadline earlier than the one it waits for is armed. A deadline that was disarmed leaves the
 * timer where it was: when it fires and finds nothing due it waits for the earliest deadline
 * left (or stops, when none is). So N sequential calls with the same budget cost one timer in
 * all, not N.
 *
 * Firing: a watchdog fires once its deadline (performance.now(), ms) has passed, never before;
 * expired watchdogs are removed before any of them fires, so a handler may arm or disarm others.
 * The timer keeps the process alive exactly while a watchdog is armed, as a timer per watchdog
 * did.
 */

/** One watchdog: armed at most once at a time. Owned by its run; reused for every arming. */
export class Watchdog {
  /** Deadline, performance.now() ms; meaningful while armed. */
  at = 0;
  /** Index in the armed list, or -1. */
  slot = -1;

  constructor(private readonly expire: () => void) {}

  get armed(): boolean {
    return this.slot >= 0;
  }

  /** Arms (or re-arms) this watchdog to fire `ms` from now. Infinity (or NaN): disarmed. */
  arm(ms: number): void {
    if (!Number.isFinite(ms)) {
      this.disarm();
      return;
    }
    this.at = performance.now() + ms;
    if (this.slot < 0) {
      this.slot = armed.length;
      armed.push(this);
      if (armed.length === 1) timer?.ref();
    }
    if (timer === null || this.at < timerAt) schedule(this.at);
  }

  disarm(): void {
    const i = this.slot;
    if (i < 0) return;
    this.slot = -1;
    const last = armed.pop()!;
    if (last !== this) {
      armed[i] = last;
      last.slot = i;
    }
    // Nothing armed: the (stale) timer no longer holds the process.
    if (armed.length === 0) timer?.unref();
  }

  /** Called by the timer once the deadline passed (already disarmed). */
  fire(): void {
    this.expire();
  }
}

const armed: Watchdog[] = [];
let timer: NodeJS.Timeout | null = null;
/** When `timer` fires (performance.now() ms). */
let timerAt = Infinity;

/** Node's timers take at most 2^31 − 1 ms; the schema bounds budgets below that anyway. */
const MAX_DELAY_MS = 2 ** 31 - 1;

function schedule(at: number): void {
  if (timer !== null) clearTimeout(timer);
  timerAt = at;
  // Timers run on the loop's millisecond clock: round up, and re-check on firing (`tick`).
  const delay = Math.min(MAX_DELAY_MS, Math.max(1, Math.ceil(at - performance.now())));
  timer = setTimeout(tick, delay);
  if (armed.length === 0) timer.unref();
}

function tick(): void {
  timer = null;
  timerAt = Infinity;
  const now = performance.now();
  const due: Watchdog[] = [];
  let next = Infinity;
  for (let i = 0; i < armed.length; ) {
    const w = armed[i]!;
    if (w.at <= now) {
      w.disarm(); // moves the last one into slot i: look at i again
      due.push(w);
    } else {
      if (w.at < next) next = w.at;
      i++;
    }
  }
  if (next !== Infinity) schedule(next);
  // Each handler guards itself (WorkerRun.guard); one that throws anyway does not stop the others.
  for (const w of due) {
    try {
      w.fire();
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }
}

/** Watchdogs armed now (tests). */
export function armedWatchdogs(): number {
  return armed.length;
}
