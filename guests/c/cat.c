// cat: copies each named file (or stdin without arguments) to stdout. A file that cannot be
// opened is reported on stderr with its errno, and the exit code is 1.
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int copy(FILE *in) {
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, stdout);
  return ferror(in) ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return copy(stdin);
  int status = 0;
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      fprintf(stderr, "cat: %s: errno %d\n", argv[i], errno);
      status = 1;
      continue;
    }
    status |= copy(f);
    fclose(f);
  }
  return status;
}
