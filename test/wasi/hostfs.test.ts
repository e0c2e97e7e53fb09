/**
 * The host-folder backend (host/wasi/hostfs.ts) driven in this thread: a real temporary folder
 * bound as an `ro` or `rw` preopen through createWasi, the way a partition's worker binds the fd
 * the root opened, and every WASI path and fd call that reaches it. Each result is checked against
 * the host folder itself (node:fs): the bytes, names, modes, link counts and times the guest's
 * calls left there, what the guest was told (errno, filestat and dirent records in its memory),
 * and the quota account (a host folder counts what the guest added: growth charges, removal
 * refunds). The partition suites (preopens, hostile) run the same backend from the bundle in a
 * worker, where no mutant of the source reaches; these are the tests that can see it.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  existsSync,
  fstatSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { WASI_QUOTA_DEFAULTS, type ResolvedWasi } from '../../host/wasi/config.ts';
import { Errno, Fdflags, Filetype, Fstflags, Oflags, Rights, Whence } from '../../host/wasi/errno.ts';
import { QuotaAccount, type Mount, type Stat } from '../../host/wasi/fs.ts';
import { HostDir, HostFile, hostErrno, type HostContext } from '../../host/wasi/hostfs.ts';
import { createWasi } from '../../host/wasi/setup.ts';
import { harness, wiring } from './harness.ts';
import { Vfs } from '../../host/wasi/vfs.ts';

const base = mkdtempSync(path.join(tmpdir(), 'wasmvisor-wasi-hostfs-'));
const rootFds: number[] = [];
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  for (const fd of rootFds) closeSync(fd);
  rmSync(base, { recursive: true, force: true });
});

const enc = new TextEncoder();
const dec = new TextDecoder();
const ALL = BigInt((1 << 30) - 1);
const PREOPEN = 3;
const FOLLOW = 1;
/** The mode bits the process's umask leaves of a requested mode. */
const UMASK = process.umask();

/** mknod needs CAP_MKNOD (root here; not on every CI runner): device tests run where it works. */
const canMknod = (() => {
  const p = path.join(base, 'probe-dev');
  const ok = spawnSync('mknod', [p, 'c', '1', '3']).status === 0;
  rmSync(p, { force: true });
  return ok;
})();

/** A host folder filled by `fill`, bound as preopen fd 3 (`/h`). */
function host(mode: 'ro' | 'rw', fill: (root: string) => void = () => {}, quotas: Partial<ResolvedWasi['quotas']> = {}, at?: string) {
  const root = at ?? mkdtempSync(path.join(base, `${mode}-`));
  fill(root);
  const rootFd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  rootFds.push(rootFd);
  const buffer = new ArrayBuffer(65536 * 2);
  const memory = new GuestMemory();
  memory.bind({ buffer });
  const wasi = createWasi(
    { args: [], env: [], preopens: [{ guestPath: '/h', kind: 'host', mode, fd: rootFd }], stdin: { kind: 'none' }, quotas: { ...WASI_QUOTA_DEFAULTS, ...quotas } },
    // Resolution 1 ns: a host time is shown as it is (the rounding is test/wasi/setup's).
    wiring(memory, { clock: { read: () => 5n, resolutionNs: 1 } }),
  );
  const bytes = new Uint8Array(buffer);
  const dv = new DataView(buffer);
  const fns = wasi.imports as unknown as Record<string, (...a: (number | bigint)[]) => number>;
  const call = (name: string, ...args: (number | bigint)[]): number => fns[name]!(...args);
  const put = (ptr: number, s: string): number => {
    const b = enc.encode(s);
    bytes.set(b, ptr);
    return b.length;
  };
  const h = {
    root,
    rootFd,
    wasi,
    bytes,
    dv,
    call,
    put,
    at: (name: string) => path.join(root, name),
    /** path_open: [errno, fd]. */
    open(p: string, o: { oflags?: number; rights?: bigint; fdflags?: number; dirfd?: number; follow?: number } = {}): [number, number] {
      const len = put(1024, p);
      dv.setUint32(2048, 0xffffffff, true);
      const e = call('path_open', o.dirfd ?? PREOPEN, o.follow ?? FOLLOW, 1024, len, o.oflags ?? 0, o.rights ?? ALL, ALL, o.fdflags ?? 0, 2048);
      return [e, dv.getUint32(2048, true)];
    },
    /** Calls a (dirfd, path, len) function. */
    path(name: string, p: string, dirfd = PREOPEN): number {
      const len = put(1024, p);
      return call(name, dirfd, 1024, len);
    },
    /** Calls a (fromfd, from, tofd, to) function (rename, or link with flags 0). */
    two(name: 'path_rename' | 'path_link', from: string, to: string, fromfd = PREOPEN, tofd = PREOPEN): number {
      const a = put(1024, from);
      const b = put(1536, to);
      return name === 'path_rename' ? call(name, fromfd, 1024, a, tofd, 1536, b) : call(name, fromfd, 0, 1024, a, tofd, 1536, b);
    },
    symlink(target: string, name: string, dirfd = PREOPEN): number {
      const a = put(1024, target);
      const b = put(1536, name);
      return call('path_symlink', 1024, a, dirfd, 1536, b);
    },
    write(fd: number, text: string): [number, number] {
      const len = put(4096, text);
      dv.setUint32(3000, 4096, true);
      dv.setUint32(3004, len, true);
      dv.setUint32(3008, 0, true);
      const e = call('fd_write', fd, 3000, 1, 3008);
      return [e, dv.getUint32(3008, true)];
    },
    pwrite(fd: number, text: string, offset: bigint): [number, number] {
      const len = put(4096, text);
      dv.setUint32(3000, 4096, true);
      dv.setUint32(3004, len, true);
      dv.setUint32(3008, 0, true);
      const e = call('fd_pwrite', fd, 3000, 1, offset, 3008);
      return [e, dv.getUint32(3008, true)];
    },
    read(fd: number, cap = 256): [number, string] {
      dv.setUint32(3000, 8192, true);
      dv.setUint32(3004, cap, true);
      dv.setUint32(3008, 0, true);
      const e = call('fd_read', fd, 3000, 1, 3008);
      return [e, dec.decode(bytes.subarray(8192, 8192 + dv.getUint32(3008, true)))];
    },
    pread(fd: number, offset: bigint, cap = 256): [number, string] {
      dv.setUint32(3000, 8192, true);
      dv.setUint32(3004, cap, true);
      dv.setUint32(3008, 0, true);
      const e = call('fd_pread', fd, 3000, 1, offset, 3008);
      return [e, dec.decode(bytes.subarray(8192, 8192 + dv.getUint32(3008, true)))];
    },
    /** The filestat record at 3200. */
    record(): Stat {
      const g = (o: number) => dv.getBigUint64(3200 + o, true);
      return { dev: g(0), ino: g(8), filetype: bytes[3200 + 16]!, nlink: g(24), size: g(32), atim: g(40), mtim: g(48), ctim: g(56) };
    },
    /** path_filestat_get: [errno, record]. */
    stat(p: string, follow = 0, dirfd = PREOPEN): [number, Stat] {
      bytes.fill(0, 3200, 3264);
      const len = put(1024, p);
      const e = call('path_filestat_get', dirfd, follow, 1024, len, 3200);
      return [e, h.record()];
    },
    fstat(fd: number): [number, Stat] {
      bytes.fill(0, 3200, 3264);
      const e = call('fd_filestat_get', fd, 3200);
      return [e, h.record()];
    },
    /** fd_readdir from `cookie` into a buffer of `cap` bytes: the records (a cut last one marked), and bufused. */
    readdir(fd: number, cookie: bigint, cap = 4096): { errno: number; used: number; entries: { next: bigint; ino: bigint; type: number; name: string; cut: boolean }[] } {
      bytes.fill(0, 16384, 16384 + cap);
      const errno = call('fd_readdir', fd, 16384, cap, cookie, 3100);
      const used = dv.getUint32(3100, true);
      const entries = [];
      for (let at = 16384; at < 16384 + used; ) {
        const cut = at + 24 > 16384 + used || at + 24 + dv.getUint32(at + 16, true) > 16384 + used;
        if (cut) {
          entries.push({ next: 0n, ino: 0n, type: 0, name: '', cut });
          break;
        }
        const len = dv.getUint32(at + 16, true);
        entries.push({ next: dv.getBigUint64(at, true), ino: dv.getBigUint64(at + 8, true), type: bytes[at + 20]!, name: dec.decode(bytes.subarray(at + 24, at + 24 + len)), cut });
        at += 24 + len;
      }
      return { errno, used, entries };
    },
    quota: () => ({ bytes: wasi.quota.bytes, entries: wasi.quota.entries }),
  };
  return h;
}

