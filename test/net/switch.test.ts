/**
 * The virtual switch and the NIC front-end, in one thread: real rings, real switch, real
 * dispatcher and guest memory, an injected clock for the budgets. The worker side is driven by
 * calling the hypercall handlers directly; the switch's tx loops run on this thread's event loop.
 */
import { describe, expect, it } from 'vitest';
import { HV_NET_BROADCAST, HV_NET_POLL_READABLE, HV_NET_POLL_WRITABLE, HV_NET_RECV_NONBLOCK, HvCall, HvStatus } from '../../host/abi/codes.ts';
import { Dispatcher } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { resolveDevices } from '../../host/devices/config.ts';
import { NetDevice, NetStat, readNetMetrics } from '../../host/devices/net.ts';
import { NicPort } from '../../host/net/port.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { allocateStats } from '../../host/channel/stats.ts';
import { NetEndpoint } from '../../host/net/switch.ts';
import { dec, enc, lan, settle } from './lan.ts';

describe('virtual switch: segments', () => {
  it('delivers between NICs of one segment and never across segments', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const c = nic('c', { segment: 'red' });
    expect(a.send(b.address, 'hi b')).toBe(4);
    expect(c.send(a.address, 'let me in')).toBe(9); // the guest cannot tell: it is dropped at the switch
    await settle();
    const got = b.recv();
    expect(got).toMatchObject({ r: 12, src: a.address, dst: b.address, text: 'hi b' });
    expect(a.recv().r).toBe(-HvStatus.WOULD_BLOCK);
    expect(c.stats[NetStat.TX_NO_ROUTE]).toBe(1);
    expect(c.violations).toHaveLength(1);
    expect(c.violations[0]!.reason).toMatch(/another segment/);
    expect(a.violations).toHaveLength(0);
  });

  it('a frame to an unknown address is dropped, counted and reported', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    a.send(0x0b000001, 'anyone?');
    await settle();
    expect(a.stats[NetStat.TX_NO_ROUTE]).toBe(1);
    expect(a.violations[0]).toMatchObject({ call: 'NET_SEND', status: 'HV_STATUS_ACCESS_DENIED' });
    expect(a.violations[0]!.reason).toMatch(/no endpoint has that address/);
  });

  it('broadcast reaches every other NIC of the segment and nothing else', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const d = nic('d', { segment: 'blue' });
    const c = nic('c', { segment: 'red' });
    a.send(HV_NET_BROADCAST, 'all of blue');
    c.send(HV_NET_BROADCAST, 'all of red');
    await settle();
    expect(b.recv()).toMatchObject({ src: a.address, dst: HV_NET_BROADCAST, text: 'all of blue' });
    expect(d.recv()).toMatchObject({ src: a.address, text: 'all of blue' });
    expect(a.drain()).toBe(0); // not back to the sender
    expect(b.drain() + d.drain() + c.drain()).toBe(0); // red's broadcast reached nobody
    expect(c.violations).toHaveLength(0); // broadcast to an empty segment is not an attack
  });

  it('a detached NIC is unreachable and its address is never handed out again', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const old = b.address;
    b.detach();
    const b2 = nic('b2', { segment: 'blue' });
    expect(b2.address).not.toBe(old);
    a.send(old, 'stale');
    await settle();
    expect(a.stats[NetStat.TX_NO_ROUTE]).toBe(1);
    expect(b2.drain()).toBe(0);
  });
});

describe('virtual switch: anti-spoofing', () => {
  it('the source is the sender NIC, whatever the guest puts in its frame', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const m = nic('mallory', { segment: 'blue' });
    // Mallory forges a "header" claiming to be a: the tx record has no source field, so these
    // bytes are only payload, and the switch stamps mallory's own address.
    const forged = new Uint8Array(12);
    new DataView(forged.buffer).setUint32(0, a.address, true);
    new DataView(forged.buffer).setUint32(4, b.address, true);
    m.send(b.address, forged);
    await settle();
    const got = b.recv();
    expect(got.r).toBe(8 + 12);
    expect(got.src).toBe(m.address);
    expect(got.src).not.toBe(a.address);
  });
});

