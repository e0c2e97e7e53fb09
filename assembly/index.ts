/**
 * Wasmvisor guest SDK for AssemblyScript.
 *
 * A guest built with this SDK (and asconfig.json: `--runtime stub`, `--use abort=__hv_abort`,
 * `--exportStart _start`) imports exactly one function, `hv.hypercall`, and exports `memory` and
 * `_start`; its top-level statements run when the host calls `_start`. A reactor adds
 * `--runtime incremental --exportStart _initialize`: its instance serves every call, so what
 * input(), inputString() and outputString() allocate per call must be collected (stub never frees).
 *
 *   import { console, exit } from "../assembly/index";
 *   console.log("hello");
 *   exit(0);
 *
 * Errors: functions whose result has no room for a status (clock.monotonicNs, entropy.u32,
 * args, devices, console.readLine) end the partition through HV_CALL_ABORT with a message naming
 * the call and status; functions that return i32 (console.write*, entropy.fill, call) hand the
 * negative status back instead. Use `call` for anything else (e.g. to probe a denied device).
 *
 * Buffers: the SDK owns two static buffers, IO (HV_MAX_TRANSFER bytes, strings and records) and
 * SCRATCH (16 bytes, scalars). A guest is single-threaded and the host never calls back into it,
 * so a buffer is live only inside one SDK function, and no SDK function calls another SDK function
 * while its buffer holds data. Input that passed through them (console lines, arguments, random
 * bytes) is zeroed before the function returns, so no stale copy stays in linear memory.
 */

import {
  hypercall,
  HV_MAX_TRANSFER,
  HV_DEVICE_RECORD_SIZE,
  HV_CONSOLE_READ_NONBLOCK,
  HV_CALL_VERSION,
  HV_CALL_DEVICE_LIST,
  HV_CALL_EXIT,
  HV_CALL_ABORT,
  HV_CALL_ARGS_SIZE,
  HV_CALL_ARGS_GET,
  HV_CALL_CONSOLE_WRITE,
  HV_CALL_CONSOLE_WRITE_ERR,
  HV_CALL_CONSOLE_READ,
  HV_CALL_CONSOLE_STREAM_WRITE,
  HV_CALL_CONSOLE_STREAM_WRITE_ERR,
  HV_CALL_CONSOLE_STREAM_READ,
  HV_CALL_CLOCK_GET,
  HV_CALL_ENTROPY_GET,
  HV_CALL_BLOCK_INFO,
  HV_CALL_BLOCK_READ,
  HV_CALL_BLOCK_WRITE,
  HV_CALL_BLOCK_FLUSH,
  HV_CALL_BLOCK_DISCARD,
  HV_BLOCK_SECTOR_SIZE,
  HV_BLOCK_HEADER_SIZE,
  HV_BLOCK_MAX_READ_SECTORS,
  HV_BLOCK_MAX_WRITE_SECTORS,
  HV_BLOCK_WRITE_FUA,
  HV_CLOCK_MONOTONIC,
  HV_CLOCK_WALL,
  HV_STATUS_SUCCESS,
  HV_STATUS_INVALID_CALL,
  HV_STATUS_INVALID_ADDRESS,
  HV_STATUS_INVALID_ARGUMENT,
  HV_STATUS_ACCESS_DENIED,
  HV_STATUS_BUFFER_TOO_SMALL,
  HV_STATUS_RATE_LIMITED,
  HV_STATUS_WOULD_BLOCK,
  HV_STATUS_END_OF_STREAM,
  HV_STATUS_TOO_LARGE,
  HV_STATUS_NOT_IN_CALL,
  HV_CALL_INPUT_SIZE,
  HV_CALL_INPUT_READ,
  HV_CALL_OUTPUT_WRITE,
  HV_STATUS_OUT_OF_RANGE,
  HV_STATUS_IO_ERROR,
  HV_STATUS_INTEGRITY,
  HV_CALL_NET_INFO,
  HV_CALL_NET_SEND,
  HV_CALL_NET_TRY_SEND,
  HV_CALL_NET_RECV,
  HV_CALL_NET_POLL,
  HV_NET_BROADCAST,
  HV_NET_HEADER_SIZE,
  HV_NET_RECV_NONBLOCK,
  HV_CALL_ATTEST_INFO,
  HV_CALL_ATTEST_REPORT,
  HV_ATTEST_INFO_SIZE,
  HV_ATTEST_DATA_SIZE,
  HV_ATTEST_MAX_NONCE,
  HV_ATTEST_REPORT_SIZE,
} from "./abi";

export * from "./abi";

// Static so that I/O never allocates (the stub runtime never frees) and the abort path works
// even when the heap is exhausted.
const IO: usize = memory.data(HV_MAX_TRANSFER, 16);
const SCRATCH: usize = memory.data(16, 16);

