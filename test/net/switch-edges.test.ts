/**
 * The root's switch at its edges, in one thread (real switch, real NICs over real rings, see
 * lan.ts): frames held back through the root while the receiver stays full, busy or out of
 * budget; a corrupt tx ring; the scrub of an unplugged NIC that a producer is still inside; an
 * embedder's listener that throws; the address space running out; every refusal's message.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HV_NET_BROADCAST, HV_NET_MAX_MTU } from '../../host/abi/codes.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { resolveDevices } from '../../host/devices/config.ts';
import { formatAddress, NetStat } from '../../host/devices/net.ts';
import { InvalidArgumentError, InvalidStateError } from '../../host/errors.ts';
import { NET_FRAME_KIND, NET_SYNC_KIND, NicPort } from '../../host/net/port.ts';
import { NetEndpoint, VirtualSwitch, type FrameObservation, type NetViolation } from '../../host/net/switch.ts';
import { LISTENER_WARNING } from '../../host/events.ts';
import { captureEscapes } from '../helpers.ts';
import { dec, lan, settle, until, within } from './lan.ts';

const escaped = captureEscapes();
afterEach(() => {
  expect(escaped).toEqual([]);
});

/** Runs `fn` and collects what the code under test throws from a later tick (process.nextTick), instead of letting it reach the event loop. */
async function deferredThrows(fn: () => void | Promise<void>): Promise<unknown[]> {
  const thrown: unknown[] = [];
  const original = process.nextTick;
  const spy = vi.spyOn(process, 'nextTick').mockImplementation((cb: Function, ...args: unknown[]) =>
    original(() => {
      try {
        (cb as (...a: unknown[]) => void)(...args);
      } catch (error) {
        thrown.push(error);
      }
    }),
  );
  try {
    await fn();
    await new Promise<void>((r) => setImmediate(r));
  } finally {
    spy.mockRestore();
  }
  return thrown;
}

const u32 = (i: number, length = 1000) => {
  const f = new Uint8Array(length);
  new DataView(f.buffer).setUint32(0, i, true);
  return f;
};
const first = (text: string) => new DataView(new TextEncoder().encode(text).buffer).getUint32(0, true);

