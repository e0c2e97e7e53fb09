// Network benchmark guest. Args: send <peer u32> <frames> <size> [try] | recv <frames> [timed].
// The sender respects flow control: a send the destination cannot take (WOULD_BLOCK) or the
// budget refuses is retried, so no frame is lost; with `try` it uses trySend() and waits with
// pollFor() instead of the blocking send(). The receiver counts frames until it has them all or
// 2 s pass without one; with `timed` (needs the clock device) it also prints the time from the
// first frame to the last, so a throughput leaves out the partitions' start-up.
import { args, clock, console, exit, net } from "../assembly/index";

const argv = args();
const buf = new Uint8Array(65536);
if (argv[0] == "send") {
  const peer = <u32>U32.parseInt(argv[1]);
  const frames = I32.parseInt(argv[2]);
  const size = I32.parseInt(argv[3]);
  const payload = new Uint8Array(size).fill(0x5a);
  const nonBlocking = argv.length > 4 && argv[4] == "try";
  for (let i = 0; i < frames; i++) {
    if (nonBlocking) {
      while (net.trySend(peer, payload) < 0) net.pollFor(peer, 10);
    } else if (net.sendReliable(peer, payload) < 0) {
      exit(2);
    }
  }
  exit(0);
} else {
  const frames = I32.parseInt(argv[1]);
  const timed = argv.length > 2 && argv[2] == "timed";
  let got = 0;
  let first: u64 = 0;
  let last: u64 = 0;
  while (got < frames) {
    if (net.recvInto(buf, 2000) < 0) break;
    if (timed && got == 0) first = clock.monotonicNs();
    got++;
  }
  // Read after the loop: with every frame in, that is right after the last one.
  if (timed) last = clock.monotonicNs();
  console.log("received " + got.toString() + (timed ? " in " + (last - first).toString() + " ns" : ""));
  exit(0);
}
