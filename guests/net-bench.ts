// Network benchmark guest. Args: send <peer u32> <frames> <size> | recv <frames>.
// The sender retries a refused send (rate limit or a full tx ring) so every frame is offered;
// the receiver counts frames until it has them all or 2 s pass without one.
import { args, console, exit, net } from "../assembly/index";

const argv = args();
const buf = new Uint8Array(65536);
if (argv[0] == "send") {
  const peer = <u32>U32.parseInt(argv[1]);
  const frames = I32.parseInt(argv[2]);
  const size = I32.parseInt(argv[3]);
  const payload = new Uint8Array(size).fill(0x5a);
  for (let i = 0; i < frames; i++) {
    while (net.send(peer, payload) < 0) net.poll(1);
  }
  exit(0);
} else {
  const frames = I32.parseInt(argv[1]);
  let got = 0;
  while (got < frames) {
    if (net.recvInto(buf, 2000) < 0) break;
    got++;
  }
  console.log("received " + got.toString());
  exit(0);
}
