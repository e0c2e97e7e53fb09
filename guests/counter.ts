// A counter that survives restarts: sector 0 of the partition's disk holds "WVCOUNT1" and a u64.
// Each run reads it, adds one, writes it back, flushes (so the new value is on disk), prints it.
import { block, console, exit, statusName } from "../assembly/index";

const MAGIC: u64 = 0x31544e554f435657; // "WVCOUNT1" little-endian

const buf = new Uint8Array(block.SECTOR_SIZE);
let r = block.read(0, buf, 1);
if (r < 0) {
  console.error("counter: read failed: " + statusName(r));
  exit(1);
}
// A fresh disk reads as zeros: no magic, so the count starts at 0.
let count: u64 = load<u64>(buf.dataStart) == MAGIC ? load<u64>(buf.dataStart, 8) : 0;
count++;
store<u64>(buf.dataStart, MAGIC);
store<u64>(buf.dataStart, count, 8);
r = block.write(0, buf, 1);
if (r >= 0) r = block.flush();
if (r < 0) {
  console.error("counter: write failed: " + statusName(r));
  exit(1);
}
console.log("counter: " + count.toString());
exit(0);
