// stream: byte-exact stdio, for the tests and the bench. Raw read(2)/write(2), no stdio buffering.
//   stream gen <bytes> [chunk]    writes <bytes> bytes of a fixed pattern, byte i = (i*31 + (i>>10)) & 255,
//                                 in writes of [chunk] bytes (default 65536)
//   stream copy [chunk]           copies stdin to stdout exactly
//   stream bytes                  every byte value 0..255 four times, "\r\n", 0xff, then 70000 'a' and no newline
//   stream lines <count>          <count> short lines through printf (stdio)
//   stream flood <count> <size>   <count> writes of <size> bytes; counts the ones refused with EAGAIN and
//                                 prints "refused <writes> <bytes> written <bytes>" on stderr at the end,
//                                 after a 1.2 s pause (with a clock) so a rate limit's bucket has refilled
//                                 (the pause is retried while a hypercall rate limit refuses it)
//   stream put <path> <bytes>     writes <bytes> bytes of the gen pattern to the file <path> (created or truncated)
//   stream get <path> [max]       copies the file <path> (at most [max] bytes) to stdout
// A write error other than EAGAIN (e.g. EPIPE when the reader has gone) is printed on stderr as
// "stream: write: errno N" and the exit code is 3.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned char buf[1 << 20];

static int put_fd(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      fprintf(stderr, "stream: write: errno %d\n", errno);
      return 3;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int put(const unsigned char *p, size_t n) { return put_fd(1, p, n); }

static void pattern(unsigned char *out, long long at, size_t n) {
  for (size_t k = 0; k < n; k++) {
    unsigned long long i = (unsigned long long)at + k;
    out[k] = (unsigned char)(i * 31 + (i >> 10));
  }
}

static size_t chunk_arg(int argc, char **argv, int at) {
  long c = argc > at ? atol(argv[at]) : 65536;
  if (c < 1) c = 1;
  if (c > (long)sizeof buf) c = sizeof buf;
  return (size_t)c;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "gen") == 0) {
    long long total = argc > 2 ? atoll(argv[2]) : 0;
    size_t chunk = chunk_arg(argc, argv, 3);
    for (long long at = 0; at < total;) {
      size_t n = total - at < (long long)chunk ? (size_t)(total - at) : chunk;
      pattern(buf, at, n);
      int e = put(buf, n);
      if (e) return e;
      at += (long long)n;
    }
    return 0;
  }
  if (strcmp(mode, "copy") == 0) {
    size_t chunk = chunk_arg(argc, argv, 2);
    for (;;) {
      ssize_t r = read(0, buf, chunk);
      if (r < 0) {
        fprintf(stderr, "stream: read: errno %d\n", errno);
        return 4;
      }
      if (r == 0) return 0;
      int e = put(buf, (size_t)r);
      if (e) return e;
    }
  }
  if (strcmp(mode, "bytes") == 0) {
    size_t n = 0;
    for (int round = 0; round < 4; round++)
      for (int b = 0; b < 256; b++) buf[n++] = (unsigned char)b;
    buf[n++] = '\r';
    buf[n++] = '\n';
    buf[n++] = 0xff;
    memset(buf + n, 'a', 70000);
    n += 70000;
    return put(buf, n);
  }
  if (strcmp(mode, "lines") == 0) {
    long count = argc > 2 ? atol(argv[2]) : 0;
    for (long i = 0; i < count; i++) printf("line %ld\n", i);
    return fflush(stdout) == 0 ? 0 : 3;
  }
  if (strcmp(mode, "flood") == 0) {
    long count = argc > 2 ? atol(argv[2]) : 0;
    size_t size = chunk_arg(argc, argv, 3);
    memset(buf, 'f', size);
    long long refused_writes = 0, refused_bytes = 0, written = 0;
    for (long i = 0; i < count; i++) {
      ssize_t w = write(1, buf, size);
      if (w >= 0) written += w;
      else if (errno == EAGAIN) refused_writes++, refused_bytes += (long long)size;
      else {
        fprintf(stderr, "stream: write: errno %d\n", errno);
        return 3;
      }
    }
    // A sleep refused by a rate limit is retried (wasi-libc's nanosleep reports any failure as
    // ENOTSUP, so the clock tells "refused" (EAGAIN) from "no clock" (ENOTCAPABLE)).
    struct timespec pause = {1, 200 * 1000 * 1000}, now;
    while (nanosleep(&pause, NULL) != 0) {
      if (clock_gettime(CLOCK_MONOTONIC, &now) != 0 && errno != EAGAIN) break;
    }
    fprintf(stderr, "refused %lld %lld written %lld\n", refused_writes, refused_bytes, written);
    return 0;
  }
  if (strcmp(mode, "put") == 0 && argc > 3) {
    int fd = open(argv[2], O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) {
      fprintf(stderr, "stream: open %s: errno %d\n", argv[2], errno);
      return 4;
    }
    long long total = atoll(argv[3]);
    for (long long at = 0; at < total;) {
      size_t n = total - at < 65536 ? (size_t)(total - at) : 65536;
      pattern(buf, at, n);
      if (put_fd(fd, buf, n)) return 3;
      at += (long long)n;
    }
    return close(fd) == 0 ? 0 : 3;
  }
  if (strcmp(mode, "get") == 0 && argc > 2) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) {
      fprintf(stderr, "stream: open %s: errno %d\n", argv[2], errno);
      return 4;
    }
    long long max = argc > 3 ? atoll(argv[3]) : -1;
    for (long long done = 0; max < 0 || done < max;) {
      size_t want = max < 0 || max - done > 65536 ? 65536 : (size_t)(max - done);
      ssize_t r = read(fd, buf, want);
      if (r < 0) {
        fprintf(stderr, "stream: read: errno %d\n", errno);
        return 4;
      }
      if (r == 0) break;
      if (put(buf, (size_t)r)) return 3;
      done += r;
    }
    return 0;
  }
  fprintf(stderr, "usage: stream gen <bytes> [chunk] | copy [chunk] | bytes | lines <count> | flood <count> <size> | put <path> <bytes> | get <path> [max]\n");
  return 2;
}
