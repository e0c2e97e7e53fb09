// Echoes console input line by line until end of stream.
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
