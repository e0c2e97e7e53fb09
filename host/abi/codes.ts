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
export const HV_ABI_MINOR = 3;
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
  /** A block request reaches past the end of the disk (sector + count > sector count). Since 1.1. */
  OUT_OF_RANGE: 11,
  /** The host could not complete the I/O (e.g. the disk image's file system failed). Since 1.1. */
  IO_ERROR: 12,
  /** Stored data failed authentication: the disk image was tampered with or is not this partition's. Since 1.1. */
  INTEGRITY: 13,
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
  /**
   * Input: bytes for the stdout *byte stream*, delivered exactly (no line cutting); waits while the
   * reader is behind (backpressure). Returns in_len; RATE_LIMITED (nothing written) over
   * devices.console.rateLimit in reject mode; END_OF_STREAM when the reader has gone. Since 1.3.
   */
  CONSOLE_STREAM_WRITE: 0x0103,
  /** As CONSOLE_STREAM_WRITE, for stderr. Since 1.3. */
  CONSOLE_STREAM_WRITE_ERR: 0x0104,
  /**
   * Input: none, or u32 flags (bit 0: non-blocking). Writes the next input bytes (at least 1, at
   * most out_cap) exactly as the host sent them; returns the count. Since 1.3.
   */
  CONSOLE_STREAM_READ: 0x0105,
  /** Input: u32 clock id (0 monotonic, 1 wall). Writes u64 nanoseconds (8 bytes LE); returns 8. */
  CLOCK_GET: 0x0200,
  /** Fills all of out (out_cap bytes) with random bytes; returns out_cap. */
  ENTROPY_GET: 0x0300,
  /** Writes the block geometry (16 bytes: u32 sector size, u16 max read sectors, u16 max write sectors, u64 sector count); returns 16. Since 1.1. */
  BLOCK_INFO: 0x0400,
  /** Input: u64 sector, u32 count, u32 flags (16 bytes). Writes count sectors into out; returns bytes read. Since 1.1. */
  BLOCK_READ: 0x0401,
  /** Input: u64 sector, u32 count, u32 flags (16-byte header), then count sectors of data. Returns bytes written. Since 1.1. */
  BLOCK_WRITE: 0x0402,
  /** Makes every completed write durable (fsync); returns 0. Since 1.1. */
  BLOCK_FLUSH: 0x0403,
  /** Input: u64 sector, u32 count, u32 flags (16 bytes). The sectors read as zeros afterwards; returns 0. Since 1.1. */
  BLOCK_DISCARD: 0x0404,
  /** Writes the NIC's info (8 bytes: u32 address, u32 MTU); returns 8. Since 1.2. */
  NET_INFO: 0x0500,
  /**
   * Input: u32 destination address, then the payload (at most MTU bytes). Returns the payload length.
   * Since 1.2; since 1.3 a destination that cannot take the frame (flow control) makes it wait up to 1 s, then WOULD_BLOCK.
   */
  NET_SEND: 0x0501,
  /** Input: none (wait), or u32 flags and u32 timeout ms (8 bytes). Writes u32 source, u32 destination, payload; returns 8 + payload length. Since 1.2. */
  NET_RECV: 0x0502,
  /**
   * Input: none, or u32 timeout ms (wait that long for a frame), or (1.3) u32 timeout ms and u32
   * destination (writable: that destination takes a frame now; waits for readable or writable).
   * Returns readiness bits (HV_NET_POLL_*). Since 1.2.
   */
  NET_POLL: 0x0503,
  /** As NET_SEND, but never waits: WOULD_BLOCK at once when the frame cannot leave now. Since 1.3. */
  NET_TRY_SEND: 0x0504,
  /** Writes the partition's module measurement (32 bytes) and spec hash (32 bytes); returns 64. Since 1.3. */
  ATTEST_INFO: 0x0600,
  /** Input: 64 bytes of report data, then the verifier's nonce (0..64 bytes). Writes a signed 512-byte guest report; returns 512. Since 1.3. */
  ATTEST_REPORT: 0x0601,
} as const;
export type HvCallName = keyof typeof HvCall;

/** Device identifiers used in DEVICE_LIST records. */
export const HvDevice = {
  CONSOLE: 1,
  CLOCK: 2,
  ENTROPY: 3,
  /** Persistent, encrypted block storage. Since 1.1. */
  BLOCK: 4,
  /** Virtual network interface on the host's switch. Since 1.2. */
  NET: 5,
  /** Attestation: the partition's measurement and host-signed reports of it. Since 1.3. */
  ATTESTATION: 6,
} as const;
export type HvDeviceName = keyof typeof HvDevice;

/** Size of one DEVICE_LIST record: u32 id, u32 version, u32 param0, u32 param1. */
export const HV_DEVICE_RECORD_SIZE = 16;

/** CONSOLE_READ input flag: return WOULD_BLOCK instead of waiting for a line. */
export const HV_CONSOLE_READ_NONBLOCK = 1;

/** Block device: bytes per sector (fixed in ABI 1.x). */
export const HV_BLOCK_SECTOR_SIZE = 4096;
/** Size of the header that starts BLOCK_READ/WRITE/DISCARD input: u64 sector, u32 count, u32 flags. */
export const HV_BLOCK_HEADER_SIZE = 16;
/** Most sectors one BLOCK_READ or BLOCK_DISCARD moves: HV_MAX_TRANSFER / sector size. */
export const HV_BLOCK_MAX_READ_SECTORS = 16;
/** Most sectors one BLOCK_WRITE carries: the 16-byte header leaves room for 15 in HV_MAX_TRANSFER. */
export const HV_BLOCK_MAX_WRITE_SECTORS = 15;
/** BLOCK_WRITE flag: force unit access, the write is durable (fsync) before the call returns. */
export const HV_BLOCK_WRITE_FUA = 1;

/** Network: the broadcast address (every other NIC on the sender's segment). Since 1.2. */
export const HV_NET_BROADCAST = 0xffffffff;
/** Network: size of the header NET_RECV writes before the payload (u32 source, u32 destination). */
export const HV_NET_HEADER_SIZE = 8;
/** NET_RECV flag: return WOULD_BLOCK instead of waiting for a frame. */
export const HV_NET_RECV_NONBLOCK = 1;
/** NET_POLL result bit: a frame is waiting in the receive queue. */
export const HV_NET_POLL_READABLE = 1;
/** NET_POLL result bit: the send budget admits a frame of MTU bytes now. */
export const HV_NET_POLL_WRITABLE = 2;
/** Largest MTU a NIC may be given (the payload of one frame). */
export const HV_NET_MAX_MTU = 65528;

/** Attestation: what ATTEST_INFO writes (measurement, spec hash). Since 1.3. */
export const HV_ATTEST_INFO_SIZE = 64;
/** Attestation: the report data a guest chooses (the first 64 bytes of ATTEST_REPORT's input). */
export const HV_ATTEST_DATA_SIZE = 64;
/** Attestation: the longest nonce (after the report data). */
export const HV_ATTEST_MAX_NONCE = 64;
/** Attestation: the size of a guest report (layout in docs/ABI.md). */
export const HV_ATTEST_REPORT_SIZE = 512;

/** CLOCK_GET clock ids. */
export const HvClock = {
  MONOTONIC: 0,
  WALL: 1,
} as const;

/** DEVICE_LIST flags (param1). */
export const HV_DEVICE_FLAG_DETERMINISTIC = 1;
export const HV_DEVICE_FLAG_INPUT = 1;
/** Block device flag (param1): sectors are encrypted and authenticated at rest. */
export const HV_DEVICE_FLAG_ENCRYPTED = 1;

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
