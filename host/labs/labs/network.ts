import type { Hypervisor } from '../../hypervisor.ts';
import type { LabContext } from '../context.ts';
import type { LabDefinition } from '../lab.ts';

/** How long the attacker listens for answers after its last frame (a loaded machine answers slowly). */
const ANSWER_WAIT_MS = 1500;

/** A victim on `blue` and the attacker on `attackerSegment`: the attacker pings, broadcasts and scans. */
async function attack(ctx: LabContext, hv: Hypervisor, attackerSegment: string): Promise<{ received: number }> {
  ctx.step('The victim (net-pong, answers pings) joins segment "blue"');
  const victim = await ctx.create(hv, { name: 'victim', module: ctx.guest('net-pong'), devices: { console: true, net: { segment: 'blue' } } });
  const listening = ctx.waitForLine(victim, (l) => l.startsWith('pong: listening'));
  await victim.start();
  await listening;
  ctx.step(`The attacker (net-attacker) joins segment "${attackerSegment}": it pings the victim at ${victim.netAddressString}, broadcasts, and scans the neighbouring addresses`);
  const attacker = await ctx.create(hv, { name: 'attacker', module: ctx.guest('net-attacker'), args: [String(victim.netAddress), String(ANSWER_WAIT_MS)], devices: { console: true, net: { segment: attackerSegment } } });
  const line = ctx.waitForLine(attacker, (l) => l.startsWith('attacker:'));
  const exit = await ctx.run(attacker);
  const summary = await line;
  const received = Number(/received (\d+)/.exec(summary)?.[1] ?? 'NaN');
  const n = exit.metrics.net;
  ctx.evidence('switch', n ? `${n.txFrames} frames sent, ${n.txNoRoute} dropped for no route, ${received} answers received` : 'no NIC');
  await victim.stop();
  return { received };
}

export const network: LabDefinition = {
  id: 'network',
  title: 'Network segmentation and address spoofing',
  order: 8,
  minutes: 15,
  goal: 'isolation',
  concept: [
    'Partitions that talk do so through one virtual switch in the root. A partition\'s network card plugs into a segment; frames flow only between cards of the same segment, and reach the host only with an explicit grant. The switch stamps every frame with the address of the card it came from: the guest\'s send record has no source field at all, so a guest cannot claim to be someone else. A frame to an address it may not reach is dropped, counted and reported as a violation, and the sender cannot tell an address that does not exist apart from one it may not reach.',
    'Flat networks are how one compromised machine becomes many: lateral movement scans the neighbourhood and walks to the database. Address spoofing lets an attacker pose as a trusted peer, or aim a reflection attack at a victim. Segmentation and source validation (anti-spoofing filters) are the network\'s answers.',
    'The victim sits on segment "blue", the attacker on "red". The attacker pings the victim, broadcasts and scans: every frame is dropped by the switch and reported with HV_STATUS_ACCESS_DENIED. Then a partition on "blue" tries to pass for the victim: all it can do is write a false address into its payload; the receiver sees the source the switch stamped.',
  ],
  feature: 'network',
  guests: ['net-pong', 'net-attacker', 'net-spoof', 'net-log'],
  expect: {
    code: 'HV_STATUS_ACCESS_DENIED',
    violation: { status: 'HV_STATUS_ACCESS_DENIED', call: 'NET_SEND' },
    audit: { action: 'partition.violation', outcome: 'denied' },
  },
  async run(ctx) {
    const hv = ctx.hypervisor();
    const { received } = await attack(ctx, hv, 'red');
    const v = ctx.violations.find((x) => x.call === 'NET_SEND');
    if (v) ctx.code(v.status, v.reason, 'virtual switch');
    if (received !== 0) ctx.problem(`the attacker on another segment received ${received} answers`);

    ctx.step('Spoofing: "mallory" on segment blue sends a frame to a logger, claiming in its payload to be the bank at a neighbouring address');
    const bank = await ctx.create(hv, { name: 'bank', module: ctx.guest('net-log'), devices: { console: true, net: { segment: 'blue' } } });
    const logger = await ctx.create(hv, { name: 'logger', module: ctx.guest('net-log'), devices: { console: true, net: { segment: 'blue' } } });
    await logger.start();
    const mallory = await ctx.create(hv, { name: 'mallory', module: ctx.guest('net-spoof'), args: [String(bank.netAddress), String(logger.netAddress)], devices: { console: true, net: { segment: 'blue' } } });
    const logged = ctx.waitForLine(logger, (l) => /^frame from /.test(l));
    await ctx.run(mallory);
    const seen = await logged;
    await ctx.ended(logger);
    const stamped = /^frame from (\S+)/.exec(seen)?.[1];
    ctx.evidence('source stamped by the switch', `${stamped} (mallory's own address is ${mallory.netAddressString}; the bank is ${bank.netAddressString})`);
    if (stamped !== mallory.netAddressString) ctx.problem('the receiver saw a source other than the sender\'s own address');
  },
  defenceOff: {
    title: 'The same attacker on the victim\'s segment',
    text: 'Segmentation off: the attacker is put on "blue", the victim\'s segment, as on a flat network. The frames are the same; now the switch delivers them, and the victim answers.',
    async run(ctx) {
      const hv = ctx.hypervisor();
      const { received } = await attack(ctx, hv, 'blue');
      if (received > 0) ctx.breach(`on a flat network the attacker reached the victim and got ${received} answer(s)`);
      else ctx.problem('the attacker on the same segment got no answer');
    },
  },
};
