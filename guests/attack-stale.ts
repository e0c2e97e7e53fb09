// Zero-initialisation lab: does the host leave stale bytes in what it hands a guest? Fills a
// 64 KiB window with 0xAA, asks for its arguments (a few bytes) into all of it, and counts the
// bytes after the result that are not zero; then checks that fresh pages from memory.grow are
// zero. Exits 0 if nothing stale was found.
import { call, console, exit, HV_CALL_ARGS_GET, HV_MAX_TRANSFER } from "../assembly/index";

const SIZE: usize = <usize>HV_MAX_TRANSFER;
const buf = new Uint8Array(<i32>SIZE);
const p = buf.dataStart;
memory.fill(p, 0xaa, SIZE);
const n = call(HV_CALL_ARGS_GET, 0, 0, p, SIZE);
let stale = 0;
for (let i: usize = <usize>max(n, 0); i < SIZE; i++) if (load<u8>(p + i) != 0) stale++;
console.log("ARGS_GET wrote " + n.toString() + " bytes into a window of " + SIZE.toString() + " bytes filled with 0xAA; bytes after them still not zero: " + stale.toString());

const before = <usize>memory.grow(16);
let nonzero = 0;
for (let a: usize = before << 16; a < (before + 16) << 16; a++) if (load<u8>(a) != 0) nonzero++;
console.log("16 fresh pages from memory.grow: " + nonzero.toString() + " bytes not zero");
exit(stale == 0 && nonzero == 0 ? 0 : 1);
