import { describe, expect, it } from 'vitest';
import { HvCall, HvStatus } from '../../host/abi/codes.ts';
import { Dispatcher, GuestExit } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { resolveDevices, type ConsoleSpec } from '../../host/devices/config.ts';
import { ConsoleDevice } from '../../host/devices/console.ts';
import { resolveRateLimit, type RateLimitSpec } from '../../host/limits/rate-limiter.ts';
import { allocateStats, readMetrics } from '../../host/channel/stats.ts';
import { EventKind } from '../../host/channel/protocol.ts';
import { Hypervisor } from '../../host/index.ts';
import { collect, guest, runToExit, hypervisor } from '../helpers.ts';

/** A console and a dispatcher on a fake clock; sleeping advances it. */
function boundary(console: ConsoleSpec, hypercallRate?: RateLimitSpec) {
  let t = 0;
  const clock = { now: () => t, sleep: (ms: number) => void (t += ms) };
  const memory = new WebAssembly.Memory({ initial: 2 });
  const gm = new GuestMemory();
  gm.bind(memory);
  const sab = allocateStats();
  const stats = new Float64Array(sab);
  const events = new SharedRing(SharedRing.allocate(1 << 16));
  const input = new SharedRing(SharedRing.allocate(1 << 10));
  const dev = new ConsoleDevice(resolveDevices({ console }).console!, events, input, stats, clock.now, clock.sleep);
  const d = new Dispatcher({
    memory: gm,
    devices: [dev],
    args: [],
    stats,
    onViolation: () => {},
    hypercallRate: resolveRateLimit(hypercallRate, 'limits.hypercallRate'),
    ...clock,
  });
  new Uint8Array(memory.buffer).set(new TextEncoder().encode('0123456789\n'), 0);
  // A 64 KiB write at page 1: one (truncated) line.
  new Uint8Array(memory.buffer).fill(0x61, 65536, 2 * 65536 - 1);
  new Uint8Array(memory.buffer)[2 * 65536 - 1] = 0x0a;
  const write = (len: number) => d.hypercall(HvCall.CONSOLE_WRITE, 0, len, 0, 0);
  const lines = () => {
    const out: string[] = [];
    // Lines reach the output stream with their newline; compare them without it.
    for (let r = events.tryRead(); r !== null; r = events.tryRead()) {
      // Drop reports (EventKind.DROPPED) are the dispatcher tests' concern; here only output counts.
      if (r.kind !== EventKind.DROPPED) out.push(new TextDecoder().decode(r.bytes).replace(/\n$/, ''));
    }
    return out;
  };
  return { d, write, lines, metrics: () => readMetrics(sab), advance: (ms: number) => (t += ms), now: () => t };
}

describe('console rate limit (bytes and calls)', () => {
  it('reject: a write over the byte rate returns RATE_LIMITED and writes nothing; the refill lets it through', () => {
    const b = boundary({ linesPerSecond: 1e6, rateLimit: { bytesPerSecond: 65536 * 2, burstBytes: 65536 } });
    // Spend the bucket with one big write, then an 11-byte line must wait 11/131072 s.
    expect(b.d.hypercall(HvCall.CONSOLE_WRITE, 65536, 65536, 0, 0)).toBe(65536);
    expect(b.lines()).toHaveLength(1);
    expect(b.write(11)).toBe(-HvStatus.RATE_LIMITED);
    expect(b.lines()).toEqual([]);
    b.advance(11 / 131.072);
    expect(b.write(11)).toBe(11);
    expect(b.lines()).toEqual(['0123456789']);
    expect(b.metrics().throttled.console).toEqual({ calls: 1, waitedMs: 0 });
  });

  it('reject: over the call rate', () => {
    const b = boundary({ linesPerSecond: 1e6, rateLimit: { opsPerSecond: 2, burstOps: 2 } });
    expect(b.write(11)).toBe(11);
    expect(b.write(11)).toBe(11);
    expect(b.write(11)).toBe(-HvStatus.RATE_LIMITED);
    b.advance(500);
    expect(b.write(11)).toBe(11);
    expect(b.lines()).toHaveLength(3);
    expect(b.metrics().throttled.console.calls).toBe(1);
  });

  it('block: the write waits for the refill and goes through; the wait is counted', () => {
    const b = boundary({ linesPerSecond: 1e6, rateLimit: { opsPerSecond: 10, burstOps: 1, mode: 'block' } });
    expect(b.write(11)).toBe(11);
    expect(b.write(11)).toBe(11);
    expect(b.now()).toBe(100);
    expect(b.lines()).toHaveLength(2);
    expect(b.metrics().throttled.console).toEqual({ calls: 1, waitedMs: 100 });
  });
});