describe('held frames through the root', () => {
  it('a frame for a receiver still full when the root checks again keeps waiting: nothing lost, in order', async () => {
    const { nic } = lan();
    // Plugged in first, the sender does not know the victim: its frames take the root path.
    const sender = nic('sender', { segment: 'blue' });
    const victim = nic('victim', { segment: 'blue', mtu: 1000, rxQueueBytes: 4096 });
    for (let i = 0; i < 10; i++) expect(sender.send(victim.address, u32(i))).toBe(1000);
    await settle();
    // The victim reads nothing for a while: the held frame is re-checked (every 20 ms) and still finds no room.
    await new Promise((r) => setTimeout(r, 100));
    await settle();
    const order: number[] = [];
    await until(() => {
      for (let r = victim.recv(); r.r > 0; r = victim.recv()) order.push(first(r.text));
      return order.length >= 10;
    }, 'ten frames');
    expect(order).toEqual([...Array(10).keys()]);
    expect(victim.stats[NetStat.RX_QUEUE_DROPS]).toBe(0);
    expect(sender.stats[NetStat.SWITCHED]).toBe(10);
    expect(new NicPort(sender.att.init.port, () => 0).txIdle).toBe(true);
  });

  it('a receiver whose port a worker holds: the root never waits for the lock, it tries again on a later turn', async () => {
    const { nic } = lan();
    const sender = nic('sender', { segment: 'blue' });
    const victim = nic('victim', { segment: 'blue' });
    const other = nic('other', { segment: 'blue' });
    // Another NIC's worker is inside the victim's port (between its lock and unlock).
    const inside = new NicPort(victim.att.init.port, () => 0);
    expect(inside.tryLock(other.address)).toBe(true);
    expect(sender.send(victim.address, 'one')).toBe(3);
    expect(sender.send(victim.address, 'two')).toBe(3);
    for (let i = 0; i < 5; i++) await settle();
    expect(victim.recv().r).toBeLessThan(0);
    expect(sender.stats[NetStat.SWITCHED]).toBe(0);
    inside.unlock();
    await until(() => sender.stats[NetStat.SWITCHED] === 2, 'both frames');
    expect([victim.recv().text, victim.recv().text]).toEqual(['one', 'two']);
  });

  it('a receiver whose budget is spent: the frame waits for the refill, and is not counted as a drop', async () => {
    let t = 0;
    const { nic } = lan(() => t);
    const sender = nic('sender', { segment: 'blue' });
    const victim = nic('victim', { segment: 'blue', recvFramesPerSecond: 5 });
    for (let i = 0; i < 7; i++) expect(sender.send(victim.address, `m${i}`)).toBe(2);
    for (let i = 0; i < 5; i++) await settle();
    expect(victim.drain()).toBe(5);
    expect(sender.stats[NetStat.SWITCHED]).toBe(5);
    t += 400; // two frames' worth
    const got: string[] = [];
    await until(() => {
      for (let r = victim.recv(); r.r > 0; r = victim.recv()) got.push(r.text);
      return got.length >= 2;
    }, 'the two held frames');
    expect(got).toEqual(['m5', 'm6']);
    expect(victim.stats[NetStat.RX_RATE_LIMITED]).toBe(0);
  });

  it('a unicast through the root to a NIC that is down is dropped, counted on it, and observed as no-route', async () => {
    const { nic, sw } = lan();
    const sender = nic('sender', { segment: 'blue' });
    const gone = nic('gone', { segment: 'blue' });
    const seen: FrameObservation[] = [];
    const stop = sw.observe((f) => seen.push(f));
    gone.att.down();
    expect(sender.send(gone.address, 'late')).toBe(4);
    expect(sender.send(0x0b000001, 'nowhere')).toBe(7);
    await until(() => seen.length === 2, 'two observations');
    stop();
    expect(seen).toEqual([
      { segment: 'blue', src: sender.address, dst: gone.address, bytes: 4, outcome: 'no-route' },
      { segment: 'blue', src: sender.address, dst: 0x0b000001, bytes: 7, outcome: 'no-route' },
    ]);
    expect(gone.stats[NetStat.RX_QUEUE_DROPS]).toBe(1);
    expect(gone.drain()).toBe(0);
  });

  it('a broadcast reaching a NIC that is down is dropped and counted on it', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const gone = nic('gone', { segment: 'blue' });
    const live = nic('live', { segment: 'blue' });
    gone.att.down();
    a.send(HV_NET_BROADCAST, 'all');
    await until(() => live.recv().text === 'all', 'the broadcast');
    expect(gone.stats[NetStat.RX_QUEUE_DROPS]).toBe(1);
    expect(gone.drain()).toBe(0);
  });

  it('a host endpoint\'s send to a NIC of a smaller MTU is "oversize", counted on the NIC', () => {
    const { nic, sw } = lan();
    const svc = nic('svc', { segment: 'blue', host: true, mtu: 100 });
    const ep = new NetEndpoint(sw, 'blue');
    expect(ep.send(svc.address, new Uint8Array(101))).toBe('oversize');
    expect(ep.offer(svc.address, new Uint8Array(101))).toBe('oversize');
    expect(svc.stats[NetStat.RX_OVERSIZE]).toBe(2);
    expect(ep.send(svc.address, new Uint8Array(100))).toBe('delivered');
  });

  it('offer takes what send takes: a string goes as its UTF-8 bytes, anything else is ERR_INVALID_ARGUMENT', () => {
    const { nic, sw } = lan();
    const svc = nic('svc', { segment: 'blue', host: true });
    const ep = new NetEndpoint(sw, 'blue');
    expect(ep.offer(svc.address, 'héllo')).toBe('delivered');
    expect(ep.send(svc.address, 'héllo')).toBe('delivered');
    expect([svc.recv().text, svc.recv().text]).toEqual(['héllo', 'héllo']);
    for (const bad of [null, 5, new Uint16Array(2)]) {
      expect(() => ep.offer(svc.address, bad as unknown as string)).toThrow(InvalidArgumentError);
    }
  });

  it('offer: a frame the NIC cannot take is refused like send\'s but not counted as dropped', () => {
    let t = 0;
    const { nic, sw } = lan(() => t);
    const svc = nic('svc', { segment: 'blue', host: true, mtu: 1000, rxQueueBytes: 1024, recvFramesPerSecond: 2 });
    const ep = new NetEndpoint(sw, 'blue');
    expect(ep.offer(svc.address, new Uint8Array(1000))).toBe('delivered');
    expect(ep.offer(svc.address, new Uint8Array(1000))).toBe('queue-full');
    expect(svc.stats[NetStat.RX_QUEUE_DROPS]).toBe(0);
    expect(svc.drain()).toBe(1);
    expect(ep.offer(svc.address, new Uint8Array(10))).toBe('delivered');
    expect(ep.offer(svc.address, new Uint8Array(10))).toBe('rate-limited');
    expect(svc.stats[NetStat.RX_RATE_LIMITED]).toBe(0);
    expect(ep.send(svc.address, new Uint8Array(10))).toBe('rate-limited');
    expect(svc.stats[NetStat.RX_RATE_LIMITED]).toBe(1);
    // Broadcast stays best effort.
    expect(ep.offer(HV_NET_BROADCAST, new Uint8Array(10))).toBe('no-route');
    expect(svc.stats[NetStat.RX_RATE_LIMITED]).toBe(2);
    t += 1000;
    expect(ep.offer(HV_NET_BROADCAST, new Uint8Array(10))).toBe('delivered');
  });
});

