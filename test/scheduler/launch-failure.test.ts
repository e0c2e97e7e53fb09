/**
 * A dedicated launch whose assignment cannot be posted (a value the structured clone refuses)
 * throws to its caller and leaves no thread behind: the worker it took from the pool is ended,
 * not left referenced and unused (which would hold the embedder's process for ever).
 */
import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { DedicatedHost } from '../../host/scheduler/dedicated.ts';
import { WarmPool } from '../../host/scheduler/warm-pool.ts';
import type { WorkerInit } from '../../host/channel/protocol.ts';

describe('DedicatedHost.launch: an assignment that cannot be posted', () => {
  it('throws the clone error and terminates the worker it took', async () => {
    const pool = new WarmPool({ size: 0, reuse: false });
    let taken: Worker | null = null;
    const take = pool.take.bind(pool);
    pool.take = (extra?: number) => (taken = take(extra));
    const host = new DedicatedHost(pool);
    const events = { message: () => {}, error: () => {}, exit: () => {} };
    // A function cannot be cloned: postMessage throws a DataCloneError.
    const init = { wasi: null, bogus: () => 0 } as unknown as WorkerInit;
    expect(() => host.launch(init, events)).toThrow(/could not be cloned/);
    expect(taken).not.toBeNull();
    const code = await new Promise<number>((resolve) => taken!.once('exit', resolve));
    expect(typeof code).toBe('number');
    await pool.close();
  });
});
