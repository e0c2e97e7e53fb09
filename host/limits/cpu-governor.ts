/**
 * A CPU cap: a partition may run at most `maxPercent` of each `periodMs`; once it has used its
 * quota it is paused until the period ends (the bandwidth controller Linux CFS uses for cgroups,
 * `cpu.max`). Pure and clock-injected: `now()` and `sleep(ms)` come from the caller, so tests
 * drive it with a fake clock and no real waiting.
 *
 * The governor is consulted at checkpoints (`checkpoint()`), which the worker reaches every
 * slice of fuel. "Running time" is the wall time between checkpoints that was not spent paused:
 * Node 20 has no per-thread CPU clock, so time the OS gave to another thread, or that the guest
 * spent blocked in a hypercall, counts as running. The cap is therefore an upper bound of the
 * partition's share of a core, never a guarantee of it.
 *
 * Overshoot: a checkpoint comes a slice late, so a period's use can exceed its quota by up to
 * one slice's time. The excess is carried as debt into the next period (so the long-run share
 * stays at maxPercent), but at most one quota of it, so a single long stretch (a blocking
 * hypercall) never pauses the partition for more than one extra period. A period that ends
 * while the partition runs under its quota carries nothing over. At 100% a partition is never
 * paused.
 */
export interface CpuGovernorOptions {
  /** Share of one core, 1..100 (percent). */
  maxPercent: number;
  /** Length of a period, ms. */
  periodMs: number;
  /** Monotonic milliseconds. */
  now: () => number;
  /** Blocks the calling thread for `ms` (the partition's own worker). */
  sleep: (ms: number) => void;
}

export class CpuGovernor {
  readonly quotaMs: number;
  readonly periodMs: number;
  /** Running time so far (not paused), ms. */
  runningMs = 0;
  /** Time spent paused by the cap, ms. */
  pausedMs = 0;
  /** Times the partition was paused. */
  pauses = 0;
  private periodStart: number;
  private pauseStart = 0;
  private usedInPeriod = 0;
  private mark: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => void;

  constructor(options: CpuGovernorOptions) {
    this.periodMs = options.periodMs;
    this.quotaMs = (options.periodMs * options.maxPercent) / 100;
    this.now = options.now;
    this.sleep = options.sleep;
    this.periodStart = this.mark = this.now();
  }

  /**
   * Accounts the running time since the last checkpoint and, if the period's quota is spent,
   * pauses until the period ends. Returns the ms paused (0 if it did not pause).
   */
  checkpoint(): number {
    const wait = this.due();
    if (wait < 0) return 0;
    if (wait > 0) this.sleep(wait);
    return this.resumed();
  }

  /**
   * The non-blocking half of `checkpoint`, for a caller that pauses by other means (a shared
   * worker suspends the partition and runs others): accounts the running time and returns how
   * long the partition must now pause, in ms, or -1 when it need not. After a pause (even of
   * 0 ms), `resumed()` must be called before the next checkpoint.
   */
  due(): number {
    const t = this.now();
    const ran = Math.max(0, t - this.mark);
    this.runningMs += ran;
    this.usedInPeriod += ran;
    if (t - this.periodStart >= this.periodMs) {
      // One or more periods ended while running, under their quotas (else a checkpoint would
      // have paused): only the running time inside the current period counts against it.
      const periods = Math.floor((t - this.periodStart) / this.periodMs);
      this.periodStart += periods * this.periodMs;
      this.usedInPeriod = Math.min(this.usedInPeriod, t - this.periodStart);
    }
    if (this.usedInPeriod < this.quotaMs) {
      this.mark = t;
      return -1;
    }
    this.pauseStart = t;
    return Math.max(0, this.periodStart + this.periodMs - t);
  }

  /** Ends the pause `due()` asked for: accounts it and starts the next period. Returns the ms paused. */
  resumed(): number {
    const t = this.pauseStart;
    const after = this.now();
    const paused = Math.max(0, after - t);
    this.pausedMs += paused;
    this.pauses++;
    const periods = Math.max(1, Math.floor((after - this.periodStart) / this.periodMs));
    this.periodStart += periods * this.periodMs;
    this.usedInPeriod = Math.min(this.usedInPeriod - this.quotaMs, this.quotaMs);
    this.mark = after;
    return paused;
  }

  /** Starts counting running time from now (after a stretch that must not count, e.g. an idle reactor). */
  resume(): void {
    this.mark = this.now();
  }
}
