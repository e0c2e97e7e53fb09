/**
 * The order docs/ABI.md states for every WASI call: the fd and its rights (EBADF, ENOTCAPABLE,
 * EROFS) before any pointer (EFAULT) or flag (EINVAL), so an outside tester that passes a bad fd
 * together with a bad window or bad flags gets EBADF from every path call, as from the fd calls.
 */
import { describe, expect, it } from 'vitest';
import { Errno } from '../../host/wasi/errno.ts';
import { harness } from './harness.ts';

const BAD = 0xfffffff0; // past the end of the 1-page memory
const NOFD = 99;

describe('WASI: the fd is checked before pointers and flags', () => {
  it('path calls with a bad dirfd answer EBADF whatever their windows and flags hold, and report no fault', () => {
    const h = harness();
    h.put(0, 'f');
    expect(h.call('path_open', NOFD, 0, 0, 1, 0, 0n, 0n, 0, BAD)).toBe(Errno.BADF);
    expect(h.call('path_readlink', NOFD, 0, 1, BAD, 16, BAD)).toBe(Errno.BADF);
    expect(h.call('path_filestat_get', NOFD, 0, 0, 1, BAD)).toBe(Errno.BADF);
    expect(h.call('path_symlink', BAD, 4, NOFD, 0, 1)).toBe(Errno.BADF);
    expect(h.call('path_filestat_set_times', NOFD, 0, 0, 1, 0n, 0n, 0xff)).toBe(Errno.BADF);
    // the fd calls already did so
    expect(h.call('fd_filestat_set_times', NOFD, 0n, 0n, 0xff)).toBe(Errno.BADF);
    expect(h.call('fd_filestat_get', NOFD, BAD)).toBe(Errno.BADF);
    expect(h.faults).toEqual([]);
  });

  it('path_rename and path_link check both fds before the source path and the flags', () => {
    const h = harness();
    expect(h.call('path_rename', 3, BAD, 1, NOFD, 0, 1)).toBe(Errno.BADF);
    expect(h.call('path_link', 3, 1, BAD, 1, NOFD, 0, 1)).toBe(Errno.BADF);
    expect(h.call('path_link', 3, 1, 0, 1, 1, 0, 1)).toBe(Errno.NOTDIR); // fd 1 is stdout
    expect(h.faults).toEqual([]);
    // With both fds good, the same arguments still answer what they did.
    expect(h.call('path_rename', 3, BAD, 1, 3, 0, 1)).toBe(Errno.FAULT);
    expect(h.call('path_link', 3, 1, 0, 1, 3, 0, 1)).toBe(Errno.INVAL);
    expect(h.faults).toEqual(['path_rename']);
  });

  it('with a good fd, a bad window is still EFAULT, bad flags EINVAL, and nothing changes', () => {
    const h = harness({ entries: [{ path: 'f', kind: 'file', data: new Uint8Array([1]) }] });
    h.put(0, 'f');
    h.put(16, 'g');
    expect(h.call('path_open', 3, 0, 0, 1, 0, 0n, 0n, 0, BAD)).toBe(Errno.FAULT);
    expect(h.call('path_readlink', 3, 0, 1, 0, 16, BAD)).toBe(Errno.FAULT);
    expect(h.call('path_filestat_get', 3, 0, 0, 1, BAD)).toBe(Errno.FAULT);
    expect(h.call('path_symlink', BAD, 4, 3, 16, 1)).toBe(Errno.FAULT);
    expect(h.call('path_filestat_set_times', 3, 0, 0, 1, 0n, 0n, 0xff)).toBe(Errno.INVAL);
    expect(h.call('path_filestat_get', 3, 0, 16, 1, 256)).toBe(Errno.NOENT); // no symlink g was made
    // path_open with O_CREAT and a bad out window created nothing
    expect(h.call('path_open', 3, 0, 16, 1, 1, 0n, 0n, 0, BAD)).toBe(Errno.FAULT);
    expect(h.call('path_filestat_get', 3, 0, 16, 1, 256)).toBe(Errno.NOENT);
  });

  it('a read-only preopen answers EROFS to a change before it looks at the windows', () => {
    const h = harness({ readonly: true });
    h.put(0, 'f');
    expect(h.call('path_open', 3, 0, 0, 1, 1, 0n, 0n, 0, BAD)).toBe(Errno.ROFS);
    expect(h.call('path_symlink', BAD, 4, 3, 0, 1)).toBe(Errno.ROFS);
    expect(h.call('path_filestat_set_times', 3, 0, 0, 1, 0n, 0n, 0xff)).toBe(Errno.ROFS);
  });
});

