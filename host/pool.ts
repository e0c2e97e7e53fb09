import { InvalidArgumentError, InvalidStateError } from './errors.ts';
import { processSpinBudget } from './channel/spin.ts';
import type { CallOptions, Partition } from './partition/partition.ts';

/**
 * N reactor partitions of one module, each in its own worker, behind one `call`. A call goes to
 * an idle partition whose worker is awake, if a core is left for it (the root and the pool's
 * workers with calls count as busy; the cores are the process's spin budget); else straight
 * behind the call a partition is running, when that partition's calls take less than the spin
 * window (sent ahead into its call ring: its worker starts it without waiting for the root);
 * else to the partition with the fewest calls waiting or running (ties: the one that took the last
 * call, whose worker is the likeliest to be awake, then the next in order). So a
 * pool spreads load over the cores that are free, and does not pay a sleeping worker's wake-up
 * (tens of µs, and a core it takes from the root or the running worker) for a call that takes a
 * few µs, while each partition still runs one call at a time.
 */
export class PartitionPool {
  private next = 0;
  private closed = false;

  constructor(readonly partitions: readonly Partition[]) {
    if (partitions.length === 0) throw new InvalidArgumentError('a pool needs at least one partition');
  }

  get size(): number {
    return this.partitions.length;
  }

  /** Calls `exportName` on the least busy live partition; the same contract as Partition.call. */
  call(exportName: string, input?: Uint8Array | string, options?: CallOptions): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new InvalidStateError('this pool is destroyed'));
    const n = this.partitions.length;
    let best: Partition | null = null;
    let idleAwake: Partition | null = null;
    let behind: Partition | null = null;
    // Threads busy for this pool: the root (it takes every answer) and each worker running a call.
    let busy = 1;
    for (let i = 0; i < n; i++) {
      const p = this.partitions[(this.next + i) % n]!;
      if (p.state !== 'running') continue;
      const pending = p.pendingCalls;
      if (pending > 0) busy++;
      if (pending === 0 && idleAwake === null && p.workerAwake) idleAwake = p;
      if (behind === null && pending === 1 && p.takesCallAhead()) behind = p;
      if (best === null || pending < best.pendingCalls) best = p;
    }
    if (best === null) return Promise.reject(new InvalidStateError('no partition of this pool is running'));
    // An idle partition whose worker is awake, when a core is left for it; else behind a running
    // call that will soon be answered (not for a call with an AbortSignal: it would wait in that
    // partition's queue), rather than wake a sleeping worker or queue behind a slow one.
    if (idleAwake !== null && busy < processSpinBudget().limit) best = idleAwake;
    else if (behind !== null && options?.signal === undefined) best = behind;
    // Ties go to the partition that took the last call: its worker is the likeliest to be awake.
    this.next = this.partitions.indexOf(best);
    return best.call(exportName, input, options);
  }

  /** Destroys every partition of the pool. Idempotent. */
  async destroy(): Promise<void> {
    this.closed = true;
    await Promise.all(this.partitions.map((p) => p.destroy()));
  }
}
