// Prints 1, 2, ..., N, one per line (N is the first argument, default 10), then "done".
// Used to show fuel metering is deterministic: the same budget stops it after the same line.
import { args, console, exit } from "../assembly/index";

const argv = args();
const n = argv.length > 0 ? I32.parseInt(argv[0]) : 10;
for (let i = 1; i <= n; i++) {
  console.log(i.toString());
}
console.log("done");
exit(0);
