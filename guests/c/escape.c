// escape: tries to leave its preopen (fd 3, argv[1] names it) by every route we know, through
// libc and through the raw WASI calls. Each attempt prints its errno; any success prints
// "ESCAPED" and the program exits 1. Expected: every attempt fails, exit 0.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <wasi/api.h>

static int escaped = 0;

static void raw_open(const char *what, const char *path, int follow) {
  __wasi_fd_t fd;
  __wasi_errno_t e = __wasi_path_open(3, follow ? __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW : 0, path, 0,
                                      __WASI_RIGHTS_FD_READ, 0, 0, &fd);
  if (e == 0) { escaped = 1; printf("%-24s ESCAPED\n", what); __wasi_fd_close(fd); }
  else printf("%-24s errno %d\n", what, e);
}

static void libc(const char *what, int result) {
  if (result >= 0) { escaped = 1; printf("%-24s ESCAPED\n", what); }
  else printf("%-24s errno %d\n", what, errno);
}

int main(int argc, char **argv) {
  const char *root = argc > 1 ? argv[1] : "/sandbox";
  char p[256];
  // Symlinks planted inside the sandbox, pointing out of it.
  snprintf(p, sizeof p, "%s/up", root); symlink("../..", p);
  snprintf(p, sizeof p, "%s/abs", root); symlink("/etc/passwd", p);
  snprintf(p, sizeof p, "%s/loop1", root); symlink("loop2", p);
  snprintf(p, sizeof p, "%s/loop2", root); symlink("loop1", p);
  snprintf(p, sizeof p, "%s/sub", root); mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/sub/back", root); symlink("../../etc", p);

  raw_open("dotdot", "../../etc/passwd", 1);
  raw_open("dotdot-deep", "sub/../../etc/passwd", 1);
  raw_open("absolute", "/etc/passwd", 1);
  raw_open("symlink-up", "up/etc/passwd", 1);
  raw_open("symlink-abs", "abs", 1);
  raw_open("symlink-abs-nofollow", "abs", 0);
  raw_open("symlink-nested", "sub/back/passwd", 1);
  raw_open("symlink-loop", "loop1", 1);
  raw_open("dotdot-only", "..", 1);

  libc("libc ../../etc/passwd", open("../../etc/passwd", O_RDONLY));
  libc("libc /etc/passwd", open("/etc/passwd", O_RDONLY));
  snprintf(p, sizeof p, "%s/../../etc/passwd", root);
  libc("libc root/../..", open(p, O_RDONLY));
  snprintf(p, sizeof p, "%s/up/etc/passwd", root);
  libc("libc symlink-up", open(p, O_RDONLY));
  snprintf(p, sizeof p, "%s/../escaped", root);
  libc("libc mkdir ../escaped", mkdir(p, 0755));
  libc("raw mkdir ../escaped", -(int)(errno = __wasi_path_create_directory(3, "../escaped")) ?: 0);
  libc("raw rename to ../x", -(int)(errno = __wasi_path_rename(3, "sub", 3, "../x")) ?: 0);
  libc("raw symlink+create", -(int)(errno = __wasi_path_create_directory(3, "up/escaped")) ?: 0);

  printf(escaped ? "ESCAPED\n" : "contained\n");
  return escaped;
}
