import { describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { guest, hypervisor } from '../helpers.ts';

describe('memory admission', () => {
  it('reserves each partition’s worst case and refuses one past the budget, before loading it', async () => {
    const probe = hypervisor();
    await probe.createPartition({ name: 'p', module: guest('hello'), limits: { memoryPages: 16 } });
    const one = probe.memoryUsage().reservedBytes;
    await probe.close();
    expect(one).toBeGreaterThan(16 * 65536); // linear memory plus the worker's own heap

    const hv = hypervisor({ memoryBudgetBytes: 2 * one + 1000 });
    const a = await hv.createPartition({ name: 'a', module: guest('hello'), limits: { memoryPages: 16 } });
    await hv.createPartition({ name: 'b', module: guest('hello'), limits: { memoryPages: 16 } });
    expect(hv.memoryUsage()).toEqual({ budgetBytes: 2 * one + 1000, reservedBytes: 2 * one, availableBytes: 1000 });
    // Refused by admission even for a module that does not exist: nothing was read.
    await expect(hv.createPartition({ name: 'c', module: '/nonexistent.wasm', limits: { memoryPages: 16 } })).rejects.toMatchObject({
      code: 'ERR_LIMIT_MEMORY',
      message: expect.stringContaining('budget'),
    });
    await a.destroy();
    expect(hv.memoryUsage().reservedBytes).toBe(one);
    const c = await hv.createPartition({ name: 'c', module: guest('hello'), limits: { memoryPages: 16 } });
    expect((await (async () => (await c.start(), c.exited))()).state).toBe('exited');
    await hv.close();
    expect(hv.memoryUsage().reservedBytes).toBe(0);
  });

  it('gives the reservation back when the module is refused', async () => {
    const hv = hypervisor();
    await expect(hv.createPartition({ name: 'x', module: guest('attack-import') })).rejects.toMatchObject({ code: 'ERR_IMPORT_DENIED' });
    expect(hv.memoryUsage().reservedBytes).toBe(0);
    await hv.close();
  });
});
