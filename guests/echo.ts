// Echoes console input line by line until end of stream.
// Its loop lasts as long as its input, so what each round allocates must be reclaimed:
// wasmvisor:runtime incremental
import { console, exit } from "../assembly/index";

let count = 0;
while (true) {
  const line = console.readLine();
  if (line === null) break;
  console.log("echo: " + line);
  count++;
}
console.log("bye (" + count.toString() + " lines)");
exit(0);
