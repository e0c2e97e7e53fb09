// Memory isolation lab: looks for a secret (args[0]) that a neighbouring partition holds. It
// searches every byte of its own linear memory, grown as far as its cap allows, then reaches one
// byte past the end of its memory, where a runtime that shared memory would keep a neighbour.
// Expected: found 0; the read past the end traps (ERR_GUEST_TRAP) and ends only this partition.
import { args, console, exit } from "../assembly/index";

const argv = args();
if (argv.length < 1 || argv[0].length == 0) {
  console.error("usage: attack-scan <secret>");
  exit(2);
}
// The needle as UTF-8: the SDK scrubbed the raw argument bytes, so matches inside this buffer
// are the only copy this partition holds and do not count.
const needle = String.UTF8.encode(argv[0]);
const needlePtr = changetype<usize>(needle);
const needleLen = <usize>needle.byteLength;
const first = load<u8>(needlePtr);

for (let step = 65536; step >= 1; ) {
  if (memory.grow(step) == -1) step >>= 1;
}
const pages = memory.size();
if (pages >= 65536) {
  console.log("a 4 GiB memory: nothing lies past its end");
  exit(0);
}
const end = <usize>pages << 16;
const last = end - needleLen;
let found = 0;
for (let p: usize = 0; p <= last; p++) {
  if (load<u8>(p) == first) {
    const overlapsNeedle = p < needlePtr + needleLen && p + needleLen > needlePtr;
    if (!overlapsNeedle && memory.compare(p, needlePtr, needleLen) == 0) found++;
  }
}
console.log("scanned all " + pages.toString() + " pages of my memory (" + end.toString() + " bytes): found the secret " + found.toString() + " times");
console.log("now reading address 0x" + end.toString(16) + ", one byte past the end of my memory");
const b = load<u8>(end);
console.log("read " + b.toString() + " from past the end");
exit(1);
