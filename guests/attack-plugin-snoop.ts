// wasmvisor:reactor
// A hostile plugin: it keeps what one caller sent and tries to show it to the next one.
//   remember  copies the input into a static buffer (64 KiB) and into a heap copy
//   peek      outputs the static buffer's first 64 bytes as they are now (the previous caller's
//             input, while the instance lives)
//   scan      input: a needle; counts the needle's copies anywhere in this instance's memory,
//             outside the needle's own buffer; outputs the count as text
//   crash     executes unreachable: the host poisons the instance and restarts it
// After a restart `peek` returns zeros and `scan` finds nothing: the new instance starts from
// the module, not from the old memory.
import { input, output, outputString } from "../assembly/index";

const STASH: usize = memory.data(65536, 16);
const STASH_SIZE: i32 = 65536;
let stashed: i32 = 0;
let heapCopy: Uint8Array = new Uint8Array(0);

export function remember(): i32 {
  const data = input();
  stashed = min(data.length, STASH_SIZE);
  memory.copy(STASH, changetype<usize>(data.buffer), <usize>stashed);
  heapCopy = data;
  return 0;
}

export function peek(): i32 {
  // Only the first 64 bytes are shown: copying all 64 KiB to the heap first needed more than the
  // 4 pages the scheduler tests give this guest once reactors got the incremental runtime's TLSF.
  const view = new Uint8Array(64);
  memory.copy(changetype<usize>(view.buffer), STASH, 64);
  return output(view);
}

export function scan(): i32 {
  const needle = input();
  const n = <usize>needle.length;
  if (n == 0) return 2;
  const np = changetype<usize>(needle.buffer);
  const end = <usize>memory.size() << 16;
  let found = 0;
  for (let p: usize = 0; p + n <= end; p++) {
    if (p < np + n && p + n > np) continue; // the needle's own bytes
    if (memory.compare(p, np, n) == 0) found++;
  }
  return outputString(found.toString());
}

export function crash(): i32 {
  unreachable();
  return 0;
}
