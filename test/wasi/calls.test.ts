import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestExit } from '../../host/abi/dispatcher.ts';
import { Errno, Oflags, Rights, Whence } from '../../host/wasi/errno.ts';
import { WASI_SIGNATURES } from '../../host/wasi/imports.ts';
import { harness } from './harness.ts';

const PREOPEN = 3;
const ALL = BigInt((1 << 30) - 1);

/** path_open relative to the preopen; returns [errno, fd]. */
function open(h: ReturnType<typeof harness>, path: string, oflags = 0, rights = ALL, fdflags = 0, dirfd = PREOPEN, follow = 1): [number, number] {
  const len = h.put(1024, path);
  const e = h.call('path_open', dirfd, follow, 1024, len, oflags, rights, ALL, fdflags, 2048);
  return [e, h.dv.getUint32(2048, true)];
}
function write(h: ReturnType<typeof harness>, fd: number, text: string): number {
  const len = h.put(4096, text);
  h.dv.setUint32(3000, 4096, true);
  h.dv.setUint32(3004, len, true);
  return h.call('fd_write', fd, 3000, 1, 3008);
}
function read(h: ReturnType<typeof harness>, fd: number, cap = 256): [number, string] {
  h.dv.setUint32(3000, 8192, true);
  h.dv.setUint32(3004, cap, true);
  const e = h.call('fd_read', fd, 3000, 1, 3008);
  return [e, h.get(8192, h.dv.getUint32(3008, true))];
}

