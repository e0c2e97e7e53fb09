// Network attack guest on another segment: tries to reach a victim by address, broadcasts, and
// scans the neighbouring addresses. The switch must drop all of it and report violations.
// Args: <victim address as a decimal u32> [ms to wait for answers after the last frame, default 200].
import { args, console, exit, net } from "../assembly/index";

const argv = args();
const victim = argv.length > 0 ? <u32>U32.parseInt(argv[0]) : <u32>0x0a000002;
const me = net.address();
let sent = 0;
if (net.sendString(victim, "ping 0") >= 0) sent++;
if (net.sendString(victim, "bye") >= 0) sent++;
if (net.sendString(net.BROADCAST, "ping 0") >= 0) sent++;
for (let a: u32 = 0x0a000001; a < 0x0a000009; a++) {
  if (a != me && net.sendString(a, "hello?") >= 0) sent++;
}
const wait = argv.length > 1 ? I32.parseInt(argv[1]) : 200;
let received = 0;
while (net.recv(wait) !== null) received++;
console.log("attacker: sent " + sent.toString() + " frames from " + net.formatAddress(me) + ", received " + received.toString());
exit(0);
