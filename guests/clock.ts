// Prints the wall clock once, then times three rounds of busy work on the monotonic clock.
import { allocZeroed, clock, console, exit } from "../assembly/index";

const ROUNDS = 3;
const WORK_PER_ROUND = 2_000_000;

// The result is stored to memory so the optimizer cannot drop the work.
const sink = allocZeroed(4);

function busyWork(seed: u32): void {
  let x = seed | 1;
  for (let i = 0; i < WORK_PER_ROUND; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
  }
  store<u32>(sink, load<u32>(sink) ^ x);
}

console.log("wall: " + clock.wallNs().toString());
const start = clock.monotonicNs();
for (let i = 1; i <= ROUNDS; i++) {
  busyWork(<u32>i);
  const elapsedMs = (clock.monotonicNs() - start) / 1_000_000;
  console.log("tick " + i.toString() + ": +" + elapsedMs.toString() + " ms");
}
exit(0);
