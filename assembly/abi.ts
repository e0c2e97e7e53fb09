/**
 * Hypercall ABI v1, guest side: the numbers of host/abi/codes.ts repeated for AssemblyScript.
 *
 * codes.ts is the single source of truth. Names here are derived mechanically from it
 * (HvCall.X -> HV_CALL_X, HvStatus.X -> HV_STATUS_X, HvDevice.X -> HV_DEVICE_X,
 * HvClock.X -> HV_CLOCK_X, plain constants keep their name), and test/sdk/abi-constants.test.ts
 * parses this file and compares every value, so keep one `export const NAME: type = literal;`
 * per line with a plain literal value.
 */

/** Import module name and function name of the one hypercall entry point. */
export const HV_MODULE: string = "hv";
export const HV_HYPERCALL: string = "hypercall";

/** ABI version reported by HV_CALL_VERSION: major in the high 16 bits, minor in the low 16. */
export const HV_ABI_MAJOR: i32 = 1;
export const HV_ABI_MINOR: i32 = 3;
export const HV_ABI_VERSION: i32 = 0x00010003;

/** Largest in_len and out_cap a single hypercall accepts (bytes). */
export const HV_MAX_TRANSFER: i32 = 65536;

// Status codes. A hypercall returns a value >= 0 on success, or the negated status on failure.
export const HV_STATUS_SUCCESS: i32 = 0;
export const HV_STATUS_INVALID_CALL: i32 = 1;
export const HV_STATUS_INVALID_ADDRESS: i32 = 2;
export const HV_STATUS_INVALID_ARGUMENT: i32 = 3;
export const HV_STATUS_ACCESS_DENIED: i32 = 4;
export const HV_STATUS_BUFFER_TOO_SMALL: i32 = 5;
export const HV_STATUS_RATE_LIMITED: i32 = 6;
export const HV_STATUS_WOULD_BLOCK: i32 = 7;
export const HV_STATUS_END_OF_STREAM: i32 = 8;
export const HV_STATUS_TOO_LARGE: i32 = 9;
export const HV_STATUS_NOT_IN_CALL: i32 = 10;
export const HV_STATUS_OUT_OF_RANGE: i32 = 11;
export const HV_STATUS_IO_ERROR: i32 = 12;
export const HV_STATUS_INTEGRITY: i32 = 13;

// Call codes, grouped by device in the high byte.
export const HV_CALL_VERSION: i32 = 0x0000;
export const HV_CALL_DEVICE_LIST: i32 = 0x0001;
export const HV_CALL_EXIT: i32 = 0x0002;
export const HV_CALL_ABORT: i32 = 0x0003;
export const HV_CALL_ARGS_SIZE: i32 = 0x0004;
export const HV_CALL_ARGS_GET: i32 = 0x0005;
export const HV_CALL_INPUT_SIZE: i32 = 0x0006;
export const HV_CALL_INPUT_READ: i32 = 0x0007;
export const HV_CALL_OUTPUT_WRITE: i32 = 0x0008;
export const HV_CALL_CONSOLE_WRITE: i32 = 0x0100;
export const HV_CALL_CONSOLE_WRITE_ERR: i32 = 0x0101;
export const HV_CALL_CONSOLE_READ: i32 = 0x0102;
export const HV_CALL_CONSOLE_STREAM_WRITE: i32 = 0x0103;
export const HV_CALL_CONSOLE_STREAM_WRITE_ERR: i32 = 0x0104;
export const HV_CALL_CONSOLE_STREAM_READ: i32 = 0x0105;
export const HV_CALL_CLOCK_GET: i32 = 0x0200;
export const HV_CALL_ENTROPY_GET: i32 = 0x0300;
export const HV_CALL_BLOCK_INFO: i32 = 0x0400;
export const HV_CALL_BLOCK_READ: i32 = 0x0401;
export const HV_CALL_BLOCK_WRITE: i32 = 0x0402;
export const HV_CALL_BLOCK_FLUSH: i32 = 0x0403;
export const HV_CALL_BLOCK_DISCARD: i32 = 0x0404;
export const HV_CALL_NET_INFO: i32 = 0x0500;
export const HV_CALL_NET_SEND: i32 = 0x0501;
export const HV_CALL_NET_RECV: i32 = 0x0502;
export const HV_CALL_NET_POLL: i32 = 0x0503;
export const HV_CALL_NET_TRY_SEND: i32 = 0x0504;
export const HV_CALL_ATTEST_INFO: i32 = 0x0600;
export const HV_CALL_ATTEST_REPORT: i32 = 0x0601;

// Device identifiers used in DEVICE_LIST records.
export const HV_DEVICE_CONSOLE: i32 = 1;
export const HV_DEVICE_CLOCK: i32 = 2;
export const HV_DEVICE_ENTROPY: i32 = 3;
export const HV_DEVICE_BLOCK: i32 = 4;
export const HV_DEVICE_NET: i32 = 5;
export const HV_DEVICE_ATTESTATION: i32 = 6;

/** Size of one DEVICE_LIST record: u32 id, u32 version, u32 param0, u32 param1. */
export const HV_DEVICE_RECORD_SIZE: i32 = 16;

/** CONSOLE_READ input flag: return WOULD_BLOCK instead of waiting for a line. */
export const HV_CONSOLE_READ_NONBLOCK: i32 = 1;

// Block device (since ABI 1.1).
export const HV_BLOCK_SECTOR_SIZE: i32 = 4096;
export const HV_BLOCK_HEADER_SIZE: i32 = 16;
export const HV_BLOCK_MAX_READ_SECTORS: i32 = 16;
export const HV_BLOCK_MAX_WRITE_SECTORS: i32 = 15;
export const HV_BLOCK_WRITE_FUA: i32 = 1;

// Network (since ABI 1.2).
export const HV_NET_BROADCAST: u32 = 0xffffffff;
export const HV_NET_HEADER_SIZE: i32 = 8;
export const HV_NET_RECV_NONBLOCK: i32 = 1;
export const HV_NET_POLL_READABLE: i32 = 1;
export const HV_NET_POLL_WRITABLE: i32 = 2;
export const HV_NET_MAX_MTU: i32 = 65528;

// Attestation (since ABI 1.3).
export const HV_ATTEST_INFO_SIZE: i32 = 64;
export const HV_ATTEST_DATA_SIZE: i32 = 64;
export const HV_ATTEST_MAX_NONCE: i32 = 64;
export const HV_ATTEST_REPORT_SIZE: i32 = 512;

// CLOCK_GET clock ids.
export const HV_CLOCK_MONOTONIC: i32 = 0;
export const HV_CLOCK_WALL: i32 = 1;

// DEVICE_LIST flags (param1).
export const HV_DEVICE_FLAG_DETERMINISTIC: i32 = 1;
export const HV_DEVICE_FLAG_INPUT: i32 = 1;
export const HV_DEVICE_FLAG_ENCRYPTED: i32 = 1;

/**
 * The only import a guest has. Pointers and lengths are u32 on the host side; they are i32
 * here because that is the wasm type (pass `<i32>ptr`).
 */
// @ts-ignore: decorator
@external("hv", "hypercall")
export declare function hypercall(call: i32, in_ptr: i32, in_len: i32, out_ptr: i32, out_cap: i32): i32;
