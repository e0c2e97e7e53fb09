// Network demo, client side: finds a pong on its segment by broadcast, then pings it by address.
// Args: [count] (default 3) [quiet]. Exit 0 when every ping got its pong.
import { args, console, exit, net } from "../assembly/index";

const argv = args();
const count = argv.length > 0 ? I32.parseInt(argv[0]) : 3;
const quiet = argv.length > 1 && argv[1] == "quiet";
const me = net.address();
if (!quiet) console.log("ping: I am " + net.formatAddress(me) + ", broadcasting to find a pong");

let peer: u32 = net.BROADCAST;
let answered = 0;
for (let i = 0; i < count; i++) {
  const msg = "ping " + i.toString();
  let r = net.sendString(peer, msg);
  // A rate-limited send took nothing: wait for the budget instead of losing the ping.
  while (r < 0) {
    net.poll(1);
    r = net.sendString(peer, msg);
  }
  const want = "pong " + i.toString();
  while (true) {
    const f = net.recv(2000);
    if (f === null) break;
    if (f.text() == want) {
      peer = f.src;
      answered++;
      if (!quiet) console.log("ping: " + want + " from " + net.formatAddress(f.src));
      break;
    }
  }
}
if (peer != net.BROADCAST) net.sendString(peer, "bye");
if (!quiet) console.log("ping: " + answered.toString() + "/" + count.toString() + " answered");
exit(answered == count ? 0 : 1);
