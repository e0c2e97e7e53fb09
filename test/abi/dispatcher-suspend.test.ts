/**
 * A rate-limited call suspended in its wait (shared placement): the Blocker of a shared worker
 * throws a Suspend out of the rate limiter's sleep instead of waiting (host/channel/blocker.ts),
 * and the operation runs again from its start when the guest resumes. The first run never got past
 * the limit, so its redo must be charged: if it were not, every suspended call would be a free
 * call, and a guest could beat its hypercall rate limit by being suspended.
 */
import { describe, expect, it } from 'vitest';
import { HV_ABI_VERSION, HvCall } from '../../host/abi/codes.ts';
import { Dispatcher } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { allocateStats, readMetrics } from '../../host/channel/stats.ts';
import { resolveRateLimit } from '../../host/limits/rate-limiter.ts';

/** Stands for the shared Blocker's Suspend: thrown out of the sleep, it unwinds the call. */
class Suspended {}

/** A dispatcher with a block-mode limit of one call per 100 ms, whose sleep suspends while `suspend` is set. */
function suspending() {
  const gm = new GuestMemory();
  gm.bind(new WebAssembly.Memory({ initial: 1 }));
  const sab = allocateStats();
  let t = 0;
  const state = { suspend: false, sleeps: [] as number[] };
  const d = new Dispatcher({
    memory: gm,
    devices: [],
    args: [],
    stats: new Float64Array(sab),
    onViolation: () => {},
    now: () => t,
    sleep: (ms) => {
      if (state.suspend) throw new Suspended();
      state.sleeps.push(ms);
      t += ms;
    },
    hypercallRate: resolveRateLimit({ opsPerSecond: 10, burstOps: 1, mode: 'block' }, 'limits.hypercallRate'),
  });
  return { d, state, advance: (ms: number) => (t += ms), metrics: () => readMetrics(sab) };
}

describe('Dispatcher: a call suspended in the rate limit’s wait', () => {
  it('a WASI operation (admitCall) suspended in its wait is charged when it is redone, after an admitted one', () => {
    const s = suspending();
    expect(s.d.admitCall(0)).toBe(true); // admitted: the one token is spent
    s.state.suspend = true;
    expect(() => s.d.admitCall(0)).toThrow(Suspended); // no token: the wait suspends the guest
    s.state.suspend = false;
    s.advance(100); // the guest resumes when the wait is over: one token again
    s.d.setRedo(true);
    expect(s.d.admitCall(0)).toBe(true); // the redo takes that token...
    s.d.setRedo(false);
    expect(s.state.sleeps).toEqual([]);
    expect(s.d.admitCall(0)).toBe(true); // ...so the next operation waits for the next one
    expect(s.state.sleeps).toEqual([100]);
    expect(s.metrics().throttled.hypercalls).toEqual({ calls: 2, waitedMs: 200 });
  });

  it('a hypercall suspended in its wait is charged when it is redone, after an admitted one', () => {
    const s = suspending();
    expect(s.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION);
    s.state.suspend = true;
    expect(() => s.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toThrow(Suspended);
    s.state.suspend = false;
    s.advance(100);
    s.d.setRedo(true);
    expect(s.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION);
    s.d.setRedo(false);
    expect(s.state.sleeps).toEqual([]);
    expect(s.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION);
    expect(s.state.sleeps).toEqual([100]);
    expect(s.metrics().hypercallsByCall.VERSION).toBe(3); // the redo was counted by its first run
  });
});