/** Host fds of this process that are open on something inside `root` (the root itself included). */
function fdsInside(root: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target === root || target.startsWith(`${root}/`)) n++;
    } catch {
      // the listing's own fd, closed by now
    }
  }
  return n;
}

/** The filestat a guest should see for a host path (not following it), clock resolution 1 ns. */
function hostStat(p: string, filetype: number): Stat {
  const st = lstatSync(p, { bigint: true });
  return { dev: st.dev, ino: st.ino, filetype, nlink: st.nlink, size: st.size, atim: st.atimeNs, mtim: st.mtimeNs, ctim: st.ctimeNs };
}

/** The usual tree: f ("hello"), d/g ("12"), d/e/, ln -> f, dl -> d, fifo. */
function tree(root: string): void {
  writeFileSync(path.join(root, 'f'), 'hello');
  mkdirSync(path.join(root, 'd'));
  mkdirSync(path.join(root, 'd', 'e'));
  writeFileSync(path.join(root, 'd', 'g'), '12');
  symlinkSync('f', path.join(root, 'ln'));
  symlinkSync('d', path.join(root, 'dl'));
  expect(spawnSync('mkfifo', [path.join(root, 'fifo')]).status).toBe(0);
}

const READ = BigInt(Rights.FD_READ | Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_FILESTAT_GET);
const DIR = BigInt(Rights.PATH_OPEN | Rights.FD_READDIR | Rights.PATH_FILESTAT_GET | Rights.FD_FILESTAT_GET | Rights.PATH_CREATE_FILE | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_SYMLINK | Rights.PATH_LINK_TARGET | Rights.PATH_LINK_SOURCE | Rights.PATH_RENAME_SOURCE | Rights.PATH_RENAME_TARGET | Rights.PATH_UNLINK_FILE | Rights.PATH_REMOVE_DIRECTORY | Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_FILESTAT_SET_TIMES);

describe('hostErrno: a host error as the guest sees it', () => {
  it('maps each Node error code to its WASI errno, negated', () => {
    const want: [string, number][] = [
      ['E2BIG', 1], ['EACCES', 2], ['EAGAIN', 6], ['EBADF', 8], ['EBUSY', 10], ['EDQUOT', 19], ['EEXIST', 20], ['EFBIG', 22],
      ['EINTR', 27], ['EINVAL', 28], ['EIO', 29], ['EISDIR', 31], ['ELOOP', 32], ['EMLINK', 34], ['ENAMETOOLONG', 37],
      ['ENFILE', 41], ['ENOENT', 44], ['ENOMEM', 48], ['ENOSPC', 51], ['ENOTDIR', 54], ['ENOTEMPTY', 55], ['ENOTSUP', 58],
      ['EOPNOTSUPP', 58], ['EPERM', 63], ['EROFS', 69], ['ESPIPE', 70], ['ETXTBSY', 74], ['EXDEV', 75], ['EOVERFLOW', 61], ['ESTALE', 72],
      // The host process's own fd table being full is not the guest's EMFILE (its fd quota is): ENFILE.
      ['EMFILE', 41],
    ];
    for (const [code, errno] of want) expect([code, hostErrno(Object.assign(new Error(code), { code }))]).toEqual([code, -errno]);
  });

  it('anything else is EIO: an unknown code, a code that is not a string, no code, not an object', () => {
    expect(hostErrno({ code: 'ECONNRESET' })).toBe(-Errno.IO);
    expect(hostErrno({ code: 'toString' })).toBe(-Errno.IO); // not an own key of the table
    expect(hostErrno({ code: 2 })).toBe(-Errno.IO);
    expect(hostErrno({ code: ['ENOENT'] })).toBe(-Errno.IO); // a code that only reads like one as a string
    expect(hostErrno(new Error('plain'))).toBe(-Errno.IO);
    expect(hostErrno(null)).toBe(-Errno.IO);
    expect(hostErrno(undefined)).toBe(-Errno.IO);
  });
});