describe('WASI: a flag bit preview1 does not define is EINVAL', () => {
  const A = (1n << 30n) - 1n;
  it('path_open: unknown oflags, fdflags or lookupflags bits are EINVAL and create nothing; every defined bit is taken', () => {
    const h = harness({ entries: [{ path: 'f', kind: 'file', data: new Uint8Array([1]) }] });
    h.put(0, 'n');
    for (const [oflags, fdflags, dirflags] of [
      [1 | 0x10, 0, 0],
      [1 | 0x8000, 0, 0],
      [1, 0x20, 0],
      [1, 0xffff, 0],
      [1, 0, 2],
      [1, 0, 0x80000000],
    ] as const) {
      expect(h.call('path_open', 3, dirflags, 0, 1, oflags, A, A, fdflags, 100), `${oflags} ${fdflags} ${dirflags}`).toBe(Errno.INVAL);
      expect(h.call('path_filestat_get', 3, 0, 0, 1, 256)).toBe(Errno.NOENT);
    }
    // The bad fd still comes first.
    expect(h.call('path_open', NOFD, 2, 0, 1, 0x10, A, A, 0x20, 100)).toBe(Errno.BADF);
    // Every defined bit: CREAT|EXCL|TRUNC, all five fdflags, SYMLINK_FOLLOW.
    expect(h.call('path_open', 3, 1, 0, 1, 1 | 4 | 8, A, A, 0x1f, 100)).toBe(Errno.SUCCESS);
    const fd = h.dv.getUint32(100, true);
    expect(h.call('fd_fdstat_get', fd, 200)).toBe(Errno.SUCCESS);
    expect(h.dv.getUint16(202, true)).toBe(0x1f);
  });

  it('path_filestat_get, path_filestat_set_times and path_link: an unknown lookupflags bit is EINVAL', () => {
    const h = harness({ entries: [{ path: 'f', kind: 'file', data: new Uint8Array([1]) }] });
    h.put(0, 'f');
    h.put(16, 'g');
    expect(h.call('path_filestat_get', 3, 2, 0, 1, 256)).toBe(Errno.INVAL);
    expect(h.call('path_filestat_get', 3, 1, 0, 1, 256)).toBe(Errno.SUCCESS);
    expect(h.call('path_filestat_set_times', 3, 4, 0, 1, 0n, 0n, 0)).toBe(Errno.INVAL);
    expect(h.call('path_filestat_set_times', 3, 1, 0, 1, 0n, 0n, 0)).toBe(Errno.SUCCESS);
    expect(h.call('path_link', 3, 2, 0, 1, 3, 16, 1)).toBe(Errno.INVAL);
    expect(h.call('path_filestat_get', 3, 0, 16, 1, 256)).toBe(Errno.NOENT);
    expect(h.call('path_link', 3, 0, 0, 1, 3, 16, 1)).toBe(Errno.SUCCESS);
  });
});

describe('WASI: stdio rights, exactly as docs/ABI.md lists them', () => {
  it('fd 0 reads, fd 1 and 2 write and sync; all three set flags, stat and poll; none inherits', () => {
    const h = harness();
    const R = (bits: number[]) => bits.reduce((a, b) => a | (1n << BigInt(b)), 0n);
    // preview1 bit numbers: fd_datasync 0, fd_read 1, fd_fdstat_set_flags 3, fd_sync 4, fd_write 6, fd_filestat_get 21, poll_fd_readwrite 27
    const common = [3, 21, 27];
    for (const [fd, bits] of [
      [0, [1, ...common]],
      [1, [6, 4, 0, ...common]],
      [2, [6, 4, 0, ...common]],
    ] as const) {
      expect(h.call('fd_fdstat_get', fd, 100)).toBe(Errno.SUCCESS);
      expect(h.dv.getBigUint64(108, true), `fd ${fd} base`).toBe(R([...bits]));
      expect(h.dv.getBigUint64(116, true), `fd ${fd} inheriting`).toBe(0n);
    }
    expect(h.call('fd_seek', 1, 0n, 0, 200)).toBe(Errno.NOTCAPABLE);
    expect(h.call('fd_tell', 0, 200)).toBe(Errno.NOTCAPABLE);
    expect(h.call('fd_advise', 1, 0n, 0n, 0)).toBe(Errno.NOTCAPABLE);
    expect(h.call('fd_sync', 1)).toBe(Errno.SUCCESS);
    expect(h.call('fd_sync', 0)).toBe(Errno.NOTCAPABLE);
  });
});
