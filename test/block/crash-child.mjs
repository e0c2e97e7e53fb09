// Child process for the crash test: runs the disk-crash guest on a 1 MiB disk until it is killed.
// Usage: node crash-child.mjs <dataDir> <sectors> <firstRound>
// Prints "ready" once the guest runs, then the guest's "flushed <r>" lines as they come.
import { Hypervisor } from '../../dist/index.js';

const [dataDir, sectors, firstRound] = process.argv.slice(2);
const hv = new Hypervisor({ dataDir });
const p = await hv.createPartition({
  name: 'crash',
  module: new URL('../../build/guests/disk-crash.wasm', import.meta.url),
  args: [sectors, firstRound],
  // The safety net if the parent never kills us.
  limits: { timeoutMs: 120_000 },
  devices: { console: { linesPerSecond: 1_000_000 }, block: { sizeMiB: 1 } },
});
p.on('console', (line, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(line + '\n'));
await p.start();
process.stdout.write('ready\n');
const exit = await p.exited;
process.stderr.write(`guest ended: ${exit.reason} ${exit.error?.message ?? ''}\n`);
await hv.close();
process.exitCode = 1;
