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
 * Frame counts are large on purpose: the first tens of thousands of frames run before V8 has
 * optimized the guest and the host's frame path, which a short run would mostly measure.
 *
 * Usage: npm run build && node bench/net.mjs [--frames64 400000] [--frames1500 200000] [--pings 2000] [--runs 3]
 */
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Hypervisor } from '../dist/index.js';
import { channelThroughput, partitionRtt, partitionsThroughput } from './lib/net.mjs';
import { workerEvent } from './lib/worker.mjs';

const { values } = parseArgs({
  options: {
    frames64: { type: 'string', default: '400000' },
    frames1500: { type: 'string', default: '200000' },
    pings: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '3' },
  },
});
const guests = new URL('../build/guests/', import.meta.url);

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];

async function channelRtt(pings) {
  const w = new Worker(`require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m))`, { eval: true });
  const name = 'the MessageChannel echo worker (ping baseline)';
  await workerEvent(w, name, { event: 'online' });
  const times = [];
  for (let i = 0; i < pings; i++) {
    const t0 = performance.now();
    const reply = workerEvent(w, name);
    w.postMessage(`ping ${i}`);
    await reply;
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
    ours.push(await partitionsThroughput(Hypervisor, guests, frames, size));
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
const ours = await partitionRtt(Hypervisor, guests, pings);
const base = await channelRtt(pings);
console.log(`\nPing round trip, ${pings} sequential pings from the root`);
console.log(`  wasmvisor net (host endpoint -> pong guest -> back)  median ${fmt(pct(ours, 50), 1)} us  p99 ${fmt(pct(ours, 99), 1)} us`);
console.log(`  MessageChannel (root -> worker -> back)              median ${fmt(pct(base, 50), 1)} us  p99 ${fmt(pct(base, 99), 1)} us`);
