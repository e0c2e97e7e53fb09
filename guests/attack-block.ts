// Attacks the block device with hostile requests through the raw hypercall. Run with a 1 MiB disk
// (256 sectors). Every request must be refused with the expected status, none may change the
// disk, and the disk must read as zeros afterwards.
import {
  block, call, console, exit, statusName,
  HV_CALL_BLOCK_READ, HV_CALL_BLOCK_WRITE, HV_CALL_BLOCK_DISCARD, HV_CALL_BLOCK_FLUSH,
  HV_STATUS_OUT_OF_RANGE, HV_STATUS_INVALID_ARGUMENT, HV_STATUS_INVALID_ADDRESS, HV_STATUS_TOO_LARGE,
} from "../assembly/index";

const SECTOR: usize = 4096;
const req = new Uint8Array(16);
const r = req.dataStart;
const data = new Uint8Array(<i32>(16 * SECTOR + 16));
const d = data.dataStart;
const problems = new Array<string>();
let refused = 0;

function header(at: usize, sector: u64, count: u32, flags: u32): void {
  store<u64>(at, sector);
  store<u32>(at, count, 8);
  store<u32>(at, flags, 12);
}

function expect(what: string, got: i32, status: i32): void {
  if (got == -status) refused++;
  else problems.push(what + ": got " + (got < 0 ? statusName(got) : got.toString()) + ", expected " + statusName(status));
}

header(r, 256, 1, 0);
expect("read first sector past the end", call(HV_CALL_BLOCK_READ, r, 16, d, SECTOR), HV_STATUS_OUT_OF_RANGE);
header(r, 255, 2, 0);
expect("read straddling the end", call(HV_CALL_BLOCK_READ, r, 16, d, 2 * SECTOR), HV_STATUS_OUT_OF_RANGE);
header(r, 0xffffffffffffffff, 1, 0);
expect("read sector 2^64-1", call(HV_CALL_BLOCK_READ, r, 16, d, SECTOR), HV_STATUS_OUT_OF_RANGE);
header(r, 0xfffffffffffffff0, 16, 0);
expect("read wrapping sector + count", call(HV_CALL_BLOCK_READ, r, 16, d, 16 * SECTOR), HV_STATUS_OUT_OF_RANGE);
header(r, 0, 0xffffffff, 0);
expect("read count 2^32-1", call(HV_CALL_BLOCK_READ, r, 16, d, 16 * SECTOR), HV_STATUS_INVALID_ARGUMENT);
header(r, 0, 1, 0);
expect("read into a window past memory", call(HV_CALL_BLOCK_READ, r, 16, <usize>memory.size() * 65536 - 100, SECTOR), HV_STATUS_INVALID_ADDRESS);
expect("read with a 2 GiB window", call(HV_CALL_BLOCK_READ, r, 16, d, 0x7fffffff), HV_STATUS_TOO_LARGE);
header(d, 0, 15, 0);
expect("write claiming 15 sectors with none", call(HV_CALL_BLOCK_WRITE, d, 16, 0, 0), HV_STATUS_INVALID_ARGUMENT);
header(d, 0, 16, 0);
expect("write of 16 sectors (over the transfer cap)", call(HV_CALL_BLOCK_WRITE, d, <usize>(16 + 16 * SECTOR), 0, 0), HV_STATUS_TOO_LARGE);
header(d, 250, 10, 0);
expect("write past the end", call(HV_CALL_BLOCK_WRITE, d, <usize>(16 + 10 * SECTOR), 0, 0), HV_STATUS_OUT_OF_RANGE);
header(d, 0, 1, 0xfe);
expect("write with unknown flags", call(HV_CALL_BLOCK_WRITE, d, <usize>(16 + SECTOR), 0, 0), HV_STATUS_INVALID_ARGUMENT);
header(r, 0, 0xffffffff, 0);
expect("discard 2^32-1 sectors", call(HV_CALL_BLOCK_DISCARD, r, 16, 0, 0), HV_STATUS_INVALID_ARGUMENT);
expect("flush with input", call(HV_CALL_BLOCK_FLUSH, r, 16, 0, 0), HV_STATUS_INVALID_ARGUMENT);

// Nothing above may have written anything.
const all = new Uint8Array(<i32>(16 * SECTOR));
let nonzero = 0;
for (let s: u64 = 0; s < 256; s += 16) {
  const n = block.read(s, all, 16);
  if (n < 0) problems.push("read back failed: " + statusName(n));
  for (let i = 0; i < all.length; i++) if (all[i] != 0) nonzero++;
}
if (nonzero != 0) problems.push(nonzero.toString() + " nonzero bytes on a disk no request wrote");

console.log("refused: " + refused.toString());
for (let i = 0; i < problems.length; i++) console.log("unexpected: " + problems[i]);
exit(problems.length == 0 ? 0 : 1);
