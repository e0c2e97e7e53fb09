/**
 * The in-thread network of the net tests: a real VirtualSwitch and real NICs (NetDevice over real
 * rings), the worker side driven by calling the hypercall handlers directly, the switch's tx loops
 * on this thread's event loop, an injected clock for the budgets.
 */
import { HvCall, HV_NET_RECV_NONBLOCK } from '../../host/abi/codes.ts';
import { resolveDevices, type NetSpec } from '../../host/devices/config.ts';
import { NetDevice } from '../../host/devices/net.ts';
import { VirtualSwitch, type NetViolation } from '../../host/net/switch.ts';

export const enc = new TextEncoder();
export const dec = new TextDecoder();

/** Lets the switch's tx loops run (they wake through Atomics.waitAsync and setImmediate). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  await new Promise<void>((r) => setTimeout(r, 2));
}

/**
 * Lets the event loop run until `done()` holds; fails naming `what` after `ms`, a bound against a
 * hang (what it waits for takes milliseconds). Not stretched in mutation runs: a mutant that stops
 * a frame then fails in seconds, not at Stryker's timeout.
 */
export async function until(done: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await settle();
  }
}

/** `p`, or a failure naming `what` after `ms`: a bound against a hang, like `until`'s. */
export async function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

export function lan(now: () => number = () => 0) {
  const sw = new VirtualSwitch({ now });
  const nic = (name: string, spec: NetSpec, txWaitMs = 0) => {
    const config = resolveDevices({ net: spec }).net!;
    const violations: NetViolation[] = [];
    const att = sw.attachNic(name, config, (v) => violations.push(v));
    const dev = new NetDevice(att.init, { now, txWaitMs });
    const out = new Uint8Array(65536);
    const input = new Uint8Array(65536);
    const send = (dst: number, payload: Uint8Array | string, call: number = HvCall.NET_SEND): number => {
      const p = typeof payload === 'string' ? enc.encode(payload) : payload;
      new DataView(input.buffer).setUint32(0, dst, true);
      input.set(p, 4);
      return dev.handlers.get(call)!(input, 4 + p.length, out, 0);
    };
    const poll = (timeoutMs: number, dst?: number): number => {
      const arg = new Uint8Array(8);
      new DataView(arg.buffer).setUint32(0, timeoutMs, true);
      if (dst !== undefined) new DataView(arg.buffer).setUint32(4, dst, true);
      return dev.handlers.get(HvCall.NET_POLL)!(arg, dst === undefined ? 4 : 8, out, 0);
    };
    const recv = (cap = 65536): { r: number; src: number; dst: number; text: string; payload: Uint8Array } => {
      const flags = new Uint8Array(8);
      new DataView(flags.buffer).setUint32(0, HV_NET_RECV_NONBLOCK, true);
      out.fill(0);
      const r = dev.handlers.get(HvCall.NET_RECV)!(flags, 8, out, cap);
      const dv = new DataView(out.buffer);
      return { r, src: dv.getUint32(0, true), dst: dv.getUint32(4, true), text: r > 8 ? dec.decode(out.subarray(8, r)) : '', payload: out.slice(8, Math.max(8, r)) };
    };
    const drain = (): number => {
      let n = 0;
      while (recv().r >= 0) n++;
      return n;
    };
    return { name, address: att.address, stats: att.stats, dev, send, poll, recv, drain, violations, att, detach: att.detach };
  };
  return { sw, nic };
}
