import type { LabDefinition } from '../lab.ts';
import { uncheckedWrite } from '../naive.ts';

export const boundsChecks: LabDefinition = {
  id: 'bounds-checks',
  title: 'Bounds checks',
  order: 3,
  minutes: 15,
  goal: 'runtime integrity',
  concept: [
    'A hypercall hands the host pointers into the guest\'s memory: "read my 32 bytes at 0x1000", "write the result into 16 bytes at 0x2000". The host must treat every one of those numbers as hostile. Wasmvisor checks each (pointer, length) pair against the guest\'s current memory size with arithmetic that cannot wrap, caps it at 64 KiB, copies input once before parsing it, and writes output all or nothing. A bad pair costs the guest a status code, never the host an exception.',
    'Confused-deputy bugs in exactly this spot are a classic hypervisor escape: a length that wraps around 2^32 passes a naive "ptr + len <= size" check; a host that writes part of a result before it notices the window is too small leaves the guest\'s memory half-updated; a host that trusts the pointer reads or writes memory that is not the guest\'s. In a memory-safe host language the write cannot escape, but the exception can: it lands in the host\'s event loop and takes the host down.',
    'The attacking guest asks for random bytes into a window that runs 8 bytes past the end of its memory, writes from a range that wraps past 2^32, and asks for windows of 4 GiB. Each is refused (HV_STATUS_INVALID_ADDRESS or HV_STATUS_TOO_LARGE) and reported, a canary at the end of its memory shows nothing was written, and it keeps running. A second guest then sweeps every hypercall with hostile pairs.',
  ],
  feature: 'bounds-checks',
  guests: ['attack-bounds', 'attack-pointers', 'naive-pointers'],
  expect: {
    code: 'HV_STATUS_INVALID_ADDRESS',
    violation: { status: 'HV_STATUS_INVALID_ADDRESS' },
    audit: { action: 'partition.violation', outcome: 'denied' },
  },
  async run(ctx) {
    const hv = ctx.hypervisor();
    ctx.step('Run attack-bounds: hostile (pointer, length) pairs, a canary in the last 8 bytes of its memory');
    const p = await ctx.create(hv, { name: 'bounds', module: ctx.guest('attack-bounds'), devices: { console: true, entropy: true } });
    const exit = await ctx.run(p);
    const m = exit.metrics;
    ctx.evidence('attack-bounds', `${exit.state} with code ${exit.code}; ${m.faults} calls refused for their address or size`);
    for (const v of ctx.violations.filter((x) => x.partition === 'bounds')) {
      if (v.status === 'HV_STATUS_INVALID_ADDRESS' || v.status === 'HV_STATUS_TOO_LARGE') {
        ctx.code(v.status, v.reason, `dispatcher, ${v.call}`);
        break;
      }
    }
    if (exit.code !== 0) ctx.problem('attack-bounds saw a pair accepted or its canary changed');
    ctx.step('Run attack-pointers: every hypercall with out-of-range, wrapping and oversized pairs, and exact edges that must work');
    const sweep = await ctx.create(hv, { name: 'sweep', module: ctx.guest('attack-pointers'), devices: { console: true, clock: true } });
    const swept = await ctx.run(sweep);
    ctx.evidence('attack-pointers', `${swept.metrics.faults} hostile calls refused; ${swept.state} with code ${swept.code}`);
    if (swept.code !== 0) ctx.problem('attack-pointers reported unexpected results');
  },
  defenceOff: {
    title: 'The same request to a host function that writes before it checks',
    text: 'A naive host function `fill(ptr, len)` writes its result byte by byte through a DataView, as hosts do that rely on the language to catch a bad offset. It runs in a worker thread of this process, standing in for the host, so that its crash ends that thread only.',
    async run(ctx) {
      ctx.step('naive-pointers asks env.fill for 16 bytes starting 8 bytes before the end of its memory');
      const r = await uncheckedWrite(ctx.guest('naive-pointers'));
      ctx.evidence('partial write', `the host wrote ${r.written} of ${r.requested} bytes over the guest's canary before it noticed`);
      ctx.evidence('host', r.crashed ? `crashed: ${r.crashed} escaped the host function` : 'did not crash');
      if (r.crashed && r.written > 0) ctx.breach(`half a result written (${r.written} bytes) and the host crashed with ${r.crashed.split(':')[0]}`);
      else ctx.problem('the naive host neither wrote partially nor crashed');
    },
  },
};