describe('virtual switch: bounded queues under flood', () => {
  it('flow control: a full receive queue makes the sender wait (WOULD_BLOCK), drops nothing, and other NICs keep working', async () => {
    const { nic } = lan();
    // The smallest queue for MTU 1000 holds 1 KiB+; 4096 bytes hold 4 frames of 1000 bytes.
    const victim = nic('victim', { segment: 'blue', mtu: 1000, rxQueueBytes: 4096 });
    const flooder = nic('flooder', { segment: 'blue' });
    const x = nic('x', { segment: 'blue' });
    const y = nic('y', { segment: 'blue' });
    const frame = new Uint8Array(1000).fill(7);
    const fits = Math.floor(4096 / (4 + 8 + 1000));
    let sent = 0;
    let refused = 0;
    for (let i = 0; i < 20; i++) {
      const r = flooder.send(victim.address, frame);
      if (r === 1000) sent++;
      else {
        expect(r).toBe(-HvStatus.WOULD_BLOCK);
        refused++;
      }
    }
    expect(sent).toBe(fits); // straight into the victim's port: no root round trip
    expect(flooder.stats[NetStat.TX_WOULD_BLOCK]).toBe(refused);
    expect(flooder.stats[NetStat.SWITCHED_DIRECT]).toBe(fits);
    x.send(y.address, 'still here');
    await settle();
    expect(y.recv()).toMatchObject({ src: x.address, text: 'still here' });
    // The receiver reads; the sender, retrying what was refused, loses nothing.
    let received = victim.drain();
    for (let i = 0; i < refused; i++) {
      if (flooder.send(victim.address, frame) !== 1000) {
        received += victim.drain();
        expect(flooder.send(victim.address, frame)).toBe(1000);
      }
    }
    received += victim.drain();
    expect(received).toBe(20);
    expect(victim.stats[NetStat.RX_QUEUE_DROPS]).toBe(0);
    expect(flooder.stats[NetStat.TX_FRAMES]).toBe(20);
  });

  it('flow control through the root: a frame for a full queue waits at the head of the sender\'s tx ring, in order, and nothing is lost', async () => {
    const { nic } = lan();
    // The sender is plugged in first: it does not know the victim yet, so its frames take the root path.
    const sender = nic('sender', { segment: 'blue' });
    const victim = nic('victim', { segment: 'blue', mtu: 1000, rxQueueBytes: 4096 });
    const frame = (i: number) => {
      const f = new Uint8Array(1000);
      new DataView(f.buffer).setUint32(0, i, true);
      return f;
    };
    let accepted = 0;
    for (let i = 0; i < 40; i++) if (sender.send(victim.address, frame(accepted)) === 1000) accepted++;
    await settle();
    expect(accepted).toBeGreaterThan(4); // the tx ring holds what the victim's queue cannot
    const order: number[] = [];
    for (let rounds = 0; rounds < 100 && order.length < accepted; rounds++) {
      for (let r = victim.recv(); r.r > 0; r = victim.recv()) order.push(new DataView(new TextEncoder().encode(r.text).buffer).getUint32(0, true));
      await settle();
    }
    expect(order).toEqual([...Array(accepted).keys()]);
    expect(victim.stats[NetStat.RX_QUEUE_DROPS]).toBe(0);
    expect(sender.stats[NetStat.SWITCHED]).toBe(accepted);
  });

  it('broadcast is best effort: a full queue drops it and counts it on the receiver', async () => {
    const { nic } = lan();
    const victim = nic('victim', { segment: 'blue', mtu: 1000, rxQueueBytes: 4096 });
    const sender = nic('sender', { segment: 'blue' });
    for (let i = 0; i < 10; i++) expect(sender.send(HV_NET_BROADCAST, new Uint8Array(1000))).toBe(1000);
    await settle();
    const queued = victim.drain();
    expect(queued).toBe(4);
    expect(victim.stats[NetStat.RX_QUEUE_DROPS]).toBe(10 - queued);
  });

  it('a sender faster than the switch fills only its own tx ring: WOULD_BLOCK, counted on the sender', () => {
    const { nic } = lan();
    const flooder = nic('flooder', { segment: 'blue' });
    const frame = new Uint8Array(1000);
    let refused = 0;
    for (let i = 0; i < 200; i++) if (flooder.send(HV_NET_BROADCAST, frame) === -HvStatus.WOULD_BLOCK) refused++;
    expect(refused).toBeGreaterThan(0);
    expect(flooder.stats[NetStat.TX_RING_FULL]).toBe(refused);
    expect(flooder.stats[NetStat.TX_FRAMES]).toBe(200 - refused);
  });

  it('a frame larger than the out buffer stays queued (BUFFER_TOO_SMALL), then reads whole', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    a.send(b.address, 'x'.repeat(100));
    await settle();
    expect(b.recv(50).r).toBe(-HvStatus.BUFFER_TOO_SMALL);
    expect(b.recv(108).r).toBe(108);
  });

  it('a send larger than the MTU is refused before it reaches the switch', () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue', mtu: 100 });
    expect(a.send(HV_NET_BROADCAST, new Uint8Array(101))).toBe(-HvStatus.TOO_LARGE);
    expect(a.send(HV_NET_BROADCAST, new Uint8Array(100))).toBe(100);
  });

  it("a frame above the receiver's MTU (the sender's is larger) is dropped and counted on the receiver: at its MTU it arrives", async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' }); // MTU 1500
    const b = nic('b', { segment: 'blue', mtu: 256 });
    expect(a.send(b.address, new Uint8Array(257))).toBe(257); // taken by the sender's NIC: it cannot know
    expect(a.send(b.address, new Uint8Array(256).fill(7))).toBe(256);
    expect(a.send(HV_NET_BROADCAST, new Uint8Array(300))).toBe(300);
    await settle();
    expect(b.recv(8 + 1500)).toMatchObject({ r: 8 + 256, src: a.address });
    expect(b.recv(8 + 1500).r).toBe(-HvStatus.WOULD_BLOCK);
    expect(b.stats[NetStat.RX_OVERSIZE]).toBe(2);
    expect(a.stats[NetStat.TX_NO_ROUTE]).toBe(0);
  });
});

