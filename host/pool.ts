import { InvalidArgumentError, InvalidStateError } from './errors.ts';
import type { CallOptions, Partition } from './partition/partition.ts';

/**
 * N reactor partitions of one module, each in its own worker, behind one `call`. A call goes to
 * the partition with the fewest calls waiting or running (ties: the next in turn), so a pool
 * spreads load over cores while each partition still runs one call at a time.
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
    for (let i = 0; i < n; i++) {
      const p = this.partitions[(this.next + i) % n]!;
      if (p.state !== 'running') continue;
      if (best === null || p.pendingCalls < best.pendingCalls) best = p;
    }
    this.next = (this.next + 1) % n;
    if (best === null) return Promise.reject(new InvalidStateError('no partition of this pool is running'));
    return best.call(exportName, input, options);
  }

  /** Destroys every partition of the pool. Idempotent. */
  async destroy(): Promise<void> {
    this.closed = true;
    await Promise.all(this.partitions.map((p) => p.destroy()));
  }
}
