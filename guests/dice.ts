// Rolls five fair six-sided dice from the entropy device.
import { console, entropy, exit } from "../assembly/index";

// 0xFFFFFFFC = 6 * 715827882: values at or above it would favour faces 1..4, so draw again.
const LIMIT: u32 = 0xfffffffc;

function roll(): u32 {
  while (true) {
    const x = entropy.u32();
    if (x < LIMIT) return x % 6 + 1;
  }
}

let line = "dice:";
let sum: u32 = 0;
for (let i = 0; i < 5; i++) {
  const face = roll();
  sum += face;
  line += " " + face.toString();
}
console.log(line);
console.log("sum: " + sum.toString());
exit(0);
