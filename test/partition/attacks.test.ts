import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type Violation } from '../../host/index.ts';
import { collect, guest, runToExit, hypervisor } from '../helpers.ts';

let hv: Hypervisor;
afterEach(async () => {
  await hv?.close();
});

/** Runs an attack guest next to a healthy one; the healthy one must finish normally. */
async function alongsideHealthy(attack: string, opts: { devices?: object; limits?: object } = {}) {
  const a = await hv.createPartition({ name: 'attacker', module: guest(attack), devices: { console: true, ...opts.devices }, limits: { timeoutMs: 1500, memoryPages: 64, ...opts.limits } });
  const h = await hv.createPartition({ name: 'healthy', module: guest('dice'), devices: { console: true, entropy: true } });
  const aOut = collect(a);
  const hOut = collect(h);
  const [attackExit, healthyExit] = await Promise.all([runToExit(a), runToExit(h)]);
  expect(healthyExit).toMatchObject({ state: 'exited', code: 0 });
  expect(hOut.stdout[0]).toMatch(/^dice: [1-6] [1-6] [1-6] [1-6] [1-6]$/);
  return { exit: attackExit, out: aOut, partition: a };
}

describe('attack guests are contained', () => {
  it('hostile pointers to every hypercall: refused with statuses, guest keeps running', async () => {
    hv = hypervisor();
    const violations: Violation[] = [];
    hv.on('violation', (v) => violations.push(v));
    const { exit, out } = await alongsideHealthy('attack-pointers', { devices: { clock: true } });
    expect(exit).toMatchObject({ state: 'exited', code: 0 });
    expect(out.stdout.at(-1)).toMatch(/^pointer attacks: \d+ calls, 0 unexpected$/);
    expect(exit.metrics.faults).toBeGreaterThan(20);
    expect(violations.some((v) => v.status === 'HV_STATUS_INVALID_ADDRESS' && v.partition === 'attacker')).toBe(true);
    expect(violations.some((v) => v.status === 'HV_STATUS_ACCESS_DENIED' && v.call === 'ENTROPY_GET')).toBe(true);
  });

  it('an ungranted device is invisible and denied, next to a healthy partition', async () => {
    hv = hypervisor();
    const { exit, out } = await alongsideHealthy('attack-device');
    expect(exit).toMatchObject({ state: 'exited', code: 0 });
    expect(out.stdout).toEqual(['denied: entropy clock', 'devices: 1']);
    expect(exit.metrics.violations).toBe(2);
  });

  it('reports violations with partition, call and reason', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'snoop', module: guest('attack-device'), devices: { console: true } });
    const violations: Violation[] = [];
    p.on('violation', (v) => violations.push(v));
    await runToExit(p);
    expect(violations).toEqual([
      { partition: 'snoop', call: 'ENTROPY_GET', status: 'HV_STATUS_ACCESS_DENIED', reason: 'device entropy is not granted to this partition' },
      { partition: 'snoop', call: 'CLOCK_GET', status: 'HV_STATUS_ACCESS_DENIED', reason: 'device clock is not granted to this partition' },
    ]);
  });

  it('a guest that spins forever is killed by the watchdog with ERR_LIMIT_CPU', async () => {
    hv = hypervisor();
    // The budget counts from the guest's start, not the worker's (a cold worker on a loaded
    // machine has taken over a second to come up): the guest must have printed before it
    // spins, and that line must survive the kill. The run time includes the worker's start.
    // 3 s, not less: on a 2-core host at a load average of 25 a thread that has just been
    // handed its guest can wait over a second for a core before the guest's first line.
    const { exit, out } = await alongsideHealthy('attack-spin', { limits: { timeoutMs: 3000 } });
    expect(exit).toMatchObject({ state: 'killed', code: null, reason: 'ERR_LIMIT_CPU' });
    expect(exit.error?.code).toBe('ERR_LIMIT_CPU');
    expect(exit.runTimeMs).toBeGreaterThanOrEqual(2990);
    expect(exit.runTimeMs).toBeLessThan(15000);
    expect(out.stdout).toEqual(['spinning']);
  });

  it('the watchdog also covers a wasm start function that never returns', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'start-spin', module: guest('attack-start-spin'), limits: { timeoutMs: 300 } });
    expect(await runToExit(p)).toMatchObject({ state: 'killed', reason: 'ERR_LIMIT_CPU' });
  });

  it('memory growth stops at the page limit', async () => {
    hv = hypervisor();
    const { exit, out } = await alongsideHealthy('attack-memgrow', { limits: { memoryPages: 40 } });
    expect(exit).toMatchObject({ state: 'exited', code: 0 });
    expect(out.stdout).toEqual(['grew to 40 pages, refused']);
    expect(exit.metrics.peakMemoryBytes).toBe(40 * 65536);
  });

  it('unbounded recursion ends as ERR_GUEST_TRAP (stack overflow)', async () => {
    hv = hypervisor();
    const { exit } = await alongsideHealthy('attack-recurse');
    expect(exit).toMatchObject({ state: 'trapped', reason: 'ERR_GUEST_TRAP' });
    expect(exit.error?.message).toMatch(/stack/);
  });

  it.each([
    ['attack-import', 'ERR_IMPORT_DENIED', /env\.system is not part of the hv interface/],
    ['attack-hv-signature', 'ERR_IMPORT_DENIED', /hv\.hypercall has type \(i32\) -> i32/],
    ['attack-shared-memory', 'ERR_FEATURE_DENIED', /shared memory/],
    ['attack-no-start', 'ERR_MODULE_INVALID', /_start/],
  ])('%s is refused before it runs with %s', async (name, code, message) => {
    hv = hypervisor();
    await expect(hv.createPartition({ name: 'x', module: guest(name) })).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
    expect(hv.partitions()).toEqual([]);
  });

  it('refuses a module whose initial memory exceeds the limit, before allocating it', async () => {
    hv = hypervisor();
    await expect(hv.createPartition({ name: 'x', module: guest('hello'), limits: { memoryPages: 1 } })).rejects.toMatchObject({ code: 'ERR_LIMIT_MEMORY' });
  });

  it('refuses a module whose measurement differs from the pinned SHA-256', async () => {
    hv = hypervisor();
    await expect(hv.createPartition({ name: 'x', module: guest('hello'), sha256: '0'.repeat(64) })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    const ok = await hv.createPartition({ name: 'y', module: guest('hello') });
    const pinned = await hv.createPartition({ name: 'z', module: guest('hello'), sha256: ok.measurement.toUpperCase() });
    expect(pinned.measurement).toBe(ok.measurement);
    const strict = hypervisor({ allowList: [ok.measurement] });
    await expect(strict.createPartition({ name: 'd', module: guest('dice') })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await strict.close();
    const closed = hypervisor({ allowList: [] }); // fail closed: an empty list admits nothing
    await expect(closed.createPartition({ name: 'h', module: guest('hello') })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await closed.close();
  });
});

describe('isolation between partitions', () => {
  it('two partitions of the same module never see each other’s memory', async () => {
    hv = hypervisor();
    const secret = 'S3CRET-' + Math.random().toString(36).slice(2);
    const holder = await hv.createPartition({ name: 'holder', module: guest('secret'), args: [secret], devices: { console: true } });
    const holderOut = collect(holder);
    await holder.start();
    // Wait until the secret is in the holder's memory, then scan from a partition of the same module.
    while (!holderOut.stdout.includes('stored')) await new Promise((r) => setTimeout(r, 10));
    const scanner = await hv.createPartition({ name: 'scanner', module: guest('scan'), args: [secret], devices: { console: true }, limits: { memoryPages: 64 } });
    const scanOut = collect(scanner);
    expect(await runToExit(scanner)).toMatchObject({ state: 'exited', code: 0 });
    expect(scanOut.stdout).toEqual(['scanned 64 pages, found 0']);
    holder.endInput();
    expect(await holder.exited).toMatchObject({ state: 'exited', code: 0 });
    expect(holderOut.stdout).toEqual(['stored', 'done']);
  });

  it('the scanner does find a secret in its own memory (the scan works)', async () => {
    hv = hypervisor();
    // With --plant the scanner holds a second UTF-8 copy of the needle in its own memory.
    const scanner = await hv.createPartition({ name: 'scanner', module: guest('scan'), args: ['PLANTED-XYZ', '--plant'], devices: { console: true }, limits: { memoryPages: 8 } });
    const out = collect(scanner);
    await runToExit(scanner);
    expect(out.stdout).toEqual(['scanned 8 pages, found 1']);
  });
});
