// misc: clocks, sleep (poll_oneoff), entropy, stdin and an explicit exit code.
// Reads stdin lines and echoes them with their length; exits with code 7.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(void) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  struct timespec nap = {0, 20 * 1000 * 1000};
  nanosleep(&nap, NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  long long ms = (b.tv_sec - a.tv_sec) * 1000LL + (b.tv_nsec - a.tv_nsec) / 1000000;
  printf("slept at least 20ms: %s\n", ms >= 19 ? "yes" : "no");
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  printf("wall clock after 2020: %s\n", now.tv_sec > 1577836800 ? "yes" : "no");
  unsigned char r[32];
  printf("getentropy: %s\n", getentropy(r, sizeof r) == 0 ? "ok" : "failed");
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    printf("read %zu: %s\n", strlen(line), line);
  }
  printf("eof\n");
  fflush(stdout);
  exit(7);
}
