// Greets, reports the host's ABI version and echoes its arguments.
import { args, console, exit, version } from "../assembly/index";

console.log("Hello from a Wasmvisor partition!");
const v = version();
console.log("ABI version " + (v >>> 16).toString() + "." + (v & 0xffff).toString());
const argv = args();
for (let i = 0; i < argv.length; i++) {
  console.log("arg[" + i.toString() + "]=" + argv[i]);
}
exit(0);
