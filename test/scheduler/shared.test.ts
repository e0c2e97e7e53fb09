/**
 * Shared workers (issue #15, item 2): many partitions on one thread, each its own instance,
 * memory, dispatcher, devices and counters; time-sliced by fuel; blocking calls suspend the
 * partition instead of the thread; one partition's end never takes the others down.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type Partition } from '../../host/index.ts';
import { guest } from '../helpers.ts';

let hv: Hypervisor | null = null;
afterEach(async () => {
  await hv?.close();
  hv = null;
});

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function reactors(h: Hypervisor, n: number, module: string, prefix: string, spec: Record<string, unknown> = {}): Promise<Partition[]> {
  const ps: Partition[] = [];
  for (let i = 0; i < n; i++) ps.push(await h.createPartition({ name: `${prefix}-${i}`, module: guest(module), kind: 'reactor', ...spec }));
  await Promise.all(ps.map((p) => p.start()));
  return ps;
}

describe('shared workers', () => {
  it('1,000 shared partitions, each with a distinct secret: each prints its own, none finds another’s in its memory', async () => {
    hv = new Hypervisor({ placement: 'shared', sharedWorkers: 2, memoryBudgetBytes: 64 * 2 ** 30 });
    const N = 1000;
    const secret = (i: number) => `secret-${i.toString(36)}-${(i * 7919).toString(16)}-end`;
    // Commands: each prints its own secret (its argument) and exits.
    const commands: Partition[] = [];
    for (let i = 0; i < N; i++) {
      commands.push(await hv.createPartition({ name: `print-${i}`, module: guest('hello'), args: [secret(i)], devices: { console: true }, limits: { memoryPages: 2 } }));
    }
    const printed = commands.map(() => [] as string[]);
    commands.forEach((p, i) => p.on('console', (line) => printed[i]!.push(line)));
    await Promise.all(commands.map((p) => p.start()));
    const exits = await Promise.all(commands.map((p) => p.exited));
    expect(exits.every((e) => e.state === 'exited' && e.code === 0)).toBe(true);
    for (let i = 0; i < N; i++) {
      const mine = printed[i]!.join('\n');
      expect(mine).toContain(`arg[0]=${secret(i)}`);
      // Only its own: no other partition's secret reached this partition's stream.
      expect(mine.match(/secret-[0-9a-z]+-[0-9a-f]+-end/g)).toEqual([secret(i)]);
    }
    await Promise.all(commands.map((p) => p.destroy()));

    // Reactors: each remembers its secret; every tenth then searches all of its memory for its
    // neighbours' (a full scan is long: these calls are preempted and resumed many times).
    const snoops = await reactors(hv, N, 'attack-plugin-snoop', 'snoop', { limits: { memoryPages: 4, callTimeoutMs: 120_000 } });
    await Promise.all(snoops.map((p, i) => p.call('remember', secret(i))));
    const sample = snoops.filter((_, i) => i % 10 === 0);
    const own = await Promise.all(sample.map((p, k) => p.call('scan', secret(k * 10))));
    const next = await Promise.all(sample.map((p, k) => p.call('scan', secret((k * 10 + 1) % N))));
    const far = await Promise.all(sample.map((p, k) => p.call('scan', secret((k * 10 + N / 2) % N))));
    expect(own.every((o) => Number(text(o)) >= 1)).toBe(true); // the search works
    expect(next.map(text).every((o) => o === '0')).toBe(true);
    expect(far.map(text).every((o) => o === '0')).toBe(true);
    const peeks = await Promise.all(snoops.map((p) => p.call('peek')));
    peeks.forEach((b, i) => expect(text(b).replace(/\0+$/, '')).toBe(secret(i)));
    const workers = hv.scheduler().workers;
    expect(workers.length).toBe(2);
    expect(workers.reduce((n, w) => n + w.partitions, 0)).toBe(N);
  }, 300_000);

  it('a spinner next to 100 shared partitions delays each call by at most about one slice (median of 3 runs, as a ratio)', async () => {
    const sliceMs = 10;
    hv = new Hypervisor({ placement: 'shared', sharedWorkers: 1, sliceMs });
    const ps = await reactors(hv, 100, 'transform', 'calm');
    const input = new Uint8Array(64).fill(65);
    async function latencies(): Promise<number> {
      const times: number[] = [];
      for (const p of ps) {
        const t0 = performance.now();
        await p.call('echo', input);
        times.push(performance.now() - t0);
      }
      return median(times);
    }
    await latencies(); // warm-up
    const alone = median([await latencies(), await latencies(), await latencies()]);
    const [spinner] = await reactors(hv, 1, 'transform', 'spinner', { restart: 'never', limits: { callTimeoutMs: 60_000 } });
    const spinning = spinner!.call('spin').catch((e: unknown) => e);
    await pause(50);
    // Each call waits at most for the spinner's current slice to end, then runs. A sequential
    // caller meets a fresh slice of the spinner at almost every call: about one slice (measured
    // 1.0-1.6 on a loaded 2-core machine). Without preemption it would wait for the spinner's
    // whole run (a minute): the headroom is for a machine busy enough to stretch wall-clock
    // slices, and a noisy window is measured again (up to three times), never the verdict.
    let delayInSlices = Infinity;
    for (let attempt = 0; attempt < 3 && delayInSlices >= 3; attempt++) {
      const withSpinner = median([await latencies(), await latencies(), await latencies()]);
      delayInSlices = Math.min(delayInSlices, (withSpinner - alone) / sliceMs);
    }
    expect(delayInSlices).toBeLessThan(3);
    // The spinner was preempted, not starved: it got slices too, and it is still running.
    const m = spinner!.metrics();
    expect(m.sched.preemptions).toBeGreaterThan(5);
    expect(spinner!.state).toBe('running');
    await spinner!.stop();
    expect(await spinning).toMatchObject({ code: 'ERR_KILLED' });
  }, 120_000);

  it('a runaway is stopped by its own fuel or CPU limit; killing or trapping one partition never takes down the others', async () => {
    hv = new Hypervisor({ placement: 'shared', sharedWorkers: 1 });
    const ps = await reactors(hv, 20, 'transform', 'n');
    for (const p of ps) await p.call('count');
    const [fueled] = await reactors(hv, 1, 'transform', 'fueled', { restart: 'never', limits: { fuel: 5_000_000 } });
    const [capped] = await reactors(hv, 1, 'transform', 'capped', { restart: 'never', limits: { cpu: { maxPercent: 20 }, callTimeoutMs: 300 } });
    const trapper = ps[3]!;
    const stopped = ps[7]!;
    const [outOfFuel, overTime, trapped] = await Promise.all([
      fueled!.call('spin').catch((e: unknown) => e),
      capped!.call('spin').catch((e: unknown) => e),
      trapper.call('trap').catch((e: unknown) => e),
      stopped.stop(),
    ]);
    expect(outOfFuel).toMatchObject({ code: 'ERR_LIMIT_CPU', message: expect.stringContaining('fuel') });
    expect(overTime).toMatchObject({ code: 'ERR_LIMIT_CPU' });
    expect(trapped).toMatchObject({ code: 'ERR_GUEST_TRAP' });
    expect(stopped.state).toBe('killed');
    // Everyone else kept its state: the counter goes on from 1.
    for (const p of ps) {
      if (p === stopped) continue;
      const expected = p === trapper ? '1' : '2'; // the trapper was restarted: fresh state
      expect(text(await p.call('count'))).toBe(expected);
    }
    expect(capped!.metrics().cpu.pauses).toBeGreaterThan(0);
  }, 60_000);

  it('a partition blocked on console input suspends; its worker goes on serving others', async () => {
    hv = new Hypervisor({ placement: 'shared', sharedWorkers: 1 });
    const echo = await hv.createPartition({ name: 'echo', module: guest('echo'), devices: { console: true } });
    const lines: string[] = [];
    echo.on('console', (l) => lines.push(l));
    await echo.start();
    const [r] = await reactors(hv, 1, 'transform', 'r');
    await pause(50);
    // The echo guest sits in CONSOLE_READ: were it blocking the thread, these calls would hang.
    for (let i = 0; i < 50; i++) expect(text(await r!.call('upper', 'abc'))).toBe('ABC');
    echo.writeLine('hello');
    echo.endInput();
    expect((await echo.exited).code).toBe(0);
    expect(lines).toEqual(['echo: hello', 'bye (1 lines)']);
    expect(echo.metrics().sched.waits).toBeGreaterThan(0);
    expect(hv.partition('r-0')!.workerId).toBe(0);
  });

  it('a shared worker that dies (V8 out of heap) ends each of its partitions with ERR_KILLED and the reason; reactors restart', async () => {
    // A small heap so that the host state of enough partitions exhausts it, for real.
    hv = new Hypervisor({ placement: 'shared', sharedWorkers: 1, sharedWorkerHeapMb: 16, memoryBudgetBytes: 64 * 2 ** 30 });
    const victims: Partition[] = [];
    const restarts: string[] = [];
    const ends: string[] = [];
    let died = false;
    for (let i = 0; i < 5000 && !died; i++) {
      // Three restart on failure (onto a fresh worker); the rest end, so the fresh worker is not
      // flooded back to the same heap limit.
      const restart = i < 3 ? { mode: 'on-failure' as const, backoffMs: 0 } : 'never';
      const p = await hv.createPartition({ name: `v-${i}`, module: guest('transform'), kind: 'reactor', restart, limits: { memoryPages: 2 } });
      p.on('restart', (info) => restarts.push(`${info.reason}: ${info.message}`));
      p.on('exit', (e) => {
        ends.push(`${e.reason}: ${e.error?.message}`);
        died = true;
      });
      victims.push(p);
      await p.start().catch(() => undefined);
    }
    expect(died).toBe(true);
    await pause(200);
    expect(restarts).toHaveLength(3);
    for (const r of restarts) expect(r).toMatch(/^ERR_KILLED: partition v-[0-2]'s shared worker 0 died: it ran out of heap/);
    expect(ends.length).toBeGreaterThan(0);
    for (const e of ends) expect(e).toMatch(/^ERR_KILLED: partition v-\d+'s shared worker 0 died: it ran out of heap/);
    // A fresh shared worker took the restarted reactors; they answer again.
    expect(text(await victims[0]!.call('upper', 'ok'))).toBe('OK');
    expect(hv.scheduler().workers.some((w) => w.id > 0)).toBe(true);
  }, 300_000);

  it('hv.scheduler() shows workers, partitions per worker, run queue, slices and preemptions; metrics show each partition’s', async () => {
    hv = new Hypervisor({ placement: 'shared', sharedWorkers: 2 });
    const ps = await reactors(hv, 4, 'transform', 's');
    for (const p of ps) await p.call('count');
    const s = hv.scheduler();
    expect(s.defaultPlacement).toBe('shared');
    expect(s.sliceMs).toBe(10);
    expect(s.workers.map((w) => w.partitions).sort()).toEqual([2, 2]);
    for (const w of s.workers) expect(w).toMatchObject({ runQueue: 0, slices: expect.any(Number), preemptions: expect.any(Number) });
    expect(s.partitions.map((p) => [p.name, p.placement, p.state]).sort()).toEqual(ps.map((p) => [p.name, 'shared', 'running']).sort());
    for (const line of s.partitions) {
      expect(s.workers.map((w) => w.id)).toContain(line.worker);
      expect(line).toMatchObject({ slices: expect.any(Number), preemptions: expect.any(Number), waits: expect.any(Number), waitMs: expect.any(Number) });
    }
    for (const p of ps) {
      expect(p.placement).toBe('shared');
      expect(p.metrics().sched.slices).toBeGreaterThanOrEqual(2);
    }
  });

  it('scheduler options are accepted at each edge and refused one past it (the schema is their one source of truth)', async () => {
    const edges: [string, number, number][] = [
      // option, last accepted, first refused
      ['warmWorkers', 0, -1],
      ['warmWorkers', 64, 65],
      ['sharedWorkers', 1, 0],
      ['sharedWorkers', 256, 257],
      ['sliceMs', 1, 0],
      ['sliceMs', 1000, 1001],
      ['sharedWorkerHeapMb', 16, 15],
      ['sharedWorkerHeapMb', 16384, 16385],
    ];
    for (const [option, ok, bad] of edges) {
      const accepted = new Hypervisor({ [option]: ok });
      await accepted.close();
      expect(() => new Hypervisor({ [option]: bad })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining(option) }));
    }
  });

  it('refuses bad placement options with ERR_INVALID_ARGUMENT', async () => {
    for (const options of [{ placement: 'process' }, { sharedWorkers: 0 }, { sliceMs: 0 }, { sliceMs: 1001 }, { sharedWorkerHeapMb: 8 }]) {
      expect(() => new Hypervisor(options as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
    hv = new Hypervisor();
    await expect(hv.createPartition({ name: 'x', module: guest('hello'), placement: 'remote' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('placement') });
  });
});
