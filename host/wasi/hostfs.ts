import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  futimesSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  opendirSync,
  readlinkSync,
  readSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type BigIntStats,
  type Dir as NodeDir,
  type Dirent,
} from 'node:fs';
import { Errno, Filetype } from './errno.ts';
import { nameBytes, type Dir, type File, type Mount, type NodeKind, type OpenRequest, type QuotaAccount, type Stat, type TimesRequest } from './fs.ts';

/**
 * The host-folder backend: a preopen that *is* a host folder, read lazily (a 2 GB folder costs
 * nothing until the guest reads a file), and in `rw` mode written in place.
 *
 * Confinement, without `openat(2)` in Node: every directory this backend touches is an open fd,
 * starting from the preopen's fd (opened by the root), and every operation names one entry
 * *inside* such a directory through Linux's `/proc/self/fd/<fd>/<name>`: the kernel resolves
 * `/proc/self/fd/<fd>` to that very directory (not to a path that could have been swapped), so
 * this is openat(fd, name). Each step down opens the next directory with O_DIRECTORY|O_NOFOLLOW,
 * every file is opened with O_NOFOLLOW, and symlinks are never followed by the kernel: the path
 * walk (fs.ts) reads them and resolves their targets itself, inside the preopen. So no `..`, no
 * symlink and no hard link created by the guest leads out of the folder. What a concurrent host
 * process can still do is in docs/THREAT-MODEL.md.
 *
 * Special files (devices, FIFOs, sockets) are listed and stat'ed but never opened (EACCES): a
 * FIFO could block the worker, a device is host hardware. Timestamps are rounded down to the
 * clock device's resolution (0 without a clock, or with a deterministic one): a file's mtime must
 * not be a finer clock than the one the partition was granted.
 *
 * Host fds are opened in the partition's worker. A worker that ends normally closes them (the
 * WASI instance's close, in the run's `finally`); one the watchdog terminates has them closed by
 * Node, which tracks the fds a worker opens (`trackUnmanagedFds`, set explicitly in run.ts).
 */

const O = constants;
const OPEN_DIR = O.O_RDONLY | O.O_DIRECTORY | O.O_NOFOLLOW;
/** No side effects on open: never a controlling tty, never blocked by a FIFO that raced in. */
const OPEN_SAFE = O.O_NOFOLLOW | O.O_NOCTTY | O.O_NONBLOCK;

const NODE_ERRNO: Record<string, number> = {
  E2BIG: Errno.TOOBIG, EACCES: Errno.ACCES, EAGAIN: Errno.AGAIN, EBADF: Errno.BADF, EBUSY: Errno.BUSY,
  EDQUOT: Errno.DQUOT, EEXIST: Errno.EXIST, EFBIG: Errno.FBIG, EINTR: Errno.INTR, EINVAL: Errno.INVAL,
  EIO: Errno.IO, EISDIR: Errno.ISDIR, ELOOP: Errno.LOOP, EMFILE: Errno.NFILE, EMLINK: Errno.MLINK,
  ENAMETOOLONG: Errno.NAMETOOLONG, ENFILE: Errno.NFILE, ENOENT: Errno.NOENT, ENOMEM: Errno.NOMEM,
  ENOSPC: Errno.NOSPC, ENOTDIR: Errno.NOTDIR, ENOTEMPTY: Errno.NOTEMPTY, ENOTSUP: Errno.NOTSUP,
  EOPNOTSUPP: Errno.NOTSUP, EPERM: Errno.PERM, EROFS: Errno.ROFS, ESPIPE: Errno.SPIPE, ETXTBSY: Errno.TXTBSY,
  EXDEV: Errno.XDEV, EOVERFLOW: Errno.OVERFLOW, ESTALE: Errno.STALE,
};

/** A host error as a negated WASI errno (EIO for anything without a counterpart). The host process's own EMFILE is ENFILE to the guest. */
export function hostErrno(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code;
  return -(typeof code === 'string' && Object.hasOwn(NODE_ERRNO, code) ? NODE_ERRNO[code]! : Errno.IO);
}

