/*
 * hv.h: the Wasmvisor hypercall ABI 1.3 for guests written in C (or anything that can
 * use a C header). Generated from host/abi/codes.ts by scripts/gen-hv-header.mjs: do not edit.
 * The contract is docs/ABI.md; docs/GUESTS.md shows a complete guest and how to build it:
 *
 *   clang --target=wasm32 -nostdlib -O2 -I node_modules/wasmvisor/include \
 *         -Wl,--no-entry -Wl,--export=_start -o hello.wasm hello.c
 *
 * A guest imports exactly one function, hv.hypercall, and exports its memory and _start (a
 * command) or the functions a host calls (a reactor: each () -> int32_t).
 */
#ifndef WASMVISOR_HV_H
#define WASMVISOR_HV_H

#include <stdint.h>

/** Import module name: the only module a guest may import from (besides WASI when enabled). */
#define HV_MODULE "hv"
/** The one hypercall entry point: `hypercall(call, in_ptr, in_len, out_ptr, out_cap) -> i32`. */
#define HV_HYPERCALL "hypercall"
/** ABI version reported by HV_CALL_VERSION: major in the high 16 bits, minor in the low 16. */
#define HV_ABI_MAJOR 1
#define HV_ABI_MINOR 3
#define HV_ABI_VERSION 0x00010003
/** Largest in_len and out_cap a single hypercall accepts (bytes). Larger gets HV_STATUS_TOO_LARGE. */
#define HV_MAX_TRANSFER 65536

/* HvStatus (host/abi/codes.ts) */
#define HV_STATUS_SUCCESS 0
/** The call code is not part of this ABI version. */
#define HV_STATUS_INVALID_CALL 1
/** A (ptr, len) pair does not lie inside the guest's current linear memory. */
#define HV_STATUS_INVALID_ADDRESS 2
/** Input is malformed: wrong length, unknown flag or id, value out of range. */
#define HV_STATUS_INVALID_ARGUMENT 3
/** The device behind this call was not granted to the partition. */
#define HV_STATUS_ACCESS_DENIED 4
/** out_cap cannot hold the result; nothing was written and nothing was consumed. */
#define HV_STATUS_BUFFER_TOO_SMALL 5
/** A rate limit refused the operation; what was refused is counted in the partition's metrics. */
#define HV_STATUS_RATE_LIMITED 6
/** A non-blocking operation found nothing to do. */
#define HV_STATUS_WOULD_BLOCK 7
/** The stream is closed and drained. */
#define HV_STATUS_END_OF_STREAM 8
/** in_len or out_cap is larger than HV_MAX_TRANSFER, or an output would exceed its limit. */
#define HV_STATUS_TOO_LARGE 9
/** A call-only operation (INPUT_*, OUTPUT_WRITE) made outside a host call to an export. (1.1) */
#define HV_STATUS_NOT_IN_CALL 10
/** A block request reaches past the end of the disk (sector + count > sector count). Since 1.1. */
#define HV_STATUS_OUT_OF_RANGE 11
/** The host could not complete the I/O (e.g. the disk image's file system failed). Since 1.1. */
#define HV_STATUS_IO_ERROR 12
/** Stored data failed authentication: the disk image was tampered with or is not this partition's. Since 1.1. */
#define HV_STATUS_INTEGRITY 13