describe('virtual switch: rate limits', () => {
  it('send: frames per second, exact at the edge and one past it, refilled by the clock', () => {
    let t = 0;
    const { nic } = lan(() => t);
    const a = nic('a', { segment: 'blue', sendFramesPerSecond: 10 });
    for (let i = 0; i < 10; i++) expect(a.send(HV_NET_BROADCAST, 'f')).toBe(1);
    expect(a.send(HV_NET_BROADCAST, 'f')).toBe(-HvStatus.RATE_LIMITED);
    expect(a.stats[NetStat.TX_RATE_LIMITED]).toBe(1);
    t += 100; // one frame's worth
    expect(a.send(HV_NET_BROADCAST, 'f')).toBe(1);
    expect(a.send(HV_NET_BROADCAST, 'f')).toBe(-HvStatus.RATE_LIMITED);
  });

  it('send: bytes per second (the burst holds at least one MTU)', () => {
    let t = 0;
    const { nic } = lan(() => t);
    const a = nic('a', { segment: 'blue', mtu: 1000, sendBytesPerSecond: 2000 });
    const kb = new Uint8Array(1000);
    expect(a.send(HV_NET_BROADCAST, kb)).toBe(1000);
    expect(a.send(HV_NET_BROADCAST, kb)).toBe(1000);
    expect(a.send(HV_NET_BROADCAST, kb)).toBe(-HvStatus.RATE_LIMITED);
    t += 500;
    expect(a.send(HV_NET_BROADCAST, kb)).toBe(1000);
  });

  it('receive: the receiver budget holds the sender back (WOULD_BLOCK), exact at the edge, and drops nothing', () => {
    let t = 0;
    const { nic } = lan(() => t);
    const b = nic('b', { segment: 'blue', recvFramesPerSecond: 5 });
    const a = nic('a', { segment: 'blue' });
    for (let i = 0; i < 5; i++) expect(a.send(b.address, `m${i}`)).toBe(2);
    expect(a.send(b.address, 'm5')).toBe(-HvStatus.WOULD_BLOCK);
    expect(a.stats[NetStat.TX_WOULD_BLOCK]).toBe(1);
    expect(a.stats[NetStat.TX_RATE_LIMITED]).toBe(0);
    t += 200; // one frame's worth of the receiver's budget
    expect(a.send(b.address, 'm5')).toBe(2);
    expect(a.send(b.address, 'm6')).toBe(-HvStatus.WOULD_BLOCK);
    expect(b.drain()).toBe(6);
    expect(b.stats[NetStat.RX_RATE_LIMITED]).toBe(0);
  });

  it('receive: a broadcast over the receiver budget is dropped and counted on the receiver', async () => {
    const { nic } = lan(() => 0);
    const b = nic('b', { segment: 'blue', recvFramesPerSecond: 5 });
    const a = nic('a', { segment: 'blue' });
    for (let i = 0; i < 12; i++) a.send(HV_NET_BROADCAST, `m${i}`);
    await settle();
    expect(b.drain()).toBe(5);
    expect(b.stats[NetStat.RX_RATE_LIMITED]).toBe(7);
  });
});

