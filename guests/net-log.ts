// Network lab helper: prints every frame it receives with the source address the switch
// stamped on it, until a "bye" or 3 s of silence.
// Its loop lasts as long as its input, so what each round allocates must be reclaimed:
// wasmvisor:runtime incremental
import { console, exit, net } from "../assembly/index";

console.log("log: listening on " + net.formatAddress(net.address()));
while (true) {
  const f = net.recv(3000);
  if (f === null) break;
  const text = f.text();
  if (text == "bye") break;
  console.log("frame from " + net.formatAddress(f.src) + " (stamped by the switch): \"" + text + "\"");
}
exit(0);
