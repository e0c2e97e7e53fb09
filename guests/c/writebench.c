// writebench: writes argv[1] lines of 64 bytes (63 + newline) to stdout, one write(2) each:
// the fd_write benchmark's guest.
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000;
  char line[64];
  for (int i = 0; i < 63; i++) line[i] = 'a' + i % 26;
  line[63] = '\n';
  for (long i = 0; i < n; i++) write(1, line, sizeof line);
  return 0;
}