/** UTF-16 units encoded per CONSOLE_WRITE: worst case 3 UTF-8 bytes each, plus '\n', fits IO. */
const WRITE_CHUNK_UNITS: i32 = (HV_MAX_TRANSFER - 1) / 3;

// ---------------------------------------------------------------------------------------------
// Raw access

/** Raw hypercall passthrough: returns r >= 0 on success or the negated HV_STATUS_* code. */
export function call(code: i32, inPtr: usize, inLen: usize, outPtr: usize, outCap: usize): i32 {
  return hypercall(code, <i32>inPtr, <i32>inLen, <i32>outPtr, <i32>outCap);
}

/** HV_STATUS_* name of a status code (positive or negated), e.g. "HV_STATUS_ACCESS_DENIED". */
export function statusName(status: i32): string {
  switch (status < 0 ? -status : status) {
    case HV_STATUS_SUCCESS: return "HV_STATUS_SUCCESS";
    case HV_STATUS_INVALID_CALL: return "HV_STATUS_INVALID_CALL";
    case HV_STATUS_INVALID_ADDRESS: return "HV_STATUS_INVALID_ADDRESS";
    case HV_STATUS_INVALID_ARGUMENT: return "HV_STATUS_INVALID_ARGUMENT";
    case HV_STATUS_ACCESS_DENIED: return "HV_STATUS_ACCESS_DENIED";
    case HV_STATUS_BUFFER_TOO_SMALL: return "HV_STATUS_BUFFER_TOO_SMALL";
    case HV_STATUS_RATE_LIMITED: return "HV_STATUS_RATE_LIMITED";
    case HV_STATUS_WOULD_BLOCK: return "HV_STATUS_WOULD_BLOCK";
    case HV_STATUS_END_OF_STREAM: return "HV_STATUS_END_OF_STREAM";
    case HV_STATUS_TOO_LARGE: return "HV_STATUS_TOO_LARGE";
    case HV_STATUS_NOT_IN_CALL: return "HV_STATUS_NOT_IN_CALL";
    case HV_STATUS_OUT_OF_RANGE: return "HV_STATUS_OUT_OF_RANGE";
    case HV_STATUS_IO_ERROR: return "HV_STATUS_IO_ERROR";
    case HV_STATUS_INTEGRITY: return "HV_STATUS_INTEGRITY";
  }
  return "HV_STATUS_" + (status < 0 ? -status : status).toString();
}

/** Ends the partition as trapped, through HV_CALL_ABORT, saying which SDK call failed and why. */
function fail(what: string, status: i32): void {
  __hv_abort("hv: " + what + " failed: " + statusName(status), null, 0, 0);
}

// ---------------------------------------------------------------------------------------------
// Core

/** HV_CALL_VERSION: the host's ABI version, major << 16 | minor. */
export function version(): i32 {
  return hypercall(HV_CALL_VERSION, 0, 0, 0, 0);
}

/** HV_CALL_EXIT: ends the partition with `code`. Does not return. */
export function exit(code: i32): void {
  store<i32>(SCRATCH, code);
  hypercall(HV_CALL_EXIT, <i32>SCRATCH, 4, 0, 0);
  unreachable(); // EXIT never returns; if a host ever did, trapping beats running on
}

/** Returns `size` bytes of heap memory, zero-filled (either runtime's allocator reuses freed blocks). */
export function allocZeroed(size: usize): usize {
  const ptr = heap.alloc(size);
  memory.fill(ptr, 0, size);
  return ptr;
}

// ---------------------------------------------------------------------------------------------
// Reactor calls: the host calls an export `() -> i32`; the export pulls its input and pushes its
// output through these, and returns 0 for success (any other value is the guest's error status).

/**
 * HV_CALL_INPUT_SIZE + HV_CALL_INPUT_READ: the current call's input, read straight into a new
 * buffer in chunks of up to HV_MAX_TRANSFER (no copy through the static IO buffer).
 * Outside a call this ends the partition (HV_STATUS_NOT_IN_CALL).
 */
export function input(): Uint8Array {
  const size = hypercall(HV_CALL_INPUT_SIZE, 0, 0, 0, 0);
  if (size < 0) fail("input (INPUT_SIZE)", size);
  const data = new Uint8Array(size);
  const base = changetype<usize>(data.buffer);
  let offset = 0;
  while (offset < size) {
    store<u32>(SCRATCH, <u32>offset);
    const want = min(size - offset, HV_MAX_TRANSFER);
    const n = hypercall(HV_CALL_INPUT_READ, <i32>SCRATCH, 4, <i32>(base + <usize>offset), want);
    if (n <= 0) fail("input (INPUT_READ)", n < 0 ? n : -HV_STATUS_INVALID_ARGUMENT);
    offset += n;
  }
  return data;
}

/** The current call's input as UTF-8 text. */
export function inputString(): string {
  return String.UTF8.decode(input().buffer);
}

