import type { LabDefinition } from '../lab.ts';

export const memoryExhaustion: LabDefinition = {
  id: 'memory-exhaustion',
  title: 'Memory exhaustion',
  order: 6,
  minutes: 10,
  goal: 'availability',
  concept: [
    'Memory is the other resource a guest can exhaust. Wasmvisor caps every partition\'s linear memory (a module\'s maximum is clamped, by rewriting the binary, to the partition\'s page limit, so memory.grow fails at the cap), and it admits a partition only if its worst case fits: each partition reserves its memory at the cap, its worker and its channels from the hypervisor\'s memory budget when it is created, and a partition that would not fit is refused before anything is allocated.',
    'A memory bomb is cheap to write and expensive to host: a loop that grows memory, a decompression bomb, an allocation sized by an attacker-controlled length field. If the host lets guests overcommit, the out-of-memory killer picks a victim, and that is rarely the guest that caused it.',
    'A guest grows its memory one page at a time: memory.grow returns -1 at its cap of 32 pages and the guest survives to report it. Then a hypervisor with room for two 256-page partitions is asked for a third: it is refused with ERR_LIMIT_MEMORY, naming what it needed and what was left.',
  ],
  feature: 'memory-caps',
  guests: ['attack-memgrow'],
  expect: {
    code: 'ERR_LIMIT_MEMORY',
    audit: { action: 'partition.create', outcome: 'denied', code: 'ERR_LIMIT_MEMORY' },
  },
  async run(ctx) {
    const capped = ctx.hypervisor();
    ctx.step('attack-memgrow grows its memory until the host says no; its cap is 32 pages (2 MiB)');
    const bomb = await ctx.create(capped, { name: 'bomb', module: ctx.guest('attack-memgrow'), devices: { console: true }, limits: { memoryPages: 32 } });
    const exit = await ctx.run(bomb);
    ctx.evidence('peak memory', `${exit.metrics.peakMemoryBytes / 65536} pages; the guest ${exit.reason === 'exit' ? `exited with code ${exit.code}` : `ended with ${exit.reason}`}`);
    if (exit.metrics.peakMemoryBytes !== 32 * 65536) ctx.problem('the guest grew past its cap');

    ctx.step('Measure what one 256-page partition reserves, then give a hypervisor room for two and a half');
    const probe = ctx.hypervisor();
    const one = await ctx.create(probe, { name: 'probe', module: ctx.guest('attack-memgrow'), limits: { memoryPages: 256 } });
    const reserved = probe.memoryUsage().reservedBytes;
    await one.destroy();
    const hv = ctx.hypervisor({ memoryBudgetBytes: Math.floor(reserved * 2.5) });
    ctx.evidence('budget', `${(reserved / 1048576).toFixed(1)} MiB per partition; budget ${((reserved * 2.5) / 1048576).toFixed(1)} MiB`);
    for (let i = 1; i <= 2; i++) await ctx.create(hv, { name: `tenant-${i}`, module: ctx.guest('attack-memgrow'), limits: { memoryPages: 256 } });
    ctx.step('A third 256-page partition asks to be created');
    await ctx.refused(hv, { name: 'tenant-3', module: ctx.guest('attack-memgrow'), limits: { memoryPages: 256 } });
  },
};
