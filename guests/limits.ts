// wasmvisor:reactor
// A reactor for testing size limits at their edges without holding a payload whole:
//   digest  reads the call's input in 64 KiB pieces; outputs u32 length, u32 FNV-1a hash (LE)
//   fill    input: u32 n, u32 w (LE); outputs n bytes ('a'..'z' repeating) in writes of w bytes
//           (1..65536); returns 1 when the host refused the size (TOO_LARGE), 2 on bad input
//   print   input: u32 n (LE); prints one console line of n bytes ('a'..'z' repeating)
//   spin    never returns (a hostile call)
import { call } from "../assembly/index";
import {
  HV_CALL_CONSOLE_WRITE,
  HV_CALL_INPUT_READ,
  HV_CALL_INPUT_SIZE,
  HV_CALL_OUTPUT_WRITE,
  HV_MAX_TRANSFER,
  HV_STATUS_TOO_LARGE,
} from "../assembly/abi";

const BUF: usize = memory.data(HV_MAX_TRANSFER, 16);
const ARG: usize = memory.data(16, 16);

function readArgs(): i32 {
  const size = call(HV_CALL_INPUT_SIZE, 0, 0, 0, 0);
  if (size < 0 || size > 16) return -1;
  store<u32>(ARG, 0);
  return call(HV_CALL_INPUT_READ, ARG, 4, ARG + 4, <usize>size) == size ? size : -1;
}

/** Fills BUF[0, n) with 'a'..'z', continuing the pattern from `from`. */
function pattern(from: u32, n: i32): void {
  for (let i = 0; i < n; i++) store<u8>(BUF + <usize>i, <u8>(97 + ((from + <u32>i) % 26)));
}

export function digest(): i32 {
  const size = call(HV_CALL_INPUT_SIZE, 0, 0, 0, 0);
  if (size < 0) return 2;
  let hash: u32 = 2166136261;
  let offset = 0;
  while (offset < size) {
    store<u32>(ARG, <u32>offset);
    const n = call(HV_CALL_INPUT_READ, ARG, 4, BUF, <usize>min(size - offset, HV_MAX_TRANSFER));
    if (n <= 0) return 3;
    for (let i = 0; i < n; i++) {
      hash ^= load<u8>(BUF + <usize>i);
      hash *= 16777619;
    }
    offset += n;
  }
  store<u32>(ARG, <u32>size);
  store<u32>(ARG + 4, hash);
  return call(HV_CALL_OUTPUT_WRITE, ARG, 8, 0, 0) < 0 ? 4 : 0;
}

export function fill(): i32 {
  if (readArgs() != 8) return 2;
  const n = load<u32>(ARG + 4);
  const w = load<u32>(ARG + 8);
  if (w < 1 || w > <u32>HV_MAX_TRANSFER) return 2;
  let done: u32 = 0;
  while (done < n) {
    const take = min<u32>(w, n - done);
    pattern(done, <i32>take);
    const r = call(HV_CALL_OUTPUT_WRITE, BUF, <usize>take, 0, 0);
    if (r == -HV_STATUS_TOO_LARGE) return 1;
    if (r < 0) return 3;
    done += take;
  }
  return 0;
}

export function print(): i32 {
  if (readArgs() != 4) return 2;
  const n = load<u32>(ARG + 4);
  let done: u32 = 0;
  while (done < n) {
    const take = min<u32>(<u32>HV_MAX_TRANSFER, n - done);
    pattern(done, <i32>take);
    if (call(HV_CALL_CONSOLE_WRITE, BUF, <usize>take, 0, 0) < 0) return 3;
    done += take;
  }
  store<u8>(BUF, 10);
  return call(HV_CALL_CONSOLE_WRITE, BUF, 1, 0, 0) < 0 ? 3 : 0;
}

export function spin(): i32 {
  let i: i32 = 0;
  while (true) {
    i++;
    store<i32>(ARG, i);
  }
  return 0;
}
