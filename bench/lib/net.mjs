/**
 * The network measurements, shared by bench/net.mjs and the tests (test/bench/): the throughput
 * of two partitions on one segment vs two workers on a bare MessageChannel, each timed from its
 * first frame to its last at the receiver (the bench guard in `npm test`,
 * test/bench/net-guard.test.ts), and the ping round trip from the root to a pong guest. The
 * Hypervisor class and the guests' folder are passed in (the bench uses dist/, the tests host/).
 *
 * Every wait on a guest is settled by the guest's end too: a partition that ends, traps or is
 * killed before it has done its part fails the measurement at once, naming the partition and how
 * it ended (before, a pong that ended left bench/net.mjs awaiting an answer for ever: Node exited
 * 13, "unsettled top-level await", with no message).
 */
import { Worker } from 'node:worker_threads';
import { workerEvent } from './worker.mjs';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** Rate limits lifted and a 1 MiB receive queue: the data path, not the budgets. */
export const OPEN = { sendBytesPerSecond: 2 ** 40, sendFramesPerSecond: 1e9, recvBytesPerSecond: 2 ** 40, recvFramesPerSecond: 1e9, rxQueueBytes: 1 << 20 };

/** CPU ms of each thread of this process (utime + stime, /proc; empty where there is no /proc). */
function threadCpu() {
  const dir = `/proc/${process.pid}/task`;
  const cpu = new Map();
  if (!existsSync(dir)) return cpu;
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  for (const tid of readdirSync(dir)) {
    try {
      const stat = readFileSync(`${dir}/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpu.set(Number(tid), (Number(f[11]) + Number(f[12])) * tick);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return cpu;
}

/** How a partition's run ended, in words: its exit code, or its state, error code and message. */
function ending(exit) {
  return exit.reason === 'exit' ? `exited with code ${exit.code}` : `ended ${exit.state} with ${exit.reason}: ${exit.error?.message ?? 'no message'}`;
}

/** The partition's exit once it exits with code 0; rejects, naming it and how it ended, otherwise. */
function cleanExit(p, role) {
  return p.exited.then((exit) => {
    if (exit.reason === 'exit' && exit.code === 0) return exit;
    throw new Error(`bench: the ${role} (partition ${p.name}) ${ending(exit)}`);
  });
}

export async function partitionsThroughput(Hypervisor, guests, frames, size) {
  const hv = new Hypervisor({ defaultLimits: { memoryPages: 16, timeoutMs: 120_000 } });
  try {
    const rx = await hv.createPartition({
      name: 'rx',
      module: new URL('net-bench.wasm', guests),
      args: ['recv', String(frames), 'timed'],
      devices: { console: true, clock: { resolutionMs: 0.001 }, net: { segment: 'b', ...OPEN } },
    });
    const tx = await hv.createPartition({
      name: 'tx',
      module: new URL('net-bench.wasm', guests),
      args: ['send', String(rx.netAddress), String(frames), String(size)],
      devices: { net: { segment: 'b', ...OPEN } },
    });
    let received = 0;
    let ns = NaN;
    rx.on('console', (line) => {
      const m = /^received (\d+) in (\d+) ns$/.exec(line);
      if (m) [received, ns] = [Number(m[1]), Number(m[2])];
    });
    await rx.start();
    // Threads' CPU, sampled while the workers live (a thread's numbers vanish with it), from the
    // moment the sender runs (its start-up is not a frame's cost; the receiver is waiting by then).
    const last = new Map();
    const sampler = setInterval(() => threadCpu().forEach((v, k) => last.set(k, v)), 25);
    await tx.start();
    const before = threadCpu();
    // The first of the two to fail ends the measurement (hv.close() below ends the other).
    const [rxExit, txExit] = await Promise.all([cleanExit(rx, 'receiver'), cleanExit(tx, 'sender')]);
    clearInterval(sampler);
    threadCpu().forEach((v, k) => last.set(k, v));
    // The two busiest threads besides this one are the workers; the sender's started last.
    const workers = [...last]
      .filter(([tid]) => tid !== process.pid)
      .map(([tid, v]) => [tid, v - (before.get(tid) ?? 0)])
      .sort((a, b) => b[1] - a[1])
      .slice(0, 2)
      .sort((a, b) => a[0] - b[0]);
    const cpu = workers.length === 2 ? { rx: workers[0][1], tx: workers[1][1], root: (last.get(process.pid) ?? 0) - (before.get(process.pid) ?? 0) } : null;
    if (!Number.isFinite(ns)) throw new Error(`bench: the receiver (partition rx) exited without its "received N in T ns" line`);
    return { ms: ns / 1e6, received, lost: frames - received, queueDrops: rxExit.metrics.net.rxQueueDrops, direct: txExit.metrics.net.switchedDirect, cpu };
  } finally {
    await hv.close();
  }
}

/**
 * Round trips of a ping: the root's host endpoint sends "ping i" to the pong guest and waits for
 * its answer, `pings` times in sequence; each round trip in µs, sorted. `timeoutMs` is the pong's
 * wall-clock budget. A pong that ends before the last answer (it trapped, was killed by its
 * budget, or gave up after 10 s without a frame) rejects the wait for its answer at once.
 */
export async function partitionRtt(Hypervisor, guests, pings, timeoutMs = 120_000) {
  const hv = new Hypervisor({ defaultLimits: { memoryPages: 16, timeoutMs } });
  try {
    const pong = await hv.createPartition({ name: 'pong', module: new URL('net-pong.wasm', guests), args: ['quiet'], devices: { net: { segment: 'b', host: true, ...OPEN } } });
    const ep = hv.attachNet('b');
    // The ping in flight's settlers (any frame from the pong is its answer), and the pong's end.
    let answered = null;
    let failed = null;
    let ended = null;
    const times = [];
    const endedEarly = () => new Error(`bench: the pong guest (partition ${pong.name}) ${ending(ended)} after answering ${times.length} of ${pings} pings`);
    ep.on('frame', () => answered?.());
    void pong.exited.then((exit) => {
      ended = exit;
      failed?.(endedEarly());
    });
    await pong.start();
    for (let i = 0; i < pings; i++) {
      if (ended !== null) throw endedEarly();
      const t0 = performance.now();
      await new Promise((resolve, reject) => {
        answered = resolve;
        failed = reject;
        ep.send(pong.netAddress, `ping ${i}`);
      });
      times.push((performance.now() - t0) * 1000);
    }
    answered = failed = null;
    ep.send(pong.netAddress, 'bye');
    await cleanExit(pong, 'pong guest');
    return times.sort((x, y) => x - y);
  } finally {
    await hv.close();
  }
}

const CHANNEL_WORKER = `
const { parentPort } = require('node:worker_threads');
parentPort.once('message', ({ port, role, frames, size }) => {
  if (role === 'send') {
    const payload = new Uint8Array(size).fill(0x5a);
    for (let i = 0; i < frames; i++) port.postMessage(payload);
  } else {
    let got = 0;
    let first = 0;
    port.on('message', () => {
      if (got === 0) first = performance.now();
      if (++got === frames) {
        parentPort.postMessage({ got, ms: performance.now() - first });
        port.close();
      }
    });
  }
});`;

export async function channelThroughput(frames, size) {
  const { port1, port2 } = new MessageChannel();
  const a = new Worker(CHANNEL_WORKER, { eval: true });
  const b = new Worker(CHANNEL_WORKER, { eval: true });
  const sender = 'the MessageChannel sender worker (throughput baseline)';
  const receiver = 'the MessageChannel receiver worker (throughput baseline)';
  try {
    await Promise.all([workerEvent(a, sender, { event: 'online' }), workerEvent(b, receiver, { event: 'online' })]);
    // The receiver's report waits on the sender too: a sender that died would never send its frames.
    const done = workerEvent(b, receiver, { peers: [[a, sender]] });
    b.postMessage({ port: port2, role: 'recv', frames, size }, [port2]);
    a.postMessage({ port: port1, role: 'send', frames, size }, [port1]);
    const { got, ms } = /** @type {{ got: number, ms: number }} */ (await done);
    return { ms, received: got, lost: frames - got };
  } finally {
    await Promise.all([a.terminate(), b.terminate()]);
  }
}

