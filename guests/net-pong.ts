// Network demo, server side: answers "ping N" with "pong N" to whoever sent it (the source is
// stamped by the host's switch) until a "bye". Args: [quiet]. Gives up after 10 s of silence.
// Its loop lasts as long as its input, so what each round allocates must be reclaimed:
// wasmvisor:runtime incremental
import { args, console, exit, net } from "../assembly/index";

const argv = args();
const quiet = argv.length > 0 && argv[0] == "quiet";
if (!quiet) console.log("pong: listening on " + net.formatAddress(net.address()));
let served = 0;
while (true) {
  const f = net.recv(10000);
  if (f === null) break;
  const text = f.text();
  if (text == "bye") break;
  if (text.startsWith("ping ")) {
    // Flow control: waits while the pinger's queue is full instead of losing the answer.
    if (net.sendReliable(f.src, Uint8Array.wrap(String.UTF8.encode("pong " + text.substring(5)))) >= 0) served++;
  }
}
if (!quiet) console.log("pong: served " + served.toString() + " pings");
exit(0);
