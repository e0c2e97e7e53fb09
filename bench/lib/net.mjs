/**
 * The network throughput measurement, shared by bench/net.mjs and the bench guard in `npm test`
 * (test/bench/net-guard.test.ts): two partitions on one segment vs two workers on a bare
 * MessageChannel, each timed from its first frame to its last at the receiver. The Hypervisor
 * class and the guests' folder are passed in (the bench uses dist/, the tests host/).
 */
import { Worker } from 'node:worker_threads';
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
    const [rxExit, txExit] = await Promise.all([rx.exited, tx.exited]);
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
    if (txExit.code !== 0) throw new Error(`bench: the sender ended ${txExit.reason} ${txExit.code}`);
    return { ms: ns / 1e6, received, lost: frames - received, queueDrops: rxExit.metrics.net.rxQueueDrops, direct: txExit.metrics.net.switchedDirect, cpu };
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
  await Promise.all([a, b].map((w) => new Promise((r) => w.once('online', r))));
  const done = new Promise((r) => b.once('message', r));
  b.postMessage({ port: port2, role: 'recv', frames, size }, [port2]);
  a.postMessage({ port: port1, role: 'send', frames, size }, [port1]);
  const { got, ms } = await done;
  await Promise.all([a.terminate(), b.terminate()]);
  return { ms, received: got, lost: frames - got };
}