describe('the tx ring: what the root trusts of it', () => {
  it('skips records no worker writes (another kind, shorter than a destination, longer than the MTU) and goes on', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue', mtu: 100 });
    const b = nic('b', { segment: 'blue' });
    const ring = new SharedRing(a.att.init.tx);
    const own = new NicPort(a.att.init.port, () => 0);
    const record = (n: number) => {
      const r = new Uint8Array(n);
      if (n >= 4) new DataView(r.buffer).setUint32(0, b.address, true);
      return r;
    };
    const write = (kind: number, bytes: Uint8Array) => {
      expect(ring.tryWrite(kind, bytes, bytes.length)).toBe(true);
      own.frameWritten();
    };
    write(7, record(20));
    write(0, record(20));
    write(NET_FRAME_KIND, record(3));
    write(NET_FRAME_KIND, record(4 + 101));
    write(NET_FRAME_KIND, record(4)); // a destination and no payload: an empty frame, which NET_SEND allows
    const ok = record(4 + 100);
    ok[4] = 0x42;
    write(NET_FRAME_KIND, ok);
    await until(() => own.txIdle, 'the root to be done with every record');
    expect(b.recv()).toMatchObject({ src: a.address, dst: b.address, r: 8 });
    const got = b.recv();
    expect(got).toMatchObject({ src: a.address, dst: b.address, r: 8 + 100 });
    expect(got.payload[0]).toBe(0x42);
    expect(b.drain()).toBe(0);
    expect(a.stats[NetStat.SWITCHED]).toBe(2);
    expect(a.stats[NetStat.TX_NO_ROUTE]).toBe(0);
  });

  it('answers a SYNC request with the peer table on the NIC\'s channel', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const { BroadcastChannel } = await import('node:worker_threads');
    const ch = new BroadcastChannel(a.att.init.channel);
    const tables: unknown[] = [];
    ch.onmessage = (e: unknown) => tables.push((e as { data: unknown }).data);
    try {
      expect(new SharedRing(a.att.init.tx).tryWrite(NET_SYNC_KIND, new Uint8Array(0), 0)).toBe(true);
      await until(() => tables.length === 1, 'the peer table');
      expect(tables[0]).toMatchObject({ gen: 1, peers: [{ address: b.address }] });
    } finally {
      ch.close();
    }
  });

  it('a peer table goes only to the NIC that asked: never to a NIC of another segment, nor to the same address on another switch', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const red = nic('red', { segment: 'red' });
    const other = lan().nic('twin', { segment: 'blue' }); // another switch: the same first address as a
    expect(other.address).toBe(a.address);
    const { BroadcastChannel } = await import('node:worker_threads');
    const listen = (name: string) => {
      const got: unknown[] = [];
      const ch = new BroadcastChannel(name);
      ch.onmessage = (e: unknown) => got.push((e as { data: unknown }).data);
      return { got, close: () => ch.close() };
    };
    const mine = listen(a.att.init.channel);
    const theirs = [listen(red.att.init.channel), listen(other.att.init.channel), listen(b.att.init.channel)];
    try {
      expect(new Set([a, b, red, other].map((n) => n.att.init.channel)).size).toBe(4);
      expect(new SharedRing(a.att.init.tx).tryWrite(NET_SYNC_KIND, new Uint8Array(0), 0)).toBe(true);
      await until(() => mine.got.length === 1, "a's peer table");
      for (let i = 0; i < 5; i++) await settle();
      expect(theirs.map((t) => t.got)).toEqual([[], [], []]);
    } finally {
      for (const l of [mine, ...theirs]) l.close();
    }
  });

  it('violation reports are rate-limited per NIC; every refused frame is still counted', async () => {
    const sw = new VirtualSwitch({ now: () => 0 });
    const reports: NetViolation[] = [];
    const att = sw.attachNic('scanner', resolveDevices({ net: { segment: 'blue' } }).net!, (v) => reports.push(v), 3);
    const ring = new SharedRing(att.init.tx);
    for (let i = 0; i < 5; i++) {
      const frame = new Uint8Array(8);
      new DataView(frame.buffer).setUint32(0, 0x0b000001 + i, true);
      expect(ring.tryWrite(NET_FRAME_KIND, frame, 8)).toBe(true);
    }
    await until(() => att.stats[NetStat.TX_NO_ROUTE] === 5, 'five refusals');
    expect(reports).toHaveLength(3);
    sw.close();
  });

  it('the switch counts the frames it forwarded and the ones it refused for no route', async () => {
    const { nic, sw } = lan();
    const a = nic('a', { segment: 'blue' });
    const ep = new NetEndpoint(sw, 'blue');
    a.send(HV_NET_BROADCAST, 'all');
    a.send(0x0b000001, 'nowhere');
    await until(() => a.stats[NetStat.TX_NO_ROUTE] === 1, 'the refusal');
    expect(ep.send(0x0b000002, 'nowhere either')).toBe('no-route');
    expect(sw.counters).toEqual({ switched: 1, noRoute: 2 });
  });

  it('a corrupt tx ring unplugs that NIC and tells its fault handler; the root and the other NICs go on', async () => {
    const { nic, sw } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const c = nic('c', { segment: 'blue' });
    const faults: unknown[] = [];
    a.att.onFault((e) => faults.push(e));
    // A record header claiming far more bytes than are in use: only a compromised worker writes one.
    const ring = new SharedRing(a.att.init.tx);
    expect(ring.tryWrite(NET_FRAME_KIND, new Uint8Array(8), 8)).toBe(true);
    new DataView(a.att.init.tx).setUint32(32, (NET_FRAME_KIND << 24) | 0xffff, true);
    await until(() => faults.length === 1, 'the fault');
    expect(faults[0]).toBeInstanceOf(RangeError);
    expect(String(faults[0])).toMatch(/corrupt ring/);
    expect(sw.addressOf('a')).toBeUndefined();
    c.send(a.address, 'to a');
    c.send(b.address, 'still here');
    await until(() => b.recv().text === 'still here', 'the other NICs');
    await until(() => c.stats[NetStat.TX_NO_ROUTE] === 1, 'the frame to a, gone, to be refused');
  });

  it('a corrupt tx ring on a NIC without a fault handler ends that NIC only: nothing reaches the event loop', async () => {
    const { nic, sw } = lan();
    const a = nic('a', { segment: 'blue' });
    expect(new SharedRing(a.att.init.tx).tryWrite(NET_FRAME_KIND, new Uint8Array(8), 8)).toBe(true);
    new DataView(a.att.init.tx).setUint32(32, (NET_FRAME_KIND << 24) | 0xffff, true);
    await until(() => sw.addressOf('a') === undefined, 'the NIC to be unplugged');
    await settle();
  });
});

