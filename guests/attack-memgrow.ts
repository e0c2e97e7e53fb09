// Attacks memory availability: grows linear memory one page at a time until the host refuses.
// Expected: memory.grow returns -1 at the partition's page cap (the guest survives and reports).
import { console, exit } from "../assembly/index";

while (memory.grow(1) != -1) {}
console.log("grew to " + memory.size().toString() + " pages, refused");
exit(0);
