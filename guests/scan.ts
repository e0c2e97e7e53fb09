// Isolation test: grows its memory as far as allowed and searches all of it for a secret
// (args[0]) that another partition holds. Prints how many copies it found outside its own needle.
import { args, console, exit } from "../assembly/index";

const argv = args();
if (argv.length < 1 || argv[0].length == 0) {
  console.error("usage: scan <secret>");
  exit(2);
}
// The needle as UTF-8: the SDK scrubbed the raw argument bytes, so this buffer is the only
// UTF-8 copy of the secret this partition holds, and matches inside it do not count.
const needle = String.UTF8.encode(argv[0]);
const needlePtr = changetype<usize>(needle);
const needleLen = <usize>needle.byteLength;
const first = load<u8>(needlePtr);
// Positive control: with "--plant", a second UTF-8 copy is placed in this partition's own
// memory, and the scan must find it (proof that a "found 0" elsewhere means something).
const planted = argv.length > 1 && argv[1] == "--plant" ? String.UTF8.encode(argv[0]) : new ArrayBuffer(0);

// Grow as far as allowed. Big steps first, halving on each refusal, end where not even one more
// page is granted: the same final size as memory.grow(1) until -1, in far fewer calls.
for (let step = 65536; step >= 1; ) {
  if (memory.grow(step) == -1) step >>= 1;
}
const pages = memory.size();
// Last start position of a match. u64 arithmetic: a full 4 GiB memory does not fit a u32 size.
const last = <usize>((<u64>pages << 16) - <u64>needleLen);

let found = 0;
for (let p: usize = 0; ; p++) {
  if (load<u8>(p) == first) {
    const overlapsNeedle = p < needlePtr + needleLen && p + needleLen > needlePtr;
    if (!overlapsNeedle && memory.compare(p, needlePtr, needleLen) == 0) found++;
  }
  if (p == last) break;
}
store<u8>(changetype<usize>(planted), load<u8>(changetype<usize>(planted))); // keep it alive
console.log("scanned " + pages.toString() + " pages, found " + found.toString());
exit(0);