/** What one host mount shares between its directories and files. */
export interface HostContext {
  readonly quota: QuotaAccount;
  /** Rounds a host timestamp (ns) down to what the partition may see. */
  readonly stamp: (ns: bigint) => bigint;
}

function kindOf(st: BigIntStats): NodeKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

function filetypeOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isBlockDevice(): boolean; isCharacterDevice(): boolean; isSocket(): boolean }): number {
  if (st.isFile()) return Filetype.REGULAR_FILE;
  if (st.isDirectory()) return Filetype.DIRECTORY;
  if (st.isSymbolicLink()) return Filetype.SYMBOLIC_LINK;
  if (st.isBlockDevice()) return Filetype.BLOCK_DEVICE;
  if (st.isCharacterDevice()) return Filetype.CHARACTER_DEVICE;
  if (st.isSocket()) return Filetype.SOCKET_STREAM;
  return Filetype.UNKNOWN;
}

function statOf(st: BigIntStats, ctx: HostContext): Stat {
  return {
    dev: st.dev,
    ino: st.ino,
    filetype: filetypeOf(st),
    nlink: st.nlink,
    size: st.size,
    atim: ctx.stamp(st.atimeNs),
    mtim: ctx.stamp(st.mtimeNs),
    ctim: ctx.stamp(st.ctimeNs),
  };
}

/** Opens `path`: the fd, or a negated errno. */
function openHost(path: string, flags: number, mode?: number): number {
  try {
    return openSync(path, flags, mode);
  } catch (error) {
    return hostErrno(error);
  }
}

function closeHost(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // EIO on close has nothing left to report to.
  }
}

/** Seconds (what Node's utimes functions take) from a request field and the current value. */
function seconds(field: bigint | 'now' | null, current: bigint): number {
  if (field === 'now') return Date.now() / 1000;
  return Number(field ?? current) / 1e9;
}

/** A directory of a host folder, held as an fd. */
export class HostDir implements Dir {
  private refs = 1;
  /**
   * An open listing (sequential fd_readdir calls continue it): the cookie of its next entry, and
   * that entry if it was already read but did not fit the guest's buffer.
   */
  private listing: { dir: NodeDir; next: number; pending: Dirent | null } | null = null;

  constructor(
    private readonly ctx: HostContext,
    readonly mount: Mount,
    /** The fd; owned (closed with the last reference) unless `borrowed`. */
    readonly fd: number,
    /** The preopen's own fd belongs to the root, which opened it: never closed here. */
    private readonly borrowed = false,
    /** This is the preopen's root: its `..` entry reports itself. */
    private readonly isRoot = false,
  ) {}

  /** The kernel's name for `name` inside this very directory (openat(fd, name) without openat). */
  private at(name: string): string {
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  retain(): Dir {
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs > 0) return;
    this.closeListing();
    if (!this.borrowed) closeHost(this.fd);
  }

  private closeListing(): void {
    if (this.listing === null) return;
    try {
      this.listing.dir.closeSync();
    } catch {
      // already closed
    }
    this.listing = null;
  }

  private lstat(name: string): BigIntStats | number {
    try {
      return name === '.' ? fstatSync(this.fd, { bigint: true }) : lstatSync(this.at(name), { bigint: true });
    } catch (error) {
      return hostErrno(error);
    }
  }

  lookup(name: string): NodeKind | null | number {
    const st = this.lstat(name);
    if (st === -Errno.NOENT) return null;
    return typeof st === 'number' ? st : kindOf(st);
  }

  openDir(name: string): Dir | number {
    const fd = openHost(this.at(name), OPEN_DIR);
    return fd < 0 ? fd : new HostDir(this.ctx, this.mount, fd);
  }

  readlink(name: string): string | number {
    let target: Buffer;
    try {
      target = readlinkSync(this.at(name), { encoding: 'buffer' });
    } catch (error) {
      return hostErrno(error);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(target);
    } catch {
      return -Errno.ILSEQ;
    }
  }

  stat(name: string): Stat | number {
    const st = this.lstat(name);
    return typeof st === 'number' ? st : statOf(st, this.ctx);
  }

