// fs: a file-system exercise inside the preopen given as argv[1]. Every step prints one line
// with its result, so the output is the same on any correct WASI implementation.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STEP(name, expr) printf("%-28s %s\n", name, (expr) == 0 ? "ok" : strerror(errno))

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *path) {
  DIR *d = opendir(path);
  if (!d) { printf("opendir %s: %s\n", path, strerror(errno)); return; }
  char *names[64];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 64) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp);
  printf("ls %s:", path);
  for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
  printf("\n");
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: fs <dir>\n"); return 2; }
  char p[512], q[512];
#define P(rel) (snprintf(p, sizeof p, "%s/%s", argv[1], rel), p)
#define Q(rel) (snprintf(q, sizeof q, "%s/%s", argv[1], rel), q)
  STEP("mkdir work", mkdir(P("work"), 0755));
  STEP("mkdir work (again)", mkdir(P("work"), 0755));
  STEP("write work/a.txt", write_file(P("work/a.txt"), "alpha\n"));
  STEP("write work/b.txt", write_file(P("work/b.txt"), "bravo bravo\n"));
  struct stat st;
  STEP("stat work/b.txt", stat(P("work/b.txt"), &st));
  printf("size %lld regular %d\n", (long long)st.st_size, S_ISREG(st.st_mode));
  int fd = open(P("work/a.txt"), O_RDWR | O_APPEND);
  printf("open a.txt append: %s\n", fd >= 0 ? "ok" : strerror(errno));
  write(fd, "more\n", 5);
  off_t end = lseek(fd, 0, SEEK_END);
  printf("lseek end: %lld\n", (long long)end);
  char buf[64] = {0};
  ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
  printf("pread %zd: %s", got, buf);
  close(fd);
  STEP("rename b -> c", rename(P("work/b.txt"), Q("work/c.txt")));
  STEP("open b (gone)", open(P("work/b.txt"), O_RDONLY) < 0 ? (errno == ENOENT ? 0 : -1) : -1);
  list(P("work"));
  STEP("truncate c to 5", truncate(P("work/c.txt"), 5));
  STEP("stat c", stat(P("work/c.txt"), &st));
  printf("size %lld\n", (long long)st.st_size);
  STEP("rmdir work (not empty)", rmdir(P("work")));
  STEP("unlink a", unlink(P("work/a.txt")));
  STEP("unlink c", unlink(P("work/c.txt")));
  STEP("rmdir work", rmdir(P("work")));
  list(argv[1]);
  return 0;
}