/* HvCall (host/abi/codes.ts) */
/** Returns HV_ABI_VERSION. No input, no output. */
#define HV_CALL_VERSION 0x0000
/** Writes one 16-byte record per granted device into out; returns bytes written. */
#define HV_CALL_DEVICE_LIST 0x0001
/** Input: i32 exit code (4 bytes LE). Ends the partition; does not return. */
#define HV_CALL_EXIT 0x0002
/** Input: UTF-8 message. Ends the partition as trapped (ERR_GUEST_TRAP); does not return. */
#define HV_CALL_ABORT 0x0003
/** Returns the byte size of the argument block that ARGS_GET writes. */
#define HV_CALL_ARGS_SIZE 0x0004
/** Writes the arguments, each UTF-8 and NUL-terminated; returns bytes written. */
#define HV_CALL_ARGS_GET 0x0005
/** Inside a host call to an export: returns the byte size of the call's input. (1.1) */
#define HV_CALL_INPUT_SIZE 0x0006
/** Input: optional u32 offset. Writes input bytes from the offset, up to out_cap; returns the count. (1.1) */
#define HV_CALL_INPUT_READ 0x0007
/** Input: bytes appended to the call's output (bounded by maxOutputBytes); returns in_len. (1.1) */
#define HV_CALL_OUTPUT_WRITE 0x0008
/** Input: bytes for the console's stdout stream; returns in_len. */
#define HV_CALL_CONSOLE_WRITE 0x0100
/** Input: bytes for the console's stderr stream; returns in_len. */
#define HV_CALL_CONSOLE_WRITE_ERR 0x0101
/** Input: optional u32 flags (bit 0: non-blocking). Writes one input line without its newline; returns its length. */
#define HV_CALL_CONSOLE_READ 0x0102
/** Input: bytes for the stdout *byte stream*, delivered exactly (no line cutting); waits while the reader is behind (backpressure). Returns in_len; RATE_LIMITED (nothing written) over devices.console.rateLimit in reject mode; END_OF_STREAM when the reader has gone. Since 1.3. */
#define HV_CALL_CONSOLE_STREAM_WRITE 0x0103
/** As CONSOLE_STREAM_WRITE, for stderr. Since 1.3. */
#define HV_CALL_CONSOLE_STREAM_WRITE_ERR 0x0104
/** Input: none, or u32 flags (bit 0: non-blocking). Writes the next input bytes (at least 1, at most out_cap) exactly as the host sent them; returns the count. Since 1.3. */
#define HV_CALL_CONSOLE_STREAM_READ 0x0105
/** Input: u32 clock id (0 monotonic, 1 wall). Writes u64 nanoseconds (8 bytes LE); returns 8. */
#define HV_CALL_CLOCK_GET 0x0200
/** Fills all of out (out_cap bytes) with random bytes; returns out_cap. */
#define HV_CALL_ENTROPY_GET 0x0300
/** Writes the block geometry (16 bytes: u32 sector size, u16 max read sectors, u16 max write sectors, u64 sector count); returns 16. Since 1.1. */
#define HV_CALL_BLOCK_INFO 0x0400
/** Input: u64 sector, u32 count, u32 flags (16 bytes). Writes count sectors into out; returns bytes read. Since 1.1. */
#define HV_CALL_BLOCK_READ 0x0401
/** Input: u64 sector, u32 count, u32 flags (16-byte header), then count sectors of data. Returns bytes written. Since 1.1. */
#define HV_CALL_BLOCK_WRITE 0x0402
/** Makes every completed write durable (fsync); returns 0. Since 1.1. */
#define HV_CALL_BLOCK_FLUSH 0x0403
/** Input: u64 sector, u32 count, u32 flags (16 bytes). The sectors read as zeros afterwards; returns 0. Since 1.1. */
#define HV_CALL_BLOCK_DISCARD 0x0404
/** Writes the NIC's info (8 bytes: u32 address, u32 MTU); returns 8. Since 1.2. */
#define HV_CALL_NET_INFO 0x0500
/** Input: u32 destination address, then the payload (at most MTU bytes). Returns the payload length. Since 1.2; since 1.3 a destination that cannot take the frame (flow control) makes it wait up to 1 s, then WOULD_BLOCK. */
#define HV_CALL_NET_SEND 0x0501
/** Input: none (wait), or u32 flags and u32 timeout ms (8 bytes). Writes u32 source, u32 destination, payload; returns 8 + payload length. Since 1.2. */
#define HV_CALL_NET_RECV 0x0502
/** Input: none, or u32 timeout ms (wait that long for a frame), or (1.3) u32 timeout ms and u32 destination (writable: that destination takes a frame now; waits for readable or writable). Returns readiness bits (HV_NET_POLL_*). Since 1.2. */
#define HV_CALL_NET_POLL 0x0503
/** As NET_SEND, but never waits: WOULD_BLOCK at once when the frame cannot leave now. Since 1.3. */
#define HV_CALL_NET_TRY_SEND 0x0504
/** Writes the partition's module measurement (32 bytes) and spec hash (32 bytes); returns 64. Since 1.3. */
#define HV_CALL_ATTEST_INFO 0x0600
/** Input: 64 bytes of report data, then the verifier's nonce (0..64 bytes). Writes a signed 512-byte guest report; returns 512. Since 1.3. */
#define HV_CALL_ATTEST_REPORT 0x0601

/* HvDevice (host/abi/codes.ts) */
#define HV_DEVICE_CONSOLE 1
#define HV_DEVICE_CLOCK 2
#define HV_DEVICE_ENTROPY 3
/** Persistent, encrypted block storage. Since 1.1. */
#define HV_DEVICE_BLOCK 4
/** Virtual network interface on the host's switch. Since 1.2. */
#define HV_DEVICE_NET 5
/** Attestation: the partition's measurement and host-signed reports of it. Since 1.3. */
#define HV_DEVICE_ATTESTATION 6

