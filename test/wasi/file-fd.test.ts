/**
 * A file fd's position and size at their edges, through the WASI table (in-thread harness): writes
 * that follow each other, append mode, every whence of fd_seek, the largest file (0x7fffffff
 * bytes: fd_seek past it is EOVERFLOW, a write or a size past it EFBIG, at it the quota decides),
 * and fd_sync / fd_filestat_get on the fds that are not files. POSIX (and Wasmtime) behave so; a
 * guest's libc relies on each, e.g. O_APPEND logs and lseek(SEEK_CUR) to find its position.
 */
import { describe, expect, it } from 'vitest';
import { Errno, Fdflags, Filetype, Oflags, Whence } from '../../host/wasi/errno.ts';
import { harness } from './harness.ts';

const PREOPEN = 3;
const ALL = BigInt((1 << 30) - 1);
const MAX_FILE = 0x7fffffff;

type H = ReturnType<typeof harness>;

function open(h: H, path: string, oflags = 0, fdflags = 0): number {
  const len = h.put(1024, path);
  expect(h.call('path_open', PREOPEN, 1, 1024, len, oflags, ALL, ALL, fdflags, 2048)).toBe(0);
  return h.dv.getUint32(2048, true);
}
/** One iovec at 3000 over `text` at 4096. */
function iov(h: H, text: string): void {
  h.dv.setUint32(3000, 4096, true);
  h.dv.setUint32(3004, h.put(4096, text), true);
}
function write(h: H, fd: number, text: string): number {
  iov(h, text);
  return h.call('fd_write', fd, 3000, 1, 3008);
}
function pwrite(h: H, fd: number, text: string, offset: bigint): number {
  iov(h, text);
  return h.call('fd_pwrite', fd, 3000, 1, offset, 3008);
}
/** The whole file, read from offset 0 with fd_pread. */
function contents(h: H, fd: number): string {
  h.dv.setUint32(3000, 8192, true);
  h.dv.setUint32(3004, 1024, true);
  expect(h.call('fd_pread', fd, 3000, 1, 0n, 3008)).toBe(0);
  return h.get(8192, h.dv.getUint32(3008, true));
}
/** fd_seek's answer: [errno, new position]. */
function seek(h: H, fd: number, offset: bigint, whence: number): [number, bigint] {
  h.dv.setBigUint64(3100, 0xdeadn, true);
  const e = h.call('fd_seek', fd, offset, whence, 3100);
  return [e, h.dv.getBigUint64(3100, true)];
}

