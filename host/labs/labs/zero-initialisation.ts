import { randomBytes } from 'node:crypto';
import { WasmvisorError } from '../../errors.ts';
import type { LabDefinition } from '../lab.ts';
import { ReusedPlugin } from '../naive.ts';

const text = new TextDecoder();
const printable = (bytes: Uint8Array) => text.decode(bytes).replace(/\0+$/, '').replace(/[^\x20-\x7e]/g, '.');

export const zeroInitialisation: LabDefinition = {
  id: 'zero-initialisation',
  title: 'Zero-initialisation',
  order: 4,
  minutes: 15,
  goal: 'isolation',
  concept: [
    'Memory is reused all the time: buffers the host fills for a guest, instances that are recycled, disks whose partition was deleted. Every reuse is a chance for one tenant\'s bytes to reach the next. Wasmvisor zeroes everything it hands a guest: the unused part of every output window, a fresh instance (from the module, never from an old memory) after a fault, and it scrubs what a partition leaves behind: its memory at the end of a run, and its disk image and key when it is deleted.',
    'Leaks of stale memory are among the most common real bugs: uninitialised padding copied to user space, a TLS heartbeat that answered with whatever was in a recycled buffer, plugin hosts that pool instances and hand one tenant\'s instance, still full of its data, to the next tenant. On storage, a deleted virtual disk whose blocks are handed to the next customer without scrubbing is the same bug, years later.',
    'The lab checks three reuses: a 64 KiB output window pre-filled with 0xAA comes back as the result followed by zeros; a plugin that kept one caller\'s secret and then crashed is replaced by a fresh instance that has nothing (the crash itself ends with ERR_GUEST_TRAP); and a partition whose disk was deleted leaves nothing for a new partition of the same name.',
  ],
  feature: 'zeroing',
  guests: ['attack-stale', 'attack-plugin-snoop', 'disk'],
  expect: {
    code: 'ERR_GUEST_TRAP',
    audit: { action: 'disk.wipe', outcome: 'success' },
  },
  async run(ctx) {
    const hv = ctx.hypervisor();
    ctx.step('Fresh buffers: attack-stale fills a 64 KiB window with 0xAA and lets the host write its arguments into it');
    const stale = await ctx.create(hv, { name: 'stale', module: ctx.guest('attack-stale'), args: ['a', 'b'], devices: { console: true } });
    const se = await ctx.run(stale);
    if (se.code !== 0) ctx.problem('attack-stale found stale bytes');

    const secret = `card-${randomBytes(4).toString('hex')}`;
    ctx.step(`Recycled instances: tenant A gives the plugin "${secret}"; the plugin keeps it, then crashes`);
    const plugin = await ctx.create(hv, { name: 'plugin', module: ctx.guest('attack-plugin-snoop'), kind: 'reactor', restart: { mode: 'on-failure', backoffMs: 1 } });
    await plugin.start();
    await plugin.call('remember', secret);
    ctx.evidence('before the crash', `peek shows "${printable(await plugin.call('peek'))}"`);
    const restarted = new Promise<void>((resolve) => plugin.once('restart', () => resolve()));
    try {
      await plugin.call('crash');
      ctx.problem('the crash call returned normally');
    } catch (error) {
      if (error instanceof WasmvisorError) ctx.code(error.code, error.message, 'plugin.call(crash)');
      else throw error;
    }
    await restarted;
    await ctx.sleep(20);
    const after = await plugin.call('peek');
    const found = Number(text.decode(await plugin.call('scan', secret)));
    ctx.evidence('after the restart', `peek shows ${after.every((b) => b === 0) ? `${after.length} zero bytes` : `"${printable(after)}"`}; scan finds the secret ${found} times`);
    if (!after.every((b) => b === 0) || found !== 0) ctx.problem('the restarted instance still held the old caller\'s data');

    ctx.step(`A deleted partition's disk: "vault" fills its 1 MiB disk with "${secret}", then is destroyed with its disk wiped`);
    const vault = await ctx.create(hv, { name: 'vault', module: ctx.guest('disk'), args: ['fill', secret], devices: { console: true, block: { sizeMiB: 1 } } });
    await ctx.run(vault);
    await ctx.destroy(hv, vault, { wipe: true });
    ctx.step('A new partition named "vault" reads its whole disk');
    const reader = await ctx.create(hv, { name: 'vault', module: ctx.guest('disk'), args: ['scan', secret], devices: { console: true, block: { sizeMiB: 1 } } });
    const line = ctx.waitForLine(reader, (l) => l.startsWith('scanned'));
    await ctx.run(reader);
    const scanned = await line;
    if (!/found 0, nonzero 0$/.test(scanned)) ctx.problem(`the new partition found old data: ${scanned}`);
  },
  defenceOff: {
    title: 'The same plugin reused for every caller',
    text: 'A naive host in this process instantiates attack-plugin-snoop once and serves every caller from that instance, as hosts do that pool instances to save start-up time. The secret is random and both callers are the lab.',
    async run(ctx) {
      const secret = `card-${randomBytes(4).toString('hex')}`;
      const plugin = await ReusedPlugin.load(ctx.guest('attack-plugin-snoop'));
      ctx.step(`Tenant A calls remember("${secret}")`);
      plugin.call('remember', secret);
      ctx.step('Tenant B, served by the same instance, calls peek');
      const seen = printable(plugin.call('peek', ''));
      ctx.evidence('tenant B sees', `"${seen}"`);
      if (seen.includes(secret)) ctx.breach('tenant B read tenant A\'s secret from the reused instance');
      else ctx.problem('tenant B did not see tenant A\'s data');
    },
  },
};