/** Size of one DEVICE_LIST record: u32 id, u32 version, u32 param0, u32 param1. */
#define HV_DEVICE_RECORD_SIZE 16
/** CONSOLE_READ input flag: return WOULD_BLOCK instead of waiting for a line. */
#define HV_CONSOLE_READ_NONBLOCK 1
/** Block device: bytes per sector (fixed in ABI 1.x). */
#define HV_BLOCK_SECTOR_SIZE 4096
/** Size of the header that starts BLOCK_READ/WRITE/DISCARD input: u64 sector, u32 count, u32 flags. */
#define HV_BLOCK_HEADER_SIZE 16
/** Most sectors one BLOCK_READ or BLOCK_DISCARD moves: HV_MAX_TRANSFER / sector size. */
#define HV_BLOCK_MAX_READ_SECTORS 16
/** Most sectors one BLOCK_WRITE carries: the 16-byte header leaves room for 15 in HV_MAX_TRANSFER. */
#define HV_BLOCK_MAX_WRITE_SECTORS 15
/** BLOCK_WRITE flag: force unit access, the write is durable (fsync) before the call returns. */
#define HV_BLOCK_WRITE_FUA 1
/** Network: the broadcast address (every other NIC on the sender's segment). Since 1.2. */
#define HV_NET_BROADCAST 0xffffffffu
/** Network: size of the header NET_RECV writes before the payload (u32 source, u32 destination). */
#define HV_NET_HEADER_SIZE 8
/** NET_RECV flag: return WOULD_BLOCK instead of waiting for a frame. */
#define HV_NET_RECV_NONBLOCK 1
/** NET_POLL result bit: a frame is waiting in the receive queue. */
#define HV_NET_POLL_READABLE 1
/** NET_POLL result bit: the send budget admits a frame of MTU bytes now. */
#define HV_NET_POLL_WRITABLE 2
/** Largest MTU a NIC may be given (the payload of one frame). */
#define HV_NET_MAX_MTU 65528
/** Attestation: what ATTEST_INFO writes (measurement, spec hash). Since 1.3. */
#define HV_ATTEST_INFO_SIZE 64
/** Attestation: the report data a guest chooses (the first 64 bytes of ATTEST_REPORT's input). */
#define HV_ATTEST_DATA_SIZE 64
/** Attestation: the longest nonce (after the report data). */
#define HV_ATTEST_MAX_NONCE 64
/** Attestation: the size of a guest report (layout in docs/ABI.md). */
#define HV_ATTEST_REPORT_SIZE 512

/* HvClock (host/abi/codes.ts) */
#define HV_CLOCK_MONOTONIC 0
#define HV_CLOCK_WALL 1

/** DEVICE_LIST flags (param1). */
#define HV_DEVICE_FLAG_DETERMINISTIC 1
#define HV_DEVICE_FLAG_INPUT 1
/** Block device flag (param1): sectors are encrypted and authenticated at rest. */
#define HV_DEVICE_FLAG_ENCRYPTED 1

/**
 * The one import. `call` is an HV_CALL_* code; the input window is (in_ptr, in_len) and the
 * output window (out_ptr, out_cap), both inside the guest's memory and at most HV_MAX_TRANSFER
 * bytes. Returns a value >= 0 on success (its meaning depends on the call), or -HV_STATUS_*.
 */
__attribute__((import_module("hv"), import_name("hypercall")))
int32_t hv_hypercall(int32_t call, const void *in_ptr, int32_t in_len, void *out_ptr, int32_t out_cap);

/** Writes len bytes to the console's stdout stream (HV_CALL_CONSOLE_WRITE); returns len or -status. */
static inline int32_t hv_console_write(const void *bytes, int32_t len) {
  return hv_hypercall(HV_CALL_CONSOLE_WRITE, bytes, len, 0, 0);
}

/** Ends the partition with an exit code (HV_CALL_EXIT); does not return. */
static inline _Noreturn void hv_exit(int32_t code) {
  hv_hypercall(HV_CALL_EXIT, &code, (int32_t)sizeof code, 0, 0);
  __builtin_unreachable();
}

/** Ends the partition as trapped with a message (HV_CALL_ABORT); does not return. */
static inline _Noreturn void hv_abort(const char *message, int32_t len) {
  hv_hypercall(HV_CALL_ABORT, message, len, 0, 0);
  __builtin_unreachable();
}

#endif /* WASMVISOR_HV_H */