describe('a host folder, read', () => {
  let server: Server | null = null;
  let sockRoot = '';
  beforeAll(async () => {
    sockRoot = mkdtempSync(path.join(base, 's-'));
    const s = createServer();
    servers.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(path.join(sockRoot, 'sock'), () => resolve());
    });
    server = s;
  });

  it('path_filestat_get reports what the host has, for files, directories, symlinks (followed or not) and the preopen itself', () => {
    const h = host('ro', tree);
    linkSync(h.at('f'), h.at('f2')); // two links: nlink 2
    expect(h.stat('f')).toEqual([0, hostStat(h.at('f'), Filetype.REGULAR_FILE)]);
    expect(h.stat('f')[1].nlink).toBe(2n);
    expect(h.stat('f')[1].size).toBe(5n);
    expect(h.stat('d')).toEqual([0, hostStat(h.at('d'), Filetype.DIRECTORY)]);
    expect(h.stat('ln')).toEqual([0, hostStat(h.at('ln'), Filetype.SYMBOLIC_LINK)]);
    expect(h.stat('ln')[1].size).toBe(1n); // the target's length
    expect(h.stat('ln', FOLLOW)).toEqual([0, hostStat(h.at('f'), Filetype.REGULAR_FILE)]);
    expect(h.stat('d/g')).toEqual([0, hostStat(h.at('d/g'), Filetype.REGULAR_FILE)]);
    expect(h.stat('.')).toEqual([0, hostStat(h.root, Filetype.DIRECTORY)]);
    expect(h.stat('')).toEqual([Errno.NOENT, expect.anything()]);
    expect(h.stat('missing')[0]).toBe(Errno.NOENT);
    expect(h.stat('f/x')[0]).toBe(Errno.NOTDIR);
    // Distinct inodes, as the host has them.
    expect(h.stat('d')[1].ino).not.toBe(h.stat('f')[1].ino);
    // fd_filestat_get of an open file and of the preopen.
    const [e, fd] = h.open('d/g', { rights: READ });
    expect(e).toBe(0);
    expect(h.fstat(fd)).toEqual([0, hostStat(h.at('d/g'), Filetype.REGULAR_FILE)]);
    expect(h.fstat(PREOPEN)).toEqual([0, hostStat(h.root, Filetype.DIRECTORY)]);
  });

  it('special files are listed and stat’ed with their type, never opened (EACCES); their times are not set (EACCES)', () => {
    const h = host('rw', tree);
    expect(h.stat('fifo')).toEqual([0, hostStat(h.at('fifo'), Filetype.UNKNOWN)]);
    expect(h.open('fifo', { rights: READ })[0]).toBe(Errno.ACCES);
    expect(h.open('fifo', { rights: READ, oflags: Oflags.CREAT })[0]).toBe(Errno.ACCES);
    const len = h.put(1024, 'fifo');
    expect(h.call('path_filestat_set_times', PREOPEN, 0, 1024, len, 0n, 0n, Fstflags.MTIM_NOW)).toBe(Errno.ACCES);
    // A socket (a listening Unix socket, in a folder of its own).
    expect(server).not.toBe(null);
    const s = host('ro', () => {}, {}, sockRoot);
    expect(s.stat('sock')).toEqual([0, hostStat(path.join(sockRoot, 'sock'), Filetype.SOCKET_STREAM)]);
    expect(s.open('sock', { rights: READ })[0]).toBe(Errno.ACCES);
    expect(s.readdir(PREOPEN, 2n).entries.map((e) => [e.name, e.type])).toEqual([['sock', Filetype.SOCKET_STREAM]]);
  });

  it.skipIf(!canMknod)('character and block devices are typed as such, and never opened', () => {
    const h = host('ro', (root) => {
      expect(spawnSync('mknod', [path.join(root, 'chr'), 'c', '1', '3']).status).toBe(0);
      expect(spawnSync('mknod', [path.join(root, 'blk'), 'b', '7', '0']).status).toBe(0);
    });
    expect(h.stat('chr')[1].filetype).toBe(Filetype.CHARACTER_DEVICE);
    expect(h.stat('blk')[1].filetype).toBe(Filetype.BLOCK_DEVICE);
    expect(h.open('chr', { rights: READ })[0]).toBe(Errno.ACCES);
    expect(h.open('blk', { rights: READ })[0]).toBe(Errno.ACCES);
    const types = Object.fromEntries(h.readdir(PREOPEN, 2n).entries.map((e) => [e.name, e.type]));
    expect(types).toEqual({ chr: Filetype.CHARACTER_DEVICE, blk: Filetype.BLOCK_DEVICE });
  });

  it('fd_readdir lists ., .. and every entry with its host inode and type; the preopen’s .. is itself', () => {
    const h = host('ro', tree);
    const all = h.readdir(PREOPEN, 0n);
    expect(all.errno).toBe(0);
    const rootIno = statSync(h.root, { bigint: true }).ino;
    expect(all.entries.slice(0, 2)).toEqual([
      { next: 1n, ino: rootIno, type: Filetype.DIRECTORY, name: '.', cut: false },
      { next: 2n, ino: rootIno, type: Filetype.DIRECTORY, name: '..', cut: false },
    ]);
    expect(statSync(path.dirname(h.root), { bigint: true }).ino).not.toBe(rootIno); // the real parent is hidden
    const rest = all.entries.slice(2);
    expect(rest.map((e) => e.next)).toEqual(rest.map((_, i) => BigInt(i + 3)));
    const byName = Object.fromEntries(rest.map((e) => [e.name, [e.type, e.ino]]));
    const ino = (n: string) => lstatSync(h.at(n), { bigint: true }).ino;
    expect(byName).toEqual({
      f: [Filetype.REGULAR_FILE, ino('f')],
      d: [Filetype.DIRECTORY, ino('d')],
      ln: [Filetype.SYMBOLIC_LINK, ino('ln')],
      dl: [Filetype.SYMBOLIC_LINK, ino('dl')],
      fifo: [Filetype.UNKNOWN, ino('fifo')],
    });
    // A directory below: its . and .. are itself and its parent.
    const [e1, d] = h.open('d', { oflags: Oflags.DIRECTORY, rights: DIR });
    expect(e1).toBe(0);
    const [e2, de] = h.open('e', { oflags: Oflags.DIRECTORY, rights: DIR, dirfd: d });
    expect(e2).toBe(0);
    const sub = h.readdir(de, 0n);
    expect(sub.entries).toEqual([
      { next: 1n, ino: ino('d/e'), type: Filetype.DIRECTORY, name: '.', cut: false },
      { next: 2n, ino: ino('d'), type: Filetype.DIRECTORY, name: '..', cut: false },
    ]);
    expect(h.readdir(d, 1n).entries[0]).toEqual({ next: 2n, ino: rootIno, type: Filetype.DIRECTORY, name: '..', cut: false });
  });

  it('fd_readdir resumes from any cookie: the next one, one it cut short, one already passed, one past the end', () => {
    const h = host('ro', (root) => {
      for (const n of ['aaaa', 'bbbb', 'cccc', 'dddd']) writeFileSync(path.join(root, n), n);
    });
    const full = h.readdir(PREOPEN, 0n).entries.map((e) => e.name);
    expect(full.slice(0, 2)).toEqual(['.', '..']);
    expect([...full.slice(2)].sort()).toEqual(['aaaa', 'bbbb', 'cccc', 'dddd']);
    // Records are 24 + name bytes: '.' 25, '..' 26, each name 28. A buffer of 25 + 26 + 10 cuts the third.
    const first = h.readdir(PREOPEN, 0n, 61);
    expect(first.used).toBe(61);
    expect(first.entries.map((e) => e.name)).toEqual(['.', '..', '']);
    expect(first.entries[2]!.cut).toBe(true);
    // The guest asks again from the last whole record's cookie: the cut entry comes whole.
    const again = h.readdir(PREOPEN, 2n, 28 + 28);
    expect(again.entries.map((e) => e.name)).toEqual(full.slice(2, 4));
    expect(again.entries.map((e) => e.next)).toEqual([3n, 4n]);
    // Back to a cookie before where the open listing stands (a rewind): from there again.
    expect(h.readdir(PREOPEN, 2n).entries.map((e) => e.name)).toEqual(full.slice(2));
    expect(h.readdir(PREOPEN, 0n, 61).entries.map((e) => e.name)).toEqual(['.', '..', '']);
    expect(h.readdir(PREOPEN, 2n, 56).entries.map((e) => e.name)).toEqual(full.slice(2, 4));
    // Where the last call stopped, one past it, back to one passed, past the end.
    expect(h.readdir(PREOPEN, 4n).entries.map((e) => e.name)).toEqual(full.slice(4));
    expect(h.readdir(PREOPEN, 5n).entries.map((e) => e.name)).toEqual(full.slice(5));
    expect(h.readdir(PREOPEN, 3n).entries.map((e) => [e.name, e.next])).toEqual(full.slice(3).map((n, i) => [n, BigInt(i + 4)]));
    expect(h.readdir(PREOPEN, 1n).entries.map((e) => e.name)).toEqual(full.slice(1));
    expect(h.readdir(PREOPEN, 6n)).toEqual({ errno: 0, used: 0, entries: [] });
    expect(h.readdir(PREOPEN, 100n)).toEqual({ errno: 0, used: 0, entries: [] });
  });

  it('fd_readdir holds one host listing while the guest reads on, and lets it go at the end', () => {
    const h = host('ro', (root) => {
      for (const n of ['a', 'b', 'c']) writeFileSync(path.join(root, n), n);
    });
    expect(fdsInside(h.root)).toBe(1); // the preopen's own fd
    expect(h.readdir(PREOPEN, 0n, 24 + 1 + 24 + 2 + 24 + 1).entries).toHaveLength(3);
    expect(fdsInside(h.root)).toBe(2); // the listing, kept open to continue
    expect(h.readdir(PREOPEN, 3n).entries).toHaveLength(2);
    expect(fdsInside(h.root)).toBe(1); // read to the end: closed
    // A listing left open is closed with the directory.
    const [, d] = h.open('.', { oflags: Oflags.DIRECTORY, rights: DIR });
    expect(fdsInside(h.root)).toBe(2);
    expect(h.readdir(d, 0n, 25 + 26 + 10).entries.map((e) => e.name)).toEqual(['.', '..', '']);
    expect(fdsInside(h.root)).toBe(3);
    expect(h.call('fd_close', d)).toBe(0);
    expect(fdsInside(h.root)).toBe(1);
  });

  it('path_readlink gives a symlink’s target, cut to the buffer; a target that is not UTF-8 is EILSEQ', () => {
    const h = host('ro', (root) => {
      symlinkSync('some/where', path.join(root, 'l'));
      symlinkSync(Buffer.from([0x61, 0xff, 0x62]), Buffer.from(path.join(root, 'bad')));
      writeFileSync(path.join(root, 'f'), '');
    });
    const rl = (p: string, cap: number): [number, string] => {
      const len = h.put(1024, p);
      h.dv.setUint32(3100, 0, true);
      const e = h.call('path_readlink', PREOPEN, 1024, len, 5000, cap, 3100);
      return [e, dec.decode(h.bytes.subarray(5000, 5000 + h.dv.getUint32(3100, true)))];
    };
    expect(rl('l', 100)).toEqual([0, 'some/where']);
    expect(rl('l', 4)).toEqual([0, 'some']);
    expect(rl('bad', 100)).toEqual([Errno.ILSEQ, '']);
    expect(rl('f', 100)).toEqual([Errno.INVAL, '']);
    expect(rl('none', 100)).toEqual([Errno.NOENT, '']);
    // Walking through it is refused the same way.
    expect(h.stat('bad/x')[0]).toBe(Errno.ILSEQ);
  });

  it('a symlink is never opened as itself (ELOOP without follow), and no symlink or .. leads out', () => {
    const h = host('rw', (root) => {
      tree(root);
      symlinkSync('../', path.join(root, 'up'));
      symlinkSync('d/../..', path.join(root, 'up2'));
      symlinkSync('/etc', path.join(root, 'abs'));
    });
    writeFileSync(path.join(path.dirname(h.root), 'outside'), 'secret');
    expect(h.open('ln', { rights: READ, follow: 0 })[0]).toBe(Errno.LOOP);
    expect(h.open('ln', { rights: READ, follow: 0, oflags: Oflags.CREAT })[0]).toBe(Errno.LOOP);
    expect(h.open('dl', { rights: READ, follow: 0, oflags: Oflags.DIRECTORY })[0]).toBe(Errno.LOOP); // a symlink to a directory, as itself
    expect(h.open('dl', { rights: READ, oflags: Oflags.DIRECTORY })[0]).toBe(0);
    const [e, fd] = h.open('ln', { rights: READ });
    expect(e).toBe(0);
    expect(h.read(fd)).toEqual([0, 'hello']);
    expect(h.open('up/outside', { rights: READ })[0]).toBe(Errno.NOTCAPABLE);
    expect(h.open('up2/outside', { rights: READ })[0]).toBe(Errno.NOTCAPABLE);
    expect(h.open('abs/passwd', { rights: READ })[0]).toBe(Errno.NOTCAPABLE);
    expect(h.open('../outside', { rights: READ })[0]).toBe(Errno.NOTCAPABLE);
    expect(h.open('dl/g', { rights: READ })[0]).toBe(0);
    // A new file through a symlink to a directory lands inside.
    expect(h.open('dl/new', { oflags: Oflags.CREAT, rights: READ })[0]).toBe(0);
    expect(existsSync(h.at('d/new'))).toBe(true);
  });

  it('path_open: directories and files where the other was wanted', () => {
    const h = host('rw', tree);
    expect(h.open('d', { rights: BigInt(Rights.FD_WRITE) })[0]).toBe(Errno.ISDIR);
    expect(h.open('d', { rights: READ, oflags: Oflags.TRUNC })[0]).toBe(Errno.ISDIR);
    expect(h.open('d', { rights: READ, oflags: Oflags.CREAT | Oflags.EXCL })[0]).toBe(Errno.EXIST);
    expect(h.open('d', { rights: READ, oflags: Oflags.CREAT })[0]).toBe(0); // exists: opened
    expect(h.open('missing', { oflags: Oflags.DIRECTORY, rights: DIR })[0]).toBe(Errno.NOENT);
    expect(h.open('missing', { oflags: Oflags.DIRECTORY | Oflags.CREAT, rights: DIR })[0]).toBe(Errno.ISDIR);
    expect(h.open('missing/', { oflags: Oflags.CREAT, rights: DIR })[0]).toBe(Errno.ISDIR);
    expect(existsSync(h.at('missing'))).toBe(false);
    expect(h.open('f', { oflags: Oflags.DIRECTORY, rights: DIR })[0]).toBe(Errno.NOTDIR);
    expect(h.open('f/', { rights: READ })[0]).toBe(Errno.NOTDIR);
    expect(h.open('missing', { rights: READ })[0]).toBe(Errno.NOENT);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    // A directory opened is one: it lists.
    const [e, d] = h.open('d', { rights: DIR });
    expect(e).toBe(0);
    expect(h.readdir(d, 2n).entries.map((x) => x.name).sort()).toEqual(['e', 'g']);
    expect(h.read(d)[0]).toBe(Errno.NOTCAPABLE); // a directory fd has no FD_READ
  });

  it('reads, preads and seeks a host file; a read-only open cannot write to it', () => {
    const h = host('ro', tree);
    expect(h.open('f', { rights: READ | BigInt(Rights.FD_WRITE) })[0]).toBe(Errno.ROFS);
    const [e2, fd2] = h.open('f', { rights: READ });
    expect(e2).toBe(0);
    expect(h.read(fd2, 2)).toEqual([0, 'he']);
    expect(h.read(fd2)).toEqual([0, 'llo']);
    expect(h.read(fd2)).toEqual([0, '']);
    expect(h.pread(fd2, 1n, 3)).toEqual([0, 'ell']);
    expect(h.pread(fd2, 5n)).toEqual([0, '']);
    expect(h.pread(fd2, 1000n)).toEqual([0, '']);
    expect(h.call('fd_seek', fd2, -1n, Whence.END, 3300)).toBe(0);
    expect(h.dv.getBigUint64(3300, true)).toBe(4n);
    expect(h.read(fd2)).toEqual([0, 'o']);
    expect(h.call('fd_sync', fd2)).toBe(Errno.NOTCAPABLE); // a write right, stripped under ro
    expect(readFileSync(h.at('f'), 'utf8')).toBe('hello');
  });

  it('a read-only folder: every change is EROFS and the host folder is left exactly as it was', () => {
    const h = host('ro', tree);
    const before = snapshot(h.root);
    expect(h.open('new', { oflags: Oflags.CREAT, rights: READ })[0]).toBe(Errno.ROFS);
    expect(h.open('f', { oflags: Oflags.TRUNC, rights: READ })[0]).toBe(Errno.ROFS);
    expect(h.open('f', { rights: READ, fdflags: Fdflags.APPEND })[0]).toBe(Errno.ROFS);
    expect(h.path('path_create_directory', 'nd')).toBe(Errno.ROFS);
    expect(h.path('path_remove_directory', 'd/e')).toBe(Errno.ROFS);
    expect(h.path('path_unlink_file', 'f')).toBe(Errno.ROFS);
    expect(h.symlink('f', 'sl')).toBe(Errno.ROFS);
    expect(h.two('path_rename', 'f', 'f3')).toBe(Errno.ROFS);
    expect(h.two('path_link', 'f', 'f3')).toBe(Errno.ROFS);
    const len = h.put(1024, 'f');
    expect(h.call('path_filestat_set_times', PREOPEN, 0, 1024, len, 0n, 0n, Fstflags.MTIM_NOW)).toBe(Errno.ROFS);
    expect(h.call('fd_filestat_set_times', PREOPEN, 0n, 0n, Fstflags.MTIM_NOW)).toBe(Errno.NOTCAPABLE);
    expect(snapshot(h.root)).toEqual(before);
  });
});

