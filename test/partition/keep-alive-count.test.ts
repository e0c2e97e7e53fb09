/**
 * The process-wide keep-alive (host/partition/keep-alive.ts): a partition holds the process
 * exactly while it has calls queued or in flight, however its calls end (result, guest error,
 * trap, stop, abort). keepalive.test.ts proves the effect in real processes; this counts holders.
 * Runs in this suite's placement (dedicated, shared, process).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Hypervisor } from '../../host/index.ts';
import { processHolders } from '../../host/partition/keep-alive.ts';
import { guest, hypervisor } from '../helpers.ts';

let hv: Hypervisor | null = null;
afterEach(async () => {
  await hv?.close();
  hv = null;
});

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

async function reactor(name: string, spec: Record<string, unknown> = {}) {
  hv ??= hypervisor();
  const p = await hv.createPartition({ name, module: guest('transform'), kind: 'reactor', restart: { mode: 'never' }, ...spec });
  await p.start();
  return p;
}

// Not concurrent: the count is the process's.
describe('a partition holds the process while it has calls, and only then', () => {
  it('one hold per busy partition, whatever its number of calls; none once every call is answered', async () => {
    const a = await reactor('a');
    const b = await reactor('b');
    expect(processHolders()).toBe(0);
    const calls = [a.call('fill', u32(1 << 20)), a.call('echo', 'x'), a.call('fail'), b.call('upper', 'y')];
    expect(processHolders()).toBe(2);
    const settled = await Promise.allSettled(calls);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(processHolders()).toBe(0);
    // Sequential calls: held during each, released after each.
    for (let i = 0; i < 5; i++) {
      const call = a.call('echo', 'z');
      expect(processHolders()).toBe(1);
      await call;
      expect(processHolders()).toBe(0);
    }
  }, 60_000);

  it('released when a call traps, when queued calls fail at a stop, and when the only queued call is aborted', async () => {
    const p = await reactor('t');
    await expect(p.call('trap')).rejects.toMatchObject({ code: 'ERR_GUEST_TRAP' });
    expect(processHolders()).toBe(0);

    const q = await reactor('q');
    const spin = q.call('spin', '', { timeoutMs: 0 });
    const queued = q.call('echo', 'never');
    expect(processHolders()).toBe(1);
    await q.stop();
    await expect(spin).rejects.toMatchObject({ code: 'ERR_KILLED' });
    await expect(queued).rejects.toMatchObject({ code: 'ERR_KILLED' });
    expect(processHolders()).toBe(0);

    const r = await reactor('r');
    const controller = new AbortController();
    const busy = r.call('spin', '', { timeoutMs: 0, signal: controller.signal });
    expect(processHolders()).toBe(1);
    controller.abort();
    await expect(busy).rejects.toMatchObject({ name: 'AbortError' });
    expect(processHolders()).toBe(0);
  }, 60_000);
});
