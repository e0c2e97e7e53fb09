import type { LabDefinition } from '../lab.ts';
import { openImports } from '../naive.ts';

export const narrowInterface: LabDefinition = {
  id: 'narrow-interface',
  title: 'The narrow interface',
  order: 2,
  minutes: 10,
  goal: 'isolation',
  concept: [
    'Everything a guest can do to the outside world goes through the interface its host gives it, so the size of that interface is the size of the attack surface. Wasmvisor gives a partition one import, hv.hypercall(call, in_ptr, in_len, out_ptr, out_cap), with a handful of integer call numbers, and only the devices its spec grants. A module that asks for anything else is refused when it is loaded, before any of its code runs.',
    'Real plugin hosts have been broken through the functions they offered: an import object that hands a plugin the host\'s file system, shell or network, or a generic "call any host function" bridge, turns a sandbox into a remote-code-execution service. Least privilege applies inside the interface too: a device that was not granted is absent from the device list, and calling it is refused and reported.',
    'The attacking module imports env.system, the classic way to run a shell command. Wasmvisor refuses it at load with ERR_IMPORT_DENIED. A second guest, granted only a console, calls the entropy and clock devices anyway: each call is refused with HV_STATUS_ACCESS_DENIED and reported as a violation.',
  ],
  feature: 'import-policy',
  guests: ['attack-import', 'attack-device'],
  expect: {
    code: 'ERR_IMPORT_DENIED',
    violation: { status: 'HV_STATUS_ACCESS_DENIED' },
    audit: { action: 'partition.create', outcome: 'denied', code: 'ERR_IMPORT_DENIED' },
  },
  async run(ctx) {
    const hv = ctx.hypervisor();
    ctx.step('Load attack-import, which imports env.system');
    const refusal = await ctx.refused(hv, { name: 'shell', module: ctx.guest('attack-import') });
    if (refusal) ctx.evidence('refused at load', 'no code of the module ran: the import list is checked before the module is compiled');
    ctx.step('Run attack-device with only the console granted: it calls entropy and the clock');
    const p = await ctx.create(hv, { name: 'snoop', module: ctx.guest('attack-device'), devices: { console: true } });
    const exit = await ctx.run(p);
    ctx.evidence('attack-device', `${exit.metrics.violations} calls refused, ${exit.state} with code ${exit.code}`);
  },
  defenceOff: {
    title: 'The same module in a host that offers what it asks for',
    text: 'A naive host in this process instantiates attack-import with an import object that satisfies env.system. Our env.system only records that it was called: in a real host it would have been a shell.',
    async run(ctx) {
      ctx.step('Instantiate attack-import with { env: { system } } and run its _start');
      const { calls } = await openImports(ctx.guest('attack-import'));
      ctx.evidence('host function calls', `env.system was called ${calls.length} time(s), with ${calls.map((c) => `(${c})`).join(', ')}`);
      if (calls.length > 0) ctx.breach('the module linked against env.system and called it with the host\'s authority');
      else ctx.problem('the module did not call env.system');
    },
  },
};
