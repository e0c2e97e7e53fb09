// Child process for the audit crash test: a host (a Hypervisor with its audit log) that records
// as fast as it can through hv.audit until it is killed.
// Usage: node audit-crash-child.mjs <dataDir>
// Prints "ready", then "accepted <n>" (synchronously) before noting record n, every 500 records,
// and "durable <seq>" when an awaited record() resolved.
import { writeSync } from 'node:fs';
import { Hypervisor } from '../../dist/index.js';

const [dataDir] = process.argv.slice(2);
const hv = new Hypervisor({ dataDir, audit: true, actor: 'crash-test' });
const p = await hv.createPartition({ name: 'logged', module: new URL('../../build/guests/hello.wasm', import.meta.url) });
writeSync(1, 'ready\n');
const safety = setTimeout(() => process.exit(1), 20_000);
safety.unref();
let n = 0;
for (;;) {
  for (let i = 0; i < 2000; i++) {
    n++;
    if (n % 500 === 0) writeSync(1, `accepted ${n}\n`);
    hv.audit.note({ action: 'test.load', target: p.name, outcome: 'success', reason: 'heavy logging', details: { n } });
  }
  const rec = await hv.audit.record({ action: 'test.sync', outcome: 'success' });
  n++;
  writeSync(1, `durable ${rec.seq}\n`);
}
