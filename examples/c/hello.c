/*
 * A complete Wasmvisor guest in C, without libc: it imports only hv.hypercall (through hv.h)
 * and exports its memory and _start. It greets each of its arguments, reports the ABI version
 * and the devices it was granted, echoes console input upper-cased until end of input, and exits
 * with the number of arguments.
 *
 * Build (Debian: apt-get install clang lld):
 *   clang --target=wasm32 -nostdlib -Oz -I node_modules/wasmvisor/include \
 *         -Wl,--no-entry -Wl,--export=_start -o hello.wasm hello.c
 * Run:
 *   npx wasmvisor run hello.wasm Ada Grace      # exit status 2
 */
#include "hv.h"

static char args[HV_MAX_TRANSFER];
static char line[4096];
static char out[4096 + 64];

static int32_t append(int32_t at, const char *s) {
  while (*s && at < (int32_t)sizeof out) out[at++] = *s++;
  return at;
}

static int32_t append_u32(int32_t at, uint32_t v) {
  char digits[10];
  int32_t n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0 && at < (int32_t)sizeof out) out[at++] = digits[--n];
  return at;
}

/** Writes out[0..n) as one line; a failed write ends the guest with the status as its message. */
static void emit(int32_t n) {
  int32_t written = hv_console_write(out, n);
  if (written < 0) hv_abort("console write failed", 20);
}

void _start(void) {
  int32_t version = hv_hypercall(HV_CALL_VERSION, 0, 0, 0, 0);
  int32_t n = append(0, "Hello from C on ABI ");
  n = append_u32(n, (uint32_t)version >> 16);
  n = append(n, ".");
  n = append_u32(n, (uint32_t)version & 0xffff);
  n = append(n, "\n");
  emit(n);

  /* Arguments: NUL-terminated strings, one after another. */
  int32_t size = hv_hypercall(HV_CALL_ARGS_GET, 0, 0, args, (int32_t)sizeof args);
  if (size < 0) hv_abort("ARGS_GET failed", 15);
  int32_t count = 0;
  for (int32_t at = 0; at < size; count++) {
    n = append(0, "Hello, ");
    n = append(n, &args[at]);
    n = append(n, "!\n");
    emit(n);
    while (at < size && args[at] != 0) at++;
    at++;
  }

  /* Devices: one 16-byte record per granted device (u32 id first, little-endian). */
  uint32_t records[16 * 4];
  int32_t listed = hv_hypercall(HV_CALL_DEVICE_LIST, 0, 0, records, (int32_t)sizeof records);
  n = append(0, "devices:");
  for (int32_t i = 0; listed > 0 && i < listed / HV_DEVICE_RECORD_SIZE; i++) {
    uint32_t id = records[i * 4];
    n = append(n, id == HV_DEVICE_CONSOLE ? " console" : id == HV_DEVICE_CLOCK ? " clock" : id == HV_DEVICE_ENTROPY ? " entropy" : " other");
  }
  n = append(n, "\n");
  emit(n);

  /* Console input, a line per call, until end of input; without a console it is denied. */
  for (;;) {
    int32_t got = hv_hypercall(HV_CALL_CONSOLE_READ, 0, 0, line, (int32_t)sizeof line);
    if (got == -HV_STATUS_END_OF_STREAM || got == -HV_STATUS_ACCESS_DENIED) break;
    if (got < 0) hv_abort("CONSOLE_READ failed", 19);
    n = append(0, "> ");
    for (int32_t i = 0; i < got && n < (int32_t)sizeof out - 1; i++) {
      char c = line[i];
      out[n++] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    out[n++] = '\n';
    emit(n);
  }
  hv_exit(count);
}
