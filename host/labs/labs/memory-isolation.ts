import { randomBytes } from 'node:crypto';
import type { LabDefinition } from '../lab.ts';
import { sharedMemoryScan } from '../naive.ts';

const COPIES = 64;

export const memoryIsolation: LabDefinition = {
  id: 'memory-isolation',
  title: 'Memory isolation',
  order: 1,
  minutes: 15,
  goal: 'isolation',
  concept: [
    'A hypervisor gives each guest its own address space: a guest can name only its own memory, so nothing it computes can reach a neighbour\'s. In Wasmvisor each partition is its own WebAssembly instance with its own linear memory, in its own worker thread. The memory is never imported, exported to another partition or shared; every load and store the guest makes is checked by the engine against the size of that one memory.',
    'The attack is the oldest one in multi-tenant computing: scan memory for a neighbour\'s secret. Cloud tenants have read each other\'s data through hypervisor bugs and through memory that was shared to save space; plugin hosts that load several plugins into one process or one shared memory give every plugin every other plugin\'s data by design.',
    'Here one partition holds a random secret in 1024 places of its memory. A second partition searches every byte of its own memory, grown to its cap, then reaches one byte past the end, where a runtime that shared memory would keep the neighbour. It finds nothing, and the reach past the end traps: only the attacker is stopped, the holder keeps running.',
  ],
  feature: 'partitions',
  guests: ['secret', 'attack-scan', 'naive-holder', 'naive-scan'],
  expect: {
    code: 'ERR_GUEST_TRAP',
    audit: { action: 'partition.exit', outcome: 'failure', code: 'ERR_GUEST_TRAP' },
  },
  async run(ctx) {
    const secret = `S3CRET-${randomBytes(6).toString('hex')}`;
    const hv = ctx.hypervisor();
    ctx.step(`Start the holder: it keeps the secret "${secret}" in 1024 places of its memory`);
    const holder = await ctx.create(hv, { name: 'holder', module: ctx.guest('secret'), args: [secret], devices: { console: true }, limits: { memoryPages: 32, timeoutMs: 30_000 } });
    // Listening before the start: the line may come before start() resolves.
    const stored = ctx.waitForLine(holder, (l) => l === 'stored');
    await holder.start();
    await stored;
    ctx.step('Start the attacker with the same secret as its needle: it scans all of its own memory, then reads past the end');
    const attacker = await ctx.create(hv, { name: 'attacker', module: ctx.guest('attack-scan'), args: [secret], devices: { console: true }, limits: { memoryPages: 64, timeoutMs: 30_000 } });
    const exit = await ctx.run(attacker);
    const m = exit.metrics;
    ctx.evidence('attacker', `${exit.state} (${exit.reason}); its memory reached ${m.peakMemoryBytes / 65536} pages, its cap`);
    ctx.step('The holder is untouched: end its input and it exits normally');
    holder.endInput();
    const held = await ctx.ended(holder);
    ctx.evidence('holder', held.reason === 'exit' ? `exited with code ${held.code}` : `${held.state} (${held.reason})`);
    if (held.reason !== 'exit' || held.code !== 0) ctx.problem('the holder did not survive its neighbour\'s attack');
  },
  defenceOff: {
    title: 'The same scan in a plugin host that shares one memory',
    text: 'A naive plugin host in this process links the holder and the scanner (the same byte-by-byte search, in WebAssembly text) to one shared WebAssembly.Memory, as hosts do that put every plugin in one address space. Nothing leaves the lab: the secret is random and both plugins are ours. Under Wasmvisor the scanner would not even load: a partition may not import memory (ERR_IMPORT_DENIED).',
    async run(ctx) {
      const secret = `S3CRET-${randomBytes(6).toString('hex')}`;
      ctx.step(`The holder plugin keeps "${secret}" ${COPIES} times in its part of the shared memory`);
      const { found, pages } = await sharedMemoryScan(ctx.guest('naive-holder'), ctx.guest('naive-scan'), secret, COPIES);
      ctx.evidence('scanner', `scanned ${pages} pages: found the secret ${found} times`);
      if (found > 0) ctx.breach(`the scanner read the neighbour's secret ${found} times`);
      else ctx.problem('the naive scan found nothing');
      ctx.step('Under Wasmvisor, the same scanner module is refused before it runs');
      const hv = ctx.hypervisor();
      await ctx.refused(hv, { name: 'naive-scan', module: ctx.guest('naive-scan') });
    },
  },
};
