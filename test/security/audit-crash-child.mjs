// Child process for the audit crash test: writes audit records as fast as it can until it is killed.
// Usage: node audit-crash-child.mjs <dir> <macKeyHex> <secretKeyHex (the 65-byte key file)>
// Prints "accepted <n>" (synchronously) before noting record n, every 500 records, and
// "durable <seq>" when an awaited record() resolved.
import { writeSync } from 'node:fs';
import path from 'node:path';
import { AuditLog, parseSecretKey } from '../../dist/index.js';

const [dir, macHex, secretHex] = process.argv.slice(2);
const log = AuditLog.open({
  dir: path.join(dir, 'audit'),
  macKey: new Uint8Array(Buffer.from(macHex, 'hex')),
  signingKey: parseSecretKey(new Uint8Array(Buffer.from(secretHex, 'hex')), 'test key'),
  headFile: path.join(dir, 'keys', 'audit.head'),
  actor: 'crash-test',
});
writeSync(1, 'ready\n');
let n = 0;
const safety = setTimeout(() => process.exit(1), 20_000);
safety.unref();
for (;;) {
  for (let i = 0; i < 2000; i++) {
    n++;
    if (n % 500 === 0) writeSync(1, `accepted ${n}\n`);
    log.note({ action: 'test.load', target: `r${n}`, outcome: 'success', reason: 'heavy logging', details: { n } });
  }
  const rec = await log.record({ action: 'test.sync', outcome: 'success' });
  n++;
  writeSync(1, `durable ${rec.seq}\n`);
}
