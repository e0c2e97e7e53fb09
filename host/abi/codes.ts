/**
 * Hypercall ABI v1: the numbers a guest sees. This file is the single source of truth;
 * docs/ABI.md and the guest SDK (assembly/abi.ts) repeat these values and a test keeps
 * all three in step. Values are a contract: never renumber, only add.
 */

/** Import module name: the only module a guest may import from (besides WASI when enabled). */
export const HV_MODULE = 'hv';
/** The one hypercall entry point: `hypercall(call, in_ptr, in_len, out_ptr, out_cap) -> i32`. */
export const HV_HYPERCALL = 'hypercall';

/** ABI version reported by HV_CALL_VERSION: major in the high 16 bits, minor in the low 16. */
export const HV_ABI_MAJOR = 1;
export const HV_ABI_MINOR = 1;
export const HV_ABI_VERSION = (HV_ABI_MAJOR << 16) | HV_ABI_MINOR;

/** Largest in_len and out_cap a single hypercall accepts (bytes). Larger gets HV_STATUS_TOO_LARGE. */
export const HV_MAX_TRANSFER = 65536;

/** Status codes. A hypercall returns a value >= 0 on success, or the negated status on failure. */
export const HvStatus = {
  SUCCESS: 0,
  /** The call code is not part of this ABI version. */
  INVALID_CALL: 1,
  /** A (ptr, len) pair does not lie inside the guest's current linear memory. */
  INVALID_ADDRESS: 2,
  /** Input is malformed: wrong length, unknown flag or id, value out of range. */
  INVALID_ARGUMENT: 3,
  /** The device behind this call was not granted to the partition. */
  ACCESS_DENIED: 4,
  /** out_cap cannot hold the result; nothing was written and nothing was consumed. */
  BUFFER_TOO_SMALL: 5,
  /** A rate limit refused the operation; what was refused is counted in the partition's metrics. */
  RATE_LIMITED: 6,
  /** A non-blocking operation found nothing to do. */
  WOULD_BLOCK: 7,
  /** The stream is closed and drained. */
  END_OF_STREAM: 8,
  /** in_len or out_cap is larger than HV_MAX_TRANSFER, or an output would exceed its limit. */
  TOO_LARGE: 9,
  /** A call-only operation (INPUT_*, OUTPUT_WRITE) made outside a host call to an export. (1.1) */
  NOT_IN_CALL: 10,
} as const;
export type HvStatusName = keyof typeof HvStatus;
export type HvStatusCode = (typeof HvStatus)[HvStatusName];

/** Call codes, grouped by device in the high byte. */
export const HvCall = {
  /** Returns HV_ABI_VERSION. No input, no output. */
  VERSION: 0x0000,
  /** Writes one 16-byte record per granted device into out; returns bytes written. */
  DEVICE_LIST: 0x0001,
  /** Input: i32 exit code (4 bytes LE). Ends the partition; does not return. */
  EXIT: 0x0002,
  /** Input: UTF-8 message. Ends the partition as trapped (ERR_GUEST_TRAP); does not return. */
  ABORT: 0x0003,
  /** Returns the byte size of the argument block that ARGS_GET writes. */
  ARGS_SIZE: 0x0004,
  /** Writes the arguments, each UTF-8 and NUL-terminated; returns bytes written. */
  ARGS_GET: 0x0005,
  /** Inside a host call to an export: returns the byte size of the call's input. (1.1) */
  INPUT_SIZE: 0x0006,
  /** Input: optional u32 offset. Writes input bytes from the offset, up to out_cap; returns the count. (1.1) */
  INPUT_READ: 0x0007,
  /** Input: bytes appended to the call's output (bounded by maxOutputBytes); returns in_len. (1.1) */
  OUTPUT_WRITE: 0x0008,
  /** Input: bytes for the console's stdout stream; returns in_len. */
  CONSOLE_WRITE: 0x0100,
  /** Input: bytes for the console's stderr stream; returns in_len. */
  CONSOLE_WRITE_ERR: 0x0101,
  /** Input: optional u32 flags (bit 0: non-blocking). Writes one input line without its newline; returns its length. */
  CONSOLE_READ: 0x0102,
  /** Input: u32 clock id (0 monotonic, 1 wall). Writes u64 nanoseconds (8 bytes LE); returns 8. */
  CLOCK_GET: 0x0200,
  /** Fills all of out (out_cap bytes) with random bytes; returns out_cap. */
  ENTROPY_GET: 0x0300,
} as const;
export type HvCallName = keyof typeof HvCall;

/** Device identifiers used in DEVICE_LIST records. */
export const HvDevice = {
  CONSOLE: 1,
  CLOCK: 2,
  ENTROPY: 3,
} as const;
export type HvDeviceName = keyof typeof HvDevice;

/** Size of one DEVICE_LIST record: u32 id, u32 version, u32 param0, u32 param1. */
export const HV_DEVICE_RECORD_SIZE = 16;

/** CONSOLE_READ input flag: return WOULD_BLOCK instead of waiting for a line. */
export const HV_CONSOLE_READ_NONBLOCK = 1;

/** CLOCK_GET clock ids. */
export const HvClock = {
  MONOTONIC: 0,
  WALL: 1,
} as const;

/** DEVICE_LIST flags (param1). */
export const HV_DEVICE_FLAG_DETERMINISTIC = 1;
export const HV_DEVICE_FLAG_INPUT = 1;

const callNames = new Map<number, HvCallName>(
  (Object.entries(HvCall) as [HvCallName, number][]).map(([k, v]) => [v, k]),
);
const statusNames = new Map<number, HvStatusName>(
  (Object.entries(HvStatus) as [HvStatusName, number][]).map(([k, v]) => [v, k]),
);

/** Human name of a call code, e.g. `CONSOLE_WRITE`, or `0x1234` for an unknown one. */
export function callName(code: number): string {
  return callNames.get(code) ?? `0x${(code >>> 0).toString(16).padStart(4, '0')}`;
}

/** Human name of a status code, e.g. `HV_STATUS_INVALID_ADDRESS`. */
export function statusName(status: number): string {
  const name = statusNames.get(status);
  return name === undefined ? `HV_STATUS_${status}` : `HV_STATUS_${name}`;
}
