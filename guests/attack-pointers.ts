// Attacks the hypercall pointer checks: every call (except EXIT and ABORT, which end the guest)
// gets (ptr, len) pairs that lie outside linear memory, wrap around 2^32 or exceed
// HV_MAX_TRANSFER. Each must be refused without touching memory; a pair ending exactly at the
// end of memory must still work. Exits 0 if everything was as expected, else 1.
import {
  call, console, devices, exit, statusName,
  HV_CALL_VERSION, HV_CALL_DEVICE_LIST, HV_CALL_ARGS_SIZE, HV_CALL_ARGS_GET,
  HV_CALL_CONSOLE_WRITE, HV_CALL_CONSOLE_WRITE_ERR, HV_CALL_CONSOLE_READ,
  HV_CALL_CLOCK_GET, HV_CALL_ENTROPY_GET,
  HV_DEVICE_CONSOLE, HV_DEVICE_CLOCK, HV_DEVICE_ENTROPY, HV_CLOCK_WALL, HV_CONSOLE_READ_NONBLOCK,
  HV_MAX_TRANSFER, HV_STATUS_ACCESS_DENIED, HV_STATUS_INVALID_ADDRESS, HV_STATUS_TOO_LARGE,
} from "../assembly/index";

class Target {
  constructor(public code: i32, public name: string, public device: u32) {}
}

// device 0 = core calls, always available.
const VERSION = new Target(HV_CALL_VERSION, "VERSION", 0);
const CLOCK_GET = new Target(HV_CALL_CLOCK_GET, "CLOCK_GET", HV_DEVICE_CLOCK);
const ENTROPY_GET = new Target(HV_CALL_ENTROPY_GET, "ENTROPY_GET", HV_DEVICE_ENTROPY);
const targets: Target[] = [
  VERSION,
  new Target(HV_CALL_DEVICE_LIST, "DEVICE_LIST", 0),
  new Target(HV_CALL_ARGS_SIZE, "ARGS_SIZE", 0),
  new Target(HV_CALL_ARGS_GET, "ARGS_GET", 0),
  new Target(HV_CALL_CONSOLE_WRITE, "CONSOLE_WRITE", HV_DEVICE_CONSOLE),
  new Target(HV_CALL_CONSOLE_WRITE_ERR, "CONSOLE_WRITE_ERR", HV_DEVICE_CONSOLE),
  new Target(HV_CALL_CONSOLE_READ, "CONSOLE_READ", HV_DEVICE_CONSOLE),
  CLOCK_GET,
  ENTROPY_GET,
];

const grantedList = devices();
function granted(device: u32): bool {
  if (device == 0) return true;
  for (let i = 0; i < grantedList.length; i++) if (grantedList[i].id == device) return true;
  return false;
}

// Headroom: one fresh page at the top, so the edge cases that write the last bytes of memory
// cannot hit heap data.
memory.grow(1);
const MEM: usize = <usize>memory.size() << 16;

// A valid buffer: 16 bytes of input, then 16 bytes of output. The input word is 1, which is both
// a valid clock id (wall) and the non-blocking read flag, so a host that forgot a check returns
// at once instead of blocking on console input.
const valid = new Uint8Array(32);
const VIN = valid.dataStart;
const VOUT = VIN + 16;
store<u32>(VIN, HV_CLOCK_WALL);
assert(HV_CLOCK_WALL == HV_CONSOLE_READ_NONBLOCK);

class Case {
  constructor(
    public label: string,
    public inPtr: usize, public inLen: usize,
    public outPtr: usize, public outCap: usize,
  ) {}
}

const cases: Case[] = [
  new Case("in_ptr at end of memory", MEM, 4, VOUT, 16),
  new Case("out_ptr at end of memory", VIN, 4, MEM, 16),
  new Case("in wraps 2^32", 0xfffffff0, 0x20, VOUT, 16),
  new Case("out wraps 2^32", VIN, 4, 0xfffffff0, 0x20),
  new Case("in ends at 2^32", 0xfffffff0, 0x10, VOUT, 16),
  new Case("out ends at 2^32", VIN, 4, 0xfffffff0, 0x10),
  new Case("in ends one past memory", MEM - 3, 4, VOUT, 16),
  new Case("out ends one past memory", VIN, 4, MEM - 15, 16),
  new Case("in_len -1", VIN, 0xffffffff, VOUT, 16),
  new Case("out_cap -1", VIN, 4, VOUT, 0xffffffff),
  new Case("in_len -1 at end of memory", MEM, 0xffffffff, VOUT, 16),
  new Case("out_cap -1 at end of memory", VIN, 4, MEM, 0xffffffff),
];

let calls = 0;
let unexpected = 0;

function hex(v: usize): string {
  return "0x" + (<u32>v).toString(16);
}

function report(t: Target, c: Case, r: i32, expected: string): void {
  unexpected++;
  console.log(
    "unexpected: " + t.name + "(in_ptr=" + hex(c.inPtr) + ", in_len=" + hex(c.inLen) +
    ", out_ptr=" + hex(c.outPtr) + ", out_cap=" + hex(c.outCap) + ") [" + c.label + "] -> " +
    r.toString() + " (" + (r < 0 ? statusName(r) : "success") + "), expected " + expected,
  );
}

// Hostile cases: always refused.
for (let i = 0; i < targets.length; i++) {
  const t = targets[i];
  for (let j = 0; j < cases.length; j++) {
    const c = cases[j];
    const r = call(t.code, c.inPtr, c.inLen, c.outPtr, c.outCap);
    calls++;
    // Lengths over HV_MAX_TRANSFER may be refused for their size before their address.
    const big = c.inLen > <usize>HV_MAX_TRANSFER || c.outCap > <usize>HV_MAX_TRANSFER;
    let ok = r == -HV_STATUS_INVALID_ADDRESS || (big && r == -HV_STATUS_TOO_LARGE);
    if (!granted(t.device) && r == -HV_STATUS_ACCESS_DENIED) ok = true;
    if (!ok) report(t, c, r, big ? "INVALID_ADDRESS or TOO_LARGE" : "INVALID_ADDRESS");
  }
}

// Edge cases: a range that ends exactly at the end of memory is inside it and must work.
function expectSuccess(t: Target, c: Case): void {
  const r = call(t.code, c.inPtr, c.inLen, c.outPtr, c.outCap);
  calls++;
  if (r >= 0) return;
  if (!granted(t.device) && r == -HV_STATUS_ACCESS_DENIED) return;
  report(t, c, r, "success");
}

expectSuccess(VERSION, new Case("in ends at end of memory", MEM - 4, 4, VOUT, 16));
expectSuccess(VERSION, new Case("out ends at end of memory", VIN, 4, MEM - 8, 8));
expectSuccess(ENTROPY_GET, new Case("out ends at end of memory", 0, 0, MEM - 16, 16));
store<u32>(MEM - 4, HV_CLOCK_WALL);
expectSuccess(CLOCK_GET, new Case("in ends at end of memory", MEM - 4, 4, MEM - 16, 8));

console.log("pointer attacks: " + calls.toString() + " calls, " + unexpected.toString() + " unexpected");
exit(unexpected == 0 ? 0 : 1);
