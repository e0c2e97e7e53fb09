import { DedicatedHost } from './dedicated.ts';
import type { RunHost } from './placement.ts';
import { WarmPool } from './warm-pool.ts';

export interface SchedulerOptions {
  /** Warm dedicated workers kept ready (HypervisorOptions.warmWorkers). */
  warmWorkers: number;
  /** Hand a used dedicated worker to the next partition (HypervisorOptions.reuseWorkers). */
  reuseWorkers: boolean;
}

/** What `hv.scheduler()` reports. */
export interface SchedulerStats {
  warmPool: { target: number; idle: number; spawned: number; warmTakes: number; coldTakes: number; reused: number };
}

/**
 * The hypervisor's scheduler: it owns the logical processors (worker threads) and decides where
 * each run of a partition executes. Dedicated runs take a warm worker of their own.
 */
export class Scheduler {
  private readonly pool: WarmPool;

  constructor(options: SchedulerOptions) {
    this.pool = new WarmPool({ size: options.warmWorkers, reuse: options.reuseWorkers });
  }

  /** Called when partitions start being created: fills the warm pool in the background. */
  warm(): void {
    this.pool.warm();
  }

  /** A place for one run of a partition. */
  host(): RunHost {
    return new DedicatedHost(this.pool);
  }

  stats(): SchedulerStats {
    const c = this.pool.counters;
    return { warmPool: { target: this.pool.target, idle: this.pool.size, ...c } };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