/** Names, kinds, sizes, contents and mtimes under root (a flat record, for before/after comparisons). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    for (const name of readdirSync(path.join(root, rel))) {
      const p = path.join(root, rel, name);
      const st = lstatSync(p, { bigint: true });
      const r = path.join(rel, name);
      if (st.isDirectory()) {
        out[r] = `dir ${st.mtimeNs}`;
        stack.push(r);
      } else if (st.isSymbolicLink()) out[r] = `link ${readlinkSync(p)} ${st.mtimeNs}`;
      else if (st.isFile()) out[r] = `file ${readFileSync(p, 'hex')} ${st.mtimeNs} ${st.nlink}`;
      else out[r] = `other ${st.mtimeNs}`;
    }
  }
  return out;
}

describe('a host folder, written (rw)', () => {
  it('creates files with mode 0666 less the umask, charging each new name; O_EXCL on an existing one is EEXIST', () => {
    const h = host('rw', tree);
    const [e, fd] = h.open('new.txt', { oflags: Oflags.CREAT, rights: READ | BigInt(Rights.FD_WRITE) });
    expect(e).toBe(0);
    expect(statSync(h.at('new.txt')).mode & 0o777).toBe(0o666 & ~UMASK);
    expect(h.quota()).toEqual({ bytes: 7, entries: 1 });
    expect(h.write(fd, 'abc')).toEqual([0, 3]);
    expect(readFileSync(h.at('new.txt'), 'utf8')).toBe('abc');
    expect(h.quota()).toEqual({ bytes: 10, entries: 1 });
    // Read back through the same fd (opened for reading and writing).
    expect(h.pread(fd, 0n)).toEqual([0, 'abc']);
    expect(h.open('new.txt', { oflags: Oflags.CREAT | Oflags.EXCL, rights: READ })[0]).toBe(Errno.EXIST);
    expect(h.open('f', { oflags: Oflags.CREAT | Oflags.EXCL, rights: READ })[0]).toBe(Errno.EXIST);
    // Opening an existing file with O_CREAT creates nothing and charges nothing.
    expect(h.open('f', { oflags: Oflags.CREAT, rights: READ })[0]).toBe(0);
    expect(h.quota()).toEqual({ bytes: 10, entries: 1 });
    // A write-only fd writes (and was opened for writing only: reading is not its right).
    const [e2, w] = h.open('f', { rights: BigInt(Rights.FD_WRITE) });
    expect(e2).toBe(0);
    expect(h.write(w, 'J')).toEqual([0, 1]);
    expect(readFileSync(h.at('f'), 'utf8')).toBe('Jello');
  });

  it('an fd opened for reading only is opened read-only on the host: a write through it fails there (EBADF) and is refunded', () => {
    const h = host('rw', tree);
    const dir = dirOf(h);
    const file = dir.open('f', { create: false, exclusive: false, truncate: false, directory: false, read: true, write: false });
    expect(file).toBeInstanceOf(HostFile);
    const f = file as HostFile;
    expect(f.pwrite(enc.encode('xxxxxxxx'), 8, 0)).toBe(-Errno.BADF);
    expect(h.wasi.quota.bytes).toBe(0); // the 3 bytes of growth charged, then refunded
    expect(f.setSize(100)).toBe(-Errno.INVAL); // ftruncate on a read-only fd
    expect(h.wasi.quota.bytes).toBe(0);
    expect(f.setSize(1)).toBe(-Errno.INVAL); // a shrink refused: nothing refunded either
    expect(h.wasi.quota.bytes).toBe(0);
    expect(f.size()).toBe(5);
    expect(readFileSync(h.at('f'), 'utf8')).toBe('hello');
    f.close();
    dir.release();
  });

  it('creating a name charges it and refunds it when the host refuses; over the entry quota is ENOSPC with nothing made', () => {
    const h = host('rw', tree, { maxInodes: 1 });
    expect(h.open('one', { oflags: Oflags.CREAT, rights: READ })[0]).toBe(0);
    expect(h.quota()).toEqual({ bytes: 3, entries: 1 });
    expect(h.open('two', { oflags: Oflags.CREAT, rights: READ })[0]).toBe(Errno.NOSPC);
    expect(h.path('path_create_directory', 'two')).toBe(Errno.NOSPC);
    expect(h.symlink('f', 'two')).toBe(Errno.NOSPC);
    expect(h.two('path_link', 'f', 'two')).toBe(Errno.NOSPC);
    expect(existsSync(h.at('two'))).toBe(false);
    expect(h.quota()).toEqual({ bytes: 3, entries: 1 });
    expect(h.path('path_unlink_file', 'one')).toBe(0);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    // The host refuses (the directory was removed under an open fd): the charge is given back.
    const [, d] = h.open('d/e', { oflags: Oflags.DIRECTORY, rights: DIR });
    rmSync(h.at('d/e'), { recursive: true });
    expect(h.open('x', { oflags: Oflags.CREAT, rights: READ, dirfd: d })[0]).toBe(Errno.NOENT);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(h.path('path_create_directory', 'x', d)).toBe(Errno.NOENT);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(h.symlink('f', 'x', d)).toBe(Errno.NOENT);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(h.two('path_link', 'f', 'x', PREOPEN, d)).toBe(Errno.NOENT);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    // And with room for one: the full entry quota is usable again.
    expect(h.path('path_create_directory', 'nd')).toBe(0);
    expect(h.quota()).toEqual({ bytes: 2, entries: 1 });
  });

  it('O_TRUNC on a read-only open empties the file too, as on the virtual backend, and the fd still only reads', () => {
    const h = host('rw', tree);
    const [e, fd] = h.open('f', { oflags: Oflags.TRUNC, rights: READ });
    expect(e).toBe(0);
    expect(readFileSync(h.at('f'), 'utf8')).toBe('');
    expect(h.quota()).toEqual({ bytes: -5, entries: 0 });
    expect(h.read(fd)).toEqual([0, '']);
    expect(h.write(fd, 'x')).toEqual([Errno.NOTCAPABLE, 0]);
    const v = harness({ entries: [{ path: 'f', kind: 'file', data: enc.encode('hello') }] });
    const len = v.put(1024, 'f');
    expect(v.call('path_open', PREOPEN, 0, 1024, len, Oflags.TRUNC, READ, ALL, 0, 2048)).toBe(0);
    expect(v.call('path_filestat_get', PREOPEN, 0, 1024, len, 3200)).toBe(0);
    expect(v.dv.getBigUint64(3200 + 32, true)).toBe(0n);
  });

  it('O_TRUNC empties an existing file and refunds its bytes', () => {
    const h = host('rw', tree);
    const [e, fd] = h.open('f', { oflags: Oflags.TRUNC, rights: READ | BigInt(Rights.FD_WRITE) });
    expect(e).toBe(0);
    expect(readFileSync(h.at('f'), 'utf8')).toBe('');
    expect(h.quota()).toEqual({ bytes: -5, entries: 0 });
    expect(h.write(fd, 'ab')).toEqual([0, 2]);
    expect(h.quota()).toEqual({ bytes: -3, entries: 0 });
  });

  it('writes in place: growth is charged, a pwrite past the end zero-fills, the byte quota is ENOSPC with nothing written', () => {
    const h = host('rw', tree, { maxBytes: 20 });
    const [e, fd] = h.open('f', { rights: READ | BigInt(Rights.FD_WRITE) });
    expect(e).toBe(0);
    expect(h.write(fd, 'HE')).toEqual([0, 2]); // over existing bytes: no growth
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(h.pwrite(fd, 'xy', 8n)).toEqual([0, 2]); // 5 -> 10
    expect(readFileSync(h.at('f'))).toEqual(Buffer.from('HEllo\0\0\0xy'));
    expect(h.quota()).toEqual({ bytes: 5, entries: 0 });
    expect(h.pwrite(fd, 'z', 9n)).toEqual([0, 1]); // inside: no growth
    expect(h.quota()).toEqual({ bytes: 5, entries: 0 });
    expect(readFileSync(h.at('f'))).toEqual(Buffer.from('HEllo\0\0\0xz'));
    expect(h.pwrite(fd, 'q', 25n)).toEqual([Errno.NOSPC, 0]); // 10 -> 26: 16 more, 15 left
    expect(statSync(h.at('f')).size).toBe(10);
    expect(h.quota()).toEqual({ bytes: 5, entries: 0 });
    expect(h.pwrite(fd, 'q', 24n)).toEqual([0, 1]); // 10 -> 25: exactly the 15 left
    expect(h.quota()).toEqual({ bytes: 20, entries: 0 });
  });

  it('the byte quota at its edge: growth to exactly the quota fits, one byte more is ENOSPC', () => {
    const h = host('rw', tree, { maxBytes: 10 });
    const [, fd] = h.open('f', { rights: READ | BigInt(Rights.FD_WRITE | Rights.FD_FILESTAT_SET_SIZE) });
    expect(h.pwrite(fd, 'x', 15n)).toEqual([Errno.NOSPC, 0]); // 5 -> 16: 11 bytes
    expect(readFileSync(h.at('f'), 'utf8')).toBe('hello');
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(h.pwrite(fd, 'x', 14n)).toEqual([0, 1]); // 5 -> 15: 10 bytes
    expect(h.quota()).toEqual({ bytes: 10, entries: 0 });
    expect(statSync(h.at('f')).size).toBe(15);
    // Appending goes to the host's end, which this fd tracks.
    const [, a] = h.open('f', { rights: READ | BigInt(Rights.FD_WRITE), fdflags: Fdflags.APPEND });
    expect(h.write(a, 'y')).toEqual([Errno.NOSPC, 0]);
    expect(h.call('fd_filestat_set_size', fd, 10n)).toBe(0);
    expect(h.quota()).toEqual({ bytes: 5, entries: 0 });
    expect(h.write(a, 'y')).toEqual([0, 1]);
    expect(readFileSync(h.at('f'), 'utf8')).toBe('hello\0\0\0\0\0y');
    expect(h.quota()).toEqual({ bytes: 6, entries: 0 });
  });

  it('two fds on one file: each sees the size the other left (an append lands at the real end; growth is charged once, shrinking refunded once)', () => {
    const h = host('rw', (root) => writeFileSync(path.join(root, 'f'), ''), { maxBytes: 100 });
    const RW = READ | BigInt(Rights.FD_WRITE | Rights.FD_FILESTAT_SET_SIZE);
    const [, a] = h.open('f', { rights: RW });
    expect(h.pwrite(a, 'x'.repeat(50), 0n)).toEqual([0, 50]);
    expect(h.quota()).toEqual({ bytes: 50, entries: 0 });
    // Open a second fd and a third, let both see the 50 bytes, shrink through one, grow back
    // through the other, close both: the file is as it was, and so must the account be. A size
    // remembered per fd made each round give the guest 50 bytes of quota for nothing.
    for (let round = 0; round < 5; round++) {
      const [, b] = h.open('f', { rights: RW });
      const [, c] = h.open('f', { rights: RW });
      expect(h.pwrite(c, '', 0n)).toEqual([0, 0]);
      expect(h.call('fd_filestat_set_size', b, 0n)).toBe(0);
      expect(h.pwrite(c, 'y', 49n)).toEqual([0, 1]);
      expect(statSync(h.at('f')).size).toBe(50);
      expect(h.call('fd_close', b)).toBe(0);
      expect(h.call('fd_close', c)).toBe(0);
      expect(h.quota()).toEqual({ bytes: 50, entries: 0 });
    }
    expect(h.pwrite(a, 'z', 100n)).toEqual([Errno.NOSPC, 0]); // 51 more, 50 left
    expect(statSync(h.at('f')).size).toBe(50);
    // An append-mode fd writes at the end the file has now, not at one it saw before.
    const [, app] = h.open('f', { rights: RW, fdflags: Fdflags.APPEND });
    expect(h.write(app, '1')).toEqual([0, 1]);
    expect(h.call('fd_filestat_set_size', a, 10n)).toBe(0);
    expect(h.write(app, '2')).toEqual([0, 1]);
    expect(readFileSync(h.at('f'), 'utf8')).toBe(`${'\0'.repeat(49)}y`.slice(0, 10) + '2');
    expect(h.quota()).toEqual({ bytes: 11, entries: 0 });
  });

  it('a file’s size is asked of the host again once no fd has it open: a change made meanwhile on the host is not charged', () => {
    const h = host('rw', (root) => writeFileSync(path.join(root, 'f'), ''), { maxBytes: 100 });
    const RW = READ | BigInt(Rights.FD_WRITE);
    let [, a] = h.open('f', { rights: RW });
    expect(h.pwrite(a, 'x'.repeat(5), 0n)).toEqual([0, 5]);
    expect(h.pwrite(a, 'x'.repeat(5), 5n)).toEqual([0, 5]); // one fd, several calls: still one record to let go
    expect(h.call('fd_close', a)).toBe(0);
    expect(h.quota()).toEqual({ bytes: 10, entries: 0 });
    writeFileSync(h.at('f'), ''); // the host empties it while the guest has it closed
    [, a] = h.open('f', { rights: RW });
    expect(h.pwrite(a, 'ab', 0n)).toEqual([0, 2]); // 0 -> 2: charged 2
    expect(h.quota()).toEqual({ bytes: 12, entries: 0 });
    // Hard links share the record: growth through one name is not charged again through the other.
    expect(h.two('path_link', 'f', 'g')).toBe(0);
    const [, b] = h.open('g', { rights: RW });
    expect(h.pwrite(b, 'c', 2n)).toEqual([0, 1]);
    expect(h.pwrite(a, 'd', 3n)).toEqual([0, 1]);
    expect(h.quota()).toEqual({ bytes: 12 + 1 + 1 + 1, entries: 1 });
    expect(readFileSync(h.at('f'), 'utf8')).toBe('abcd');
    // Another file open at the same time has a record of its own.
    writeFileSync(h.at('other'), '12');
    const [, o] = h.open('other', { rights: RW });
    expect(h.pwrite(o, 'z', 2n)).toEqual([0, 1]); // 2 -> 3
    expect(h.pwrite(a, 'e', 4n)).toEqual([0, 1]); // 4 -> 5
    expect(h.quota()).toEqual({ bytes: 12 + 1 + 1 + 1 + 1 + 1, entries: 1 });
  });

  it('fd_filestat_set_size and fd_allocate grow (charged, zero-filled) and shrink (refunded) the host file', () => {
    const h = host('rw', tree, { maxBytes: 100 });
    const [, fd] = h.open('f', { rights: READ | BigInt(Rights.FD_WRITE | Rights.FD_FILESTAT_SET_SIZE | Rights.FD_ALLOCATE) });
    expect(h.call('fd_filestat_set_size', fd, 2n)).toBe(0);
    expect(readFileSync(h.at('f'), 'utf8')).toBe('he');
    expect(h.quota()).toEqual({ bytes: -3, entries: 0 });
    expect(h.call('fd_filestat_set_size', fd, 2n)).toBe(0); // the same size: nothing changes
    expect(h.quota()).toEqual({ bytes: -3, entries: 0 });
    expect(h.call('fd_filestat_set_size', fd, 6n)).toBe(0);
    expect(readFileSync(h.at('f'))).toEqual(Buffer.from('he\0\0\0\0'));
    expect(h.quota()).toEqual({ bytes: 1, entries: 0 });
    expect(h.call('fd_filestat_set_size', fd, 106n)).toBe(Errno.NOSPC); // 100 more, 99 left
    expect(statSync(h.at('f')).size).toBe(6);
    expect(h.quota()).toEqual({ bytes: 1, entries: 0 });
    expect(h.call('fd_filestat_set_size', fd, 105n)).toBe(0); // exactly the 99 left
    expect(h.quota()).toEqual({ bytes: 100, entries: 0 });
    expect(h.call('fd_allocate', fd, 0n, 105n)).toBe(0); // inside: nothing changes
    expect(h.call('fd_allocate', fd, 100n, 6n)).toBe(Errno.NOSPC);
    expect(statSync(h.at('f')).size).toBe(105);
    expect(h.call('fd_filestat_set_size', fd, 1n)).toBe(0);
    expect(h.quota()).toEqual({ bytes: -4, entries: 0 });
    expect(h.call('fd_allocate', fd, 2n, 2n)).toBe(0);
    expect(readFileSync(h.at('f'))).toEqual(Buffer.from('h\0\0\0'));
    expect(h.quota()).toEqual({ bytes: -1, entries: 0 });
  });

  it('directories: mkdir makes mode 0777 less the umask and charges its name; rmdir refunds it; errors come from the host', () => {
    const h = host('rw', tree);
    expect(h.path('path_create_directory', 'nd')).toBe(0);
    expect(statSync(h.at('nd')).isDirectory()).toBe(true);
    expect(statSync(h.at('nd')).mode & 0o777).toBe(0o777 & ~UMASK);
    expect(h.quota()).toEqual({ bytes: 2, entries: 1 });
    expect(h.path('path_create_directory', 'nd')).toBe(Errno.EXIST);
    expect(h.quota()).toEqual({ bytes: 2, entries: 1 });
    expect(h.path('path_remove_directory', 'd')).toBe(Errno.NOTEMPTY);
    expect(h.quota()).toEqual({ bytes: 2, entries: 1 });
    expect(existsSync(h.at('d'))).toBe(true);
    expect(h.path('path_remove_directory', 'nd')).toBe(0);
    expect(existsSync(h.at('nd'))).toBe(false);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    // A folder that was there before: removing it refunds its name (net count of what the guest added).
    expect(h.path('path_remove_directory', 'd/e')).toBe(0);
    expect(h.quota()).toEqual({ bytes: -1, entries: -1 });
  });

  it('unlink refunds a file’s name and, with its last link, its bytes; a symlink’s name and target', () => {
    const h = host('rw', (root) => {
      writeFileSync(path.join(root, 'one'), '12345');
      writeFileSync(path.join(root, 'two'), 'abcdefg');
      linkSync(path.join(root, 'two'), path.join(root, 'two2'));
      symlinkSync('target!', path.join(root, 'sl'));
    });
    expect(h.path('path_unlink_file', 'one')).toBe(0);
    expect(h.quota()).toEqual({ bytes: -(3 + 5), entries: -1 });
    expect(h.path('path_unlink_file', 'two')).toBe(0); // another link remains: the bytes stay
    expect(h.quota()).toEqual({ bytes: -(3 + 5) - 3, entries: -2 });
    expect(statSync(h.at('two2')).nlink).toBe(1);
    expect(h.path('path_unlink_file', 'sl')).toBe(0);
    expect(h.quota()).toEqual({ bytes: -(3 + 5) - 3 - (2 + 7), entries: -3 });
    expect(readdirSync(h.root)).toEqual(['two2']);
    expect(h.path('path_unlink_file', 'gone')).toBe(Errno.NOENT);
  });

  it('symlink charges its name and target and makes it on the host as given', () => {
    const h = host('rw', tree);
    expect(h.symlink('d/g', 'sl')).toBe(0);
    expect(readlinkSync(h.at('sl'))).toBe('d/g');
    expect(h.quota()).toEqual({ bytes: 2 + 3, entries: 1 });
    expect(h.symlink('d/g', 'sl')).toBe(Errno.EXIST);
    expect(h.quota()).toEqual({ bytes: 5, entries: 1 });
    const [e, fd] = h.open('sl', { rights: READ });
    expect(e).toBe(0);
    expect(h.read(fd)).toEqual([0, '12']);
  });

  it('symlink at the byte quota’s edge: name and target exactly fit, one byte more is ENOSPC', () => {
    const h = host('rw', tree, { maxBytes: 6 });
    expect(h.symlink('abcd', 'xyz')).toBe(Errno.NOSPC); // 7
    expect(existsSync(h.at('xyz'))).toBe(false);
    expect(h.symlink('abc', 'xyz')).toBe(0); // 6
    expect(h.quota()).toEqual({ bytes: 6, entries: 1 });
  });

  it('rename moves on the host, charging a longer name, refunding a shorter one and what it replaced', () => {
    const h = host('rw', (root) => {
      writeFileSync(path.join(root, 'a'), 'AAAA');
      writeFileSync(path.join(root, 'victim'), '123456');
      mkdirSync(path.join(root, 'sub'));
    }, { maxBytes: 10 });
    expect(h.two('path_rename', 'a', 'abcd')).toBe(0); // +3
    expect(readFileSync(h.at('abcd'), 'utf8')).toBe('AAAA');
    expect(existsSync(h.at('a'))).toBe(false);
    expect(h.quota()).toEqual({ bytes: 3, entries: 0 });
    expect(h.two('path_rename', 'abcd', 'sub/b')).toBe(0); // -3
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(readFileSync(h.at('sub/b'), 'utf8')).toBe('AAAA');
    // Over the victim: the longer name is charged 5 more, the victim's name (6) and bytes (6) are given back.
    expect(h.two('path_rename', 'sub/b', 'victim')).toBe(0);
    expect(h.quota()).toEqual({ bytes: 5 - 12, entries: -1 });
    expect(readFileSync(h.at('victim'), 'utf8')).toBe('AAAA');
    expect(readdirSync(h.root).sort()).toEqual(['sub', 'victim']);
  });

  it('rename at the byte quota’s edge, and a rename the host refuses, leave the account as it was', () => {
    const h = host('rw', (root) => {
      writeFileSync(path.join(root, 'a'), '');
      mkdirSync(path.join(root, 'full'));
      writeFileSync(path.join(root, 'full', 'x'), '');
      mkdirSync(path.join(root, 'dd'));
    }, { maxBytes: 3 });
    expect(h.two('path_rename', 'a', 'abcde')).toBe(Errno.NOSPC); // +4
    expect(existsSync(h.at('a'))).toBe(true);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(h.two('path_rename', 'a', 'abcd')).toBe(0); // +3: exactly fits
    expect(h.quota()).toEqual({ bytes: 3, entries: 0 });
    expect(h.two('path_rename', 'abcd', 'a')).toBe(0);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    // A directory onto a non-empty one: the host says ENOTEMPTY; the longer name's charge is given back.
    expect(h.two('path_rename', 'dd', 'full')).toBe(Errno.NOTEMPTY);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(h.two('path_rename', 'a', 'full')).toBe(Errno.ISDIR);
    // The same refusal to a shorter name: nothing was charged, so nothing is given back either.
    expect(h.two('path_rename', 'dd', 'full/x')).toBe(Errno.NOTDIR);
    mkdirSync(h.at('f'));
    writeFileSync(h.at('f/y'), '');
    expect(h.two('path_rename', 'dd', 'f')).toBe(Errno.NOTEMPTY); // 'dd' -> 'f': one byte shorter
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(h.two('path_rename', 'dd', 'ful')).toBe(0); // +1
    expect(h.quota()).toEqual({ bytes: 1, entries: 0 });
  });

  it('link makes a second host name (nlink 2) and charges it; a symlink is linked as itself', () => {
    const h = host('rw', tree);
    expect(h.two('path_link', 'f', 'f2')).toBe(0);
    expect(statSync(h.at('f')).nlink).toBe(2);
    expect(statSync(h.at('f2')).ino).toBe(statSync(h.at('f')).ino);
    expect(h.quota()).toEqual({ bytes: 2, entries: 1 });
    expect(h.two('path_link', 'ln', 'ln2')).toBe(0);
    expect(lstatSync(h.at('ln2')).isSymbolicLink()).toBe(true);
    expect(lstatSync(h.at('ln2')).ino).toBe(lstatSync(h.at('ln')).ino);
    expect(h.two('path_link', 'd', 'd2')).toBe(Errno.PERM);
    expect(h.two('path_link', 'f', 'd/g')).toBe(Errno.EXIST);
    expect(h.quota()).toEqual({ bytes: 5, entries: 2 });
  });

  it('set times: a path, a symlink (itself), the preopen, an open file and directory; now, a value, or left alone', () => {
    const h = host('rw', tree);
    for (const n of ['f', 'd', 'ln', '.']) utimesSync(h.at(n), 1_500_000_000, 1_500_000_000);
    const NS = 1_600_000_000_123_456_000n;
    const times = (n: string) => {
      const st = lstatSync(h.at(n), { bigint: true });
      return [st.atimeNs, st.mtimeNs];
    };
    const near = (a: bigint, b: bigint) => (a > b ? a - b : b - a) < 2_000n; // seconds as a double: sub-microsecond rounding
    const len = h.put(1024, 'f');
    const fds = fdsInside(h.root);
    // mtime set, atime left alone.
    expect(h.call('path_filestat_set_times', PREOPEN, 0, 1024, len, 0n, NS, Fstflags.MTIM)).toBe(0);
    let [a, m] = times('f');
    expect(a).toBe(1_500_000_000_000_000_000n);
    expect(near(m!, NS)).toBe(true);
    // atime to now, mtime left alone.
    const before = BigInt(Date.now() - 2000) * 1_000_000n;
    expect(h.call('path_filestat_set_times', PREOPEN, 0, 1024, len, 0n, 0n, Fstflags.ATIM_NOW)).toBe(0);
    const after = BigInt(Date.now() + 2000) * 1_000_000n;
    [a, m] = times('f');
    expect(a! > before && a! < after).toBe(true);
    expect(near(m!, NS)).toBe(true);
    // The symlink itself, not its target (path_filestat_set_times without follow).
    const target = times('f');
    const ll = h.put(1024, 'ln');
    expect(h.call('path_filestat_set_times', PREOPEN, 0, 1024, ll, NS, NS, Fstflags.ATIM | Fstflags.MTIM)).toBe(0);
    expect(near(times('ln')[1]!, NS)).toBe(true);
    expect(times('f')).toEqual(target);
    // Followed: the target.
    expect(h.call('path_filestat_set_times', PREOPEN, FOLLOW, 1024, ll, 0n, 7_000_000_000n, Fstflags.MTIM)).toBe(0);
    expect(near(times('f')[1]!, 7_000_000_000n)).toBe(true);
    // A directory by path, and the preopen as '.'.
    const dl = h.put(1024, 'd');
    expect(h.call('path_filestat_set_times', PREOPEN, 0, 1024, dl, 0n, 8_000_000_000n, Fstflags.MTIM)).toBe(0);
    expect(near(times('d')[1]!, 8_000_000_000n)).toBe(true);
    const dot = h.put(1024, '.');
    expect(h.call('path_filestat_set_times', PREOPEN, 0, 1024, dot, 0n, 9_000_000_000n, Fstflags.MTIM)).toBe(0);
    expect(near(times('.')[1]!, 9_000_000_000n)).toBe(true);
    expect(times('.')[0]).toBe(1_500_000_000_000_000_000n);
    // Through fds: a file's, and a directory's (the preopen).
    const [, fd] = h.open('d/g', { rights: READ | BigInt(Rights.FD_FILESTAT_SET_TIMES) });
    expect(h.call('fd_filestat_set_times', fd, 3_000_000_000n, 0n, Fstflags.ATIM)).toBe(0);
    expect(near(times('d/g')[0]!, 3_000_000_000n)).toBe(true);
    expect(h.call('fd_filestat_set_times', PREOPEN, 0n, 4_000_000_000n, Fstflags.MTIM)).toBe(0);
    expect(near(times('.')[1]!, 4_000_000_000n)).toBe(true);
    expect(h.call('fd_filestat_set_times', fd, 0n, 0n, Fstflags.MTIM_NOW)).toBe(0);
    const mNow = times('d/g')[1]!;
    expect(mNow > before && mNow < BigInt(Date.now() + 2000) * 1_000_000n).toBe(true);
    expect(h.call('path_filestat_set_times', PREOPEN, 0, 1024, h.put(1024, 'none'), 0n, 0n, Fstflags.MTIM_NOW)).toBe(Errno.NOENT);
    expect(fdsInside(h.root)).toBe(fds + 1); // d/g's fd; the ones opened to set times are closed
    // What the guest reads back is the host's time.
    expect(h.stat('d/g')).toEqual([0, hostStat(h.at('d/g'), Filetype.REGULAR_FILE)]);
  });

  it('fd_sync and fd_datasync on a host file and directory succeed; fd_filestat_get follows the fd’s own writes', () => {
    const h = host('rw', tree);
    const [, fd] = h.open('f', { rights: READ | BigInt(Rights.FD_WRITE | Rights.FD_SYNC | Rights.FD_DATASYNC) });
    expect(h.write(fd, 'HELLO!')).toEqual([0, 6]);
    expect(h.call('fd_sync', fd)).toBe(0);
    expect(h.call('fd_datasync', fd)).toBe(0);
    expect(h.call('fd_sync', PREOPEN)).toBe(0);
    expect(h.fstat(fd)).toEqual([0, hostStat(h.at('f'), Filetype.REGULAR_FILE)]);
    expect(h.fstat(fd)[1].size).toBe(6n);
    expect(h.quota()).toEqual({ bytes: 1, entries: 0 });
  });

  it('closing an fd closes its host fd; closing the instance closes every one it opened but not the preopen’s (the root’s)', () => {
    const h = host('rw', tree);
    expect(fdsInside(h.root)).toBe(1);
    const [, f] = h.open('f', { rights: READ });
    const [, d] = h.open('d', { oflags: Oflags.DIRECTORY, rights: DIR });
    const [, g] = h.open('g', { rights: READ, dirfd: d });
    expect(fdsInside(h.root)).toBe(4);
    expect(h.call('fd_close', f)).toBe(0);
    expect(fdsInside(h.root)).toBe(3);
    // A walk through d holds it only while it runs.
    expect(h.stat('d/e/.')[0]).toBe(0);
    expect(h.stat('dl/e')[0]).toBe(0);
    expect(fdsInside(h.root)).toBe(3);
    expect(h.read(g)).toEqual([0, '12']);
    h.wasi.close();
    expect(fdsInside(h.root)).toBe(1);
    expect(fstatSync(h.rootFd).isDirectory()).toBe(true);
  });
});

/** A HostDir over a fresh fd of the preopen's folder, in the instance's quota, for calls the table never makes. */
function dirOf(h: ReturnType<typeof host>, ctx?: HostContext): HostDir {
  const mount: Mount = { guestPath: '/h', mode: 'rw', readonly: false };
  return new HostDir(ctx ?? { quota: h.wasi.quota, stamp: (ns) => ns }, mount, openSync(h.root, constants.O_RDONLY | constants.O_DIRECTORY));
}

