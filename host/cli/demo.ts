import { Hypervisor } from '../hypervisor.ts';
import { escapeText } from '../escape.ts';
import { parseOrHelp, type CommandSpec, type OptionTable } from './options.ts';
import { guestsDir } from '../paths.ts';
import type { Partition, PartitionExit } from '../partition/partition.ts';

/** The demo system: three guests side by side, each with only the devices it needs. */
const DEMO = [
  { name: 'hello', devices: { console: true } },
  { name: 'dice', devices: { console: true, entropy: true } },
  { name: 'clock', devices: { console: true, clock: { resolutionMs: 1 } } },
] as const;

const width = Math.max(...DEMO.map((d) => d.name.length));

function summary(p: Partition, exit: PartitionExit): string {
  const m = exit.metrics;
  const result = exit.reason === 'exit' ? `exit ${exit.code}` : `${exit.reason}`;
  return (
    `${p.name.padEnd(width)}  ${result.padEnd(8)}  ` +
    `memory ${m.peakMemoryBytes / 1024} KiB (${m.peakMemoryBytes / 65536} pages)  ` +
    `hypercalls ${m.hypercalls}  time ${exit.runTimeMs.toFixed(1)} ms`
  );
}

/**
 * Persistent storage: the counter guest boots twice, each time as a new partition of the same
 * name, on its encrypted disk in the hypervisor's data directory. The count carries over between
 * the boots and between runs of the demo (`wasmvisor delete counter` resets it).
 */
async function counterTwice(hv: Hypervisor, out: NodeJS.WritableStream): Promise<boolean> {
  out.write(`\nPersistent storage: the counter guest boots twice on its own encrypted disk in ${hv.dataDir}\n`);
  for (let boot = 1; boot <= 2; boot++) {
    const p = await hv.createPartition({
      name: 'counter',
      module: new URL('counter.wasm', guestsDir),
      devices: { console: true, block: { sizeMiB: 1 } },
    });
    p.on('console', (line) => out.write(`[counter, boot ${boot}] ${escapeText(line)}\n`));
    await p.start();
    const exit = await p.exited;
    await p.destroy();
    if (exit.reason !== 'exit' || exit.code !== 0) {
      out.write(`[counter, boot ${boot}] ${exit.reason}: ${escapeText(exit.error?.message ?? `exit ${exit.code}`)}\n`);
      return false;
    }
  }
  return true;
}

/**
 * Virtual network: ping and pong on segment blue, an attacker on segment red that tries to reach
 * pong by address, by broadcast and by scanning. The switch drops every attacker frame and
 * reports it; pong only ever hears from ping.
 */
async function network(hv: Hypervisor, out: NodeJS.WritableStream): Promise<boolean> {
  out.write('\nVirtual network: ping and pong on segment blue, an attacker on segment red\n');
  const pong = await hv.createPartition({ name: 'pong', module: new URL('net-pong.wasm', guestsDir), devices: { console: true, net: { segment: 'blue' } } });
  const ping = await hv.createPartition({ name: 'ping', module: new URL('net-ping.wasm', guestsDir), args: ['3'], devices: { console: true, net: { segment: 'blue' } } });
  const attacker = await hv.createPartition({
    name: 'attacker',
    module: new URL('net-attacker.wasm', guestsDir),
    args: [String(pong.netAddress)],
    devices: { console: true, net: { segment: 'red' } },
  });
  const all = [pong, ping, attacker];
  const w = Math.max(...all.map((p) => p.name.length));
  let blocked = 0;
  for (const p of all) {
    p.on('console', (line) => out.write(`[${p.name.padEnd(w)}] ${escapeText(line)}\n`));
    p.on('violation', (v) => {
      blocked++;
      out.write(`[${p.name.padEnd(w)}] blocked: ${escapeText(v.reason)}\n`);
    });
  }
  await Promise.all(all.map((p) => p.start()));
  const exits = await Promise.all(all.map((p) => p.exited));
  const pongNet = exits[0]!.metrics.net!;
  out.write(`network: pong received ${pongNet.rxFrames} frames (all from ping); the switch blocked ${blocked} attacker frames\n`);
  await Promise.all(all.map((p) => p.destroy()));
  return exits.every((e) => e.reason === 'exit' && e.code === 0) && blocked > 0;
}

/** Boots the demo guests in parallel partitions, prints their console output and a summary. */
export async function runDemo(out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const hv = new Hypervisor({ defaultLimits: { memoryPages: 16, timeoutMs: 5000 } });
  out.write('Wasmvisor demo: three guest partitions, each in its own worker with its own memory.\n\n');
  try {
    const partitions = await Promise.all(
      DEMO.map(({ name, devices }) => hv.createPartition({ name, module: new URL(`${name}.wasm`, guestsDir), devices })),
    );
    for (const p of partitions) {
      p.on('console', (line) => out.write(`[${p.name.padEnd(width)}] ${escapeText(line)}\n`));
      p.on('violation', (v) => out.write(`[${p.name.padEnd(width)}] violation: ${escapeText(`${v.call} ${v.status}: ${v.reason}`)}\n`));
    }
    await Promise.all(partitions.map((p) => p.start()));
    const exits = await Promise.all(partitions.map((p) => p.exited));
    out.write('\nSummary\n');
    partitions.forEach((p, i) => out.write(summary(p, exits[i]!) + '\n'));
    const counterOk = await counterTwice(hv, out);
    const networkOk = await network(hv, out);
    return counterOk && networkOk && exits.every((e) => e.reason === 'exit' && e.code === 0) ? 0 : 1;
  } finally {
    await hv.close();
  }
}

export const demoCommand = {
  name: 'demo',
  summary: 'boot the demo: guests side by side, a persistent counter, a virtual network',
  usage: ['wasmvisor demo'],
  options: {},
  positionals: { names: [], min: 0 },
  notes: `The counter's disk is kept in ./.wasmvisor (wasmvisor delete counter resets it).
Exit status: 0 when every demo guest did what it should, 1 otherwise.`,
} satisfies CommandSpec<OptionTable>;

export async function demo(argv: string[]): Promise<number> {
  return parseOrHelp(demoCommand, argv) === null ? 0 : runDemo();
}
