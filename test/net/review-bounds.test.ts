/**
 * Root-side bounds of the network that a peer controls the rate of: state the root keeps per
 * event must not outlive its cause, whoever sends and however long a receiver does not read.
 * Real switch, real rings, real NIC front-end (as test/net/switch.test.ts); real TCP clients
 * for the forwarder. Every wait is bounded and no assertion depends on timing.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HV_NET_RECV_NONBLOCK, HvCall } from '../../host/abi/codes.ts';
import { resolveDevices } from '../../host/devices/config.ts';
import { NetDevice, NetStat } from '../../host/devices/net.ts';
import { VirtualSwitch } from '../../host/net/switch.ts';
import { Hypervisor } from '../../host/index.ts';
import { guest, hypervisor } from '../helpers.ts';

/** Threads (or the root's async waits) waiting for room in a ring: its RWAIT control word (host/channel/ring.ts). */
function roomWaiters(ring: SharedArrayBuffer): number {
  return Atomics.load(new Int32Array(ring, 0, 8), 6);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('switch: a frame held for a receiver that never reads', () => {
  it('costs the root one wait on the receiver\'s queue, however long it is held, and still arrives', async () => {
    const now = () => 0;
    const sw = new VirtualSwitch({ now });
    const noop = () => {};
    // The sender takes no part in the direct path: every frame of it goes through the root.
    const sender = sw.attachNic('sender', resolveDevices({ net: { segment: 'blue' } }).net!, noop, 100, false);
    const victim = sw.attachNic('victim', resolveDevices({ net: { segment: 'blue', mtu: 1000, rxQueueBytes: 4096 } }).net!, noop, 100, false);
    const tx = new NetDevice(sender.init, { now, txWaitMs: 0 });
    const rx = new NetDevice(victim.init, { now, txWaitMs: 0 });
    const input = new Uint8Array(4 + 1000);
    new DataView(input.buffer).setUint32(0, victim.address, true);
    let accepted = 0;
    for (let i = 0; i < 12; i++) if (tx.handlers.get(HvCall.NET_SEND)!(input, input.length, new Uint8Array(0), 0) === 1000) accepted++;
    // The victim's queue holds 4096 bytes: the rest waits in the sender's tx ring, its head held by the root.
    for (let i = 0; i < 200 && roomWaiters(victim.init.port.rx) === 0; i++) await sleep(5);
    expect(roomWaiters(victim.init.port.rx)).toBe(1);
    // The root re-checks a held frame every 20 ms: 600 ms is many re-checks even on a loaded machine.
    for (let i = 0; i < 12; i++) {
      await sleep(50);
      expect(roomWaiters(victim.init.port.rx)).toBe(1);
    }
    // The victim reads at last: everything arrives, in order, nothing dropped, and no wait is left.
    const out = new Uint8Array(2048);
    const flags = new Uint8Array(8);
    new DataView(flags.buffer).setUint32(0, HV_NET_RECV_NONBLOCK, true);
    let got = 0;
    for (let i = 0; i < 400 && got < accepted; i++) {
      while (rx.handlers.get(HvCall.NET_RECV)!(flags, 8, out, out.length) > 0) got++;
      await sleep(5);
    }
    expect(got).toBe(accepted);
    expect(victim.stats[NetStat.RX_QUEUE_DROPS]).toBe(0);
    expect(roomWaiters(victim.init.port.rx)).toBe(0);
    sw.close();
  });
});

describe('forwarded port: clients that leave while their bytes wait for the guest', () => {
  let hv: Hypervisor | undefined;
  afterEach(async () => {
    await hv?.close();
    hv = undefined;
  });

  /** Connects, and says whether the forwarder took the connection (its counter moved) or it was closed first. */
  async function tryConnect(port: number, accepted: () => number): Promise<net.Socket | null> {
    const before = accepted();
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    let closed = false;
    socket.once('close', () => (closed = true));
    for (let i = 0; i < 400 && !closed && accepted() === before; i++) await sleep(5);
    if (accepted() !== before && !closed) return socket;
    socket.destroy();
    return null;
  }

  it('count against maxConnections until their last bytes are delivered or dropped', async () => {
    hv = hypervisor({ defaultLimits: { memoryPages: 16 } });
    // Created, never started: its NIC is plugged in and never read, so its 4 KiB queue fills.
    await hv.createPartition({ name: 'svc', module: guest('net-service'), devices: { net: { segment: 'blue', host: true, rxQueueBytes: 4096 } } });
    const fwd = await hv.forwardPort({ partition: 'svc', guestPort: 80, maxConnections: 2, stallTimeoutMs: 3_600_000 });
    const accepted = () => fwd.counters.connections;
    for (let client = 0; client < 6; client++) {
      // A slot may free only once the server has seen the previous client's reset: a few tries.
      let socket: net.Socket | null = null;
      for (let attempt = 0; attempt < 5 && socket === null; attempt++) socket = await tryConnect(fwd.port, accepted);
      if (socket === null) continue;
      socket.write(new Uint8Array(64 * 1024).fill(0x61));
      await sleep(20);
      // Gone without a goodbye: its bytes still wait in the forwarder for the guest.
      const gone = new Promise<void>((r) => socket.once('close', () => r()));
      socket.resetAndDestroy();
      await gone;
    }
    expect(accepted()).toBe(2);
    await fwd.close();
  });
});

describe('forwarded ports the embedder closed', () => {
  it('leave nothing on their partition: opening and closing in a loop adds no exit listener and no warning', async () => {
    const h = hypervisor({ warmWorkers: 0 });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const svc = await h.createPartition({ name: 'svc', module: guest('net-service'), devices: { net: { segment: 'blue', host: true } } });
      const before = svc.listenerCount('exit');
      for (let i = 0; i < 20; i++) {
        const fwd = await h.forwardPort({ partition: 'svc', guestPort: 80 });
        expect(svc.listenerCount('exit')).toBe(before + 1);
        await fwd.close();
      }
      await sleep(10); // the listener goes once `closed` has settled
      expect(svc.listenerCount('exit')).toBe(before);
      // One still open is still closed by its partition's end.
      const open = await h.forwardPort({ partition: 'svc', guestPort: 80 });
      await svc.destroy();
      await open.closed;
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await h.close();
    }
  });
});

describe('host endpoints', () => {
  it('the hypervisor keeps no endpoint the embedder closed: attach and close in a loop holds one at most', async () => {
    const h = hypervisor({ warmWorkers: 0 });
    try {
      const held = (h as unknown as { hostEndpoints: Set<unknown> }).hostEndpoints;
      const open = h.attachNet('blue');
      for (let i = 0; i < 1000; i++) h.attachNet('blue').close();
      // The open one, and the last one closed (dropped at the next attach).
      expect(held.size).toBeLessThanOrEqual(2);
      expect(held.has(open)).toBe(true);
      expect(open.closed).toBe(false);
    } finally {
      await h.close();
    }
  });
});
