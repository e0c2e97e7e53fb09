// Copies console input to console output exactly, with the byte-stream calls (ABI 1.3), then
// reports the byte count on stderr. Exits 3 if the output's reader went away.
// Its loop lasts as long as its input, so what each round allocates must be reclaimed:
// wasmvisor:runtime incremental
import { exit, stdio } from "../assembly/index";

const buf = new Uint8Array(65536);
let total: i64 = 0;
while (true) {
  const n = stdio.read(buf);
  if (n < 0) exit(4);
  if (n == 0) break;
  const w = stdio.write(buf.subarray(0, n));
  if (w != n) exit(3);
  total += n;
}
stdio.printErr("copied " + total.toString() + " bytes\n");
exit(0);
