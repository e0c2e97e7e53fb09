/**
 * The preview1 numbers (host/wasi/errno.ts) and import signatures (host/wasi/imports.ts) against
 * the witx they come from (wasi_snapshot_preview1), written out here independently: every program
 * built with wasi-libc or Rust's std has these numbers compiled in, and the loader's policy admits
 * exactly these signatures. A value that moves breaks every such program without a type error.
 */
import { describe, expect, it } from 'vitest';
import {
  ALL_RIGHTS,
  ClockId,
  DIRENT_HEADER,
  DIR_RIGHTS,
  Errno,
  EVENT_SIZE,
  EventType,
  FDSTAT_SIZE,
  FILESTAT_SIZE,
  FILE_RIGHTS,
  Fdflags,
  Filetype,
  Fstflags,
  LOOKUP_SYMLINK_FOLLOW,
  Oflags,
  PREOPENTYPE_DIR,
  Rights,
  SUBCLOCKFLAG_ABSTIME,
  SUBSCRIPTION_SIZE,
  WASI_MODULE,
  WRITE_RIGHTS,
  Whence,
  errnoName,
} from '../../host/wasi/errno.ts';
import { WASI_MODULE as IMPORTS_MODULE, WASI_SIGNATURES } from '../../host/wasi/imports.ts';

/** witx `errno`, in its order (the value is the position). */
const ERRNOS =
  'success 2big acces addrinuse addrnotavail afnosupport again already badf badmsg busy canceled child connaborted connrefused connreset deadlk destaddrreq dom dquot exist fault fbig hostunreach idrm ilseq inprogress intr inval io isconn isdir loop mfile mlink msgsize multihop nametoolong netdown netreset netunreach nfile nobufs nodev noent noexec nolck nolink nomem nomsg noprotoopt nospc nosys notconn notdir notempty notrecoverable notsock notsup notty nxio overflow ownerdead perm pipe proto protonosupport prototype range rofs spipe srch stale timedout txtbsy xdev notcapable'.split(
    ' ',
  );

/** witx `rights`, in bit order. */
const RIGHTS =
  'fd_datasync fd_read fd_seek fd_fdstat_set_flags fd_sync fd_tell fd_write fd_advise fd_allocate path_create_directory path_create_file path_link_source path_link_target path_open fd_readdir path_readlink path_rename_source path_rename_target path_filestat_get path_filestat_set_size path_filestat_set_times fd_filestat_get fd_filestat_set_size fd_filestat_set_times path_symlink path_remove_directory path_unlink_file poll_fd_readwrite sock_shutdown sock_accept'.split(
    ' ',
  );
const bits = (names: string[]): number => names.reduce((m, n) => m | (1 << RIGHTS.indexOf(n)), 0);

describe('preview1 numbers', () => {
  it('the module is wasi_snapshot_preview1, the same name in both files', () => {
    expect(WASI_MODULE).toBe('wasi_snapshot_preview1');
    expect(IMPORTS_MODULE).toBe('wasi_snapshot_preview1');
  });

  it('every errno has the witx value, and there are no others', () => {
    const want = Object.fromEntries(ERRNOS.map((n, i) => [n === '2big' ? 'TOOBIG' : n.toUpperCase(), i]));
    expect(Errno).toEqual(want);
    expect(Object.keys(Errno)).toHaveLength(77);
  });

  it('errnoName names each errno as C does (E2BIG for TOOBIG), and an unknown number by itself', () => {
    for (const [i, n] of ERRNOS.entries()) expect(errnoName(i)).toBe(`E${n.toUpperCase()}`);
    expect(errnoName(Errno.NOENT)).toBe('ENOENT');
    expect(errnoName(Errno.TOOBIG)).toBe('E2BIG');
    expect(errnoName(77)).toBe('E77');
    expect(errnoName(-1)).toBe('E-1');
  });

  it('file types, flags, whence, clocks, events and record sizes', () => {
    expect(Filetype).toEqual({ UNKNOWN: 0, BLOCK_DEVICE: 1, CHARACTER_DEVICE: 2, DIRECTORY: 3, REGULAR_FILE: 4, SOCKET_DGRAM: 5, SOCKET_STREAM: 6, SYMBOLIC_LINK: 7 });
    expect(Oflags).toEqual({ CREAT: 1, DIRECTORY: 2, EXCL: 4, TRUNC: 8 });
    expect(Fdflags).toEqual({ APPEND: 1, DSYNC: 2, NONBLOCK: 4, RSYNC: 8, SYNC: 16 });
    expect(Whence).toEqual({ SET: 0, CUR: 1, END: 2 });
    expect(ClockId).toEqual({ REALTIME: 0, MONOTONIC: 1, PROCESS_CPUTIME: 2, THREAD_CPUTIME: 3 });
    expect(Fstflags).toEqual({ ATIM: 1, ATIM_NOW: 2, MTIM: 4, MTIM_NOW: 8 });
    expect(EventType).toEqual({ CLOCK: 0, FD_READ: 1, FD_WRITE: 2 });
    expect([LOOKUP_SYMLINK_FOLLOW, SUBCLOCKFLAG_ABSTIME, PREOPENTYPE_DIR]).toEqual([1, 1, 0]);
    // fdstat: filetype u8, flags u16 at 2, two u64 rights at 8 and 16. filestat: 8 u64 fields (filetype padded).
    // dirent: next u64, ino u64, namlen u32, type u8 (+3). subscription: userdata, tag, 32-byte union. event: userdata, errno, type, fd_readwrite.
    expect({ FDSTAT_SIZE, FILESTAT_SIZE, DIRENT_HEADER, SUBSCRIPTION_SIZE, EVENT_SIZE }).toEqual({ FDSTAT_SIZE: 24, FILESTAT_SIZE: 64, DIRENT_HEADER: 24, SUBSCRIPTION_SIZE: 48, EVENT_SIZE: 32 });
  });

  it('every right has its witx bit; ALL_RIGHTS is the 30 of them', () => {
    expect(Object.fromEntries(Object.entries(Rights).map(([k, v]) => [k.toLowerCase(), Math.log2(v)]))).toEqual(Object.fromEntries(RIGHTS.map((n, i) => [n, i])));
    expect(ALL_RIGHTS).toBe(2 ** 30 - 1);
  });

  it('the rights a read-only preopen strips are every right that changes data, names or times', () => {
    expect(WRITE_RIGHTS).toBe(
      bits([
        'fd_datasync', 'fd_sync', 'fd_write', 'fd_allocate', 'fd_filestat_set_size', 'fd_filestat_set_times',
        'path_create_directory', 'path_create_file', 'path_link_source', 'path_link_target', 'path_rename_source', 'path_rename_target',
        'path_filestat_set_size', 'path_filestat_set_times', 'path_symlink', 'path_remove_directory', 'path_unlink_file',
      ]),
    );
    // Nothing that only reads is stripped.
    for (const r of ['fd_read', 'fd_seek', 'fd_tell', 'fd_readdir', 'path_open', 'path_readlink', 'path_filestat_get', 'fd_filestat_get', 'poll_fd_readwrite'])
      expect([r, WRITE_RIGHTS & bits([r])]).toEqual([r, 0]);
  });

  it('a file fd’s rights are those of data; a directory’s those of names (no read, write or seek of its own)', () => {
    expect(FILE_RIGHTS).toBe(
      bits(['fd_datasync', 'fd_read', 'fd_seek', 'fd_fdstat_set_flags', 'fd_sync', 'fd_tell', 'fd_write', 'fd_advise', 'fd_allocate', 'fd_filestat_get', 'fd_filestat_set_size', 'fd_filestat_set_times', 'poll_fd_readwrite']),
    );
    expect(DIR_RIGHTS).toBe(
      bits([
        'fd_fdstat_set_flags', 'fd_sync', 'fd_advise', 'path_create_directory', 'path_create_file', 'path_link_source', 'path_link_target', 'path_open',
        'fd_readdir', 'path_readlink', 'path_rename_source', 'path_rename_target', 'path_filestat_get', 'path_filestat_set_size', 'path_filestat_set_times',
        'fd_filestat_get', 'fd_filestat_set_times', 'path_symlink', 'path_remove_directory', 'path_unlink_file',
      ]),
    );
  });
});