describe('HostDir and HostFile: the checks the table makes first, and host errors', () => {
  it('rmdir of . is EINVAL; rename and link to another backend or another host context are EXDEV; link of a directory is EPERM', () => {
    const h = host('rw', tree);
    const quota = h.wasi.quota;
    const ctx: HostContext = { quota, stamp: (ns) => ns };
    const a = dirOf(h, ctx);
    const b = dirOf(h, ctx);
    const other = dirOf(h, { quota, stamp: (ns) => ns });
    const vfs = new Vfs(new QuotaAccount(WASI_QUOTA_DEFAULTS), () => 0n).mount('/v', false)!;
    expect(a.rmdir('.')).toBe(-Errno.INVAL);
    expect(a.rename('f', vfs, 'x')).toBe(-Errno.XDEV);
    expect(a.rename('f', other, 'x')).toBe(-Errno.XDEV);
    expect(a.link('f', vfs, 'x')).toBe(-Errno.XDEV);
    expect(a.link('f', other, 'x')).toBe(-Errno.XDEV);
    expect(a.link('d', b, 'x')).toBe(-Errno.PERM);
    expect(existsSync(h.at('x'))).toBe(false);
    expect(a.rename('f', b, 'x')).toBe(0); // the same context: fine
    expect(a.link('x', b, 'y')).toBe(0);
    expect(readFileSync(h.at('y'), 'utf8')).toBe('hello');
    // retain/release: the fd stays open until the last reference goes.
    const before = fdsInside(h.root);
    expect(a.retain()).toBe(a);
    a.release();
    expect(fdsInside(h.root)).toBe(before);
    a.release();
    expect(fdsInside(h.root)).toBe(before - 1);
    b.release();
    other.release();
  });

  it('a HostDir whose fd is not open answers EBADF, or ENOENT for a name, never a host exception', () => {
    const h = host('rw', tree);
    const mount: Mount = { guestPath: '/h', mode: 'rw', readonly: false };
    const dead = new HostDir({ quota: h.wasi.quota, stamp: (ns) => ns }, mount, 1 << 20);
    expect(dead.stat('.')).toBe(-Errno.BADF);
    expect(dead.lookup('f')).toBe(null);
    expect(dead.readdir(0, () => true)).toBe(-Errno.BADF);
    expect(dead.readdir(2, () => true)).toBe(-Errno.NOENT);
    expect(dead.setTimes('.', { atim: null, mtim: 'now' })).toBe(-Errno.BADF);
    expect(dead.mkdir('x')).toBe(-Errno.NOENT);
    expect(dead.unlink('x')).toBe(-Errno.NOENT);
    expect(dead.readlink('x')).toBe(-Errno.NOENT);
    expect(dead.openDir('x')).toBe(-Errno.NOENT);
    expect(h.wasi.quota.bytes).toBe(0);
    expect(h.wasi.quota.entries).toBe(0);
    expect(() => dead.release()).not.toThrow();
  });

  it('unlink of a directory is the host’s EISDIR, with nothing refunded', () => {
    const h = host('rw', tree);
    const d = dirOf(h);
    expect(d.unlink('d')).toBe(-Errno.ISDIR);
    expect(h.quota()).toEqual({ bytes: 0, entries: 0 });
    expect(existsSync(h.at('d'))).toBe(true);
    d.release();
  });

  it('a HostDir whose fd is a file: a name in it is ENOTDIR, for lookup, stat and open, nothing charged', () => {
    const h = host('rw', tree);
    const mount: Mount = { guestPath: '/h', mode: 'rw', readonly: false };
    const file = new HostDir({ quota: h.wasi.quota, stamp: (ns) => ns }, mount, openSync(h.at('f'), 'r'));
    expect(file.lookup('x')).toBe(-Errno.NOTDIR);
    expect(file.stat('x')).toBe(-Errno.NOTDIR);
    expect(file.open('x', { create: true, exclusive: false, truncate: false, directory: false, read: true, write: true })).toBe(-Errno.NOTDIR);
    expect(file.openDir('x')).toBe(-Errno.NOTDIR);
    expect(h.wasi.quota.bytes).toBe(0);
    expect(h.wasi.quota.entries).toBe(0);
    file.release();
  });

  it('a HostFile whose fd is not open answers EBADF for everything, and close does not throw', () => {
    const h = host('rw', tree);
    const mount: Mount = { guestPath: '/h', mode: 'rw', readonly: false };
    const dead = new HostFile({ quota: h.wasi.quota, stamp: (ns) => ns }, mount, 1 << 20);
    expect(dead.maxSize).toBe(Number.MAX_SAFE_INTEGER);
    expect(dead.size()).toBe(-Errno.BADF);
    expect(dead.stat()).toBe(-Errno.BADF);
    expect(dead.pread(new Uint8Array(4), 0)).toBe(-Errno.BADF);
    expect(dead.pwrite(new Uint8Array(4), 4, 0)).toBe(-Errno.BADF);
    expect(dead.setSize(10)).toBe(-Errno.BADF);
    expect(dead.setTimes({ atim: null, mtim: null })).toBe(-Errno.BADF);
    expect(dead.sync()).toBe(-Errno.BADF);
    expect(h.wasi.quota.bytes).toBe(0);
    expect(() => dead.close()).not.toThrow();
  });

  it('a HostFile writes n bytes of its buffer at an offset, charging only the growth', () => {
    const h = host('rw', tree);
    const fd = openSync(h.at('f'), 'r+');
    const file = new HostFile({ quota: h.wasi.quota, stamp: (ns) => ns }, { guestPath: '/h', mode: 'rw', readonly: false }, fd);
    expect(file.size()).toBe(5);
    expect(file.pwrite(enc.encode('abcdefgh'), 3, 5)).toBe(3); // only n bytes of the buffer
    expect(readFileSync(h.at('f'), 'utf8')).toBe('helloabc');
    expect(file.size()).toBe(8);
    expect(h.wasi.quota.bytes).toBe(3);
    expect(file.pwrite(enc.encode('Z'), 1, 0)).toBe(1);
    expect(file.size()).toBe(8);
    expect(h.wasi.quota.bytes).toBe(3);
    const buf = new Uint8Array(4);
    expect(file.pread(buf, 6)).toBe(2);
    expect(dec.decode(buf.subarray(0, 2))).toBe('bc');
    expect(file.setSize(8)).toBe(0);
    expect(h.wasi.quota.bytes).toBe(3);
    file.close();
  });
});
