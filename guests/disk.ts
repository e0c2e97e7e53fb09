// Isolation test helper for the block device.
//   disk fill <secret>   fills every sector of its disk with copies of the secret, and flushes
//   disk scan <secret>   reads every sector of its disk; prints how many copies of the secret it
//                        found and how many sectors were not all zeros
import { args, block, console, exit, statusName } from "../assembly/index";

const argv = args();
if (argv.length < 2 || argv[1].length == 0) {
  console.error("usage: disk fill|scan <secret>");
  exit(2);
}
const mode = argv[0];
const needle = String.UTF8.encode(argv[1]);
const needlePtr = changetype<usize>(needle);
const needleLen = <usize>needle.byteLength;
const info = block.info();
const sectors = info.sectorCount;
const BATCH: u32 = 15;
const buf = new Uint8Array(<i32>BATCH * block.SECTOR_SIZE);
const base = buf.dataStart;

if (mode == "fill") {
  for (let at: usize = 0; at + needleLen <= <usize>buf.byteLength; at += needleLen) memory.copy(base + at, needlePtr, needleLen);
  for (let s: u64 = 0; s < sectors; s += BATCH) {
    const n = <u32>min<u64>(BATCH, sectors - s);
    const r = block.write(s, buf, n);
    if (r < 0) {
      console.error("write failed: " + statusName(r));
      exit(1);
    }
  }
  const f = block.flush();
  if (f < 0) {
    console.error("flush failed: " + statusName(f));
    exit(1);
  }
  console.log("filled " + sectors.toString() + " sectors");
  exit(0);
} else if (mode == "scan") {
  let found = 0;
  let nonzero = 0;
  const first = load<u8>(needlePtr);
  for (let s: u64 = 0; s < sectors; s += BATCH) {
    const n = <u32>min<u64>(BATCH, sectors - s);
    const r = block.read(s, buf, n);
    if (r < 0) {
      console.error("read failed: " + statusName(r));
      exit(1);
    }
    const bytes = <usize>n * <usize>block.SECTOR_SIZE;
    for (let k: usize = 0; k < <usize>n; k++) {
      let any = false;
      const sec = base + k * <usize>block.SECTOR_SIZE;
      for (let i: usize = 0; i < <usize>block.SECTOR_SIZE; i++) {
        if (load<u8>(sec + i) != 0) {
          any = true;
          break;
        }
      }
      if (any) nonzero++;
    }
    // Matches inside this batch only: fill lays copies out from the start of each batch, so none
    // of its copies straddles two batches. The nonzero count is the stronger check anyway.
    for (let p: usize = 0; p + needleLen <= bytes; p++) {
      if (load<u8>(base + p) == first && memory.compare(base + p, needlePtr, needleLen) == 0) found++;
    }
  }
  console.log("scanned " + sectors.toString() + " sectors, found " + found.toString() + ", nonzero " + nonzero.toString());
  exit(0);
}
console.error("unknown mode " + mode);
exit(2);