describe('unplugging', () => {
  const rxBytes = (sab: SharedArrayBuffer) => new Uint8Array(sab, 32).some((x) => x !== 0);

  /** b holds a frame from a, and a producer (as a's worker would be) is inside b's port. */
  async function producerInside() {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    expect(a.send(b.address, 'guest data')).toBe(10);
    await until(() => rxBytes(b.att.init.port.rx), "the frame in b's queue");
    const inside = new NicPort(b.att.init.port, () => 0);
    expect(inside.tryLock(a.address)).toBe(true);
    return { b, inside };
  }

  it('scrubs the NIC\'s rings once no producer is inside its port', async () => {
    const { b, inside } = await producerInside();
    b.detach();
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
    expect(rxBytes(b.att.init.port.rx)).toBe(true); // a producer is inside: not yet
    inside.unlock();
    await until(() => !rxBytes(b.att.init.port.rx), 'the scrub');
    expect(new Uint8Array(b.att.init.tx).every((x) => x === 0)).toBe(true);
  });

  it('does not wait forever for a producer that died inside the port: it scrubs after a bounded number of turns', async () => {
    const { b } = await producerInside(); // it never unlocks
    b.detach();
    await until(() => !rxBytes(b.att.init.port.rx), 'the scrub');
  });

  it('a NIC unplugged while a peer still lists it: the peer\'s send is not held on its port, it goes to the root, which refuses it', async () => {
    const { nic } = lan();
    const b = nic('b', { segment: 'blue' });
    const a = nic('a', { segment: 'blue' }); // plugged in after b: its first peer table lists b
    expect(a.send(b.address, 'direct')).toBe(6);
    expect(a.stats[NetStat.SWITCHED_DIRECT]).toBe(1); // a's peer table lists b
    b.detach();
    await until(() => !rxBytes(b.att.init.port.rx), 'the scrub');
    // a has not fetched its new peer table yet: its send tries b's port, finds it down, and goes to the root.
    expect(a.send(b.address, 'too late')).toBe(8);
    expect(a.stats[NetStat.TX_WOULD_BLOCK]).toBe(0);
    await until(() => a.stats[NetStat.TX_NO_ROUTE] === 1, 'the root to refuse the frame');
    expect(a.violations[0]!.reason).toMatch(/no endpoint has that address/);
  });

  it('setWake: the root tells a partition in a shared worker when its tx ring gains room or its receive queue a frame', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    let woken = 0;
    b.att.setWake(() => woken++);
    // As a suspended partition asks: room on its tx ring, a record on its receive queue.
    new SharedRing(b.att.init.tx).wantRoom();
    expect(b.send(HV_NET_BROADCAST, 'x')).toBe(1);
    await until(() => woken === 1, 'the wake for room on the tx ring');
    new SharedRing(b.att.init.port.rx).wantRecord();
    a.send(b.address, 'for b'); // a, plugged in first, does not know b: the root delivers it
    await until(() => woken === 2, 'the wake for a frame');
    expect(b.recv().text).toBe('for b');
  });

  it('down() and detach() take effect once: the peers\' tables move once for each', () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const gen = () => new NicPort(a.att.init.port, () => 0).generation;
    const g0 = gen();
    b.att.down();
    b.att.down();
    expect(gen()).toBe(g0 + 1);
    b.detach();
    b.detach();
    expect(gen()).toBe(g0 + 2);
  });

  it('a segment keeps its other members when one leaves', async () => {
    const { nic, sw } = lan();
    const a = nic('a', { segment: 'blue' });
    const b = nic('b', { segment: 'blue' });
    const c = nic('c', { segment: 'blue' });
    const ep = new NetEndpoint(sw, 'blue');
    c.att.releaseLocks(); // a segment with a host endpoint in it: only NICs have ports
    a.detach();
    b.send(HV_NET_BROADCAST, 'still a segment');
    await until(() => c.recv().text === 'still a segment', 'the broadcast');
    expect(b.stats[NetStat.SWITCHED]).toBe(1);
    ep.close();
  });

  it('releaseLocks after the NIC left an emptied segment is a no-op', () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'lonely' });
    a.detach();
    a.att.releaseLocks();
    a.detach();
  });
});

