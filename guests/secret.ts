// Isolation test helper: holds a secret (args[0]) in 1024 places of its memory and waits.
// Another partition (scan.ts) then searches its own memory and must never find it.
import { allocZeroed, args, console, exit } from "../assembly/index";

const BUFFER_SIZE: usize = 1 << 20;
const COPIES: usize = 1024;
const STRIDE: usize = BUFFER_SIZE / COPIES;

const argv = args();
if (argv.length < 1 || argv[0].length == 0) {
  console.error("usage: secret <secret>");
  exit(2);
}
const secret = String.UTF8.encode(argv[0]);
const len = <usize>secret.byteLength;
if (len > STRIDE) {
  console.error("secret longer than " + STRIDE.toString() + " bytes");
  exit(2);
}

const buffer = allocZeroed(BUFFER_SIZE);
for (let i: usize = 0; i < COPIES; i++) {
  memory.copy(buffer + i * STRIDE, changetype<usize>(secret), len);
}
console.log("stored");

// Stay alive, secret in memory, until the console input is closed.
while (console.readLine() !== null) {}
console.log("done");
exit(0);