describe('NIC: receive through the dispatcher', () => {
  function guestNic() {
    const { nic, sw } = lan();
    const memory = new WebAssembly.Memory({ initial: 1 });
    const gm = new GuestMemory();
    gm.bind(memory);
    const peer = nic('peer', { segment: 'blue' });
    const config = resolveDevices({ net: { segment: 'blue' } }).net!;
    const att = sw.attachNic('guest', config, () => {});
    const dev = new NetDevice(att.init, { now: () => 0, txWaitMs: 0 });
    const d = new Dispatcher({ memory: gm, devices: [dev], args: [], stats: new Float64Array(allocateStats()), onViolation: () => {} });
    const bytes = () => new Uint8Array(memory.buffer);
    return { d, bytes, memory, peer, address: att.address };
  }

  it('receives the last frame when it arrives, and the port closes, between its look for a frame and its look at the end', () => {
    const { sw } = lan();
    const att = sw.attachNic('guest', resolveDevices({ net: { segment: 'blue' } }).net!, () => {});
    const dev = new NetDevice(att.init, { now: () => 0, txWaitMs: 0 });
    // The root's side of the same port delivers a last frame and closes right after the NIC found its ring empty.
    const root = new NicPort(att.init.port, () => 0);
    const rx = (dev as unknown as { rx: SharedRing }).rx;
    const peek = rx.peekLength.bind(rx);
    let raced = false;
    rx.peekLength = () => {
      const n = peek();
      if (n < 0 && !raced) {
        raced = true;
        const body = new Uint8Array(4 + 4);
        body.set(enc.encode('last'), 4);
        expect(root.put(7, body, 4, false)).toBe('delivered');
        root.rx.close();
      }
      return n;
    };
    const out = new Uint8Array(64);
    const recv = dev.handlers.get(HvCall.NET_RECV)!;
    const n = recv(new Uint8Array(0), 0, out, out.length);
    expect(raced).toBe(true);
    expect(n).toBe(8 + 4);
    expect(dec.decode(out.subarray(8, n))).toBe('last');
    expect(recv(new Uint8Array(0), 0, out, out.length)).toBe(-HvStatus.END_OF_STREAM);
  });

  it('no stale bytes: a short frame after a long one leaves zeros, not the old frame, in the buffer', async () => {
    const g = guestNic();
    g.peer.send(g.address, 'A'.repeat(1000));
    g.peer.send(g.address, 'bb');
    await settle();
    const BUF = 4096;
    g.bytes().fill(0xee, BUF, BUF + 1500); // the guest's buffer held other data before
    new DataView(g.memory.buffer).setUint32(0, HV_NET_RECV_NONBLOCK, true);
    expect(g.d.hypercall(HvCall.NET_RECV, 0, 8, BUF, 1500)).toBe(1008);
    expect(g.bytes()[BUF + 8 + 999]).toBe(0x41);
    expect(g.bytes().subarray(BUF + 1008, BUF + 1500).every((x) => x === 0)).toBe(true);
    expect(g.d.hypercall(HvCall.NET_RECV, 0, 8, BUF, 1500)).toBe(10);
    expect(dec.decode(g.bytes().subarray(BUF + 8, BUF + 10))).toBe('bb');
    // Everything after the short frame is zero: none of the 1000 'A's of the frame before.
    expect(g.bytes().subarray(BUF + 10, BUF + 1500).every((x) => x === 0)).toBe(true);
  });

  it('receive with a timeout blocks this thread only that long, then WOULD_BLOCK; poll reports readiness', async () => {
    const g = guestNic();
    const dv = new DataView(g.memory.buffer);
    dv.setUint32(0, 0, true);
    dv.setUint32(4, 30, true);
    const t0 = performance.now();
    expect(g.d.hypercall(HvCall.NET_RECV, 0, 8, 4096, 1500)).toBe(-HvStatus.WOULD_BLOCK);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    expect(g.d.hypercall(HvCall.NET_POLL, 0, 0, 0, 0) & HV_NET_POLL_READABLE).toBe(0);
    g.peer.send(g.address, 'now');
    await settle();
    expect(g.d.hypercall(HvCall.NET_POLL, 0, 0, 0, 0) & HV_NET_POLL_READABLE).toBe(HV_NET_POLL_READABLE);
    expect(g.d.hypercall(HvCall.NET_INFO, 0, 0, 64, 8)).toBe(8);
    expect(dv.getUint32(64, true)).toBe(g.address);
    expect(dv.getUint32(68, true)).toBe(1500);
  });

  it('a partition without the net device gets ACCESS_DENIED for every NET_* call', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const gm = new GuestMemory();
    gm.bind(memory);
    const d = new Dispatcher({ memory: gm, devices: [], args: [], stats: new Float64Array(allocateStats()), onViolation: () => {} });
    for (const code of [HvCall.NET_INFO, HvCall.NET_SEND, HvCall.NET_RECV, HvCall.NET_POLL]) {
      expect(d.hypercall(code, 0, 0, 0, 0)).toBe(-HvStatus.ACCESS_DENIED);
    }
  });
});

