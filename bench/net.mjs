#!/usr/bin/env node
/**
 * Virtual network throughput and latency, against a bare MessageChannel measured in the same run.
 *
 * 1. Throughput between two partitions on one segment (net-bench guest: a sender that respects
 *    flow control, sendReliable: a frame the receiver cannot take yet is retried, never lost; a
 *    receiver counting frames), for 64 B and 1500 B payloads: frames/s and MB/s of payload
 *    received, from the first frame to the last as the receiver sees it (its clock device), so
 *    neither side's start-up is counted. Rate limits are lifted and the receive queue is 1 MiB.
 *    Baseline: two plain workers, one posting N Uint8Arrays of the same size on a MessageChannel
 *    to the other, which counts them, timed the same way (first message to last, in the
 *    receiver). Each pair is run `--runs` times (default 3), interleaved, and the medians and
 *    their ratio are reported; `lost` must be 0 for both.
 *    Where a frame's time goes: each thread's CPU time over the partitions' run (Linux /proc),
 *    per frame: the sender's worker, the receiver's worker and the root (the main thread).
 * 2. Round-trip latency of a ping: the root's host endpoint sends "ping i" to the pong guest and
 *    waits for "pong i", sequentially; median and p99. Baseline: the same ping/pong between the
 *    root and a plain worker over a MessageChannel. (Host endpoints are served by the root, so
 *    this path still crosses the root's event loop twice.)
 *
 * Usage: npm run build && node bench/net.mjs [--frames64 200000] [--frames1500 50000] [--pings 2000] [--runs 3]
 */
import { Worker } from 'node:worker_threads';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Hypervisor } from '../dist/index.js';

const { values } = parseArgs({
  options: {
    frames64: { type: 'string', default: '200000' },
    frames1500: { type: 'string', default: '50000' },
    pings: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '3' },
  },
});
const guests = new URL('../build/guests/', import.meta.url);
const OPEN = { sendBytesPerSecond: 2 ** 40, sendFramesPerSecond: 1e9, recvBytesPerSecond: 2 ** 40, recvFramesPerSecond: 1e9, rxQueueBytes: 1 << 20 };

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

async function partitionsThroughput(frames, size) {
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

async function channelThroughput(frames, size) {
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

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];

async function partitionRtt(pings) {
  const hv = new Hypervisor({ defaultLimits: { memoryPages: 16, timeoutMs: 120_000 } });
  try {
    const pong = await hv.createPartition({ name: 'pong', module: new URL('net-pong.wasm', guests), args: ['quiet'], devices: { net: { segment: 'b', host: true, ...OPEN } } });
    const ep = hv.attachNet('b');
    let waiting = null;
    ep.on('frame', () => waiting?.());
    await pong.start();
    const times = [];
    for (let i = 0; i < pings; i++) {
      const t0 = performance.now();
      await new Promise((resolve) => {
        waiting = resolve;
        ep.send(pong.netAddress, `ping ${i}`);
      });
      times.push((performance.now() - t0) * 1000);
    }
    ep.send(pong.netAddress, 'bye');
    await pong.exited;
    return times.sort((x, y) => x - y);
  } finally {
    await hv.close();
  }
}

async function channelRtt(pings) {
  const w = new Worker(`require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m))`, { eval: true });
  await new Promise((r) => w.once('online', r));
  const times = [];
  for (let i = 0; i < pings; i++) {
    const t0 = performance.now();
    await new Promise((resolve) => {
      w.once('message', resolve);
      w.postMessage(`ping ${i}`);
    });
    times.push((performance.now() - t0) * 1000);
  }
  await w.terminate();
  return times.sort((x, y) => x - y);
}

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const runs = Number(values.runs);
console.log(`node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`\nThroughput between two partitions vs a bare MessageChannel between two workers (payload received, first to last frame; median of ${runs} interleaved runs)`);
for (const [size, frames] of [[64, Number(values.frames64)], [1500, Number(values.frames1500)]]) {
  const ours = [];
  const base = [];
  for (let r = 0; r < runs; r++) {
    ours.push(await partitionsThroughput(frames, size));
    base.push(await channelThroughput(frames, size));
  }
  const rate = (x) => x.received / (x.ms / 1000);
  const row = (name, xs) => {
    const fps = median(xs.map(rate));
    const lost = xs.reduce((n, x) => n + x.lost, 0);
    return `  ${name.padEnd(16)} ${String(size).padStart(5)} B  ${fmt(fps).padStart(10)} frames/s  ${fmt((fps * size) / 1e6, 1).padStart(7)} MB/s  runs ${xs.map((x) => fmt(rate(x))).join(' / ')}  lost ${lost}`;
  };
  console.log(row('wasmvisor net', ours) + `  (queue drops ${ours.reduce((n, x) => n + x.queueDrops, 0)}, direct ${ours.every((x) => x.direct === frames) ? 'all' : ours.map((x) => x.direct).join('/')})`);
  console.log(row('MessageChannel', base));
  console.log(`  ratio ${(median(ours.map(rate)) / median(base.map(rate))).toFixed(2)}x (wasmvisor / MessageChannel, medians)`);
  const cpu = ours.map((x) => x.cpu).filter((c) => c !== null);
  if (cpu.length > 0) {
    const us = (k) => fmt((median(cpu.map((c) => c[k])) * 1000) / frames, 2);
    console.log(`  CPU per frame (median): sender worker ${us('tx')} us, receiver worker ${us('rx')} us, root ${us('root')} us (/proc, 10 ms ticks, from the sender's start)`);
  }
}
const pings = Number(values.pings);
const ours = await partitionRtt(pings);
const base = await channelRtt(pings);
console.log(`\nPing round trip, ${pings} sequential pings from the root`);
console.log(`  wasmvisor net (host endpoint -> pong guest -> back)  median ${fmt(pct(ours, 50), 1)} us  p99 ${fmt(pct(ours, 99), 1)} us`);
console.log(`  MessageChannel (root -> worker -> back)              median ${fmt(pct(base, 50), 1)} us  p99 ${fmt(pct(base, 99), 1)} us`);
