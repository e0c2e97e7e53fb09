// Child process for the two-process race test: one Hypervisor on a shared data directory creates
// partitions with disks, all at once: its own names, and names the other process also creates.
// Usage: node race-child.mjs <dataDir> <tag> <own> <shared>
// Prints "ready", waits for "go" on stdin (so both processes start together), prints one JSON line of outcomes,
// keeps its partitions alive until stdin ends, then closes.
import { createInterface } from 'node:readline';
import { Hypervisor } from '../../dist/index.js';

const [dataDir, tag, own, shared] = process.argv.slice(2);
const hv = new Hypervisor({ dataDir });
const names = [...Array.from({ length: Number(own) }, (_, i) => `${tag}-${i}`), ...Array.from({ length: Number(shared) }, (_, i) => `shared-${i}`)];
const lines = createInterface({ input: process.stdin });
const it = lines[Symbol.asyncIterator]();
process.stdout.write('ready\n');
await it.next(); // "go"
const outcomes = await Promise.all(
  names.map((name) =>
    hv
      .createPartition({ name, module: new URL('../../build/guests/counter.wasm', import.meta.url), devices: { block: { sizeMiB: 1 } } })
      .then(() => ({ name, ok: true }))
      .catch((e) => ({ name, ok: false, code: e.code, message: e.message })),
  ),
);
process.stdout.write(JSON.stringify({ pid: process.pid, outcomes }) + '\n');
for await (const _ of it); // until stdin ends
await hv.close();