describe('WASI table', () => {
  it('implements every preview1 function, with the signature the policy admits', () => {
    const h = harness();
    expect(Object.keys(h.wasi.imports).sort()).toEqual([...WASI_SIGNATURES.keys()].sort());
  });

  it('never throws and never writes on failure, whatever the arguments (property)', () => {
    const i32 = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, 1, 2, 3, 4, 65535, 65536, 65532, -1), fc.integer({ min: 0, max: 70000 }));
    const i64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, 1n, -1n, ALL));
    const names = [...WASI_SIGNATURES.keys()].filter((n) => n !== 'proc_exit' && n !== 'poll_oneoff');
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.array(fc.tuple(i32, i64), { minLength: 9, maxLength: 9 }), (name, raw) => {
        const h = harness({ entries: [{ path: 'f', kind: 'file', data: new Uint8Array([1, 2, 3]) }] });
        h.bytes.fill(0x5a);
        const before = h.bytes.slice();
        const sig = WASI_SIGNATURES.get(name)!;
        const args = sig.params.map((t, i) => (t === 'i64' ? raw[i]![1] : raw[i]![0]));
        const r = h.call(name, ...args);
        expect(Number.isInteger(r) && r >= 0 && r <= 76).toBe(true);
        if (r !== Errno.SUCCESS) expect(Buffer.compare(h.bytes, before)).toBe(0);
      }),
      { numRuns: 600 },
    );
  });

  it('answers EFAULT for a pointer past the end of memory, and reports it', () => {
    const h = harness();
    expect(h.call('args_sizes_get', 65533, 0)).toBe(Errno.FAULT);
    expect(h.call('fd_write', 1, 65530, 2, 0)).toBe(Errno.FAULT);
    expect(h.call('clock_time_get', 0, 0n, 65535)).toBe(Errno.FAULT);
    expect(h.call('random_get', 65000, 1000)).toBe(Errno.FAULT);
    expect(h.call('fd_prestat_get', PREOPEN, -8)).toBe(Errno.FAULT);
    // An iovec whose buffer lies outside memory: nothing is written to stdout at all.
    h.dv.setUint32(100, 200, true);
    h.dv.setUint32(104, 4, true);
    h.dv.setUint32(108, 65534, true);
    h.dv.setUint32(112, 4, true);
    expect(h.call('fd_write', 1, 100, 2, 120)).toBe(Errno.FAULT);
    expect(h.stdout).toEqual([]);
    expect(h.faults).toContain('fd_write');
  });

  it('gathers iovecs for fd_write and caps one call at 64 KiB (a short write)', () => {
    const h = harness({ pages: 3 });
    h.put(200, 'hello ');
    h.put(300, 'world\n');
    h.dv.setUint32(100, 200, true);
    h.dv.setUint32(104, 6, true);
    h.dv.setUint32(108, 300, true);
    h.dv.setUint32(112, 6, true);
    expect(h.call('fd_write', 1, 100, 2, 120)).toBe(0);
    expect(h.dv.getUint32(120, true)).toBe(12);
    expect(h.stdout.join('')).toBe('hello world\n');
    h.dv.setUint32(100, 0, true);
    h.dv.setUint32(104, 100_000, true);
    expect(h.call('fd_write', 2, 100, 1, 120)).toBe(0);
    expect(h.dv.getUint32(120, true)).toBe(65536);
  });

  it('writes, reads, seeks and tells on a virtual file', () => {
    const h = harness();
    const [e, fd] = open(h, 'notes.txt', Oflags.CREAT);
    expect(e).toBe(0);
    expect(write(h, fd, 'abcdef')).toBe(0);
    expect(h.call('fd_seek', fd, 2n, Whence.SET, 3100)).toBe(0);
    expect(h.dv.getBigUint64(3100, true)).toBe(2n);
    expect(read(h, fd)).toEqual([0, 'cdef']);
    expect(h.call('fd_tell', fd, 3100)).toBe(0);
    expect(h.dv.getBigUint64(3100, true)).toBe(6n);
    expect(h.call('fd_seek', fd, -100n, Whence.CUR, 3100)).toBe(Errno.INVAL);
    expect(h.call('fd_close', fd)).toBe(0);
    expect(h.call('fd_close', fd)).toBe(Errno.BADF);
  });

  it('enforces rights: an fd opened read-only cannot write (ENOTCAPABLE), rights only narrow', () => {
    const h = harness({ entries: [{ path: 'r.txt', kind: 'file', data: new Uint8Array([65]) }] });
    const [e, fd] = open(h, 'r.txt', 0, BigInt(Rights.FD_READ));
    expect(e).toBe(0);
    expect(write(h, fd, 'x')).toBe(Errno.NOTCAPABLE);
    expect(h.call('fd_seek', fd, 0n, 0, 3100)).toBe(Errno.NOTCAPABLE);
    expect(h.call('fd_fdstat_set_rights', fd, BigInt(Rights.FD_READ | Rights.FD_WRITE), 0n)).toBe(Errno.NOTCAPABLE);
    expect(h.call('fd_fdstat_set_rights', fd, 0n, 0n)).toBe(0);
    expect(read(h, fd)[0]).toBe(Errno.NOTCAPABLE);
    // Path operations need a directory fd.
    const len = h.put(1024, 'x');
    expect(h.call('path_create_directory', fd, 1024, len)).toBe(Errno.NOTDIR);
    expect(h.call('path_create_directory', 1, 1024, len)).toBe(Errno.NOTDIR);
    expect(h.call('path_create_directory', 99, 1024, len)).toBe(Errno.BADF);
  });

  it('a read-only preopen refuses every change with EROFS and grants no write rights', () => {
    const h = harness({ readonly: true, entries: [{ path: 'keep.txt', kind: 'file', data: new Uint8Array([1]) }] });
    expect(open(h, 'keep.txt', 0, BigInt(Rights.FD_READ))[0]).toBe(0);
    expect(open(h, 'keep.txt', 0, BigInt(Rights.FD_WRITE))[0]).toBe(Errno.ROFS);
    expect(open(h, 'new.txt', Oflags.CREAT)[0]).toBe(Errno.ROFS);
    expect(open(h, 'keep.txt', Oflags.TRUNC)[0]).toBe(Errno.ROFS);
    const len = h.put(1024, 'keep.txt');
    expect(h.call('path_unlink_file', PREOPEN, 1024, len)).toBe(Errno.ROFS);
    expect(h.call('path_create_directory', PREOPEN, 1024, len)).toBe(Errno.ROFS);
    expect(h.call('fd_fdstat_get', PREOPEN, 3100)).toBe(0);
    expect(h.dv.getBigUint64(3100 + 16, true) & BigInt(Rights.FD_WRITE)).toBe(0n);
  });

  it('enforces the fd, byte, entry and path-length quotas', () => {
    // Bytes count contents and names: 'a' and 'b' take one byte each.
    const h = harness({ quotas: { maxFds: 5, maxBytes: 102, maxInodes: 4, maxPathBytes: 32 } });
    const [e, fd] = open(h, 'a', Oflags.CREAT); // fd 4: stdio + preopen + this = 5
    expect(e).toBe(0);
    expect(open(h, 'b', Oflags.CREAT)[0]).toBe(Errno.MFILE);
    expect(write(h, fd, 'x'.repeat(100))).toBe(0);
    h.call('fd_close', fd);
    expect(open(h, 'b', Oflags.CREAT)[0]).toBe(0);
    expect(write(h, 4, 'y')).toBe(Errno.NOSPC); // 100 + 'a' + 'b' = 102: full
    expect(open(h, 'c', Oflags.CREAT)[0]).toBe(Errno.MFILE);
    h.call('fd_close', 4);
    // Entries: the preopen root, 'a', 'b', and one more.
    const p = (at: number, name: string): [number, number] => [at, h.put(at, name)];
    expect(h.call('path_unlink_file', PREOPEN, ...p(1024, 'a'))).toBe(0);
    expect(h.call('path_create_directory', PREOPEN, ...p(1024, 'c'))).toBe(0);
    expect(h.call('path_create_directory', PREOPEN, ...p(1024, 'd'))).toBe(0);
    expect(h.call('path_create_directory', PREOPEN, ...p(1024, 'e'))).toBe(Errno.NOSPC);
    expect(open(h, 'x'.repeat(33), Oflags.CREAT)[0]).toBe(Errno.NAMETOOLONG);
  });

  it('every name counts: hard links and symlinks hit the entry quota with ENOSPC, and give it back', () => {
    const h = harness({ quotas: { maxInodes: 10 } });
    const [, fd] = open(h, 'f', Oflags.CREAT);
    h.call('fd_close', fd);
    const p = (at: number, name: string): [number, number] => [at, h.put(at, name)];
    const results: number[] = [];
    for (let i = 0; i < 10; i++) results.push(h.call('path_link', PREOPEN, 0, ...p(1024, 'f'), PREOPEN, ...p(1100, `l${i}`)));
    // root + f = 2 entries; 8 links fit.
    expect(results).toEqual([0, 0, 0, 0, 0, 0, 0, 0, Errno.NOSPC, Errno.NOSPC]);
    expect(h.call('path_symlink', ...p(1024, 'f'), PREOPEN, ...p(1100, 's'))).toBe(Errno.NOSPC);
    expect(h.call('path_unlink_file', PREOPEN, ...p(1024, 'l0'))).toBe(0);
    expect(h.call('path_symlink', ...p(1024, 'f'), PREOPEN, ...p(1100, 's'))).toBe(0);
    expect(h.call('path_create_directory', PREOPEN, ...p(1024, 'd'))).toBe(Errno.NOSPC);
    expect(h.wasi.quota.entries).toBe(10);
  });

  it('an unlinked file that is still open keeps its bytes on the quota until closed', () => {
    const h = harness({ quotas: { maxBytes: 11 } }); // 10 bytes of contents and one one-byte name
    const [, fd] = open(h, 'a', Oflags.CREAT);
    expect(write(h, fd, '0123456789')).toBe(0);
    const len = h.put(1024, 'a');
    expect(h.call('path_unlink_file', PREOPEN, 1024, len)).toBe(0);
    const [, fd2] = open(h, 'b', Oflags.CREAT);
    expect(write(h, fd2, 'z')).toBe(Errno.NOSPC);
    h.call('fd_close', fd);
    expect(write(h, fd2, 'z')).toBe(0);
  });

  it('refuses every way out of the preopen', () => {
    const h = harness({
      entries: [
        { path: 'sub', kind: 'dir' },
        { path: 'up', kind: 'symlink', target: '../..' },
        { path: 'abs', kind: 'symlink', target: '/etc/passwd' },
        { path: 'sub/back', kind: 'symlink', target: '../../x' },
        { path: 'l1', kind: 'symlink', target: 'l2' },
        { path: 'l2', kind: 'symlink', target: 'l1' },
        { path: 'inside', kind: 'symlink', target: 'sub/../sub' },
      ],
    });
    expect(open(h, '../etc/passwd')[0]).toBe(Errno.NOTCAPABLE);
    expect(open(h, 'sub/../../etc')[0]).toBe(Errno.NOTCAPABLE);
    expect(open(h, '/etc/passwd')[0]).toBe(Errno.NOTCAPABLE);
    expect(open(h, 'up/etc/passwd')[0]).toBe(Errno.NOTCAPABLE);
    expect(open(h, 'abs')[0]).toBe(Errno.NOTCAPABLE);
    expect(open(h, 'sub/back')[0]).toBe(Errno.NOTCAPABLE);
    expect(open(h, 'l1')[0]).toBe(Errno.LOOP);
    expect(open(h, 'abs', 0, ALL, 0, PREOPEN, 0)[0]).toBe(Errno.LOOP);
    const DIR = BigInt(Rights.FD_READDIR | Rights.PATH_OPEN);
    expect(open(h, 'inside', Oflags.DIRECTORY, DIR)[0]).toBe(0);
    expect(open(h, 'inside', 0, ALL)[0]).toBe(Errno.ISDIR); // a directory cannot be opened for writing
    // `..` is confined to the directory fd a path starts from (as Wasmtime's cap-std): a
    // directory fd opened inside the preopen cannot climb to its parent, let alone above.
    const [, sub] = open(h, 'sub', Oflags.DIRECTORY, DIR);
    expect(open(h, '..', 0, DIR, 0, sub)[0]).toBe(Errno.NOTCAPABLE);
    expect(open(h, '../..', 0, DIR, 0, sub)[0]).toBe(Errno.NOTCAPABLE);
    expect(open(h, 'x/..', 0, DIR, 0, sub)[0]).toBe(Errno.NOENT);
    expect(open(h, 'sub/..', Oflags.DIRECTORY, DIR)[0]).toBe(0); // down and back up: fine
    const nul = h.put(1024, 'sub\0x');
    expect(h.call('path_open', PREOPEN, 1, 1024, nul, 0, ALL, ALL, 0, 2048)).toBe(Errno.INVAL);
  });

  it('lists a directory with fd_readdir, resuming from a cookie', () => {
    const h = harness({ entries: [{ path: 'b', kind: 'file', data: new Uint8Array(0) }, { path: 'a', kind: 'dir' }] });
    const names = (cookie: bigint, cap: number): string[] => {
      expect(h.call('fd_readdir', PREOPEN, 5000, cap, cookie, 3100)).toBe(0);
      const used = h.dv.getUint32(3100, true);
      const out: string[] = [];
      for (let at = 5000; at + 24 <= 5000 + used; ) {
        const len = h.dv.getUint32(at + 16, true);
        if (at + 24 + len > 5000 + used) break;
        out.push(h.get(at + 24, len));
        at += 24 + len;
      }
      return out;
    };
    expect(names(0n, 1000)).toEqual(['.', '..', 'a', 'b']);
    expect(names(2n, 1000)).toEqual(['a', 'b']);
    expect(names(4n, 1000)).toEqual([]);
  });

  it('gives args, environment, preopen names, entropy and clocks', () => {
    const h = harness();
    expect(h.call('args_sizes_get', 100, 104)).toBe(0);
    expect([h.dv.getUint32(100, true), h.dv.getUint32(104, true)]).toEqual([2, 8]);
    expect(h.call('args_get', 200, 300)).toBe(0);
    expect(h.get(h.dv.getUint32(204, true), 2)).toBe('a1');
    expect(h.call('environ_get', 200, 300)).toBe(0);
    expect(h.get(300, 3)).toBe('K=V');
    expect(h.call('fd_prestat_get', PREOPEN, 100)).toBe(0);
    expect(h.dv.getUint32(104, true)).toBe(8);
    expect(h.call('fd_prestat_dir_name', PREOPEN, 400, 8)).toBe(0);
    expect(h.get(400, 8)).toBe('/sandbox');
    expect(h.call('fd_prestat_dir_name', PREOPEN, 400, 7)).toBe(Errno.NAMETOOLONG);
    expect(h.call('fd_prestat_get', 4, 100)).toBe(Errno.BADF);
    expect(h.call('random_get', 500, 16)).toBe(0);
    expect(h.bytes[515]).toBe(0xab);
    expect(h.call('clock_time_get', 1, 0n, 600)).toBe(0);
    expect(h.call('clock_res_get', 0, 600)).toBe(0);
    expect(h.dv.getBigUint64(600, true)).toBe(1_000_000n);
    expect(h.call('clock_time_get', 9, 0n, 600)).toBe(Errno.INVAL);
  });

  it('proc_exit ends the run through the sticky exit; later calls unwind again', () => {
    const h = harness();
    expect(() => h.call('proc_exit', 3)).toThrow(GuestExit);
    expect(() => h.call('sched_yield')).toThrow(GuestExit);
  });

  it('proc_raise is ENOSYS; sock_* are EBADF on a bad fd and ENOTSOCK on any open one (none is a socket)', () => {
    const h = harness();
    expect(h.call('proc_raise', 9)).toBe(Errno.NOSYS);
    for (const fd of [0, 1, 2, PREOPEN]) {
      expect(h.call('sock_accept', fd, 0, 100)).toBe(Errno.NOTSOCK);
      expect(h.call('sock_recv', fd, 0, 0, 0, 100, 104)).toBe(Errno.NOTSOCK);
      expect(h.call('sock_send', fd, 0, 0, 0, 100)).toBe(Errno.NOTSOCK);
      expect(h.call('sock_shutdown', fd, 2)).toBe(Errno.NOTSOCK);
    }
    for (const fd of [4, 99, -1]) {
      expect(h.call('sock_accept', fd, 0, 100)).toBe(Errno.BADF);
      expect(h.call('sock_recv', fd, 0, 0, 0, 100, 104)).toBe(Errno.BADF);
      expect(h.call('sock_send', fd, 0, 0, 0, 100)).toBe(Errno.BADF);
      expect(h.call('sock_shutdown', fd, 2)).toBe(Errno.BADF);
    }
  });

  it('path semantics as Wasmtime: absolute symlink targets EPERM, trailing slashes on link and symlink destinations', () => {
    const h = harness({ entries: [{ path: 'file', kind: 'file', data: new Uint8Array([1]) }, { path: 'dir', kind: 'dir' }] });
    const p = (at: number, name: string): [number, number] => [at, h.put(at, name)];
    expect(h.call('path_symlink', ...p(1024, '/etc/passwd'), PREOPEN, ...p(1100, 'abs'))).toBe(Errno.PERM);
    expect(h.call('path_symlink', ...p(1024, 'source'), PREOPEN, ...p(1100, 'target/'))).toBe(Errno.NOENT);
    expect(h.call('path_symlink', ...p(1024, 'source'), PREOPEN, ...p(1100, 'dir/'))).toBe(Errno.EXIST);
    expect(h.call('path_symlink', ...p(1024, 'source'), PREOPEN, ...p(1100, 'dir'))).toBe(Errno.EXIST);
    expect(h.call('path_symlink', ...p(1024, 'source'), PREOPEN, ...p(1100, 'file/'))).toBe(Errno.NOTDIR);
    expect(h.call('path_symlink', ...p(1024, 'source'), PREOPEN, ...p(1100, 'file'))).toBe(Errno.EXIST);
    expect(h.call('path_symlink', ...p(1024, 'source'), PREOPEN, ...p(1100, 'target'))).toBe(0); // dangling is fine
    expect(h.call('path_link', PREOPEN, 0, ...p(1024, 'file'), PREOPEN, ...p(1100, 'link/'))).toBe(Errno.NOENT);
    expect(h.call('path_link', PREOPEN, 0, ...p(1024, 'file/'), PREOPEN, ...p(1100, 'link'))).toBe(Errno.NOTDIR);
    expect(h.call('path_link', PREOPEN, 0, ...p(1024, 'file'), PREOPEN, ...p(1100, 'dir'))).toBe(Errno.EXIST);
    expect(h.call('path_link', PREOPEN, 0, ...p(1024, 'dir'), PREOPEN, ...p(1100, 'link'))).toBe(Errno.PERM);
    expect(h.call('path_link', PREOPEN, 1, ...p(1024, 'file'), PREOPEN, ...p(1100, 'link'))).toBe(Errno.INVAL); // SYMLINK_FOLLOW
    expect(h.call('path_link', PREOPEN, 0, ...p(1024, 'target'), PREOPEN, ...p(1100, 'link'))).toBe(0); // a link to a symlink
    expect(h.call('path_link', PREOPEN, 0, ...p(1024, 'file'), PREOPEN, ...p(1100, 'file'))).toBe(Errno.EXIST);
  });

  it('poll_oneoff: a clock subscription fires; stdin at EOF is ready', () => {
    const h = harness({ stdin: '' });
    // Subscription 0: relative clock, 1 ms. Subscription 1: fd_read on stdin.
    h.bytes.fill(0, 1000, 1096);
    h.dv.setBigUint64(1000, 11n, true);
    h.bytes[1008] = 0;
    h.dv.setUint32(1016, 1, true);
    h.dv.setBigUint64(1024, 1_000_000n, true);
    expect(h.call('poll_oneoff', 1000, 2000, 1, 3000)).toBe(0);
    expect(h.dv.getUint32(3000, true)).toBe(1);
    expect(h.dv.getBigUint64(2000, true)).toBe(11n);
    h.dv.setBigUint64(1048, 22n, true);
    h.bytes[1056] = 1;
    h.dv.setUint32(1064, 0, true);
    h.dv.setBigUint64(1024, 10_000_000_000n, true);
    const t = performance.now();
    expect(h.call('poll_oneoff', 1000, 2000, 2, 3000)).toBe(0);
    expect(performance.now() - t).toBeLessThan(1000);
    expect(h.dv.getUint32(3000, true)).toBe(1);
    expect(h.dv.getBigUint64(2000, true)).toBe(22n);
    expect(h.call('poll_oneoff', 1000, 2000, 0, 3000)).toBe(Errno.INVAL);
  });

  it('renames, links, symlinks and removes within a preopen with POSIX errnos', () => {
    const h = harness({ entries: [{ path: 'd', kind: 'dir' }, { path: 'd/f', kind: 'file', data: new Uint8Array([1]) }, { path: 'e', kind: 'dir' }] });
    const p = (at: number, s: string): [number, number] => [at, h.put(at, s)];
    expect(h.call('path_remove_directory', PREOPEN, ...p(1024, 'd'))).toBe(Errno.NOTEMPTY);
    expect(h.call('path_rename', PREOPEN, ...p(1024, 'd'), PREOPEN, ...p(1100, 'd/inner'))).toBe(Errno.INVAL);
    expect(h.call('path_rename', PREOPEN, ...p(1024, 'd/f'), PREOPEN, ...p(1100, 'e'))).toBe(Errno.ISDIR);
    expect(h.call('path_rename', PREOPEN, ...p(1024, 'd/f'), PREOPEN, ...p(1100, 'e/g'))).toBe(0);
    expect(h.call('path_link', PREOPEN, 0, ...p(1024, 'e/g'), PREOPEN, ...p(1100, 'h'))).toBe(0);
    expect(h.call('path_symlink', ...p(1024, 'e/g'), PREOPEN, ...p(1100, 's'))).toBe(0);
    expect(h.call('path_readlink', PREOPEN, ...p(1024, 's'), 1200, 64, 1300)).toBe(0);
    expect(h.get(1200, h.dv.getUint32(1300, true))).toBe('e/g');
    expect(h.call('path_filestat_get', PREOPEN, 0, ...p(1024, 'h'), 1400)).toBe(0);
    expect(h.dv.getBigUint64(1400 + 24, true)).toBe(2n); // nlink
    expect(h.call('path_unlink_file', PREOPEN, ...p(1024, 'e'))).toBe(Errno.ISDIR);
    expect(h.call('path_remove_directory', PREOPEN, ...p(1024, 'd'))).toBe(0);
    expect(h.call('path_remove_directory', PREOPEN, ...p(1024, '.'))).toBe(Errno.BUSY);
    expect(h.call('path_create_directory', PREOPEN, ...p(1024, 'e'))).toBe(Errno.EXIST);
  });
});

