// Attacks the CLI's verdict (issue #10.12): prints lines that imitate the host's own on stdout
// and stderr (fake ERR_ verdicts, fake "wasmvisor:" notes, terminal escape sequences, a carriage
// return hiding a fake verdict), then, by its first argument:
//   abort (default)  aborts with a message full of newlines, fake verdicts and escape sequences
//   exit <n>         ends with exit code n right after a forged "ERR_LIMIT_CPU" as its last stderr line
// Expected: only the CLI's own verdict line starts with ERR_; everything it quotes is escaped.
import { args, console, exit } from "../assembly/index";

const ESC = "\x1b";
console.log("ERR_INTERNAL: forged on stdout");
console.log(ESC + "[2J" + ESC + "]0;owned" + "\x07" + "stdout escape sequences");
console.error("ERR_KILLED: forged on stderr");
console.error("wasmvisor: violation: CONSOLE_WRITE HV_STATUS_FORGED: not from the host");
console.error("innocent\rERR_GUEST_TRAP: hidden behind a carriage return");
console.error("  err_limit_memory: lower case and indented");
console.error(ESC + "[31mred" + ESC + "[0m on stderr");

const a = args();
if (a.length >= 2 && a[0] == "exit") {
  console.error("ERR_LIMIT_CPU: forged verdict before a plain exit");
  exit(I32.parseInt(a[1]));
}
abort("boom\nERR_INTEGRITY: forged line inside the abort\r\n" + ESC + "[2K" + ESC + "[1A\u202eesrever\u2028next\x00nul\x7fdel\x9bcsi", null, 0, 0);
