// CPU-bound work for the fuel benchmark: fills an array with a xorshift sequence, sorts it
// (heap sort: no recursion, no allocation in the loop), hashes it (FNV-1a), and repeats.
// Arguments: element count (default 100000), rounds (default 1). Prints the checksum.
import { allocZeroed, args, console, exit } from "../assembly/index";

const argv = args();
const n = argv.length > 0 ? <u32>I32.parseInt(argv[0]) : 100000;
const rounds = argv.length > 1 ? I32.parseInt(argv[1]) : 1;
const base = allocZeroed(<usize>n << 2);

@inline function at(i: u32): usize {
  return base + (<usize>i << 2);
}

function siftDown(start: u32, end: u32): void {
  let root: u32 = start;
  while (true) {
    let child: u32 = root * 2 + 1;
    if (child >= end) return;
    if (child + 1 < end && load<u32>(at(child)) < load<u32>(at(child + 1))) child++;
    const r = load<u32>(at(root));
    const c = load<u32>(at(child));
    if (r >= c) return;
    store<u32>(at(root), c);
    store<u32>(at(child), r);
    root = child;
  }
}

let hash: u32 = 2166136261;
let seed: u32 = 2463534242;
for (let round = 0; round < rounds; round++) {
  for (let i: u32 = 0; i < n; i++) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    store<u32>(at(i), seed);
  }
  if (n > 1) {
    for (let start = (n - 2) / 2 + 1; start-- > 0; ) siftDown(start, n);
    for (let end = n - 1; end > 0; end--) {
      const top = load<u32>(at(0));
      store<u32>(at(0), load<u32>(at(end)));
      store<u32>(at(end), top);
      siftDown(0, end);
    }
  }
  for (let i: u32 = 0; i < n; i++) {
    const v = load<u32>(at(i));
    if (i > 0 && load<u32>(at(i - 1)) > v) {
      console.log("not sorted at " + i.toString());
      exit(1);
    }
    hash = (hash ^ v) * 16777619;
  }
}
console.log("checksum " + hash.toString(16));
exit(0);
