/**
 * Shared partition processes (issue #17 part 1, issue #15 item 3): `isolation: 'process'` with
 * `placement: 'shared'` puts many partitions in one sandboxed child process, each still its own
 * instance, memory, dispatcher, devices and counters on the child's scheduler. One partition's end
 * never disturbs its neighbours; the child's death ends each of its partitions with ERR_KILLED; a
 * frame for a slot the child does not host (or one a neighbour's state refuses) kills the child;
 * partitions that need descriptors get a process of their own or are refused; the bound of
 * partitions per process holds at its edge and one past it.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type HypervisorOptions, type Partition, type Violation } from '../../host/index.ts';
import { MAX_PARTITIONS_PER_PROCESS, MAX_SHARED_PROCESSES, WASM_MEMORY_RESERVATION_MB } from '../../host/scheduler/bounds.ts';
import { captureEscapes, guest } from '../helpers.ts';
import { alive, useProcessCode } from './process-seam.ts';

const forgedChild = new URL('./fixtures/forged-shared-child.cjs', import.meta.url);
const hasProc = process.platform === 'linux' && existsSync('/proc/self/status');

const escaped = captureEscapes();

let hv: Hypervisor | null = null;
afterEach(async () => {
  await hv?.close();
  hv = null;
  expect(escaped).toEqual([]);
});

const text = (b: Uint8Array) => new TextDecoder().decode(b);

function make(process_: HypervisorOptions['process'] = {}, child?: URL, options: HypervisorOptions = {}): Hypervisor {
  hv = new Hypervisor({
    dataDir: mkdtempSync(path.join(os.tmpdir(), 'wv-pshare-')),
    warmWorkers: 0,
    isolation: 'process',
    placement: 'shared',
    memoryBudgetBytes: 64 * 2 ** 30,
    process: { sharedProcesses: 1, ...process_ },
    ...options,
  });
  if (child) useProcessCode(hv, child);
  return hv;
}

async function reactors(h: Hypervisor, n: number, module: string, prefix: string, spec: Record<string, unknown> = {}): Promise<Partition[]> {
  const ps: Partition[] = [];
  for (let i = 0; i < n; i++) ps.push(await h.createPartition({ name: `${prefix}-${i}`, module: guest(module), kind: 'reactor', ...spec }));
  await Promise.all(ps.map((p) => p.start()));
  return ps;
}

describe('a shared partition process', () => {
  it('hosts many partitions, each with a distinct secret: each prints its own, none finds another’s in its memory', async () => {
    const h = make({ partitionsPerProcess: 64 });
    const N = 24;
    const secret = (i: number) => `secret-${i.toString(36)}-${(i * 7919).toString(16)}-end`;
    const commands: Partition[] = [];
    for (let i = 0; i < N; i++) {
      commands.push(await h.createPartition({ name: `print-${i}`, module: guest('hello'), args: [secret(i)], devices: { console: true }, limits: { memoryPages: 2 } }));
    }
    const printed = commands.map(() => [] as string[]);
    commands.forEach((p, i) => p.on('console', (line) => printed[i]!.push(line)));
    await Promise.all(commands.map((p) => p.start()));
    const exits = await Promise.all(commands.map((p) => p.exited));
    expect(exits.map((e) => [e.state, e.code])).toEqual(exits.map(() => ['exited', 0]));
    for (let i = 0; i < N; i++) {
      const mine = printed[i]!.join('\n');
      expect(mine).toContain(`arg[0]=${secret(i)}`);
      expect(mine.match(/secret-[0-9a-z]+-[0-9a-f]+-end/g)).toEqual([secret(i)]);
    }
    await Promise.all(commands.map((p) => p.destroy()));

    // Reactors in one child: each remembers its secret and searches all of its memory for its neighbours'.
    const snoops = await reactors(h, 12, 'attack-plugin-snoop', 'snoop', { limits: { memoryPages: 4, callTimeoutMs: 120_000 } });
    const pid = snoops[0]!.workerId!;
    expect(pid).not.toBe(process.pid);
    expect(snoops.map((p) => [p.placement, p.workerId])).toEqual(snoops.map(() => ['shared-process', pid]));
    await Promise.all(snoops.map((p, i) => p.call('remember', secret(i))));
    const own = await Promise.all(snoops.map((p, i) => p.call('scan', secret(i))));
    const next = await Promise.all(snoops.map((p, i) => p.call('scan', secret((i + 1) % snoops.length))));
    expect(own.every((o) => Number(text(o)) >= 1)).toBe(true); // the search works
    expect(next.map(text)).toEqual(snoops.map(() => '0'));
    const peeks = await Promise.all(snoops.map((p) => p.call('peek')));
    peeks.forEach((b, i) => expect(text(b).replace(/\0+$/, '')).toBe(secret(i)));

    // hv.scheduler(): one shared process with its partitions and its scheduler's counters.
    const s = h.scheduler();
    expect(s.processes).toHaveLength(1);
    expect(s.processes[0]).toMatchObject({ pid, shared: true, partitions: 12 });
    expect(s.processSeats).toEqual({ taken: 12, capacity: 64 });
    expect(s.partitions.filter((p) => p.placement === 'shared-process').map((p) => p.worker)).toEqual(snoops.map(() => pid));
  }, 300_000);

  it('a trap, a kill, a stop and an exit of partitions leave their neighbours in the process answering', async () => {
    const h = make({ partitionsPerProcess: 16 });
    const ps = await reactors(h, 6, 'transform', 'n', { restart: 'never' });
    const pid = ps[0]!.workerId!;
    for (const p of ps) expect(text(await p.call('upper', p.name))).toBe(p.name.toUpperCase());
    const command = await h.createPartition({ name: 'exits', module: guest('exit'), args: ['7'] });
    const [trapped, stopped] = await Promise.all([ps[0]!.call('trap').catch((e: unknown) => e), ps[1]!.stop(), ps[2]!.destroy(), command.start()]);
    expect(trapped).toMatchObject({ code: 'ERR_GUEST_TRAP' });
    expect(stopped).toMatchObject({ state: 'killed', reason: 'ERR_KILLED' });
    expect((await command.exited).state).toBe('exited');
    expect((await ps[0]!.exited).reason).toBe('ERR_GUEST_TRAP');
    for (const p of ps.slice(3)) {
      expect(p.workerId).toBe(pid);
      expect(text(await p.call('upper', 'still here'))).toBe('STILL HERE');
    }
    expect(h.scheduler().processes).toMatchObject([{ pid, shared: true, partitions: 3 }]);
    // A freed slot is taken again by a new partition, in the same process.
    const [late] = await reactors(h, 1, 'transform', 'late');
    expect(late!.workerId).toBe(pid);
    expect(text(await late!.call('upper', 'late'))).toBe('LATE');
  }, 120_000);

  it('SIGKILL of the child ends each of its partitions with ERR_KILLED and the reason; a reactor with a restart policy comes back in a new process', async () => {
    const h = make({ partitionsPerProcess: 16 });
    const other = await h.createPartition({ name: 'thread', module: guest('limits'), kind: 'reactor', isolation: 'thread', placement: 'dedicated' });
    await other.start();
    const doomed = await reactors(h, 3, 'transform', 'doomed', { restart: 'never' });
    const [phoenix] = await reactors(h, 1, 'transform', 'phoenix', { restart: { mode: 'on-failure', backoffMs: 10 } });
    const pid = phoenix!.workerId!;
    expect(doomed.map((p) => p.workerId)).toEqual([pid, pid, pid]);
    const restarted = new Promise((resolve) => phoenix!.once('restart', resolve));
    process.kill(pid, 'SIGKILL');
    const exits = await Promise.all(doomed.map((p) => p.exited));
    for (const e of exits) {
      expect([e.state, e.reason]).toEqual(['killed', 'ERR_KILLED']);
      expect(e.error!.message).toMatch(new RegExp(`shared partition process ${pid} died: it ended unexpectedly \\(signal SIGKILL\\)`));
    }
    await restarted;
    expect(text(await phoenix!.call('upper', 'back'))).toBe('BACK');
    expect(phoenix!.workerId).not.toBe(pid);
    expect(alive(pid)).toBe(false);
    expect((await other.call('digest', new Uint8Array(10))).length).toBe(8);
    expect(h.scheduler().processes.map((p) => p.pid)).toEqual([phoenix!.workerId]);
  }, 120_000);
});

describe('a compromised shared child', () => {
  const forged: [scenario: string, reason: RegExp][] = [
    ['forge-unhosted', /a frame of type record for slot \d+, which this shared process does not host \(it hosts 3 partitions\)/],
    ['forge-neighbour', /a second running message/],
  ];

  it.each(forged)('%s: the child is killed, each partition in it ends with ERR_KILLED and a violation; the root and a thread partition go on', async (scenario, reason) => {
    const h = make({ partitionsPerProcess: 8 }, forgedChild);
    const other = await h.createPartition({ name: 'thread', module: guest('limits'), kind: 'reactor', isolation: 'thread', placement: 'dedicated' });
    await other.start();
    const violations: Violation[] = [];
    h.on('violation', (v) => violations.push(v));
    const tenants = await reactors(h, 2, 'transform', 'tenant', { restart: 'never' });
    const pid = tenants[0]!.workerId!;
    expect(tenants[1]!.workerId).toBe(pid);
    const forger = await h.createPartition({ name: 'forger', module: guest('transform'), kind: 'reactor', restart: 'never', args: [scenario] });
    await forger.start();
    const exits = await Promise.all([...tenants, forger].map((p) => p.exited));
    for (const e of exits) {
      expect([e.state, e.reason]).toEqual(['killed', 'ERR_KILLED']);
      expect(e.error!.message).toMatch(/process was killed: it sent/);
      expect(e.error!.message).toMatch(reason);
      expect(e.error!.message).toContain(`(shared partition process ${pid})`);
    }
    expect(violations.map((v) => v.partition).sort()).toEqual(['forger', 'tenant-0', 'tenant-1']);
    for (const v of violations) expect(v).toMatchObject({ call: 'process-channel', status: 'REFUSED', reason: expect.stringMatching(reason) });
    expect(h.scheduler().processes).toEqual([]);
    expect(alive(pid)).toBe(false);
    expect((await other.call('digest', new Uint8Array(10))).length).toBe(8);
  }, 120_000);
});

describe('descriptors and shared partition processes', () => {
  it('a spec that asks to share is refused when it needs a descriptor, naming it; with sharing the default, it gets a process of its own', async () => {
    const h = make();
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'wv-pshare-out-')), 'out.txt');
    const fd = openSync(file, 'w');
    try {
      const console_ = { outputFd: { stdout: fd } };
      await expect(h.createPartition({ name: 'asks', module: guest('hello'), placement: 'shared', devices: { console: console_ } })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
        message: expect.stringMatching(/placement 'shared' with isolation 'process' cannot give the partition devices\.console\.outputFd/),
      });
      await expect(h.createPartition({ name: 'disk', module: guest('hello'), placement: 'shared', devices: { block: { sizeMiB: 1 } } })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
        message: expect.stringMatching(/devices\.block/),
      });
      const dir = mkdtempSync(path.join(os.tmpdir(), 'wv-pshare-dir-'));
      await expect(h.createPartition({ name: 'folder', module: guest('hello'), placement: 'shared', wasi: { preopens: [{ guestPath: '/d', hostPath: dir, mode: 'ro' }] } })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
        message: expect.stringMatching(/wasi\.preopens \(1 host folder\)/),
      });
      // The default placement yields: the device is kept, in a dedicated process.
      const p = await h.createPartition({ name: 'direct', module: guest('hello'), devices: { console: console_ } });
      await p.start();
      expect((await p.exited).code).toBe(0);
      expect(readFileSync(file, 'utf8')).toMatch(/^Hello from a Wasmvisor partition!\n/);
      const r = await h.createPartition({ name: 'direct-reactor', module: guest('transform'), kind: 'reactor', devices: { console: console_ } });
      await r.start();
      expect(r.placement).toBe('process');
      expect(h.scheduler().processes).toMatchObject([{ pid: r.workerId, shared: false, partitions: 1 }]);
      expect(h.scheduler().processSeats.taken).toBe(0);
    } finally {
      closeSync(fd);
    }
  }, 120_000);
});

describe('the bound of partitions per shared process', () => {
  it('the options take the bounds at their edge and refuse one past it', () => {
    expect(() => new Hypervisor({ process: { partitionsPerProcess: MAX_PARTITIONS_PER_PROCESS, sharedProcesses: MAX_SHARED_PROCESSES } })).not.toThrow();
    expect(() => new Hypervisor({ process: { partitionsPerProcess: MAX_PARTITIONS_PER_PROCESS + 1 } })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('partitionsPerProcess') }),
    );
    expect(() => new Hypervisor({ process: { sharedProcesses: MAX_SHARED_PROCESSES + 1 } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('sharedProcesses') }));
    expect(() => new Hypervisor({ process: { partitionsPerProcess: 0 } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('processes × partitions per process: the last seat is taken, one past it is ERR_LIMIT_MEMORY, a freed seat is taken again', async () => {
    const h = make({ sharedProcesses: 2, partitionsPerProcess: 2 });
    const ps = await reactors(h, 4, 'transform', 'seat');
    const pids = new Set(ps.map((p) => p.workerId));
    expect(pids.size).toBe(2);
    expect(h.scheduler().processes.map((p) => p.partitions)).toEqual([2, 2]);
    await expect(h.createPartition({ name: 'one-past', module: guest('transform'), kind: 'reactor' })).rejects.toMatchObject({
      code: 'ERR_LIMIT_MEMORY',
      message: expect.stringMatching(/every shared partition process hosts its most partitions \(2 processes × 2 partitions/),
    });
    // A thread partition is not counted against them.
    await h.createPartition({ name: 'thread', module: guest('transform'), kind: 'reactor', isolation: 'thread' });
    await ps[1]!.destroy();
    const [again] = await reactors(h, 1, 'transform', 'again');
    expect(pids.has(again!.workerId)).toBe(true);
    expect(text(await again!.call('upper', 'x'))).toBe('X');
  }, 120_000);

  it.skipIf(!hasProc)('a process sized for the most partitions starts and runs: its address-space limit holds a memory for each', async () => {
    const h = make({ partitionsPerProcess: MAX_PARTITIONS_PER_PROCESS });
    const [p] = await reactors(h, 1, 'transform', 'roomy');
    const limits = readFileSync(`/proc/${p!.workerId}/limits`, 'utf8');
    const bytes = (32 * 1024 + MAX_PARTITIONS_PER_PROCESS * WASM_MEMORY_RESERVATION_MB) * 1024 * 1024;
    expect(limits).toMatch(new RegExp(`Max address space\\s+${bytes}\\s+${bytes}`));
    expect(text(await p!.call('upper', 'fits'))).toBe('FITS');
  }, 120_000);
});
