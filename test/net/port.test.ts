/**
 * A NIC's port (host/net/port.ts) driven directly, in this thread, over real shared memory: what
 * every producer (the root's switch, a sending NIC's worker) does under the port's lock, at each
 * bound's edge and one past it. The lock's waits are the worker's side: this thread waits in
 * `lock()` (Node lets the main thread block in Atomics.wait) while a helper thread plays the other
 * producer on the same control words, the way a sender's worker and the root share them.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { SharedRing } from '../../host/channel/ring.ts';
import { rxRecordBytes } from '../../host/devices/resolved.ts';
import { FrameBudget, NET_FRAME_KIND, NET_STAT_SLOTS, NetStat, NicPort, PORT_CTL_BYTES, PortSlot, processClock, ROOT_OWNER, type PortInit } from '../../host/net/port.ts';
import { budget } from '../helpers.ts';
import { until } from './lan.ts';

const SRC = 0x0a000002;
const DST = 0x0a000003;

function portInit(o: { mtu?: number; rxBytes?: number; bytesPerSecond?: number; framesPerSecond?: number } = {}): PortInit {
  return {
    address: DST,
    mtu: o.mtu ?? 1000,
    rx: SharedRing.allocate(o.rxBytes ?? 4096),
    ctl: NicPort.allocateCtl(),
    stats: new SharedArrayBuffer(NET_STAT_SLOTS * 8),
    recvBytesPerSecond: o.bytesPerSecond ?? 1 << 30,
    recvFramesPerSecond: o.framesPerSecond ?? 1_000_000,
  };
}

/** A frame's body as producers hand it to `put`: u32 destination, then the payload. */
function body(length: number, fill = 0xab): Uint8Array {
  const b = new Uint8Array(4 + length).fill(fill);
  new DataView(b.buffer).setUint32(0, DST, true);
  return b;
}

const workers: Worker[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) await w.terminate();
});

/** A helper thread running `source` (plain JS) with the port's control block as `ctl` (Int32Array) and a result block `out` (Int32Array of 4). */
function helper(ctl: SharedArrayBuffer, out: SharedArrayBuffer, source: string): Worker {
  const w = new Worker(`const { workerData } = require('node:worker_threads'); const ctl = new Int32Array(workerData.ctl, 0, 8); const out = new Int32Array(workerData.out); ${source}`, {
    eval: true,
    workerData: { ctl, out },
  });
  workers.push(w);
  return w;
}