describe('the embedder\'s side', () => {
  it('a throwing observer or frame listener is reported as a warning, a throwing violation handler re-thrown on a later tick; the switch goes on', async () => {
    const { nic, sw } = lan();
    const boom = new Error('listener bug');
    const seen: FrameObservation[] = [];
    const a = new NetEndpoint(sw, 'blue');
    const b = new NetEndpoint(sw, 'blue');
    const got: string[] = [];
    b.on('frame', (f) => {
      got.push(dec.decode(f.payload));
      throw boom;
    });
    const stopBad = sw.observe(() => {
      throw boom;
    });
    const stopGood = sw.observe((f) => seen.push(f));
    // The embedder's callbacks (host/events.ts): a process warning each, nothing thrown, even later.
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => void (w.code === LISTENER_WARNING && warnings.push(w.message));
    process.on('warning', onWarning);
    const thrown = await deferredThrows(() => {
      expect(a.send(b.address, 'x')).toBe('delivered');
    });
    await until(() => warnings.length === 2, 'two warnings');
    process.off('warning', onWarning);
    expect(thrown).toEqual([]);
    expect(warnings.sort()).toEqual([
      `a listener for 'frame' on the host endpoint ${formatAddress(b.address)} on segment blue threw: listener bug`,
      "a listener for 'observeNetwork' on the virtual switch threw: listener bug",
    ]);
    expect(got).toEqual(['x']);
    expect(seen).toHaveLength(1);
    stopBad();
    stopGood();
    // A NIC's violation handler that throws.
    const config = resolveDevices({ net: { segment: 'blue' } }).net!;
    const att = sw.attachNic('bad', config, () => {
      throw boom;
    });
    const ring = new SharedRing(att.init.tx);
    const frame = new Uint8Array(8);
    new DataView(frame.buffer).setUint32(0, 0x0b000001, true);
    const thrown2 = await deferredThrows(async () => {
      expect(ring.tryWrite(NET_FRAME_KIND, frame, 8)).toBe(true);
      await until(() => att.stats[NetStat.TX_NO_ROUTE] === 1, 'the refused frame');
    });
    expect(thrown2).toEqual([boom]);
    // The switch still routes.
    const c = nic('c', { segment: 'blue', host: true });
    expect(a.send(c.address, 'after')).toBe('delivered');
    expect(c.recv().text).toBe('after');
  });

  it('refuses an observer that is not a function, and a payload that is neither bytes nor a string', () => {
    const { sw } = lan();
    expect(() => sw.observe(5 as unknown as () => void)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: 'a network observer must be a function, got the number 5' }));
    const a = new NetEndpoint(sw, 'blue');
    const b = new NetEndpoint(sw, 'blue');
    for (const payload of [5, null, {}, [1, 2]]) {
      expect(() => a.send(b.address, payload as unknown as Uint8Array)).toThrow(InvalidArgumentError);
      expect(() => a.offer(b.address, payload as unknown as Uint8Array)).toThrow(InvalidArgumentError);
    }
    // A destination is a u32 address: -1 was wrapped to the broadcast address (delivered to every
    // host NIC), 2^32 + n to n, and a string such as netAddressString to 0 (a silent no-route).
    const seen: number[] = [];
    b.on('frame', (f) => seen.push(f.src));
    for (const dst of [-1, 2 ** 32, 2 ** 32 + b.address, 1.5, Number.NaN, '10.0.0.3', `${b.address}`, null, undefined]) {
      const refusal = expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/^a frame's destination must be an address, an integer from 0 to 4294967295 \(partition\.netAddress, or HV_NET_BROADCAST\), got /) });
      expect(() => a.send(dst as unknown as number, 'x'), String(dst)).toThrow(refusal);
      expect(() => a.offer(dst as unknown as number, new Uint8Array(1)), String(dst)).toThrow(refusal);
    }
    expect(seen).toEqual([]);
    // The edges themselves are addresses: 0 (no one: no-route) and HV_NET_BROADCAST.
    expect(a.send(0, 'x')).toBe('no-route');
    expect(a.send(HV_NET_BROADCAST, 'x')).toBe('delivered');
  });

  it('an observer sees a NIC\'s frame to a host endpoint; the root keeps no copy of a frame it forwarded', async () => {
    const { nic, sw } = lan();
    const svc = nic('svc', { segment: 'blue', host: true, mtu: HV_NET_MAX_MTU }); // the batch buffer is scrubbed up to 4 + MTU
    // Plugged in after svc: svc does not know it, so svc's unicast to it takes the root's path too.
    const peer = nic('peer', { segment: 'blue', mtu: HV_NET_MAX_MTU });
    const ep = new NetEndpoint(sw, 'blue');
    const kept: Uint8Array[] = [];
    ep.on('frame', (f) => kept.push(f.payload));
    const seen: FrameObservation[] = [];
    const stop = sw.observe((f) => seen.push(f));
    expect(svc.send(ep.address, 'secret reply')).toBe(12);
    expect(svc.send(HV_NET_BROADCAST, 'secret broadcast')).toBe(16);
    const big = new Uint8Array(40_000).fill(0x5e);
    expect(svc.send(peer.address, big)).toBe(40_000);
    await until(() => seen.length === 4, 'four observations');
    stop();
    expect(seen).toEqual([
      { segment: 'blue', src: svc.address, dst: ep.address, bytes: 12, outcome: 'delivered' },
      { segment: 'blue', src: svc.address, dst: peer.address, bytes: 16, outcome: 'delivered' },
      { segment: 'blue', src: svc.address, dst: ep.address, bytes: 16, outcome: 'delivered' },
      { segment: 'blue', src: svc.address, dst: peer.address, bytes: 40_000, outcome: 'delivered' },
    ]);
    expect(peer.recv().text).toBe('secret broadcast');
    expect(peer.recv().payload).toEqual(big);
    // The listener's frames are its own copies, untouched when the root scrubs its buffers.
    expect(kept.map((p) => dec.decode(p))).toEqual(['secret reply', 'secret broadcast']);
    // Guest data passed through the root's buffers (the tx batch buffer, the record assembled for a port): none of it stays.
    const inner = sw as unknown as { txBuf: Uint8Array; record: Uint8Array };
    expect(inner.txBuf.every((x) => x === 0)).toBe(true);
    expect(inner.record.every((x) => x === 0)).toBe(true);
  });

  it('a NIC\'s frame to its own address comes back to it through the root, like any unicast on its segment', async () => {
    const { nic } = lan();
    const a = nic('a', { segment: 'blue' });
    expect(a.send(a.address, 'me')).toBe(2);
    await until(() => a.stats[NetStat.SWITCHED] === 1, 'the frame');
    expect(a.recv()).toMatchObject({ src: a.address, dst: a.address, text: 'me' });
    expect(a.violations).toEqual([]);
  });

  it('observers: stopping one leaves the others; stopping twice is harmless', () => {
    const sw = new VirtualSwitch();
    const a = new NetEndpoint(sw, 'blue');
    const b = new NetEndpoint(sw, 'blue');
    const first: FrameObservation[] = [];
    const second: FrameObservation[] = [];
    const stop1 = sw.observe((f) => first.push(f));
    const stop2 = sw.observe((f) => second.push(f));
    a.send(b.address, 'one');
    stop1();
    a.send(b.address, 'two');
    stop2();
    stop2();
    stop1();
    a.send(b.address, 'three');
    expect([first.length, second.length]).toEqual([1, 2]);
  });

  it('drained() waits for a frame the root still holds back, and gives up after its timeout', async () => {
    const { nic, sw } = lan();
    const a = nic('a', { segment: 'blue' }); // plugged in first: its frames to b take the root's path
    const b = nic('b', { segment: 'blue', mtu: 1000, rxQueueBytes: 1024 });
    expect(a.send(b.address, new Uint8Array(1000))).toBe(1000);
    expect(a.send(b.address, new Uint8Array(1000))).toBe(1000); // held: b's queue holds one
    await until(() => new SharedRing(b.att.init.port.rx).used > 0, 'the first frame in b');
    for (let i = 0; i < 5; i++) await settle();
    expect(new SharedRing(a.att.init.tx).used).toBe(0); // the ring is empty; the frame is with the root
    await within(sw.drained(a.address, 50), 'drained() to give up'); // its own timeout
    let done = false;
    void sw.drained(a.address, 60_000).then(() => (done = true));
    for (let i = 0; i < 5; i++) await settle();
    expect(done).toBe(false);
    expect(b.drain()).toBe(1);
    await until(() => done, 'drained() once the held frame is delivered');
    expect(b.drain()).toBe(1);
    const ep = new NetEndpoint(sw, 'blue');
    await within(sw.drained(ep.address), 'drained() of a host endpoint'); // nothing to wait for
  });

  it('close() unplugs every NIC and host endpoint', () => {
    const { nic, sw } = lan();
    const a = nic('a', { segment: 'blue' });
    const ep = new NetEndpoint(sw, 'blue');
    sw.close();
    expect(sw.addressOf('a')).toBeUndefined();
    expect(ep.closed).toBe(true);
    expect(new NicPort(a.att.init.port, () => 0).down).toBe(true);
  });

  it('addressOf names a NIC by its owner, never a host endpoint', () => {
    const { nic, sw } = lan();
    const a = nic('a', { segment: 'blue' });
    new NetEndpoint(sw, 'blue');
    expect(sw.addressOf('a')).toBe(a.address);
    expect(sw.addressOf('nobody')).toBeUndefined();
    a.detach();
    expect(sw.addressOf('a')).toBeUndefined();
  });

  it('refuses, naming what is wrong: a bad segment, a closed endpoint, a frame above the largest MTU', () => {
    const sw = new VirtualSwitch();
    expect(() => sw.attachHost('no such/segment', () => {})).toThrow(new InvalidArgumentError('segment "no such/segment" is not a valid segment name'));
    expect(() => sw.attachHost(123 as unknown as string, () => {})).toThrow(new InvalidArgumentError('segment the number 123 is not a valid segment name'));
    const ep = new NetEndpoint(sw, 'blue');
    const peer = new NetEndpoint(sw, 'blue');
    expect(ep.send(peer.address, new Uint8Array(HV_NET_MAX_MTU))).toBe('delivered');
    expect(() => ep.send(peer.address, new Uint8Array(HV_NET_MAX_MTU + 1))).toThrow(new InvalidArgumentError(`frame of ${HV_NET_MAX_MTU + 1} bytes exceeds the largest MTU (${HV_NET_MAX_MTU})`));
    ep.close();
    expect(ep.closed).toBe(true);
    expect(() => ep.send(peer.address, 'x')).toThrow(new InvalidStateError('this network endpoint is closed'));
  });

  it('hands out addresses up to the last one below broadcast, then refuses', () => {
    const sw = new VirtualSwitch();
    // 2^32 addresses are out of reach of a test: start the allocator near its end.
    (sw as unknown as { nextAddress: number }).nextAddress = HV_NET_BROADCAST - 1;
    expect(new NetEndpoint(sw, 'blue').address).toBe(HV_NET_BROADCAST - 1);
    expect(() => new NetEndpoint(sw, 'blue')).toThrow(new InvalidStateError('the virtual switch ran out of addresses'));
  });

  it('a NIC\'s tx ring holds four frames of its MTU, at least 64 KiB', () => {
    const sw = new VirtualSwitch();
    const txBytes = (mtu: number) => sw.attachNic(`m${mtu}`, resolveDevices({ net: { segment: 'blue', mtu } }).net!, () => {}).init.tx.byteLength - 32;
    expect(txBytes(1500)).toBe(65536);
    // 4 * (4 + 16380) = 65536 exactly; one more byte of MTU and four frames need the next size.
    expect(txBytes(16376)).toBe(65536);
    expect(txBytes(16377)).toBe(131072);
    expect(txBytes(HV_NET_MAX_MTU)).toBe(262144);
    const config = resolveDevices({ net: { segment: 'blue', mtu: HV_NET_MAX_MTU } }).net!;
    expect(VirtualSwitch.nicBytes(config)).toBe(config.rxQueueBytes + 262144 + 16 * 8 + NicPort.allocateCtl().byteLength + 64);
    sw.close();
  });
});