describe('host endpoint', () => {
  it('reaches only NICs granted host access, both ways', async () => {
    const { nic, sw } = lan();
    const granted = nic('svc', { segment: 'blue', host: true });
    const plain = nic('plain', { segment: 'blue' });
    const ep = new NetEndpoint(sw, 'blue');
    const seen: { src: number; text: string }[] = [];
    ep.on('frame', (f) => seen.push({ src: f.src, text: dec.decode(f.payload) }));
    expect(ep.send(granted.address, 'hello svc')).toBe('delivered');
    expect(ep.send(plain.address, 'hello plain')).toBe('no-route');
    granted.send(ep.address, 'from svc');
    plain.send(ep.address, 'from plain');
    await settle();
    expect(granted.recv()).toMatchObject({ src: ep.address, text: 'hello svc' });
    expect(plain.drain()).toBe(0);
    expect(seen).toEqual([{ src: granted.address, text: 'from svc' }]);
    expect(plain.violations[0]!.reason).toMatch(/not granted host access/);
    ep.close();
    ep.close();
  });
});

describe('observing the switch', () => {
  it('tells an observer every frame\'s metadata and outcome, never its payload, until it stops', async () => {
    const { Hypervisor } = await import('../../host/index.ts');
    const hv = new Hypervisor();
    try {
      const seen: unknown[] = [];
      const stop = hv.observeNetwork((f) => seen.push(f));
      const a = hv.attachNet('obs');
      const b = hv.attachNet('obs');
      expect(a.send(b.address, 'secret payload')).toBe('delivered');
      expect(a.send(0x0a0000ff, 'to nowhere')).toBe('no-route');
      stop();
      a.send(b.address, 'after stop');
      expect(seen).toEqual([
        { segment: 'obs', src: a.address, dst: b.address, bytes: 14, outcome: 'delivered' },
        { segment: 'obs', src: a.address, dst: 0x0a0000ff, bytes: 10, outcome: 'no-route' },
      ]);
    } finally {
      await hv.close();
    }
  });
});

