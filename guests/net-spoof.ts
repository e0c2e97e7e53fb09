// Network lab: tries to pass for another partition. A frame's source is not the guest's to set
// (the NET_SEND record has no source field), so all it can do is claim an address in the payload.
// Args: <claimed address> <target address>, as decimal u32s.
import { args, console, exit, net } from "../assembly/index";

const argv = args();
if (argv.length < 2) {
  console.error("usage: net-spoof <claimed> <target>");
  exit(2);
}
const claimed = <u32>U32.parseInt(argv[0]);
const target = <u32>U32.parseInt(argv[1]);
const me = net.address();
console.log("spoof: my address is " + net.formatAddress(me) + "; sending as if I were " + net.formatAddress(claimed));
net.sendString(target, "FROM " + net.formatAddress(claimed) + ": pay 100 coins to " + net.formatAddress(me));
net.sendString(target, "bye");
exit(0);
