// Block device benchmark guest (bench/block.mjs). Args: <sectors> <random ops>.
// Runs each phase over its whole disk and prints "<phase> <ns> <bytes>" per phase, timed with the
// clock device (grant it at 1 µs resolution). Phases: sequential and random 4 KiB writes and
// reads (one sector per call), then sequential 64 KiB writes (two calls each) and reads (one call).
import { args, block, clock, console, exit, statusName } from "../assembly/index";

const argv = args();
const sectors = <u32>I32.parseInt(argv[0]);
const randomOps = <u32>I32.parseInt(argv[1]);
const S = <u32>block.SECTOR_SIZE;
const buf = new Uint8Array(<i32>(16 * S));
for (let i = 0; i < buf.length; i++) buf[i] = <u8>(i * 7 + 1);

let seed: u32 = 12345;
function nextSector(): u32 {
  seed = seed * 1664525 + 1013904223;
  return (seed >>> 8) % sectors;
}

function check(r: i32, what: string): void {
  if (r < 0) {
    console.error(what + " failed: " + statusName(r));
    exit(1);
  }
}

function report(phase: string, t0: u64, bytes: u64): void {
  console.log(phase + " " + (clock.monotonicNs() - t0).toString() + " " + bytes.toString());
}

let t0 = clock.monotonicNs();
for (let s: u32 = 0; s < sectors; s++) check(block.write(<u64>s, buf, 1), "write");
check(block.flush(), "flush");
report("seq-write-4k", t0, <u64>sectors * S);

t0 = clock.monotonicNs();
for (let s: u32 = 0; s < sectors; s++) check(block.read(<u64>s, buf, 1), "read");
report("seq-read-4k", t0, <u64>sectors * S);

t0 = clock.monotonicNs();
for (let i: u32 = 0; i < randomOps; i++) check(block.write(<u64>nextSector(), buf, 1), "write");
check(block.flush(), "flush");
report("rand-write-4k", t0, <u64>randomOps * S);

seed = 777;
t0 = clock.monotonicNs();
for (let i: u32 = 0; i < randomOps; i++) check(block.read(<u64>nextSector(), buf, 1), "read");
report("rand-read-4k", t0, <u64>randomOps * S);

// 64 KiB per SDK write: BLOCK_WRITE carries at most 15 sectors beside its header, so the SDK
// makes it two calls (15 + 1 sectors), as any guest writing 64 KiB does.
t0 = clock.monotonicNs();
for (let s: u32 = 0; s + 16 <= sectors; s += 16) check(block.write(<u64>s, buf, 16), "write");
check(block.flush(), "flush");
report("seq-write-64k", t0, <u64>(sectors / 16 * 16) * S);

t0 = clock.monotonicNs();
for (let s: u32 = 0; s + 16 <= sectors; s += 16) check(block.read(<u64>s, buf, 16), "read");
report("seq-read-64k", t0, <u64>(sectors / 16 * 16) * S);
exit(0);