/**
 * HV_CALL_OUTPUT_WRITE: appends `data` to the current call's output (in chunks of up to
 * HV_MAX_TRANSFER). Returns 0, or the negated status (HV_STATUS_TOO_LARGE past maxOutputBytes).
 */
export function output(data: Uint8Array): i32 {
  const base = changetype<usize>(data.buffer) + <usize>data.byteOffset;
  const size = data.byteLength;
  let offset = 0;
  while (offset < size) {
    const n = min(size - offset, HV_MAX_TRANSFER);
    const r = hypercall(HV_CALL_OUTPUT_WRITE, <i32>(base + <usize>offset), n, 0, 0);
    if (r < 0) return r;
    offset += n;
  }
  return 0;
}

/** Appends `text` as UTF-8 to the current call's output. */
export function outputString(text: string): i32 {
  return output(Uint8Array.wrap(String.UTF8.encode(text)));
}

/** HV_CALL_ARGS_SIZE + HV_CALL_ARGS_GET: the partition's arguments (not including a program name). */
export function args(): string[] {
  const list = new Array<string>();
  const size = hypercall(HV_CALL_ARGS_SIZE, 0, 0, 0, 0);
  if (size < 0) fail("args (ARGS_SIZE)", size);
  if (size == 0) return list;
  // One hypercall can move at most HV_MAX_TRANSFER bytes and ARGS_GET has no offset, so a
  // larger argument block cannot be read at all.
  if (size > HV_MAX_TRANSFER) fail("args (argument block larger than HV_MAX_TRANSFER)", -HV_STATUS_TOO_LARGE);
  const n = hypercall(HV_CALL_ARGS_GET, 0, 0, <i32>IO, size);
  if (n < 0) fail("args (ARGS_GET)", n);
  let start = 0;
  for (let i = 0; i < n; i++) {
    if (load<u8>(IO + <usize>i) == 0) {
      list.push(String.UTF8.decodeUnsafe(IO + <usize>start, <usize>(i - start)));
      start = i + 1;
    }
  }
  if (start < n) list.push(String.UTF8.decodeUnsafe(IO + <usize>start, <usize>(n - start))); // unterminated tail
  memory.fill(IO, 0, <usize>n);
  return list;
}

/** One DEVICE_LIST record. */
export class DeviceInfo {
  constructor(
    public id: u32,
    public version: u32,
    public param0: u32,
    public param1: u32,
  ) {}
}

/** HV_CALL_DEVICE_LIST: the devices granted to this partition (HV_DEVICE_* ids). */
export function devices(): DeviceInfo[] {
  const list = new Array<DeviceInfo>();
  const n = hypercall(HV_CALL_DEVICE_LIST, 0, 0, <i32>IO, HV_MAX_TRANSFER);
  if (n < 0) fail("devices (DEVICE_LIST)", n);
  for (let off = 0; off + HV_DEVICE_RECORD_SIZE <= n; off += HV_DEVICE_RECORD_SIZE) {
    const rec = IO + <usize>off;
    list.push(new DeviceInfo(load<u32>(rec), load<u32>(rec, 4), load<u32>(rec, 8), load<u32>(rec, 12)));
  }
  return list;
}

