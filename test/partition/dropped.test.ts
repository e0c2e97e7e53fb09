/**
 * The `dropped` events add up exactly to metrics.console's dropped counts however a partition
 * ends. The worker reports its drops every 100 ms and last when its console closes; a worker the
 * host terminates (stop, the watchdog, a crash, a call's budget) never closes it, and the root
 * then reports the rest from the counters, per stream, before `restart` or `exit`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type Partition, type PartitionExit } from '../../host/index.ts';
import { PLACEMENT, guest, hypervisor } from '../helpers.ts';
import { wat } from '../loader/wat.ts';

const FLOOD_LIMIT = { bytesPerSecond: 65536, burstBytes: 65536, mode: 'reject' as const };
/**
 * A limit whose burst is spent within the first milliseconds and then refills one byte a second:
 * no write is taken again, so only the 100 ms timer reports drops (an accepted write reports the
 * drops before it, which at FLOOD_LIMIT leaves a rest at the end only now and then).
 */
const STARVED_LIMIT = { bytesPerSecond: 1, burstBytes: 65536, mode: 'reject' as const };

/**
 * A command that writes 1000-byte chunks with CONSOLE_STREAM_WRITE* (`codes`, in turn), ignoring
 * RATE_LIMITED: `count` writes (0: forever), then returns or traps.
 */
function flooder(codes: number[], count: number, end: 'return' | 'trap'): Uint8Array {
  const writes = codes.map((c) => `(drop (call $hv (i32.const ${c}) (i32.const 0) (i32.const 1000) (i32.const 0) (i32.const 0)))`).join('\n');
  return wat(`(module
    (import "hv" "hypercall" (func $hv (param i32 i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1 1)
    (data (i32.const 0) "${'x'.repeat(999)}\\n")
    (func (export "_start") (local $i i32)
      (loop $again
        ${writes}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $again (i32.or (i32.eqz (i32.const ${count})) (i32.lt_u (local.get $i) (i32.const ${count})))))
      ${end === 'trap' ? 'unreachable' : ''}))`);
}

const STDOUT = 0x0103;
const STDERR = 0x0104;

/** A reactor whose `flood` writes to stderr forever (a call ends only by its budget). */
const REACTOR = wat(`(module
  (import "hv" "hypercall" (func $hv (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "${'y'.repeat(999)}\\n")
  (func (export "flood") (result i32)
    (loop $again
      (drop (call $hv (i32.const ${STDERR}) (i32.const 0) (i32.const 1000) (i32.const 0) (i32.const 0)))
      (br $again))
    (i32.const 0)))`);

interface Seen {
  /** Every event in order: the drops, and `restart` / `exit` as markers. */
  order: string[];
  sum: (k: 'bytes' | 'lines' | 'bytesTruncated', stream?: 'stdout' | 'stderr') => number;
}

function watch(p: Partition): Seen {
  const drops: { stream: string; bytes: number; lines: number; bytesTruncated: number }[] = [];
  const order: string[] = [];
  p.on('dropped', (d) => {
    drops.push(d);
    order.push(`dropped:${d.stream}`);
  });
  p.on('restart', () => order.push('restart'));
  p.on('exit', () => order.push('exit'));
  return {
    order,
    sum: (k, stream) => drops.filter((d) => stream === undefined || d.stream === stream).reduce((n, d) => n + d[k], 0),
  };
}

/** Each dropped field adds up to its counter exactly, and nothing is reported after the exit. */
function expectExact(seen: Seen, exit: PartitionExit): void {
  const c = exit.metrics.console;
  expect(seen.sum('bytes')).toBe(c.bytesDropped);
  expect(seen.sum('lines')).toBe(c.linesDropped);
  expect(seen.sum('bytesTruncated')).toBe(c.bytesTruncated);
  expect(seen.order.at(-1)).toBe('exit');
  expect(seen.order.filter((e) => e === 'exit')).toHaveLength(1);
}