describe('preview1 import signatures', () => {
  /** witx signatures, lowered to core Wasm: pointers, lengths, fds and flags are i32; 64-bit values i64. */
  const I = 'i32';
  const L = 'i64';
  const WITX: Record<string, [string[], string[]]> = {
    args_get: [[I, I], [I]],
    args_sizes_get: [[I, I], [I]],
    environ_get: [[I, I], [I]],
    environ_sizes_get: [[I, I], [I]],
    clock_res_get: [[I, I], [I]],
    clock_time_get: [[I, L, I], [I]],
    fd_advise: [[I, L, L, I], [I]],
    fd_allocate: [[I, L, L], [I]],
    fd_close: [[I], [I]],
    fd_datasync: [[I], [I]],
    fd_fdstat_get: [[I, I], [I]],
    fd_fdstat_set_flags: [[I, I], [I]],
    fd_fdstat_set_rights: [[I, L, L], [I]],
    fd_filestat_get: [[I, I], [I]],
    fd_filestat_set_size: [[I, L], [I]],
    fd_filestat_set_times: [[I, L, L, I], [I]],
    fd_pread: [[I, I, I, L, I], [I]],
    fd_prestat_get: [[I, I], [I]],
    fd_prestat_dir_name: [[I, I, I], [I]],
    fd_pwrite: [[I, I, I, L, I], [I]],
    fd_read: [[I, I, I, I], [I]],
    fd_readdir: [[I, I, I, L, I], [I]],
    fd_renumber: [[I, I], [I]],
    fd_seek: [[I, L, I, I], [I]],
    fd_sync: [[I], [I]],
    fd_tell: [[I, I], [I]],
    fd_write: [[I, I, I, I], [I]],
    path_create_directory: [[I, I, I], [I]],
    path_filestat_get: [[I, I, I, I, I], [I]],
    path_filestat_set_times: [[I, I, I, I, L, L, I], [I]],
    path_link: [[I, I, I, I, I, I, I], [I]],
    path_open: [[I, I, I, I, I, L, L, I, I], [I]],
    path_readlink: [[I, I, I, I, I, I], [I]],
    path_remove_directory: [[I, I, I], [I]],
    path_rename: [[I, I, I, I, I, I], [I]],
    path_symlink: [[I, I, I, I, I], [I]],
    path_unlink_file: [[I, I, I], [I]],
    poll_oneoff: [[I, I, I, I], [I]],
    proc_exit: [[I], []],
    proc_raise: [[I], [I]],
    sched_yield: [[], [I]],
    random_get: [[I, I], [I]],
    sock_accept: [[I, I, I], [I]],
    sock_recv: [[I, I, I, I, I, I], [I]],
    sock_send: [[I, I, I, I, I], [I]],
    sock_shutdown: [[I, I], [I]],
  };

  it('has the 46 preview1 functions, each with its witx signature, and nothing else', () => {
    const got = Object.fromEntries([...WASI_SIGNATURES].map(([name, sig]) => [name, [sig.params, sig.results]]));
    expect(got).toEqual(WITX);
    expect(WASI_SIGNATURES.size).toBe(46);
  });
});
