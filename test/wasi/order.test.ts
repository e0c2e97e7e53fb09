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

describe('WASI: fd_renumber', () => {
  const A = (1n << 30n) - 1n;
  const openFile = (h: ReturnType<typeof harness>, name: string, oflags = 1): number => {
    h.put(0, name);
    expect(h.call('path_open', 3, 0, 0, name.length, oflags, A, A, 0, 100)).toBe(Errno.SUCCESS);
    return h.dv.getUint32(100, true);
  };
  it('moves from onto to, closing what to held; from is free again; the same fd twice changes nothing', () => {
    const h = harness();
    const a = openFile(h, 'a');
    expect(h.call('fd_renumber', a, a)).toBe(Errno.SUCCESS);
    expect(h.call('fd_fdstat_get', a, 200)).toBe(Errno.SUCCESS);
    // Onto stdout: stdout is closed, writes to 1 now go to the file.
    expect(h.call('fd_renumber', a, 1)).toBe(Errno.SUCCESS);
    expect(h.call('fd_fdstat_get', a, 200)).toBe(Errno.BADF);
    h.put(300, 'hi');
    h.dv.setUint32(400, 300, true);
    h.dv.setUint32(404, 2, true);
    expect(h.call('fd_write', 1, 400, 1, 408)).toBe(Errno.SUCCESS);
    expect(h.stdout).toEqual([]);
    h.put(0, 'a');
    expect(h.call('path_filestat_get', 3, 0, 0, 1, 500)).toBe(Errno.SUCCESS);
    expect(h.dv.getBigUint64(532, true)).toBe(2n);
    // The freed number is the next one path_open hands out.
    expect(openFile(h, 'b')).toBe(a);
  });

  it('EBADF when either fd is not open (a number past the table, past 2^31, a closed one), changing nothing', () => {
    const h = harness();
    const a = openFile(h, 'a');
    for (const [from, to] of [
      [a, 50],
      [50, a],
      [a, 0xffffffff],
      [0x80000000, 1],
      [a, -1],
    ]) {
      expect(h.call('fd_renumber', from!, to!), `${from} ${to}`).toBe(Errno.BADF);
    }
    expect(h.call('fd_fdstat_get', a, 200)).toBe(Errno.SUCCESS);
    expect(h.call('fd_fdstat_get', 1, 200)).toBe(Errno.SUCCESS);
    expect(h.call('fd_close', a)).toBe(Errno.SUCCESS);
    expect(h.call('fd_renumber', a, 1)).toBe(Errno.BADF);
    expect(h.call('fd_renumber', 1, a)).toBe(Errno.BADF);
  });

  it('frees a slot under maxFds, and onto a preopen closes the preopen (fd_prestat_get: EBADF)', () => {
    const h = harness({ quotas: { maxFds: 5 } });
    const a = openFile(h, 'a'); // 0, 1, 2, 3, a: full
    h.put(0, 'b');
    expect(h.call('path_open', 3, 0, 0, 1, 1, A, A, 0, 100)).toBe(Errno.MFILE);
    expect(h.call('fd_renumber', a, 2)).toBe(Errno.SUCCESS); // stderr closed: four open
    expect(openFile(h, 'b')).toBe(a);
    expect(h.call('fd_renumber', 2, 3)).toBe(Errno.SUCCESS); // the preopen closed
    expect(h.call('fd_prestat_get', 3, 200)).toBe(Errno.BADF);
    expect(h.call('path_open', 3, 0, 0, 1, 0, A, A, 0, 100)).toBe(Errno.NOTDIR); // fd 3 is the file now
  });

  it('an unlinked file whose last fd a renumber closes gives its bytes back to the quota', () => {
    const h = harness({ quotas: { maxBytes: 64 } });
    const a = openFile(h, 'a');
    h.put(300, 'x'.repeat(60));
    h.dv.setUint32(400, 300, true);
    h.dv.setUint32(404, 60, true);
    expect(h.call('fd_write', a, 400, 1, 408)).toBe(Errno.SUCCESS);
    h.put(0, 'a');
    expect(h.call('path_unlink_file', 3, 0, 1)).toBe(Errno.SUCCESS);
    const b = openFile(h, 'b');
    expect(h.call('fd_write', b, 400, 1, 408)).toBe(Errno.NOSPC); // a's 60 bytes still held
    expect(h.call('fd_renumber', b, a)).toBe(Errno.SUCCESS); // closes a's last fd
    expect(h.call('fd_write', a, 400, 1, 408)).toBe(Errno.SUCCESS);
  });
});
