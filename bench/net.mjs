#!/usr/bin/env node
/**
 * Virtual network throughput and latency, against a bare MessageChannel measured in the same run.
 *
 * 1. Throughput between two partitions on one segment (net-bench guest: a sender offering N
 *    frames as fast as its NIC takes them, a receiver counting them), for 64 B and 1500 B
 *    payloads; frames/s and MB/s of payload *received*, and the loss (drop-tail at the
 *    receiver's queue). Rate limits are lifted and the receive queue is 1 MiB.
 *    Baseline: two plain workers, one posting N Uint8Arrays of the same size on a
 *    MessageChannel to the other, which counts them.
 * 2. Round-trip latency of a ping: the root's host endpoint sends "ping i" to the pong guest and
 *    waits for "pong i", sequentially; median and p99. Baseline: the same ping/pong between the
 *    root and a plain worker over a MessageChannel.
 *
 * Usage: npm run build && node bench/net.mjs [--frames64 200000] [--frames1500 50000] [--pings 2000]
 */
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Hypervisor } from '../dist/index.js';

const { values } = parseArgs({
  options: { frames64: { type: 'string', default: '200000' }, frames1500: { type: 'string', default: '50000' }, pings: { type: 'string', default: '2000' } },
});
const guests = new URL('../build/guests/', import.meta.url);
const OPEN = { sendBytesPerSecond: 2 ** 40, sendFramesPerSecond: 1e9, recvBytesPerSecond: 2 ** 40, recvFramesPerSecond: 1e9, rxQueueBytes: 1 << 20 };

async function partitionsThroughput(frames, size) {
  const hv = new Hypervisor({ defaultLimits: { memoryPages: 16, timeoutMs: 120_000 } });
  try {
    const rx = await hv.createPartition({ name: 'rx', module: new URL('net-bench.wasm', guests), args: ['recv', String(frames)], devices: { console: true, net: { segment: 'b', ...OPEN } } });
    const tx = await hv.createPartition({
      name: 'tx',
      module: new URL('net-bench.wasm', guests),
      args: ['send', String(rx.netAddress), String(frames), String(size)],
      devices: { net: { segment: 'b', ...OPEN } },
    });
    let received = 0;
    rx.on('console', (line) => (received = Number(line.split(' ')[1])));
    await rx.start();
    const t0 = performance.now();
    await tx.start();
    const rxExit = await rx.exited;
    // The receiver stops 2 s after the last frame when frames were lost: do not count that wait.
    const idle = received < frames ? 2000 : 0;
    const ms = performance.now() - t0 - idle;
    return { ms, received, lost: frames - received, queueDrops: rxExit.metrics.net.rxQueueDrops };
  } finally {
    await hv.close();
  }
}

const CHANNEL_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
parentPort.once('message', ({ port, role, frames, size }) => {
  if (role === 'send') {
    const payload = new Uint8Array(size).fill(0x5a);
    for (let i = 0; i < frames; i++) port.postMessage(payload);
  } else {
    let got = 0;
    port.on('message', () => { if (++got === frames) { parentPort.postMessage(got); port.close(); } });
  }
});`;

async function channelThroughput(frames, size) {
  const { port1, port2 } = new MessageChannel();
  const a = new Worker(CHANNEL_WORKER, { eval: true });
  const b = new Worker(CHANNEL_WORKER, { eval: true });
  await Promise.all([a, b].map((w) => new Promise((r) => w.once('online', r))));
  const done = new Promise((r) => b.once('message', r));
  b.postMessage({ port: port2, role: 'recv', frames, size }, [port2]);
  const t0 = performance.now();
  a.postMessage({ port: port1, role: 'send', frames, size }, [port1]);
  const received = await done;
  const ms = performance.now() - t0;
  await Promise.all([a.terminate(), b.terminate()]);
  return { ms, received, lost: frames - received };
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

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
console.log(`node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log('\nThroughput between two partitions (payload received) vs a bare MessageChannel between two workers');
for (const [size, frames] of [[64, Number(values.frames64)], [1500, Number(values.frames1500)]]) {
  const ours = await partitionsThroughput(frames, size);
  const base = await channelThroughput(frames, size);
  const row = (name, r) =>
    `  ${name.padEnd(16)} ${String(size).padStart(5)} B  ${fmt(r.received / (r.ms / 1000)).padStart(10)} frames/s  ${fmt((r.received * size) / (r.ms / 1000) / 1e6, 1).padStart(7)} MB/s  ` +
    `received ${r.received}/${frames}${r.queueDrops !== undefined ? ` (queue drops ${r.queueDrops})` : ''}`;
  console.log(row('wasmvisor net', ours));
  console.log(row('MessageChannel', base));
}
const pings = Number(values.pings);
const ours = await partitionRtt(pings);
const base = await channelRtt(pings);
console.log(`\nPing round trip, ${pings} sequential pings from the root`);
console.log(`  wasmvisor net (host endpoint -> pong guest -> back)  median ${fmt(pct(ours, 50), 1)} us  p99 ${fmt(pct(ours, 99), 1)} us`);
console.log(`  MessageChannel (root -> worker -> back)              median ${fmt(pct(base, 50), 1)} us  p99 ${fmt(pct(base, 99), 1)} us`);