  open(name: string, r: OpenRequest): File | Dir | number {
    const existing = this.lookup(name);
    if (typeof existing === 'number') return existing;
    if (existing === 'other') return -Errno.ACCES;
    if (existing === 'dir') {
      if (r.write || r.truncate) return -Errno.ISDIR;
      if (r.create && r.exclusive) return -Errno.EXIST;
      const fd = openHost(this.at(name), OPEN_DIR);
      return fd < 0 ? fd : new HostDir(this.ctx, this.mount, fd);
    }
    if (existing === null && r.directory) return r.create ? -Errno.ISDIR : -Errno.NOENT;
    if (existing === 'file' && r.directory) return -Errno.NOTDIR;
    const q = this.ctx.quota;
    const creating = existing === null && r.create;
    if (creating && !q.charge(nameBytes(name), 1)) return -Errno.NOSPC;
    // A truncation needs the file open for writing (ftruncate), whatever rights the guest's fd
    // gets: O_TRUNC on a read-only open truncates on the virtual backend too.
    const writing = r.write || r.truncate;
    let flags = OPEN_SAFE | (writing ? (r.read ? O.O_RDWR : O.O_WRONLY) : O.O_RDONLY);
    if (r.create) flags |= O.O_CREAT;
    if (r.exclusive) flags |= O.O_EXCL;
    const fd = openHost(this.at(name), flags, 0o666);
    if (fd < 0) {
      if (creating) q.refund(nameBytes(name), 1);
      return fd;
    }
    const file = new HostFile(this.ctx, this.mount, fd);
    // What was opened is checked, not what the name was a moment ago: a special file that
    // raced in is refused, and a truncation is charged against the size it really had.
    const st = file.stat();
    if (typeof st === 'number' || st.filetype !== Filetype.REGULAR_FILE) {
      file.close();
      if (creating) q.refund(nameBytes(name), 1);
      return typeof st === 'number' ? st : st.filetype === Filetype.DIRECTORY ? -Errno.ISDIR : -Errno.ACCES;
    }
    if (r.truncate) {
      const e = file.setSize(0);
      if (e < 0) {
        file.close();
        return e;
      }
    }
    return file;
  }

  /** Runs a host call that changes this directory; 0 or a negated errno. */
  private change(fn: () => void): number {
    try {
      fn();
      return 0;
    } catch (error) {
      return hostErrno(error);
    }
  }

  /** Bytes and entries a name gives back when it goes (a file's contents with its last link). */
  private holding(name: string): { bytes: number; entries: number } | number {
    const st = this.lstat(name);
    if (typeof st === 'number') return st;
    let bytes = nameBytes(name);
    if (st.isFile() && st.nlink === 1n) bytes += Number(st.size);
    if (st.isSymbolicLink()) bytes += Number(st.size);
    return { bytes, entries: 1 };
  }

  mkdir(name: string): number {
    const q = this.ctx.quota;
    if (!q.charge(nameBytes(name), 1)) return -Errno.NOSPC;
    const e = this.change(() => mkdirSync(this.at(name), 0o777));
    if (e < 0) q.refund(nameBytes(name), 1);
    return e;
  }

  /** rmdir of `.` is the kernel's EINVAL (POSIX), like any other failure: nothing refunded. */
  rmdir(name: string): number {
    const e = this.change(() => rmdirSync(this.at(name)));
    if (e === 0) this.ctx.quota.refund(nameBytes(name), 1);
    return e;
  }

  unlink(name: string): number {
    const held = this.holding(name);
    if (typeof held === 'number') return held;
    const e = this.change(() => unlinkSync(this.at(name)));
    if (e === 0) this.ctx.quota.refund(held.bytes, held.entries);
    return e;
  }

  symlink(target: string, name: string): number {
    const q = this.ctx.quota;
    const bytes = nameBytes(name) + nameBytes(target);
    if (!q.charge(bytes, 1)) return -Errno.NOSPC;
    const e = this.change(() => symlinkSync(target, this.at(name)));
    if (e < 0) q.refund(bytes, 1);
    return e;
  }