describe('a file fd: position, append, seek and size at their edges', () => {
  it('writes follow each other: each starts where the last one ended', () => {
    const h = harness();
    const fd = open(h, 'seq.txt', Oflags.CREAT);
    expect(write(h, fd, 'abc')).toBe(0);
    expect(write(h, fd, 'de')).toBe(0);
    expect(contents(h, fd)).toBe('abcde');
    expect(seek(h, fd, 0n, Whence.CUR)).toEqual([0, 5n]);
  });

  it('append mode writes at the end, wherever the position was, and leaves the position there', () => {
    const h = harness({ entries: [{ path: 'log.txt', kind: 'file', data: new TextEncoder().encode('0123') }] });
    const fd = open(h, 'log.txt', 0, Fdflags.APPEND);
    expect(seek(h, fd, 1n, Whence.SET)).toEqual([0, 1n]);
    expect(write(h, fd, 'ab')).toBe(0);
    expect(contents(h, fd)).toBe('0123ab');
    expect(seek(h, fd, 0n, Whence.CUR)).toEqual([0, 6n]);
    // Without append, the same write lands at the position.
    const plain = open(h, 'log.txt');
    expect(seek(h, plain, 1n, Whence.SET)).toEqual([0, 1n]);
    expect(write(h, plain, 'xy')).toBe(0);
    expect(contents(h, plain)).toBe('0xy3ab');
  });

  it('fd_seek: SET from 0, CUR from the position, END from the size; an unknown whence is EINVAL', () => {
    const h = harness({ entries: [{ path: 's.txt', kind: 'file', data: new TextEncoder().encode('0123456789') }] });
    const fd = open(h, 's.txt');
    expect(seek(h, fd, 4n, Whence.SET)).toEqual([0, 4n]);
    expect(seek(h, fd, 3n, Whence.CUR)).toEqual([0, 7n]);
    expect(seek(h, fd, -2n, Whence.CUR)).toEqual([0, 5n]);
    expect(seek(h, fd, -1n, Whence.END)).toEqual([0, 9n]);
    expect(seek(h, fd, 2n, Whence.END)).toEqual([0, 12n]); // past the end is allowed
    expect(seek(h, fd, 0n, 3)[0]).toBe(Errno.INVAL);
    expect(seek(h, fd, 0n, Whence.CUR)).toEqual([0, 12n]); // a refused seek moves nothing
  });

  it('fd_seek to 0 is allowed and to -1 is EINVAL; to the largest size is allowed and one past it EOVERFLOW', () => {
    const h = harness();
    const fd = open(h, 'big.txt', Oflags.CREAT);
    expect(seek(h, fd, 3n, Whence.SET)).toEqual([0, 3n]);
    expect(seek(h, fd, -3n, Whence.CUR)).toEqual([0, 0n]);
    expect(seek(h, fd, -1n, Whence.SET)[0]).toBe(Errno.INVAL);
    expect(seek(h, fd, BigInt(MAX_FILE), Whence.SET)).toEqual([0, BigInt(MAX_FILE)]);
    expect(seek(h, fd, BigInt(MAX_FILE) + 1n, Whence.SET)[0]).toBe(Errno.OVERFLOW);
    expect(seek(h, fd, 1n, Whence.CUR)[0]).toBe(Errno.OVERFLOW);
  });

  it('a write that would end past the largest file is EFBIG; one that ends at it meets the byte quota (ENOSPC)', () => {
    const h = harness();
    const fd = open(h, 'edge.txt', Oflags.CREAT);
    expect(pwrite(h, fd, 'z', BigInt(MAX_FILE - 1))).toBe(Errno.NOSPC);
    expect(pwrite(h, fd, 'z', BigInt(MAX_FILE))).toBe(Errno.FBIG);
    expect(pwrite(h, fd, 'zz', BigInt(MAX_FILE - 1))).toBe(Errno.FBIG);
    expect(seek(h, fd, BigInt(MAX_FILE), Whence.SET)[0]).toBe(0);
    expect(write(h, fd, 'z')).toBe(Errno.FBIG);
    expect(contents(h, fd)).toBe('');
  });

  it('fd_filestat_set_size: 0 empties the file, the largest size meets the quota, one past it is EFBIG', () => {
    const h = harness({ entries: [{ path: 't.txt', kind: 'file', data: new TextEncoder().encode('abc') }] });
    const fd = open(h, 't.txt');
    expect(h.call('fd_filestat_set_size', fd, 0n)).toBe(0);
    expect(contents(h, fd)).toBe('');
    expect(h.call('fd_filestat_set_size', fd, BigInt(MAX_FILE))).toBe(Errno.NOSPC);
    expect(h.call('fd_filestat_set_size', fd, BigInt(MAX_FILE) + 1n)).toBe(Errno.FBIG);
    expect(h.call('fd_filestat_set_size', fd, 2n)).toBe(0);
    expect(contents(h, fd)).toBe('\0\0');
  });
});

describe('fds that are not files', () => {
  it('fd_sync on stdout succeeds (nothing is buffered); fd_filestat_get on a preopen is its directory', () => {
    const h = harness();
    expect(h.call('fd_sync', 1)).toBe(0);
    h.bytes.fill(0xff, 3200, 3264);
    expect(h.call('fd_filestat_get', PREOPEN, 3200)).toBe(0);
    expect(h.bytes[3200 + 16]).toBe(Filetype.DIRECTORY); // filetype: after dev and ino
  });
});
