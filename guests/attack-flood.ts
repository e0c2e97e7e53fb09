// Attacks the console and the root's event loop: prints a long line as fast as it can, forever,
// ignoring RATE_LIMITED. Expected: the console's rate limits drop or refuse the excess (counted
// in the metrics), the root keeps serving other partitions, and fuel, a CPU cap or the watchdog
// ends or paces the guest.
import { console } from "../assembly/index";

const line = "flood ".repeat(40);
while (true) {
  console.log(line);
}