  rename(name: string, to: Dir, toName: string): number {
    if (!(to instanceof HostDir) || to.ctx !== this.ctx) return -Errno.XDEV;
    const q = this.ctx.quota;
    const replaced = to.holding(toName);
    const gone = typeof replaced === 'number' ? { bytes: 0, entries: 0 } : replaced;
    const bytes = nameBytes(toName) - nameBytes(name);
    if (bytes > 0 && !q.charge(bytes, 0)) return -Errno.NOSPC;
    const e = this.change(() => renameSync(this.at(name), to.at(toName)));
    if (e < 0) {
      if (bytes > 0) q.refund(bytes, 0);
      return e;
    }
    if (bytes < 0) q.refund(-bytes, 0);
    q.refund(gone.bytes, gone.entries);
    return 0;
  }

  link(name: string, to: Dir, toName: string): number {
    if (!(to instanceof HostDir) || to.ctx !== this.ctx) return -Errno.XDEV;
    const q = this.ctx.quota;
    if (!q.charge(nameBytes(toName), 1)) return -Errno.NOSPC;
    // link(2) on Linux does not follow a symlink it is given: the new name is the symlink's. A
    // directory is its EPERM (the charge given back like any failure's).
    const e = this.change(() => linkSync(this.at(name), to.at(toName)));
    if (e < 0) q.refund(nameBytes(toName), 1);
    return e;
  }

  setTimes(name: string, times: TimesRequest): number {
    const st = this.lstat(name);
    if (typeof st === 'number') return st;
    const atime = seconds(times.atim, st.atimeNs);
    const mtime = seconds(times.mtim, st.mtimeNs);
    // `.` is this directory (fstat): never a symlink, never special.
    if (st.isSymbolicLink()) return this.change(() => lutimesSync(this.at(name), atime, mtime));
    if (!st.isFile() && !st.isDirectory()) return -Errno.ACCES;
    // Through an fd opened without following, so a symlink swapped in meanwhile is not followed.
    const fd = name === '.' ? this.fd : openHost(this.at(name), OPEN_SAFE | O.O_RDONLY);
    if (fd < 0) return fd;
    try {
      return this.change(() => futimesSync(fd, atime, mtime));
    } finally {
      if (fd !== this.fd) closeHost(fd);
    }
  }

  readdir(cookie: number, each: (name: string, ino: bigint, filetype: number) => boolean): number {
    if (cookie === 0) {
      const self = this.lstat('.');
      if (typeof self === 'number') return self;
      if (!each('.', self.ino, Filetype.DIRECTORY)) return 0;
    }
    if (cookie <= 1) {
      const up = this.isRoot ? this.lstat('.') : this.lstat('..');
      if (typeof up === 'number') return up;
      if (!each('..', up.ino, Filetype.DIRECTORY)) return 0;
    }
    // Continue the open listing when the guest asks for the next entry, else start over and
    // skip: memory stays one entry at a time, however large the host directory is.
    const want = Math.max(2, cookie);
    if (this.listing === null || this.listing.next !== want) {
      this.closeListing();
      try {
        this.listing = { dir: opendirSync(`/proc/self/fd/${this.fd}`), next: 2, pending: null };
      } catch (error) {
        return hostErrno(error);
      }
    }
    const listing = this.listing;
    try {
      for (;;) {
        const entry = listing.pending ?? listing.dir.readSync();
        listing.pending = null;
        if (entry === null) {
          this.closeListing();
          return 0;
        }
        if (listing.next < want) {
          listing.next++;
          continue;
        }
        const st = this.lstat(entry.name);
        const ino = typeof st === 'number' ? 0n : st.ino;
        if (!each(entry.name, ino, filetypeOf(entry))) {
          // It did not fit whole: the guest asks for this cookie again.
          listing.pending = entry;
          return 0;
        }
        listing.next++;
      }
    } catch (error) {
      this.closeListing();
      return hostErrno(error);
    }
  }
}

/** The size the partition's fds last gave an open host file, shared by every fd on it. */
interface SizeRecord {
  size: number;
  /** Open HostFiles using it: the record goes with the last, and the next open asks the host again. */
  refs: number;
}

/** Per host context (one partition), the size records of its open files, by `dev:ino`. */
const openSizes = new WeakMap<HostContext, Map<string, SizeRecord>>();

