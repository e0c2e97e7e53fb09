// hello: argv, environment and exit code. `hello a b` prints its arguments; GREETING is read
// from the environment; the exit code is the number of arguments after argv[0].
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  const char *greeting = getenv("GREETING");
  printf("%s from wasi\n", greeting ? greeting : "hello");
  for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
  fprintf(stderr, "this goes to stderr\n");
  return argc - 1;
}