let hv: Hypervisor | null = null;
let serial = 0;
afterEach(async () => {
  await hv?.close();
  hv = null;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('dropped events add up to metrics.console however the partition ends', () => {
  for (const [what, limit] of [['65536 B/s', FLOOD_LIMIT], ['a spent burst', STARVED_LIMIT]] as const) {
    it(`p.stop() of a guest flooding a reject-mode rate limit (${what}): the worker is terminated before its last report`, async () => {
      hv = hypervisor();
      const p = await hv.createPartition({ name: `stop-${serial++}`, module: guest('attack-flood'), devices: { console: { rateLimit: limit } } });
      const seen = watch(p);
      await p.start();
      await sleep(700);
      await p.stop();
      const exit = await p.exited;
      expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_KILLED' });
      expect(exit.metrics.console.bytesDropped).toBeGreaterThan(0);
      expectExact(seen, exit);
      // attack-flood writes stdout only.
      expect(seen.sum('bytes', 'stderr')).toBe(0);
    });

    it(`the watchdog (timeoutMs; ${what})`, async () => {
      hv = hypervisor();
      const p = await hv.createPartition({ name: `watchdog-${serial++}`, module: guest('attack-flood'), limits: { timeoutMs: 700 }, devices: { console: { rateLimit: limit } } });
      const seen = watch(p);
      await p.start();
      const exit = await p.exited;
      expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_LIMIT_CPU' });
      expect(exit.metrics.console.bytesDropped).toBeGreaterThan(0);
      expectExact(seen, exit);
    });
  }

  it('fuel exhaustion (the guest ends by itself)', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: `fuel-${serial++}`, module: guest('attack-flood'), limits: { fuel: 20_000_000 }, devices: { console: { rateLimit: FLOOD_LIMIT } } });
    const seen = watch(p);
    await p.start();
    const exit = await p.exited;
    expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_LIMIT_CPU' });
    expect(exit.error?.message).toMatch(/ran out of fuel/);
    expect(exit.metrics.console.bytesDropped).toBeGreaterThan(0);
    expectExact(seen, exit);
  });

  it('the lines bucket and over-long lines of the line calls, stopped', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: `lines-${serial++}`, module: guest('attack-flood'), devices: { console: { linesPerSecond: 50, burstLines: 50, maxLineBytes: 128 } } });
    const seen = watch(p);
    await p.start();
    await sleep(500);
    await p.stop();
    const exit = await p.exited;
    expect(exit.metrics.console.linesDropped).toBeGreaterThan(0);
    expect(exit.metrics.console.bytesTruncated).toBeGreaterThan(0);
    expectExact(seen, exit);
  });

  it('stderr: the rest is reported on the stream it was dropped from', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: `stderr-${serial++}`, module: flooder([STDERR], 0, 'return'), devices: { console: { rateLimit: STARVED_LIMIT } } });
    const seen = watch(p);
    await p.start();
    await sleep(500);
    await p.stop();
    const exit = await p.exited;
    expect(exit.metrics.console.bytesDropped).toBeGreaterThan(0);
    expectExact(seen, exit);
    expect(seen.sum('bytes', 'stderr')).toBe(exit.metrics.console.bytesDropped);
    expect(seen.sum('bytes', 'stdout')).toBe(0);
  });

  it('both streams, stopped', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: `both-${serial++}`, module: flooder([STDOUT, STDERR], 0, 'return'), devices: { console: { rateLimit: STARVED_LIMIT } } });
    const seen = watch(p);
    await p.start();
    await sleep(500);
    await p.stop();
    const exit = await p.exited;
    expect(seen.sum('bytes', 'stdout')).toBeGreaterThan(0);
    expect(seen.sum('bytes', 'stderr')).toBeGreaterThan(0);
    expectExact(seen, exit);
  });

  it('an exit and a trap after the flood', async () => {
    hv = hypervisor();
    for (const end of ['return', 'trap'] as const) {
      const p = await hv.createPartition({ name: `${end}-${serial++}`, module: flooder([STDOUT, STDERR], 20_000, end), devices: { console: { rateLimit: FLOOD_LIMIT } } });
      const seen = watch(p);
      await p.start();
      const exit = await p.exited;
      expect(exit.state).toBe(end === 'return' ? 'exited' : 'trapped');
      expect(exit.metrics.console.bytesDropped).toBeGreaterThan(0);
      expectExact(seen, exit);
    }
  });

  it("a reactor's calls killed by their budget and restarted, then stopped: each run's rest before its restart", async () => {
    hv = hypervisor();
    const p = await hv.createPartition({
      name: `reactor-${serial++}`,
      module: REACTOR,
      kind: 'reactor',
      limits: { callTimeoutMs: 300 },
      restart: { mode: 'on-failure', maxRestarts: 5, backoffMs: 10 },
      devices: { console: { rateLimit: STARVED_LIMIT } },
    });
    const seen = watch(p);
    await p.start();
    for (let i = 0; i < 2; i++) {
      const restarted = new Promise((r) => p.once('restart', r));
      await expect(p.call('flood')).rejects.toMatchObject({ code: 'ERR_LIMIT_CPU' });
      await restarted;
      // The killed run's drops are all reported by its restart.
      expect(seen.sum('bytes')).toBe(p.metrics().console.bytesDropped);
      expect(seen.order.at(-1)).toBe('restart');
    }
    expect(seen.order.filter((e) => e === 'restart')).toHaveLength(2);
    const call = p.call('flood').catch((e: unknown) => e);
    await sleep(300);
    await p.stop();
    await call;
    const exit = await p.exited;
    expect(exit.metrics.console.bytesDropped).toBeGreaterThan(0);
    expectExact(seen, exit);
    expect(seen.sum('bytes', 'stdout')).toBe(0);
  });

  for (const shared of [false, true]) {
    it.runIf(PLACEMENT === 'dedicated')(`a ${shared ? 'shared ' : ''}partition process that dies (SIGKILL)`, async () => {
      hv = new Hypervisor({ isolation: 'process', warmWorkers: 0, ...(shared ? { placement: 'shared' as const, process: { sharedProcesses: 1 } } : {}) });
      const p = await hv.createPartition({ name: `crash-${serial++}`, module: guest('attack-flood'), devices: { console: { rateLimit: STARVED_LIMIT } } });
      const seen = watch(p);
      await p.start();
      await sleep(700);
      process.kill(p.workerId!, 'SIGKILL');
      const exit = await p.exited;
      expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_KILLED' });
      expect(exit.error!.message).toMatch(/SIGKILL/);
      expect(exit.metrics.console.bytesDropped).toBeGreaterThan(0);
      expectExact(seen, exit);
    });
  }
});