/**
 * A regular file of a host folder, open. Growth is charged against the size the partition last
 * gave the file, asked of the host once (fstat) when the first fd on it needs it and then kept in
 * one record shared by every fd on that file (hard links included: the key is the inode). A size
 * remembered per fd let a guest shrink through one fd (refunded) and grow back through another
 * (not charged) in a loop, writing past its byte quota, and made an append through one fd land
 * past the end another had truncated. Asking the host at every write would also be right, at the
 * cost of a second system call per write (measured in-thread: 2.75x the time of a 64-byte pwrite, load 11).
 */
export class HostFile implements File {
  readonly maxSize = Number.MAX_SAFE_INTEGER;
  private record: { key: string; sizes: Map<string, SizeRecord>; size: SizeRecord } | null = null;

  constructor(
    private readonly ctx: HostContext,
    readonly mount: Mount,
    private readonly fd: number,
  ) {}

  /** This file's size record (joined on first use), or a negated errno. */
  private sized(): SizeRecord | number {
    if (this.record !== null) return this.record.size;
    let st: BigIntStats;
    try {
      st = fstatSync(this.fd, { bigint: true });
    } catch (error) {
      return hostErrno(error);
    }
    let sizes = openSizes.get(this.ctx);
    if (sizes === undefined) openSizes.set(this.ctx, (sizes = new Map()));
    const key = `${st.dev}:${st.ino}`;
    let size = sizes.get(key);
    if (size === undefined) sizes.set(key, (size = { size: Number(st.size), refs: 0 }));
    size.refs++;
    this.record = { key, sizes, size };
    return size;
  }

  pread(buf: Uint8Array, offset: number): number {
    try {
      return readSync(this.fd, buf, 0, buf.length, offset);
    } catch (error) {
      return hostErrno(error);
    }
  }

  pwrite(buf: Uint8Array, n: number, offset: number): number {
    const rec = this.sized();
    if (typeof rec === 'number') return rec;
    const size = rec.size;
    const growth = Math.max(0, offset + n - size);
    if (growth > 0 && !this.ctx.quota.charge(growth, 0)) return -Errno.NOSPC;
    let written: number;
    try {
      written = writeSync(this.fd, buf, 0, n, offset);
    } catch (error) {
      if (growth > 0) this.ctx.quota.refund(growth, 0);
      return hostErrno(error);
    }
    const end = offset + written;
    rec.size = Math.max(size, end);
    // A short write grew the file less than charged.
    if (end < offset + n) this.ctx.quota.refund(Math.min(growth, offset + n - Math.max(end, size)), 0);
    return written;
  }

  size(): number {
    const rec = this.sized();
    return typeof rec === 'number' ? rec : rec.size;
  }

  setSize(size: number): number {
    const rec = this.sized();
    if (typeof rec === 'number') return rec;
    const delta = size - rec.size;
    if (delta > 0 && !this.ctx.quota.charge(delta, 0)) return -Errno.NOSPC;
    try {
      ftruncateSync(this.fd, size);
    } catch (error) {
      if (delta > 0) this.ctx.quota.refund(delta, 0);
      return hostErrno(error);
    }
    if (delta < 0) this.ctx.quota.refund(-delta, 0);
    rec.size = size;
    return 0;
  }

  stat(): Stat | number {
    try {
      return statOf(fstatSync(this.fd, { bigint: true }), this.ctx);
    } catch (error) {
      return hostErrno(error);
    }
  }

  setTimes(times: TimesRequest): number {
    try {
      const st = fstatSync(this.fd, { bigint: true });
      futimesSync(this.fd, seconds(times.atim, st.atimeNs), seconds(times.mtim, st.mtimeNs));
      return 0;
    } catch (error) {
      return hostErrno(error);
    }
  }

  sync(): number {
    try {
      fsyncSync(this.fd);
      return 0;
    } catch (error) {
      return hostErrno(error);
    }
  }

  close(): void {
    const r = this.record;
    if (r !== null && --r.size.refs === 0) r.sizes.delete(r.key);
    this.record = null;
    closeHost(this.fd);
  }
}
