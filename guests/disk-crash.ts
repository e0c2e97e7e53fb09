// Crash-consistency test writer. Args: <sectors> <first round>. Forever: round r writes a pattern
// that names (r, sector) into a set of sectors that depends on r, flushes, and prints
// "flushed <r>" — only after the flush returned. The test kills the host process at random
// moments and checks that every sector holds a whole version at least as new as its last printed
// flush. Even rounds write every sector in multi-sector calls; odd rounds write one sector a call,
// skipping the sectors with (sector + r) % 3 == 0.
import { args, block, console, exit, statusName } from "../assembly/index";

const argv = args();
const sectors = <u32>I32.parseInt(argv[0]);
let round = <u32>I32.parseInt(argv[1]);
const SECTOR = <u32>block.SECTOR_SIZE;
const buf = new Uint8Array(<i32>(sectors * SECTOR));

function fillPattern(at: usize, r: u32, s: u32): void {
  for (let i: u32 = 0; i < SECTOR / 4; i++) {
    store<u32>(at + <usize>i * 4, r * 0x9e3779b1 + s * 0x85ebca77 + i * 0xc2b2ae3d);
  }
}

function check(r: i32, what: string): void {
  if (r < 0) {
    console.error(what + " failed: " + statusName(r));
    exit(1);
  }
}

while (true) {
  if ((round & 1) == 0) {
    for (let s: u32 = 0; s < sectors; s++) fillPattern(buf.dataStart + <usize>(s * SECTOR), round, s);
    check(block.write(0, buf, sectors), "write");
  } else {
    for (let s: u32 = 0; s < sectors; s++) {
      if ((s + round) % 3 == 0) continue;
      fillPattern(buf.dataStart, round, s);
      check(block.write(<u64>s, buf, 1), "write");
    }
  }
  check(block.flush(), "flush");
  console.log("flushed " + round.toString());
  round++;
}