describe('hypercall rate limit', () => {
  it('reject: over the rate every call returns RATE_LIMITED without running; EXIT always passes', () => {
    const b = boundary({ linesPerSecond: 1e6 }, { opsPerSecond: 100, burstOps: 3 });
    for (let i = 0; i < 3; i++) expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBeGreaterThan(0);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(-HvStatus.RATE_LIMITED);
    expect(b.write(11)).toBe(-HvStatus.RATE_LIMITED);
    expect(b.lines()).toEqual([]);
    const m = b.metrics();
    expect(m.throttled.hypercalls).toEqual({ calls: 2, waitedMs: 0 });
    expect(m.hypercalls).toBe(5); // refused calls are still counted
    expect(m.violations).toBe(0); // and are not violations
    expect(() => b.d.hypercall(HvCall.EXIT, 0, 4, 0, 0)).toThrow(GuestExit);
  });

  it('block: calls are spaced to the rate', () => {
    const b = boundary({ linesPerSecond: 1e6 }, { opsPerSecond: 1000, burstOps: 1, mode: 'block' });
    for (let i = 0; i < 11; i++) expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBeGreaterThan(0);
    expect(b.now()).toBeCloseTo(10, 6);
    expect(b.metrics().throttled.hypercalls.calls).toBe(10);
    expect(b.metrics().throttled.hypercalls.waitedMs).toBeCloseTo(10, 6);
  });

  it('through a partition: limits.hypercallRate is validated and applied', async () => {
    const hv = hypervisor();
    try {
      await expect(hv.createPartition({ name: 'bad', module: guest('count'), limits: { hypercallRate: { opsPerSecond: 0 } } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await expect(
        hv.createPartition({ name: 'bad', module: guest('count'), devices: { console: { rateLimit: { mode: 'later' as never } } } }),
      ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      // count prints n lines, one CONSOLE_WRITE each: 40 calls at 20/s with a burst of 5 take
      // >= 1.75 s. The rate is low on purpose: a guest slowed by a loaded host spends tokens as
      // they come, so a fast rate would be met without throttling; at 50 ms a call it cannot be,
      // and a stall refills at most the burst (5 calls).
      const p = await hv.createPartition({
        name: 'slow',
        module: guest('count'),
        args: ['40'],
        limits: { hypercallRate: { opsPerSecond: 20, burstOps: 5, mode: 'block' } },
        devices: { console: true },
      });
      const out = collect(p);
      const exit = await runToExit(p);
      expect(exit).toMatchObject({ state: 'exited', code: 0 });
      expect(out.stdout).toHaveLength(41); // 1..40, then "done"
      expect(exit.metrics.throttled.hypercalls.calls).toBeGreaterThan(20);
      expect(exit.metrics.throttled.hypercalls.waitedMs).toBeGreaterThan(500);
      // Whatever the load, the calls cannot have gone faster than the rate allows.
      expect(exit.runTimeMs).toBeGreaterThanOrEqual(((40 - 5) / 20) * 1000 - 50);
    } finally {
      await hv.close();
    }
  });
});
