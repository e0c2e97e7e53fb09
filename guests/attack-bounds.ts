// Bounds-checks lab: hands the host (pointer, length) pairs that lie partly outside this
// partition's memory, wrap around 2^32, or exceed the transfer limit, and checks that nothing was
// written: the last 8 bytes of memory hold a canary a partial write would change. Each line
// prints the status the host answered with. Exits 0 if every pair was refused and the canary held.
import {
  call, console, exit, statusName,
  HV_CALL_ARGS_GET, HV_CALL_CONSOLE_WRITE, HV_CALL_ENTROPY_GET,
  HV_STATUS_INVALID_ADDRESS, HV_STATUS_TOO_LARGE,
} from "../assembly/index";

memory.grow(1);
const END: usize = <usize>memory.size() << 16;
const CANARY: u64 = 0xa5a5a5a5a5a5a5a5;
store<u64>(END - 8, CANARY);
let problems = 0;

function attempt(what: string, r: i32, expected: i32): void {
  console.log(what + " -> " + (r < 0 ? statusName(r) : r.toString() + " (accepted!)"));
  if (r != -expected) problems++;
}

attempt("ENTROPY_GET into 16 bytes that start 8 bytes before the end of memory", call(HV_CALL_ENTROPY_GET, 0, 0, END - 8, 16), HV_STATUS_INVALID_ADDRESS);
attempt("CONSOLE_WRITE of 32 bytes from 0xfffffff0 (the range wraps past 2^32)", call(HV_CALL_CONSOLE_WRITE, 0xfffffff0, 0x20, 0, 0), HV_STATUS_INVALID_ADDRESS);
attempt("CONSOLE_WRITE of 0xffffffff bytes from address 16", call(HV_CALL_CONSOLE_WRITE, 16, 0xffffffff, 0, 0), HV_STATUS_TOO_LARGE);
attempt("ARGS_GET into a window of 0xffffffff bytes", call(HV_CALL_ARGS_GET, 0, 0, 0, 0xffffffff), HV_STATUS_TOO_LARGE);
const canary = load<u64>(END - 8);
console.log("canary in the last 8 bytes of memory: " + (canary == CANARY ? "intact" : "CHANGED"));
if (canary != CANARY) problems++;
exit(problems == 0 ? 0 : 1);