describe('WASI table: resource edges', () => {
  it('grow-truncate cycles cannot pile up file buffers beyond the quota', () => {
    const h = harness({ quotas: { maxBytes: 100_000 } });
    const files: { data: Uint8Array; size: number }[] = [];
    for (const name of ['a', 'b', 'c', 'd']) {
      const [, fd] = open(h, name, Oflags.CREAT);
      expect(h.call('fd_filestat_set_size', fd, 90_000n)).toBe(0);
      expect(h.call('fd_filestat_set_size', fd, 10n)).toBe(0);
      files.push(h.wasi.vfs.roots[0]!.entries.get(name) as { data: Uint8Array; size: number });
    }
    const held = files.reduce((n, f) => n + f.data.length, 0);
    expect(held).toBeLessThanOrEqual(4 * (10 + 5 + 64));
    expect(h.wasi.quota.bytes).toBe(40 + 4); // contents, and the four one-byte names
  });

  it('closing the instance scrubs file contents, linked or only open', () => {
    const h = harness({ entries: [{ path: 'kept', kind: 'file', data: new Uint8Array([7, 7, 7]) }] });
    const [, fd] = open(h, 'kept', 0, BigInt(Rights.FD_READ));
    const file = (h.wasi.vfs.roots[0]!.entries.get('kept') as { data: Uint8Array });
    const data = file.data;
    expect(fd).toBeGreaterThan(3);
    h.wasi.close();
    expect(data.every((b) => b === 0)).toBe(true);
    expect(file.data.every((b) => b === 0)).toBe(true);
  });

  it('fd_readdir sizes its host buffer to the listing, not to the guest-chosen length', () => {
    const h = harness({ pages: 2 });
    // len as large as the whole memory: fine, and bufused < len says "end of directory".
    expect(h.call('fd_readdir', PREOPEN, 0, 131072, 0n, 131068)).toBe(0);
    expect(h.dv.getUint32(131068, true)).toBe(2 * 24 + 1 + 2);
    expect(h.call('fd_readdir', PREOPEN, 0, -1, 0n, 100)).toBe(Errno.FAULT);
  });
});