/** Whether the device with HV_DEVICE_* id `id` is granted to this partition. */
export function hasDevice(id: u32): bool {
  const list = devices();
  for (let i = 0; i < list.length; i++) {
    if (list[i].id == id) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Console

/** Encodes `s` (plus '\n' if asked) as UTF-8 into IO and writes it, in as few calls as fit. */
function writeString(callCode: i32, s: string, newline: bool): i32 {
  const units = s.length;
  let start = 0;
  let total = 0;
  do {
    let end = min(start + WRITE_CHUNK_UNITS, units);
    // Never split a surrogate pair across two writes: each half alone would encode as garbage.
    if (end < units && (s.charCodeAt(end - 1) & 0xfc00) == 0xd800) end--;
    let n = String.UTF8.encodeUnsafe(changetype<usize>(s) + (<usize>start << 1), end - start, IO);
    if (newline && end == units) {
      store<u8>(IO + n, 0x0a);
      n++;
    }
    if (n == 0) break;
    const r = hypercall(callCode, <i32>IO, <i32>n, 0, 0);
    if (r < 0) return r;
    total += r;
    start = end;
  } while (start < units);
  return total;
}

let consoleEnded = false;

/** HV_CALL_CONSOLE_READ with `flags`; null on end of stream, or (non-blocking) when no line is ready. */
function readLineWith(flags: u32): string | null {
  store<u32>(SCRATCH, flags);
  const n = hypercall(HV_CALL_CONSOLE_READ, <i32>SCRATCH, 4, <i32>IO, HV_MAX_TRANSFER);
  store<u32>(SCRATCH, 0);
  if (n >= 0) {
    const line = String.UTF8.decodeUnsafe(IO, <usize>n);
    memory.fill(IO, 0, <usize>n);
    return line;
  }
  if (n == -HV_STATUS_END_OF_STREAM) {
    consoleEnded = true;
    return null;
  }
  if (n == -HV_STATUS_WOULD_BLOCK && (flags & HV_CONSOLE_READ_NONBLOCK)) return null;
  // BUFFER_TOO_SMALL here means a line longer than HV_MAX_TRANSFER: the ABI cannot deliver it.
  fail("console.readLine (CONSOLE_READ)", n);
  return null;
}

export namespace console {
  /** Writes `s` to stdout as UTF-8. Returns bytes written or a negated status. */
  export function write(s: string): i32 {
    return writeString(HV_CALL_CONSOLE_WRITE, s, false);
  }

  /** Writes `s` and a newline to stdout. Returns bytes written or a negated status. */
  export function log(s: string): i32 {
    return writeString(HV_CALL_CONSOLE_WRITE, s, true);
  }

  /** Writes `s` to stderr as UTF-8. Returns bytes written or a negated status. */
  export function writeErr(s: string): i32 {
    return writeString(HV_CALL_CONSOLE_WRITE_ERR, s, false);
  }

  /** Writes `s` and a newline to stderr. Returns bytes written or a negated status. */
  export function error(s: string): i32 {
    return writeString(HV_CALL_CONSOLE_WRITE_ERR, s, true);
  }

  /** Blocks until an input line is available and returns it without its '\n'; null at end of stream. */
  export function readLine(): string | null {
    return readLineWith(0);
  }

  /** Returns an input line if one is ready, else null at once; `atEnd()` tells end of stream apart. */
  export function tryReadLine(): string | null {
    return readLineWith(HV_CONSOLE_READ_NONBLOCK);
  }

  /** True once a read has reported end of stream. */
  export function atEnd(): bool {
    return consoleEnded;
  }
}

// ---------------------------------------------------------------------------------------------
// Byte streams (ABI 1.3): stdout, stderr and stdin exactly, nothing cut, added or dropped.

/** Writes `len` bytes at `ptr` with a stream call, in pieces of HV_MAX_TRANSFER. */
function writeRaw(callCode: i32, ptr: usize, len: i32): i32 {
  let done = 0;
  while (done < len) {
    const n = min(len - done, HV_MAX_TRANSFER);
    const r = hypercall(callCode, <i32>(ptr + <usize>done), n, 0, 0);
    if (r < 0) return done > 0 ? done : r;
    done += r;
  }
  return done;
}

/** HV_CALL_CONSOLE_STREAM_READ into `buf` with `flags`: bytes read, 0 at end of stream, or a negated status. */
function readRaw(buf: Uint8Array, flags: u32): i32 {
  store<u32>(SCRATCH, flags);
  const r = hypercall(HV_CALL_CONSOLE_STREAM_READ, <i32>SCRATCH, 4, <i32>buf.dataStart, min(buf.length, HV_MAX_TRANSFER));
  store<u32>(SCRATCH, 0);
  return r == -HV_STATUS_END_OF_STREAM ? 0 : r;
}

export namespace stdio {
  /**
   * Writes `data` to stdout exactly. Waits while the host's reader is behind. Returns the bytes
   * written, or a negated status: END_OF_STREAM when the reader has gone, RATE_LIMITED when the
   * console's rate limit refused the write (nothing written).
   */
  export function write(data: Uint8Array): i32 {
    return writeRaw(HV_CALL_CONSOLE_STREAM_WRITE, data.dataStart, data.length);
  }

  /** Writes `data` to stderr exactly; as `write`. */
  export function writeErr(data: Uint8Array): i32 {
    return writeRaw(HV_CALL_CONSOLE_STREAM_WRITE_ERR, data.dataStart, data.length);
  }

  /** Writes `s` to stdout as UTF-8 (no newline added). Returns bytes written or a negated status. */
  export function print(s: string): i32 {
    return writeString(HV_CALL_CONSOLE_STREAM_WRITE, s, false);
  }

  /** Writes `s` to stderr as UTF-8. */
  export function printErr(s: string): i32 {
    return writeString(HV_CALL_CONSOLE_STREAM_WRITE_ERR, s, false);
  }

  /** Reads input bytes into `buf`, waiting for at least one: the count, 0 at end of input, or a negated status. */
  export function read(buf: Uint8Array): i32 {
    return readRaw(buf, 0);
  }

  /** Reads the input bytes ready now: the count, 0 at end of input, -HV_STATUS_WOULD_BLOCK when none. */
  export function tryRead(buf: Uint8Array): i32 {
    return readRaw(buf, HV_CONSOLE_READ_NONBLOCK);
  }
}

// ---------------------------------------------------------------------------------------------
// Clock

export namespace clock {
  /** HV_CALL_CLOCK_GET for clock `id` (HV_CLOCK_*): nanoseconds, or a negated status (< 0). */
  export function get(id: u32): i64 {
    store<u32>(SCRATCH, id);
    const r = hypercall(HV_CALL_CLOCK_GET, <i32>SCRATCH, 4, <i32>(SCRATCH + 8), 8);
    const ns = load<u64>(SCRATCH, 8);
    store<u64>(SCRATCH, 0);
    store<u64>(SCRATCH, 0, 8);
    return r < 0 ? <i64>r : <i64>ns;
  }

  /** Monotonic clock in nanoseconds (arbitrary origin). Aborts if the clock is not granted. */
  export function monotonicNs(): u64 {
    const v = get(HV_CLOCK_MONOTONIC);
    if (v < 0) fail("clock.monotonicNs (CLOCK_GET)", <i32>v);
    return <u64>v;
  }

  /** Wall clock in nanoseconds since the Unix epoch. Aborts if the clock is not granted. */
  export function wallNs(): u64 {
    const v = get(HV_CLOCK_WALL);
    if (v < 0) fail("clock.wallNs (CLOCK_GET)", <i32>v);
    return <u64>v;
  }
}

// ---------------------------------------------------------------------------------------------
// Entropy

// Inside `entropy` the name u32 means the function entropy.u32, so its return type needs an alias.
type U32 = u32;

export namespace entropy {
  /** Fills `buf` with random bytes. Returns buf.length, or a negated status. */
  export function fill(buf: Uint8Array): i32 {
    const len = buf.byteLength;
    let off = 0;
    while (off < len) {
      const n = min(len - off, HV_MAX_TRANSFER);
      const r = hypercall(HV_CALL_ENTROPY_GET, 0, 0, <i32>(buf.dataStart + <usize>off), n);
      if (r < 0) return r;
      off += n;
    }
    return len;
  }

  /** A uniformly random u32. Aborts if entropy is not granted. */
  export function u32(): U32 {
    const r = hypercall(HV_CALL_ENTROPY_GET, 0, 0, <i32>SCRATCH, 4);
    if (r < 0) fail("entropy.u32 (ENTROPY_GET)", r);
    const v = load<U32>(SCRATCH);
    store<U32>(SCRATCH, 0);
    return v;
  }
}

// ---------------------------------------------------------------------------------------------
// Block storage

/** The block device's geometry (BLOCK_INFO). */
export class BlockInfo {
  constructor(
    public sectorSize: u32,
    public maxReadSectors: u32,
    public maxWriteSectors: u32,
    public sectorCount: u64,
  ) {}
}

/** Puts the (sector, count, flags) request header at `at` (SCRATCH or IO). */
function blockHeader(at: usize, sector: u64, count: u32, flags: u32): void {
  store<u64>(at, sector);
  store<u32>(at, count, 8);
  store<u32>(at, flags, 12);
}

export namespace block {
  /** Bytes per sector (4096 in ABI 1.x). */
  export const SECTOR_SIZE: i32 = HV_BLOCK_SECTOR_SIZE;

  /** HV_CALL_BLOCK_INFO: the disk's geometry. Aborts if the block device is not granted. */
  export function info(): BlockInfo {
    const r = hypercall(HV_CALL_BLOCK_INFO, 0, 0, <i32>IO, 16);
    if (r < 0) fail("block.info (BLOCK_INFO)", r);
    const result = new BlockInfo(load<u32>(IO), <u32>load<u16>(IO, 4), <u32>load<u16>(IO, 6), load<u64>(IO, 8));
    memory.fill(IO, 0, 16);
    return result;
  }

  /**
   * Reads `count` sectors starting at `sector` into `buf` (which must hold count * SECTOR_SIZE
   * bytes), in as many BLOCK_READ calls as needed. Returns the bytes read, or the first negated
   * status (sectors before the failing call were read). Unwritten sectors read as zeros.
   */
  export function read(sector: u64, buf: Uint8Array, count: u32): i32 {
    if (<u64>buf.byteLength < <u64>count * <u64>HV_BLOCK_SECTOR_SIZE) return -HV_STATUS_INVALID_ARGUMENT;
    let done: u32 = 0;
    while (done < count) {
      const n = min(count - done, <u32>HV_BLOCK_MAX_READ_SECTORS);
      blockHeader(SCRATCH, sector + <u64>done, n, 0);
      const r = hypercall(HV_CALL_BLOCK_READ, <i32>SCRATCH, HV_BLOCK_HEADER_SIZE, <i32>(buf.dataStart + <usize>done * HV_BLOCK_SECTOR_SIZE), <i32>n * HV_BLOCK_SECTOR_SIZE);
      if (r < 0) return r;
      done += n;
    }
    return <i32>done * HV_BLOCK_SECTOR_SIZE;
  }

  /**
   * Writes `count` sectors from `buf` starting at `sector`, in calls of at most
   * HV_BLOCK_MAX_WRITE_SECTORS. Each sector is replaced atomically (old or new after a crash,
   * never a mix); the write is durable only after `flush()`, or at once with `fua`.
   * Returns the bytes written or the first negated status.
   */
  export function write(sector: u64, buf: Uint8Array, count: u32, fua: bool = false): i32 {
    if (<u64>buf.byteLength < <u64>count * <u64>HV_BLOCK_SECTOR_SIZE) return -HV_STATUS_INVALID_ARGUMENT;
    let done: u32 = 0;
    while (done < count) {
      const n = min(count - done, <u32>HV_BLOCK_MAX_WRITE_SECTORS);
      const bytes = <usize>n * HV_BLOCK_SECTOR_SIZE;
      blockHeader(IO, sector + <u64>done, n, fua ? HV_BLOCK_WRITE_FUA : 0);
      memory.copy(IO + HV_BLOCK_HEADER_SIZE, buf.dataStart + <usize>done * HV_BLOCK_SECTOR_SIZE, bytes);
      const r = hypercall(HV_CALL_BLOCK_WRITE, <i32>IO, <i32>(HV_BLOCK_HEADER_SIZE + bytes), 0, 0);
      memory.fill(IO, 0, HV_BLOCK_HEADER_SIZE + bytes);
      if (r < 0) return r;
      done += n;
    }
    return <i32>done * HV_BLOCK_SECTOR_SIZE;
  }

  /** HV_CALL_BLOCK_FLUSH: every write that returned is on disk when this returns 0. */
  export function flush(): i32 {
    return hypercall(HV_CALL_BLOCK_FLUSH, 0, 0, 0, 0);
  }

  /** Makes `count` sectors from `sector` read as zeros. Returns 0 or the first negated status. */
  export function discard(sector: u64, count: u32): i32 {
    let done: u32 = 0;
    while (done < count) {
      const n = min(count - done, <u32>HV_BLOCK_MAX_READ_SECTORS);
      blockHeader(SCRATCH, sector + <u64>done, n, 0);
      const r = hypercall(HV_CALL_BLOCK_DISCARD, <i32>SCRATCH, HV_BLOCK_HEADER_SIZE, 0, 0);
      if (r < 0) return r;
      done += n;
    }
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Network (ABI 1.2; flow control, trySend and pollFor since 1.3)

/** A received frame: source (stamped by the host's switch, never forgeable), destination, payload. */
export class Frame {
  constructor(
    public src: u32,
    public dst: u32,
    public data: Uint8Array,
  ) {}

  /** The payload as UTF-8 text. */
  text(): string {
    return String.UTF8.decode(this.data.buffer);
  }
}

export namespace net {
  /** Destination that reaches every other NIC on this NIC's segment. */
  export const BROADCAST: u32 = HV_NET_BROADCAST;
  /** Bytes before the payload in what recvInto writes: u32 source, u32 destination. */
  export const HEADER_SIZE: i32 = HV_NET_HEADER_SIZE;

  /** Status of the last recv() that returned null (HV_STATUS_WOULD_BLOCK on a timeout). */
  export let lastStatus: i32 = 0;

  function info(at: i32): u32 {
    const r = hypercall(HV_CALL_NET_INFO, 0, 0, <i32>SCRATCH, 8);
    if (r < 0) fail("net.info (NET_INFO)", r);
    const v = load<u32>(SCRATCH + <usize>at);
    store<u64>(SCRATCH, 0);
    return v;
  }

  /** This NIC's address, assigned by the host. Aborts if net is not granted. */
  export function address(): u32 {
    return info(0);
  }

  /** Largest payload of one frame. Aborts if net is not granted. */
  export function mtu(): u32 {
    return info(4);
  }

  /**
   * HV_CALL_NET_SEND: one frame of `data` (at most mtu() bytes) to `dst`. Returns the payload
   * length, or a negated status: TOO_LARGE, RATE_LIMITED (this NIC's send budget: nothing sent;
   * retry later), WOULD_BLOCK (nothing sent: the destination's queue or receive budget had no
   * room for 1 s (flow control, since ABI 1.3), or the host did not take the frame in time).
   * A sender that retries on WOULD_BLOCK loses nothing; sendReliable() does. A frame to an
   * address this NIC may not reach is accepted here and dropped by the switch, which reports it
   * as a violation.
   */
  export function send(dst: u32, data: Uint8Array): i32 {
    return sendWith(HV_CALL_NET_SEND, dst, data);
  }

  /** HV_CALL_NET_TRY_SEND (ABI 1.3): as send(), but never waits: WOULD_BLOCK at once when the frame cannot leave now. */
  export function trySend(dst: u32, data: Uint8Array): i32 {
    return sendWith(HV_CALL_NET_TRY_SEND, dst, data);
  }

  /**
   * send() until the frame is sent or fails for another reason than a full destination or a
   * spent budget: waits (pollFor) while the destination has no room. Returns the payload length
   * or a negated status other than WOULD_BLOCK and RATE_LIMITED.
   */
  export function sendReliable(dst: u32, data: Uint8Array): i32 {
    let r = sendWith(HV_CALL_NET_SEND, dst, data);
    while (r == -HV_STATUS_WOULD_BLOCK || r == -HV_STATUS_RATE_LIMITED) {
      pollFor(dst, 10);
      r = sendWith(HV_CALL_NET_SEND, dst, data);
    }
    return r;
  }

  function sendWith(call: i32, dst: u32, data: Uint8Array): i32 {
    const n = data.byteLength;
    if (n > HV_MAX_TRANSFER - 4) return -HV_STATUS_TOO_LARGE;
    store<u32>(IO, dst);
    memory.copy(IO + 4, data.dataStart, <usize>n);
    const r = hypercall(call, <i32>IO, 4 + n, 0, 0);
    memory.fill(IO, 0, <usize>(4 + n));
    return r;
  }

  /** send() of a string as UTF-8. */
  export function sendString(dst: u32, s: string): i32 {
    return send(dst, Uint8Array.wrap(String.UTF8.encode(s)));
  }

  /** 8 + MTU: the largest frame NET_RECV can write; a larger window would only cost the host zeroing it. -1 until known. */
  let frameWindow: i32 = -1;

  /** The output window for a frame into a buffer of `cap` bytes. */
  function window(cap: i32): i32 {
    if (frameWindow < 0) {
      const r = hypercall(HV_CALL_NET_INFO, 0, 0, <i32>SCRATCH, 8);
      // Without net the call fails; NET_RECV then answers the same status with the full window.
      frameWindow = r < 0 ? HV_MAX_TRANSFER : HV_NET_HEADER_SIZE + <i32>load<u32>(SCRATCH, 4);
      store<u64>(SCRATCH, 0);
    }
    return min(cap, frameWindow);
  }

  /**
   * HV_CALL_NET_RECV straight into `buf`: the 8-byte header (source, destination) then the
   * payload. Bytes of `buf` past the frame, up to 8 + mtu(), are zeroed by the host (a frame never
   * reaches further; bytes beyond are left as they were). `timeoutMs` < 0 waits forever, 0 does
   * not wait. Returns 8 + payload length, or a negated status (WOULD_BLOCK when nothing came in
   * time; BUFFER_TOO_SMALL leaves the frame queued).
   */
  export function recvInto(buf: Uint8Array, timeoutMs: i32 = -1): i32 {
    const cap = window(buf.byteLength);
    store<u32>(SCRATCH, timeoutMs == 0 ? HV_NET_RECV_NONBLOCK : 0);
    store<u32>(SCRATCH, timeoutMs < 0 ? 0xffffffff : <u32>timeoutMs, 4);
    const r = hypercall(HV_CALL_NET_RECV, <i32>SCRATCH, 8, <i32>buf.dataStart, cap);
    store<u64>(SCRATCH, 0);
    return r;
  }

  /** Receives one frame (waiting up to `timeoutMs`, < 0 forever); null if none came (see lastStatus). */
  export function recv(timeoutMs: i32 = -1): Frame | null {
    const cap = window(HV_MAX_TRANSFER);
    store<u32>(SCRATCH, timeoutMs == 0 ? HV_NET_RECV_NONBLOCK : 0);
    store<u32>(SCRATCH, timeoutMs < 0 ? 0xffffffff : <u32>timeoutMs, 4);
    const r = hypercall(HV_CALL_NET_RECV, <i32>SCRATCH, 8, <i32>IO, cap);
    store<u64>(SCRATCH, 0);
    if (r < 0) {
      lastStatus = r;
      return null;
    }
    const n = r - HV_NET_HEADER_SIZE;
    const data = new Uint8Array(n);
    memory.copy(data.dataStart, IO + <usize>HV_NET_HEADER_SIZE, <usize>n);
    const frame = new Frame(load<u32>(IO), load<u32>(IO, 4), data);
    memory.fill(IO, 0, <usize>r);
    return frame;
  }

  /** HV_CALL_NET_POLL: readiness bits (HV_NET_POLL_READABLE, HV_NET_POLL_WRITABLE), waiting up to `timeoutMs` for a frame. */
  export function poll(timeoutMs: u32 = 0): i32 {
    store<u32>(SCRATCH, timeoutMs);
    const r = hypercall(HV_CALL_NET_POLL, <i32>SCRATCH, 4, 0, 0);
    store<u32>(SCRATCH, 0);
    return r;
  }

  /**
   * HV_CALL_NET_POLL with a destination (ABI 1.3): HV_NET_POLL_WRITABLE means a frame of mtu()
   * bytes to `dst` would be taken now; waits up to `timeoutMs` until readable or writable.
   */
  export function pollFor(dst: u32, timeoutMs: u32 = 0): i32 {
    store<u32>(SCRATCH, timeoutMs);
    store<u32>(SCRATCH, dst, 4);
    const r = hypercall(HV_CALL_NET_POLL, <i32>SCRATCH, 8, 0, 0);
    store<u64>(SCRATCH, 0);
    return r;
  }

  /** An address as a dotted quad, e.g. "10.0.0.2". */
  export function formatAddress(a: u32): string {
    return (a >>> 24).toString() + "." + ((a >>> 16) & 255).toString() + "." + ((a >>> 8) & 255).toString() + "." + (a & 255).toString();
  }
}

// ---------------------------------------------------------------------------------------------
// Abort: asconfig.json routes the compiler's `abort` here (`--use abort=__hv_abort`), so that
// assert(), throw, bounds checks and out-of-memory reach the host as HV_CALL_ABORT instead of
// importing env.abort. It formats "message at file:line:col" straight into IO without
// allocating, because an abort may come from the allocator itself.

/** Appends as much of `s` as fits below `limit` to IO at `pos` (UTF-8); returns the new position. */
function putString(pos: usize, s: string, limit: usize): usize {
  const room = pos < limit ? (limit - pos) / 3 : 0; // 3 bytes per UTF-16 unit at worst
  const units = min(<usize>s.length, room);
  return pos + String.UTF8.encodeUnsafe(changetype<usize>(s), <i32>units, IO + pos);
}

/** Appends the decimal digits of `v` to IO at `pos`; returns the new position. */
function putU32(pos: usize, v: u32): usize {
  let digits = 1;
  for (let t = v; t >= 10; t /= 10) digits++;
  let end = pos + <usize>digits;
  let p = end;
  do {
    store<u8>(IO + --p, 0x30 + <u8>(v % 10));
    v /= 10;
  } while (v != 0);
  return end;
}

// @ts-ignore: decorator
@global
export function __hv_abort(message: string | null, fileName: string | null, lineNumber: u32, columnNumber: u32): void {
  const limit = <usize>(HV_MAX_TRANSFER - 32); // keep room for ":line:col"
  let n = putString(0, message !== null ? message : "abort", limit);
  if (fileName !== null) {
    n = putString(n, " at ", limit);
    n = putString(n, fileName, limit);
    store<u8>(IO + n++, 0x3a); // ':'
    n = putU32(n, lineNumber);
    store<u8>(IO + n++, 0x3a);
    n = putU32(n, columnNumber);
  }
  hypercall(HV_CALL_ABORT, <i32>IO, <i32>n, 0, 0);
  unreachable(); // ABORT never returns
}

// ---------------------------------------------------------------------------------------------
// Attestation (since ABI 1.3; the spec must grant devices.attestation)

export namespace attestation {
  /** Status of the last report() that returned null. */
  export let lastStatus: i32 = 0;

  /**
   * HV_CALL_ATTEST_INFO: this partition's module measurement (bytes 0..32, SHA-256) and spec hash
   * (bytes 32..64), as the host measured them. Aborts if attestation is not granted.
   */
  export function info(): Uint8Array {
    const out = new Uint8Array(HV_ATTEST_INFO_SIZE);
    const r = hypercall(HV_CALL_ATTEST_INFO, 0, 0, <i32>out.dataStart, HV_ATTEST_INFO_SIZE);
    if (r < 0) fail("attestation.info (ATTEST_INFO)", r);
    return out;
  }

  /**
   * HV_CALL_ATTEST_REPORT: a 512-byte report of this partition, signed by a key the host certified,
   * binding `data` (exactly 64 bytes the guest chooses, e.g. the hash of a key it made) and the
   * verifier's `nonce` (at most 64 bytes). Returns null with `lastStatus` set on failure.
   */
  export function report(data: Uint8Array, nonce: Uint8Array): Uint8Array | null {
    if (data.byteLength != HV_ATTEST_DATA_SIZE || nonce.byteLength > HV_ATTEST_MAX_NONCE) {
      lastStatus = -HV_STATUS_INVALID_ARGUMENT;
      return null;
    }
    const n = HV_ATTEST_DATA_SIZE + nonce.byteLength;
    memory.copy(IO, data.dataStart, <usize>HV_ATTEST_DATA_SIZE);
    memory.copy(IO + <usize>HV_ATTEST_DATA_SIZE, nonce.dataStart, <usize>nonce.byteLength);
    const out = new Uint8Array(HV_ATTEST_REPORT_SIZE);
    const r = hypercall(HV_CALL_ATTEST_REPORT, <i32>IO, n, <i32>out.dataStart, HV_ATTEST_REPORT_SIZE);
    memory.fill(IO, 0, <usize>n);
    lastStatus = r < 0 ? r : 0;
    return r < 0 ? null : out;
  }
}
