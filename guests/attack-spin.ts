// Attacks CPU availability: spins forever. Expected: stopped by fuel or the watchdog (ERR_LIMIT_CPU).
import { allocZeroed, console } from "../assembly/index";

console.log("spinning");
// A load and store per iteration: the optimizer may not delete a loop with memory effects.
const counter = allocZeroed(4);
while (true) {
  store<u32>(counter, load<u32>(counter) + 1);
}