describe('WASI call-size bounds (docs/ABI.md, "How each call is handled")', () => {
  it('fd I/O takes at most 8192 iovecs in one call (65536 bytes of them), more is EINVAL; poll_oneoff 1 to 1365 subscriptions', () => {
    const h = harness({ pages: 2 });
    const [e, fd] = open(h, 'f', Oflags.CREAT);
    expect(e).toBe(0);
    // 8192 empty iovecs at 16384 (64 KiB of them): a write of 0 bytes; 8193 is EINVAL, writing nothing.
    h.bytes.fill(0, 16384, 16384 + 8193 * 8);
    expect(h.call('fd_write', fd, 16384, 8192, 3008)).toBe(0);
    expect(h.dv.getUint32(3008, true)).toBe(0);
    h.dv.setUint32(3008, 77, true);
    for (const call of ['fd_write', 'fd_read'] as const) expect(h.call(call, fd, 16384, 8193, 3008)).toBe(Errno.INVAL);
    expect(h.call('fd_pwrite', fd, 16384, 8193, 0n, 3008)).toBe(Errno.INVAL);
    expect(h.call('fd_pread', fd, 16384, 8193, 0n, 3008)).toBe(Errno.INVAL);
    expect(h.dv.getUint32(3008, true)).toBe(77);
    // poll_oneoff: none is EINVAL (nothing could ever be ready), 1366 (over 64 KiB of them) EINVAL.
    expect(h.call('poll_oneoff', 16384, 90000, 0, 3008)).toBe(Errno.INVAL);
    expect(h.call('poll_oneoff', 16384, 90000, 1366, 3008)).toBe(Errno.INVAL);
    expect(h.dv.getUint32(3008, true)).toBe(77);
  });
});