describe('direct delivery and flow control (ABI 1.3)', () => {
  const u32 = (i: number) => {
    const f = new Uint8Array(64);
    new DataView(f.buffer).setUint32(0, i, true);
    return f;
  };

  it('a NIC plugged in later is learned through the root: the first frames take the root path, later ones go direct, all in order', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const got: number[] = [];
    const take = () => {
      for (let r = b.recv(); r.r > 0; r = b.recv()) got.push(new DataView(enc.encode(r.text).buffer).getUint32(0, true));
    };
    let i = 0;
    for (; i < 5; i++) expect(a.send(b.address, u32(i))).toBe(64); // a does not know b yet: through the root
    expect(a.stats[NetStat.SWITCHED_DIRECT]).toBe(0);
    await settle(); // the root forwards them and answers a's request for its peer table
    for (; i < 10; i++) expect(a.send(b.address, u32(i))).toBe(64);
    expect(a.stats[NetStat.SWITCHED_DIRECT]).toBe(5);
    take();
    expect(got).toEqual([...Array(10).keys()]);
    expect(readNetMetrics(a.stats, a.address, 'blue')).toMatchObject({ switched: 10, switchedDirect: 5, txFrames: 10 });
  });

  it('a unicast queued behind a frame still with the root takes the root path too, so order holds', async () => {
    const { nic } = lan();
    const b = nic('b', { segment: 'blue' });
    const a = nic('a', { segment: 'blue' });
    expect(a.send(HV_NET_BROADCAST, 'all')).toBe(3); // on the tx ring, until the root runs
    expect(a.send(b.address, u32(1))).toBe(64); // must not overtake it
    expect(a.stats[NetStat.SWITCHED_DIRECT]).toBe(0);
    await settle();
    expect(b.recv().text).toBe('all');
    expect(new DataView(enc.encode(b.recv().text).buffer).getUint32(0, true)).toBe(1);
    expect(a.send(b.address, u32(2))).toBe(64);
    expect(a.stats[NetStat.SWITCHED_DIRECT]).toBe(1);
  });

  it('NET_TRY_SEND never waits; NET_SEND waits up to its bound for room, then WOULD_BLOCK', () => {
    const { nic } = lan(() => performance.now());
    const victim = nic('victim', { segment: 'blue', mtu: 1000, rxQueueBytes: 1024 });
    const sender = nic('sender', { segment: 'blue' }, 60);
    const frame = new Uint8Array(1000);
    expect(sender.send(victim.address, frame, HvCall.NET_TRY_SEND)).toBe(1000);
    expect(sender.send(victim.address, frame, HvCall.NET_TRY_SEND)).toBe(-HvStatus.WOULD_BLOCK);
    let t0 = performance.now();
    expect(sender.send(victim.address, frame, HvCall.NET_TRY_SEND)).toBe(-HvStatus.WOULD_BLOCK);
    expect(performance.now() - t0).toBeLessThan(50);
    t0 = performance.now();
    expect(sender.send(victim.address, frame)).toBe(-HvStatus.WOULD_BLOCK);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
    expect(sender.stats[NetStat.TX_WOULD_BLOCK]).toBe(3);
    expect(victim.drain()).toBe(1);
    expect(sender.send(victim.address, frame)).toBe(1000);
  });

  it('NET_POLL with a destination: writable only while that destination takes a frame; a wait ends when a frame arrives', async () => {
    const { nic } = lan();
    const victim = nic('victim', { segment: 'blue', mtu: 1000, rxQueueBytes: 1024 });
    const sender = nic('sender', { segment: 'blue', mtu: 1000 });
    expect(sender.poll(0, victim.address)).toBe(HV_NET_POLL_WRITABLE);
    expect(sender.send(victim.address, new Uint8Array(1000))).toBe(1000);
    expect(sender.poll(0, victim.address)).toBe(0); // full: not writable to it
    expect(sender.poll(0, HV_NET_BROADCAST) & HV_NET_POLL_WRITABLE).toBe(HV_NET_POLL_WRITABLE); // the tx ring has room
    const t0 = performance.now();
    expect(sender.poll(30, victim.address)).toBe(0); // nothing changes: the whole timeout
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    victim.send(sender.address, 'wake'); // victim does not know sender yet: through the root
    await settle();
    expect(sender.poll(1000, victim.address)).toBe(HV_NET_POLL_READABLE);
    victim.drain();
    expect(sender.poll(1000, victim.address)).toBe(HV_NET_POLL_READABLE | HV_NET_POLL_WRITABLE);
    // A malformed poll is refused.
    expect(sender.dev.handlers.get(HvCall.NET_POLL)!(new Uint8Array(12), 12, new Uint8Array(0), 0)).toBe(-HvStatus.INVALID_ARGUMENT);
  });

  it('NET_POLL with a destination returns at once when the NIC\'s receive ring closes, whatever its timeout', () => {
    const { nic } = lan();
    const victim = nic('victim', { segment: 'blue', mtu: 1000, rxQueueBytes: 1024 });
    const sender = nic('sender', { segment: 'blue', mtu: 1000 });
    expect(sender.send(victim.address, new Uint8Array(1000))).toBe(1000); // victim full: not writable
    new SharedRing(sender.att.init.port.rx).close(); // as when the sender's partition is being destroyed
    const t0 = performance.now();
    expect(sender.poll(3000, victim.address)).toBe(0);
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  it('a NIC whose partition ended is down: frames to it are dropped and counted, never waited for', async () => {
    const { nic } = lan();
    const gone = nic('gone', { segment: 'blue', mtu: 1000, rxQueueBytes: 1024 });
    const a = nic('a', { segment: 'blue' });
    expect(a.send(gone.address, new Uint8Array(1000))).toBe(1000);
    gone.att.down();
    for (let i = 0; i < 5; i++) expect(a.send(gone.address, new Uint8Array(1000))).toBe(1000);
    await settle();
    expect(gone.stats[NetStat.RX_QUEUE_DROPS]).toBe(5);
    expect(a.stats[NetStat.TX_WOULD_BLOCK]).toBe(0);
    expect(a.violations).toHaveLength(0); // not an attack: the partition just ended
    gone.att.down(); // idempotent
  });

  it('a port lock held by a worker that died is released when its run ends', () => {
    const { nic } = lan();
    const b = nic('b', { segment: 'blue' });
    const dead = nic('dead', { segment: 'blue' });
    const c = nic('c', { segment: 'blue' }, 30);
    // The dead worker's view of b's port: it took the lock and never came back.
    const port = new NicPort(b.att.init.port, () => 0);
    expect(port.tryLock(dead.address)).toBe(true);
    expect(c.send(b.address, 'x')).toBe(-HvStatus.WOULD_BLOCK); // waited its bound for the lock
    dead.att.releaseLocks();
    expect(c.send(b.address, 'x')).toBe(1);
    expect(b.recv().text).toBe('x');
    c.att.releaseLocks(); // holds nothing: a no-op
  });

  it('a host endpoint gets queue-full from a full NIC (counted) and no-route from a NIC that is down', () => {
    const { nic, sw } = lan();
    const svc = nic('svc', { segment: 'blue', host: true, mtu: 1000, rxQueueBytes: 1024 });
    const ep = new NetEndpoint(sw, 'blue');
    expect(ep.send(svc.address, new Uint8Array(1000))).toBe('delivered');
    expect(ep.send(svc.address, new Uint8Array(1000))).toBe('queue-full');
    expect(svc.stats[NetStat.RX_QUEUE_DROPS]).toBe(1);
    svc.att.down();
    expect(ep.send(svc.address, new Uint8Array(10))).toBe('no-route');
  });

  it('the source is stamped on the direct path too, and a NIC on another segment has no port to reach', async () => {
    const { nic } = lan();
    const b = nic('b', { segment: 'blue' });
    const a = nic('a', { segment: 'blue' });
    const m = nic('m', { segment: 'red' });
    const forged = new Uint8Array(8);
    new DataView(forged.buffer).setUint32(0, b.address, true);
    expect(a.send(b.address, forged)).toBe(8);
    expect(a.stats[NetStat.SWITCHED_DIRECT]).toBe(1);
    expect(b.recv()).toMatchObject({ src: a.address, dst: b.address });
    expect(m.send(b.address, 'in?')).toBe(3);
    await settle();
    expect(m.stats[NetStat.SWITCHED_DIRECT]).toBe(0);
    expect(m.stats[NetStat.TX_NO_ROUTE]).toBe(1);
    expect(b.drain()).toBe(0);
  });

  it('frames above the destination\'s MTU are dropped and counted on it, on the direct path as through the root', () => {
    const { nic } = lan();
    const small = nic('small', { segment: 'blue', mtu: 100 });
    const big = nic('big', { segment: 'blue', mtu: 1500 });
    expect(big.send(small.address, new Uint8Array(101))).toBe(101);
    expect(big.send(small.address, new Uint8Array(100))).toBe(100);
    expect(small.stats[NetStat.RX_OVERSIZE]).toBe(1);
    expect(small.drain()).toBe(1);
  });
});

describe('draining', () => {
  it('drained() resolves once the frames a NIC sent have all been forwarded', async () => {
    const { nic, sw } = lan();
    const svc = nic('svc', { segment: 'blue', host: true });
    const seen: string[] = [];
    const ep = new NetEndpoint(sw, 'blue');
    ep.on('frame', (f) => seen.push(dec.decode(f.payload)));
    for (let i = 0; i < 100; i++) expect(svc.send(ep.address, `reply ${i}`)).toBeGreaterThan(0);
    await sw.drained(svc.address);
    expect(seen).toHaveLength(100);
    expect(seen[99]).toBe('reply 99');
    await sw.drained(0x0b000001); // no such NIC: nothing to wait for
  });
});