describe('a port: put', () => {
  it('stamps the source in front of the destination and payload; takes a frame of exactly the MTU and drops one past it, counted on the receiver', () => {
    const init = portInit({ mtu: 1000 });
    const port = new NicPort(init, () => 0, true);
    expect(port.put(SRC, body(1000, 7), 1000, false)).toBe('delivered');
    const buf = new Uint8Array(2000);
    const reader = new SharedRing(init.rx);
    expect(reader.peekKind()).toBe(NET_FRAME_KIND);
    expect(reader.readInto(buf)).toBe(8 + 1000);
    const dv = new DataView(buf.buffer);
    expect([dv.getUint32(0, true), dv.getUint32(4, true)]).toEqual([SRC, DST]);
    expect(buf.subarray(8, 1008).every((b) => b === 7)).toBe(true);
    // Above the MTU: never fits, so dropped and counted whether the sender would hold it or not.
    expect(port.put(SRC, body(1001), 1001, false)).toBe('oversize');
    expect(port.put(SRC, body(1001), 1001, true)).toBe('oversize');
    expect(port.stats[NetStat.RX_OVERSIZE]).toBe(2);
    expect(reader.peekKind()).toBeLessThan(0);
  });

  it('a full queue: "full", counted as a drop only when dropping; a frame that does not fit is not charged to the budget', () => {
    // 4096 bytes hold 4 records of 4 + 8 + 1000; the budget allows 5 frames per second (the clock stands still).
    const init = portInit({ mtu: 1000, framesPerSecond: 5 });
    const port = new NicPort(init, () => 0, true);
    for (let i = 0; i < 4; i++) expect(port.put(SRC, body(1000), 1000, false)).toBe('delivered');
    for (let i = 0; i < 3; i++) expect(port.put(SRC, body(1000), 1000, false)).toBe('full');
    expect(port.stats[NetStat.RX_QUEUE_DROPS]).toBe(0);
    expect(port.put(SRC, body(1000), 1000, true)).toBe('full');
    expect(port.stats[NetStat.RX_QUEUE_DROPS]).toBe(1);
    // The refused frames took nothing: the budget's fifth frame is still there once the reader makes room.
    new SharedRing(init.rx).readInto(new Uint8Array(2000));
    expect(port.put(SRC, body(1000), 1000, false)).toBe('delivered');
    new SharedRing(init.rx).readInto(new Uint8Array(2000));
    expect(port.put(SRC, body(1000), 1000, false)).toBe('rate-limited');
  });

  it('a spent receive budget: "rate-limited", counted only when dropping; budgetWaitMs says when a frame passes, exactly', () => {
    let t = 1000;
    const init = portInit({ framesPerSecond: 4, rxBytes: 65536 });
    const port = new NicPort(init, () => t, true);
    for (let i = 0; i < 4; i++) expect(port.put(SRC, body(10), 10, false)).toBe('delivered');
    expect(port.put(SRC, body(10), 10, false)).toBe('rate-limited');
    expect(port.stats[NetStat.RX_RATE_LIMITED]).toBe(0);
    expect(port.put(SRC, body(10), 10, true)).toBe('rate-limited');
    expect(port.stats[NetStat.RX_RATE_LIMITED]).toBe(1);
    expect(port.budgetWaitMs(10)).toBe(250);
    expect(port.budgetWaitMs(10, t + 100)).toBe(150);
    t += 249;
    expect(port.put(SRC, body(10), 10, false)).toBe('rate-limited');
    t += 1;
    expect(port.budgetWaitMs(10)).toBe(0);
    expect(port.put(SRC, body(10), 10, false, t)).toBe('delivered');
    expect(port.put(SRC, body(10), 10, false)).toBe('rate-limited');
  });

  it('the byte budget holds at least one frame of the MTU, however low its rate', () => {
    const init = portInit({ mtu: 1500, bytesPerSecond: 100 });
    const port = new NicPort(init, () => 0, true);
    expect(port.put(SRC, body(1500), 1500, false)).toBe('delivered');
    expect(port.put(SRC, body(1), 1, false)).toBe('rate-limited');
  });

  it('a port that is down takes nothing: "down", counted only when dropping; a closed receive ring is down too', () => {
    const init = portInit();
    const port = new NicPort(init, () => 0, true);
    expect(port.down).toBe(false);
    port.markDown();
    expect(port.down).toBe(true);
    expect(port.put(SRC, body(10), 10, false)).toBe('down');
    expect(port.stats[NetStat.RX_QUEUE_DROPS]).toBe(0);
    expect(port.put(SRC, body(10), 10, true)).toBe('down');
    expect(port.stats[NetStat.RX_QUEUE_DROPS]).toBe(1);
    expect(port.wouldTake(10)).toBe(false);
    const other = new NicPort(portInit(), () => 0, true);
    other.rx.close();
    expect(other.down).toBe(true);
    expect(other.put(SRC, body(10), 10, false)).toBe('down');
  });

  it('the receive budget lives in the control block: every view of the port charges the same buckets, and a view that attaches resets nothing', () => {
    const init = portInit({ framesPerSecond: 3, rxBytes: 65536 });
    const root = new NicPort(init, () => 0, true);
    expect(root.put(SRC, body(10), 10, false)).toBe('delivered'); // the root's view starts with a full budget
    const worker = new NicPort(init, () => 0);
    expect(worker.put(SRC, body(10), 10, false)).toBe('delivered');
    expect(root.put(SRC, body(10), 10, false)).toBe('delivered');
    expect(new NicPort(init, () => 0).put(SRC, body(10), 10, false)).toBe('rate-limited');
    expect(worker.put(SRC, body(10), 10, false)).toBe('rate-limited');
    expect(PORT_CTL_BYTES).toBe(init.ctl.byteLength);
    // The budget's state sits past the control words: none of them moved.
    const ctl = new Int32Array(init.ctl, 0, 8);
    expect([...ctl]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe('a port: wouldTake (the estimate without the lock)', () => {
  it('is exact at the edge of the MTU, of the queue\'s room and of the budget', () => {
    let t = 0;
    const init = portInit({ mtu: 1000, framesPerSecond: 6 });
    const port = new NicPort(init, () => t, true);
    expect(port.wouldTake(1000)).toBe(true);
    expect(port.wouldTake(1001)).toBe(false);
    // Leave exactly rxRecordBytes(100) = 112 bytes of room: 3 frames of 1000 (1012 each) and one of 936 (948).
    for (let i = 0; i < 3; i++) expect(port.put(SRC, body(1000), 1000, false)).toBe('delivered');
    expect(port.put(SRC, body(936), 936, false)).toBe('delivered');
    expect(port.rx.capacity - port.rx.used).toBe(rxRecordBytes(100));
    expect(port.wouldTake(100)).toBe(true);
    expect(port.wouldTake(101)).toBe(false);
    expect(port.put(SRC, body(101), 101, false)).toBe('full');
    expect(port.put(SRC, body(100), 100, false)).toBe('delivered');
    expect(port.wouldTake(0)).toBe(false); // no room at all
    // Room again, but the budget (6 frames) is spent.
    const reader = new SharedRing(init.rx);
    while (reader.peekKind() >= 0) reader.readInto(new Uint8Array(2000));
    expect(port.wouldTake(10)).toBe(true);
    expect(port.put(SRC, body(10), 10, false)).toBe('delivered');
    expect(port.wouldTake(10)).toBe(false);
    t += 1000;
    expect(port.wouldTake(10)).toBe(true);
  });
});

describe('a port: the producers\' lock', () => {
  it('tryLock takes a free lock only; unlock frees it; release frees it only for the owner that holds it', () => {
    const init = portInit();
    const port = new NicPort(init, () => 0, true);
    const ctl = new Int32Array(init.ctl, 0, 8);
    expect(port.tryLock(SRC)).toBe(true);
    expect(ctl[PortSlot.LOCK]).toBe(SRC);
    expect(port.tryLock(ROOT_OWNER)).toBe(false);
    expect(port.release(0x0a000077)).toBe(false); // not its lock
    expect(ctl[PortSlot.LOCK]).toBe(SRC);
    const seq = port.rx.writeSeq;
    expect(port.release(SRC)).toBe(true);
    expect(ctl[PortSlot.LOCK]).toBe(0);
    // A record its worker published without the wake-up still reaches the reader: release wakes it.
    expect(port.rx.writeSeq).not.toBe(seq);
    expect(port.release(SRC)).toBe(false);
    expect(port.tryLock(ROOT_OWNER)).toBe(true);
    expect(ctl[PortSlot.LOCK]).toBe(ROOT_OWNER);
    expect(port.release(ROOT_OWNER)).toBe(true);
    expect(port.lock(SRC, 0)).toBe(true); // free: taken without waiting
    port.unlock();
    expect(ctl[PortSlot.LOCK]).toBe(0);
  });

  it('lock() on a lock held elsewhere gives up after its bound, and leaves no waiter counted', () => {
    const init = portInit();
    const port = new NicPort(init, () => 0, true);
    const ctl = new Int32Array(init.ctl, 0, 8);
    expect(port.tryLock(ROOT_OWNER)).toBe(true);
    expect(port.lock(SRC, 0)).toBe(false);
    const t0 = performance.now();
    expect(port.lock(SRC, 30)).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(29);
    expect(ctl[PortSlot.WAITERS]).toBe(0);
    expect(ctl[PortSlot.LOCK]).toBe(ROOT_OWNER);
  });

  const HOLDER = 0x0a000077;
  /** A port whose lock HOLDER holds, and a helper thread (`source`) playing HOLDER or another producer on it. */
  function held() {
    const init = portInit();
    const port = new NicPort(init, () => 0, true);
    const out = new Int32Array(new SharedArrayBuffer(16));
    expect(port.tryLock(HOLDER)).toBe(true);
    return { init, port, out, ctl: new Int32Array(init.ctl, 0, 8), helper: (source: string) => helper(init.ctl, out.buffer as SharedArrayBuffer, source) };
  }

  it('a producer waiting in lock() is counted as a waiter, and takes the lock once the holder lets go', async () => {
    const { port, ctl, out, helper } = held();
    // The other producer: waits until this thread is waiting for the lock, notes it, then lets go
    // of the lock as unlock() does.
    const w = helper(
      `while (Atomics.load(ctl, ${PortSlot.WAITERS}) === 0) Atomics.wait(out, 3, 0, 1);
       out[0] = Atomics.load(ctl, ${PortSlot.WAITERS});
       Atomics.wait(out, 3, 0, 20);
       Atomics.store(ctl, ${PortSlot.LOCK}, 0);
       Atomics.notify(ctl, ${PortSlot.LOCK}, 1);`,
    );
    await once(w, 'online');
    expect(port.lock(SRC, budget(20_000))).toBe(true);
    expect(ctl[PortSlot.LOCK]).toBe(SRC);
    expect(ctl[PortSlot.WAITERS]).toBe(0);
    expect(out[0]).toBe(1);
  });

  it('unlock() and release() wake a producer asleep on the lock at once', async () => {
    for (const free of ['unlock', 'release'] as const) {
      const { port, out, helper } = held();
      // As lock() sleeps: counted in WAITERS, then asleep on the lock word (15 s: a wake-up that never comes shows as a timeout).
      const w = helper(
        `Atomics.add(ctl, ${PortSlot.WAITERS}, 1);
         Atomics.store(out, 1, 1);
         const r = Atomics.wait(ctl, ${PortSlot.LOCK}, ${HOLDER}, 15000);
         Atomics.sub(ctl, ${PortSlot.WAITERS}, 1);
         Atomics.store(out, 0, r === 'timed-out' ? 3 : r === 'ok' ? 1 : 2);`,
      );
      await until(() => Atomics.load(out, 1) === 1, 'the helper to wait');
      await new Promise((r) => setTimeout(r, 20)); // into its Atomics.wait (if not, it sees the lock freed: 'not-equal')
      if (free === 'unlock') port.unlock();
      else expect(port.release(HOLDER)).toBe(true);
      await once(w, 'exit');
      expect(Atomics.load(out, 0), free).not.toBe(3);
    }
  });
});

describe('a port: control words', () => {
  it('the peer-table generation and the tx frames with the root', () => {
    const port = new NicPort(portInit(), () => 0, true);
    expect(port.generation).toBe(0);
    port.bumpGeneration();
    port.bumpGeneration();
    expect(port.generation).toBe(2);
    expect(port.txIdle).toBe(true);
    port.frameWritten();
    port.frameWritten();
    expect(port.txIdle).toBe(false);
    port.frameDone();
    expect(port.txIdle).toBe(false);
    port.frameDone();
    expect(port.txIdle).toBe(true);
  });

  it('processClock is the wall clock in milliseconds, the same time line in every thread', () => {
    const before = Date.now();
    const t = processClock();
    const after = Date.now();
    expect(t).toBeGreaterThanOrEqual(before - 50);
    expect(t).toBeLessThanOrEqual(after + 50);
  });
});

describe('FrameBudget', () => {
  it('admits without taking; takes a frame only when both buckets have it', () => {
    const b = new FrameBudget(1 << 20, 2, 1500, () => 0);
    expect(b.admits(100)).toBe(true);
    expect(b.admits(100)).toBe(true);
    expect(b.take(100)).toBe(true);
    expect(b.take(100)).toBe(true);
    expect(b.admits(100)).toBe(false);
    expect(b.take(100)).toBe(false);
    expect(b.admits(100, 500)).toBe(true);
    const bytes = new FrameBudget(1000, 100, 1500, () => 0);
    expect(bytes.take(1500)).toBe(true); // the burst holds one MTU although the rate is lower
    expect(bytes.take(1)).toBe(false);
  });
});
