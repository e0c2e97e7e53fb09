import type { Blocker } from '../channel/blocker.ts';
import type { GuestMemory } from '../abi/guest-memory.ts';
import {
  ClockId,
  DIRENT_HEADER,
  DIR_RIGHTS,
  Errno,
  EVENT_SIZE,
  Fdflags,
  EventType,
  FDSTAT_SIZE,
  FILESTAT_SIZE,
  FILE_RIGHTS,
  Fstflags,
  LOOKUP_SYMLINK_FOLLOW,
  Oflags,
  PREOPENTYPE_DIR,
  Rights,
  SUBCLOCKFLAG_ABSTIME,
  SUBSCRIPTION_SIZE,
  WRITE_RIGHTS,
} from './errno.ts';
import { ConsoleOutFd, DirFd, Fd, FileFd } from './fd.ts';
import { isFile, walk, type Stat, type TimesRequest, type Walked } from './fs.ts';

/** What the WASI table needs from the partition: memory, devices, the exit path. Wired by the worker. */
export interface WasiContext {
  memory: GuestMemory;
  /** Longest path one call may pass, in bytes (ENAMETOOLONG beyond). */
  maxPathBytes: number;
  /** argv and environment (`KEY=VALUE`). */
  args: readonly string[];
  env: readonly string[];
  /** Open fds, and the most that may be open at once (EMFILE beyond). */
  fds: (Fd | undefined)[];
  maxFds: number;
  /** The clock device (null when not granted: clock calls answer ENOTCAPABLE). */
  clock: { read(id: number): bigint | null; readonly resolutionNs: number } | null;
  /** The entropy device (null when not granted: random_get answers ENOTCAPABLE). */
  entropy: { fill(out: Uint8Array, n: number): void } | null;
  /** Ends the run with this code through the dispatcher's exit (sticky); never returns. */
  exit(code: number): never;
  /** Throws the dispatcher's pending exit, if any: a guest cannot swallow its exit. */
  checkEnding(): void;
  /** Counts a call and reports an EFAULT as a violation. */
  onCall(name: string): void;
  onFault(name: string): void;
  /** How poll_oneoff waits: see host/channel/blocker.ts. */
  blocker: Blocker;
  /**
   * The partition's hypercall rate limit, which WASI calls pass too (one operation each, and
   * the bytes fd_write / fd_pwrite hand over): true to go on (perhaps after a wait), false when
   * refused (reject mode: the call answers EAGAIN having done nothing). proc_exit always passes.
   */
  admit(bytes: number): boolean;
}

/** Most bytes moved by one read or write call: larger requests are short reads/writes (POSIX allows it). */
const IO_MAX = 65536;
const RIGHTS_MASK = (1n << 30n) - 1n;
/** Every bit preview1 defines in `oflags` (CREAT, DIRECTORY, EXCL, TRUNC) and `fdflags` (APPEND … SYNC). */
const OFLAGS_ALL = Oflags.CREAT | Oflags.DIRECTORY | Oflags.EXCL | Oflags.TRUNC;
const FDFLAGS_ALL = 0x1f;
/** Hostile 64-bit rights bits above the ones that exist are simply not granted. */
const rightsOf = (r: bigint): number => Number(BigInt.asUintN(64, r) & RIGHTS_MASK);
const encoder = new TextEncoder();
const pathDecoder = new TextDecoder('utf-8', { fatal: true });

type Fn = (...args: never[]) => number | void;

/**
 * WASI preview1: one flat table of functions, each a few lines delegating to an fd or the
 * VFS. Conventions, every function:
 * - every pointer is checked through GuestMemory *before* anything changes: a bad one answers
 *   EFAULT (and is reported as a violation), never a host exception and never a partial write;
 * - rights are checked before the fd acts (ENOTCAPABLE), the fd's kind by the fd (default-deny);
 * - the dispatcher's pending exit is rethrown first.
 */
export function createWasiImports(ctx: WasiContext): Record<string, Fn> {
  const mem = ctx.memory;
  const io = new Uint8Array(IO_MAX);
  const spans: number[] = [];
  const rec = new Uint8Array(Math.max(FILESTAT_SIZE, FDSTAT_SIZE));
  const recView = new DataView(rec.buffer);
  const argBlock = encodeBlock(ctx.args);
  const envBlock = encodeBlock(ctx.env);

  // ---- helpers: lookups, pointer checks ----
  const ok = (ptr: number, len: number): boolean => mem.checkSpan(ptr, len) === 0;
  const fdOf = (n: number, rights: number): Fd | number => {
    const fd = ctx.fds[n >>> 0];
    if (fd === undefined) return Errno.BADF;
    return (fd.rightsBase & rights) === rights ? fd : Errno.NOTCAPABLE;
  };
  const dirOf = (n: number, rights: number): DirFd | number => {
    const fd = ctx.fds[n >>> 0];
    if (fd === undefined) return Errno.BADF;
    if (!(fd instanceof DirFd)) return Errno.NOTDIR;
    return (fd.rightsBase & rights) === rights ? fd : Errno.NOTCAPABLE;
  };
  const pathAt = (ptr: number, len: number): string | number => {
    if (len >>> 0 > ctx.maxPathBytes) return Errno.NAMETOOLONG;
    if (!ok(ptr, len)) return Errno.FAULT;
    const bytes = new Uint8Array(len >>> 0);
    mem.readBytes(ptr, len, bytes);
    if (bytes.includes(0)) return Errno.INVAL;
    try {
      return pathDecoder.decode(bytes);
    } catch {
      return Errno.ILSEQ;
    }
  };
  /**
   * A directory fd with these rights, or its errno. A change under a read-only preopen is EROFS
   * (before ENOTCAPABLE: its write rights are stripped too, but EROFS tells a C program why).
   */
  const dirFor = (dirfd: number, rights: number): DirFd | number => {
    const dir = dirOf(dirfd, 0);
    if (typeof dir === 'number') return dir;
    if (dir.dir.mount.readonly && (rights & WRITE_RIGHTS) !== 0) return Errno.ROFS;
    return dirOf(dirfd, rights);
  };
  /**
   * Directory fd + path → resolution, with every check in order; errno on failure. The result
   * holds its directory: `within` releases it. `before` runs once the fd and its rights passed,
   * before the path is read: the call's other checks (its second fd, its output windows, its
   * flags), so a bad fd is EBADF whatever else is also wrong, in the order docs/ABI.md states.
   */
  const resolve = (
    dirfd: number,
    rights: number,
    ptr: number,
    len: number,
    follow: boolean,
    before?: () => number,
  ): { fd: DirFd; at: Walked } | number => {
    const fd = dirFor(dirfd, rights);
    if (typeof fd === 'number') return fd;
    const bad = before === undefined ? Errno.SUCCESS : before();
    if (bad !== Errno.SUCCESS) return bad;
    const path = pathAt(ptr, len);
    if (typeof path === 'number') return path;
    const at = walk(fd.dir, path, follow);
    return typeof at === 'number' ? -at : { fd, at };
  };
  /** Runs `fn` on a resolution and releases its directory, whatever happens. */
  const within = (w: { fd: DirFd; at: Walked } | number, fn: (w: { fd: DirFd; at: Walked }) => number): number => {
    if (typeof w === 'number') return w;
    try {
      return fn(w);
    } finally {
      w.at.dir.release();
    }
  };
  /** ESUCCESS for an fd, else its errno. */
  const fdErrno = (fd: Fd | number): number => (typeof fd === 'number' ? fd : Errno.SUCCESS);
  /** A backend result (>= 0, or a negated errno) as an errno. */
  const errnoOf = (r: number): number => (r < 0 ? -r : Errno.SUCCESS);
  const allocFd = (fd: Fd): number => {
    const table = ctx.fds;
    for (let i = 0; i < table.length; i++) if (table[i] === undefined) return (table[i] = fd), i;
    table.push(fd);
    return table.length - 1;
  };
  const openCount = (): number => ctx.fds.reduce((n, f) => (f === undefined ? n : n + 1), 0);
  const writeFilestat = (ptr: number, st: Stat): void => {
    rec.fill(0);
    recView.setBigUint64(0, st.dev, true);
    recView.setBigUint64(8, st.ino, true);
    rec[16] = st.filetype;
    recView.setBigUint64(24, st.nlink, true);
    recView.setBigUint64(32, st.size, true);
    recView.setBigUint64(40, st.atim, true);
    recView.setBigUint64(48, st.mtim, true);
    recView.setBigUint64(56, st.ctim, true);
    mem.writeBytes(ptr, rec, FILESTAT_SIZE);
  };
  /** fst_flags and the two times, as a request; null for bad flags (EINVAL). */
  const timesOf = (atim: bigint, mtim: bigint, flags: number): TimesRequest | null => {
    if (flags & ~0xf || (flags & Fstflags.ATIM && flags & Fstflags.ATIM_NOW) || (flags & Fstflags.MTIM && flags & Fstflags.MTIM_NOW)) return null;
    return {
      atim: flags & Fstflags.ATIM_NOW ? 'now' : flags & Fstflags.ATIM ? BigInt.asUintN(64, atim) : null,
      mtim: flags & Fstflags.MTIM_NOW ? 'now' : flags & Fstflags.MTIM ? BigInt.asUintN(64, mtim) : null,
    };
  };
  const clockNow = (id: number): bigint | null => {
    if (ctx.clock === null) return null;
    // CPU-time clocks are served by the monotonic clock: a partition's CPU time is not exposed.
    return ctx.clock.read(id === ClockId.REALTIME ? 1 : 0);
  };
  const blockSizes = (block: { count: number; bytes: Uint8Array }, countPtr: number, sizePtr: number): number => {
    if (!ok(countPtr, 4) || !ok(sizePtr, 4)) return Errno.FAULT;
    mem.writeU32(countPtr, block.count);
    mem.writeU32(sizePtr, block.bytes.length);
    return Errno.SUCCESS;
  };
  const blockGet = (block: { count: number; bytes: Uint8Array; offsets: number[] }, ptrsPtr: number, bufPtr: number): number => {
    if (!ok(ptrsPtr, block.count * 4) || !ok(bufPtr, block.bytes.length)) return Errno.FAULT;
    block.offsets.forEach((off, i) => mem.writeU32(ptrsPtr + i * 4, (bufPtr >>> 0) + off));
    mem.writeBytes(bufPtr, block.bytes);
    return Errno.SUCCESS;
  };
  const iovecs = (iovs: number, n: number): number => {
    const total = mem.readIovecs(iovs, n, spans);
    return total >= 0 ? total : total === -9 /* TOO_LARGE */ ? -Errno.INVAL : -Errno.FAULT;
  };

  const table = {
    // ---- args, environment ----
    args_sizes_get: (argc: number, size: number) => blockSizes(argBlock, argc, size),
    args_get: (argv: number, buf: number) => blockGet(argBlock, argv, buf),
    environ_sizes_get: (count: number, size: number) => blockSizes(envBlock, count, size),
    environ_get: (environ: number, buf: number) => blockGet(envBlock, environ, buf),

    // ---- clocks, entropy, scheduling, exit ----
    clock_res_get: (id: number, out: number) => {
      if (id >>> 0 > ClockId.THREAD_CPUTIME) return Errno.INVAL;
      if (ctx.clock === null) return Errno.NOTCAPABLE;
      if (!ok(out, 8)) return Errno.FAULT;
      mem.writeU64(out, BigInt(ctx.clock.resolutionNs));
      return Errno.SUCCESS;
    },
    clock_time_get: (id: number, _precision: bigint, out: number) => {
      if (id >>> 0 > ClockId.THREAD_CPUTIME) return Errno.INVAL;
      if (ctx.clock === null) return Errno.NOTCAPABLE;
      if (!ok(out, 8)) return Errno.FAULT;
      mem.writeU64(out, clockNow(id)!);
      return Errno.SUCCESS;
    },
    random_get: (buf: number, len: number) => {
      if (ctx.entropy === null) return Errno.NOTCAPABLE;
      if (!ok(buf, len)) return Errno.FAULT;
      for (let done = 0, total = len >>> 0; done < total; done += IO_MAX) {
        const n = Math.min(IO_MAX, total - done);
        ctx.entropy.fill(io, n);
        mem.writeBytes((buf >>> 0) + done, io, n);
      }
      return Errno.SUCCESS;
    },
    sched_yield: () => Errno.SUCCESS,
    proc_exit: (code: number): void => ctx.exit(code),
    proc_raise: (_sig: number) => Errno.NOSYS,

    // ---- fd I/O ----
    fd_read: (n: number, iovs: number, count: number, nread: number) => {
      const fd = fdOf(n, Rights.FD_READ);
      if (typeof fd === 'number') return fd;
      if (!ok(nread, 4)) return Errno.FAULT;
      const total = iovecs(iovs, count);
      if (total < 0) return -total;
      const got = fd.read(io.subarray(0, total));
      if (got < 0) return -got;
      mem.scatter(spans, io, got);
      mem.writeU32(nread, got);
      return Errno.SUCCESS;
    },
    fd_write: (n: number, iovs: number, count: number, nwritten: number) => {
      const fd = fdOf(n, Rights.FD_WRITE);
      if (typeof fd === 'number') return fd;
      if (!ok(nwritten, 4)) return Errno.FAULT;
      const total = iovecs(iovs, count);
      if (total < 0) return -total;
      if (!ctx.admit(total)) return Errno.AGAIN;
      let put: number;
      if (fd instanceof ConsoleOutFd) {
        // stdout/stderr take each span straight from guest memory: one copy (or none, to a file).
        put = 0;
        for (let i = 0; i < spans.length; i += 2) {
          const want = spans[i + 1]!;
          const r = fd.write(mem.spanView(spans[i]!, want), want, put === 0);
          if (r < 0) {
            if (put === 0) return -r;
            break; // a short write: what went out is reported, nothing more
          }
          put += r;
          if (r < want) break;
        }
      } else {
        mem.gather(spans, io);
        put = fd.write(io, total);
        if (put < 0) return -put;
      }
      mem.writeU32(nwritten, put);
      return Errno.SUCCESS;
    },
    fd_pread: (n: number, iovs: number, count: number, offset: bigint, nread: number) => {
      const fd = fdOf(n, Rights.FD_READ | Rights.FD_SEEK);
      if (typeof fd === 'number') return fd;
      if (!ok(nread, 4)) return Errno.FAULT;
      const total = iovecs(iovs, count);
      if (total < 0) return -total;
      const off = BigInt.asUintN(64, offset);
      const got = off > BigInt(Number.MAX_SAFE_INTEGER) ? 0 : fd.pread(io.subarray(0, total), Number(off));
      if (got < 0) return -got;
      mem.scatter(spans, io, got);
      mem.writeU32(nread, got);
      return Errno.SUCCESS;
    },
    fd_pwrite: (n: number, iovs: number, count: number, offset: bigint, nwritten: number) => {
      const fd = fdOf(n, Rights.FD_WRITE | Rights.FD_SEEK);
      if (typeof fd === 'number') return fd;
      if (!ok(nwritten, 4)) return Errno.FAULT;
      const total = iovecs(iovs, count);
      if (total < 0) return -total;
      const off = BigInt.asUintN(64, offset);
      if (off > BigInt(Number.MAX_SAFE_INTEGER)) return Errno.FBIG;
      if (!ctx.admit(total)) return Errno.AGAIN;
      mem.gather(spans, io);
      const put = fd.pwrite(io, total, Number(off));
      if (put < 0) return -put;
      mem.writeU32(nwritten, put);
      return Errno.SUCCESS;
    },
    fd_seek: (n: number, offset: bigint, whence: number, out: number) => {
      const fd = fdOf(n, Rights.FD_SEEK);
      if (typeof fd === 'number') return fd;
      if (!ok(out, 8)) return Errno.FAULT;
      const pos = fd.seek(BigInt.asIntN(64, offset), whence);
      if (pos < 0) return -pos;
      mem.writeU64(out, BigInt(pos));
      return Errno.SUCCESS;
    },
    fd_tell: (n: number, out: number) => {
      const fd = fdOf(n, Rights.FD_TELL);
      if (typeof fd === 'number') return fd;
      if (!ok(out, 8)) return Errno.FAULT;
      const pos = fd.tell();
      if (pos < 0) return -pos;
      mem.writeU64(out, BigInt(pos));
      return Errno.SUCCESS;
    },
    fd_close: (n: number) => {
      const fd = ctx.fds[n >>> 0];
      if (fd === undefined) return Errno.BADF;
      ctx.fds[n >>> 0] = undefined;
      fd.close();
      return Errno.SUCCESS;
    },
    fd_renumber: (from: number, to: number) => {
      const a = ctx.fds[from >>> 0];
      const b = ctx.fds[to >>> 0];
      if (a === undefined || b === undefined) return Errno.BADF;
      if (a === b) return Errno.SUCCESS;
      b.close();
      ctx.fds[to >>> 0] = a;
      ctx.fds[from >>> 0] = undefined;
      return Errno.SUCCESS;
    },
    fd_sync: (n: number) => {
      const fd = fdOf(n, Rights.FD_SYNC);
      return typeof fd === 'number' ? fd : errnoOf(fd.sync());
    },
    fd_datasync: (n: number) => {
      const fd = fdOf(n, Rights.FD_DATASYNC);
      return typeof fd === 'number' ? fd : errnoOf(fd.sync());
    },
    fd_advise: (n: number, _offset: bigint, _len: bigint, advice: number) => {
      const fd = fdOf(n, Rights.FD_ADVISE);
      if (typeof fd === 'number') return fd;
      return advice >>> 0 > 5 ? Errno.INVAL : Errno.SUCCESS;
    },
    fd_allocate: (n: number, offset: bigint, len: bigint) => {
      const fd = fdOf(n, Rights.FD_ALLOCATE);
      if (typeof fd === 'number') return fd;
      if (!(fd instanceof FileFd)) return Errno.BADF;
      const end = BigInt.asUintN(64, offset) + BigInt.asUintN(64, len);
      const size = fd.file.size();
      if (size < 0) return -size;
      if (end <= BigInt(size)) return Errno.SUCCESS;
      return errnoOf(fd.setSize(end));
    },

    // ---- fd state ----
    fd_fdstat_get: (n: number, out: number) => {
      const fd = ctx.fds[n >>> 0];
      if (fd === undefined) return Errno.BADF;
      if (!ok(out, FDSTAT_SIZE)) return Errno.FAULT;
      rec.fill(0, 0, FDSTAT_SIZE);
      rec[0] = fd.filetype;
      recView.setUint16(2, fd.fdflags, true);
      recView.setBigUint64(8, BigInt(fd.rightsBase), true);
      recView.setBigUint64(16, BigInt(fd.rightsInheriting), true);
      mem.writeBytes(out, rec, FDSTAT_SIZE);
      return Errno.SUCCESS;
    },
    fd_fdstat_set_flags: (n: number, flags: number) => {
      const fd = fdOf(n, Rights.FD_FDSTAT_SET_FLAGS);
      if (typeof fd === 'number') return fd;
      if (flags & ~FDFLAGS_ALL) return Errno.INVAL;
      fd.fdflags = flags;
      return Errno.SUCCESS;
    },
    fd_fdstat_set_rights: (n: number, base: bigint, inheriting: bigint) => {
      const fd = ctx.fds[n >>> 0];
      if (fd === undefined) return Errno.BADF;
      const b = BigInt.asUintN(64, base);
      const i = BigInt.asUintN(64, inheriting);
      // Rights only ever narrow.
      if (b & ~BigInt(fd.rightsBase) || i & ~BigInt(fd.rightsInheriting)) return Errno.NOTCAPABLE;
      fd.rightsBase = Number(b);
      fd.rightsInheriting = Number(i);
      return Errno.SUCCESS;
    },
    fd_filestat_get: (n: number, out: number) => {
      const fd = fdOf(n, Rights.FD_FILESTAT_GET);
      if (typeof fd === 'number') return fd;
      if (!ok(out, FILESTAT_SIZE)) return Errno.FAULT;
      const st = fd.stat();
      if (typeof st === 'number') return -st;
      writeFilestat(out, st);
      return Errno.SUCCESS;
    },
    fd_filestat_set_size: (n: number, size: bigint) => {
      const fd = fdOf(n, Rights.FD_FILESTAT_SET_SIZE);
      if (typeof fd === 'number') return fd;
      return errnoOf(fd.setSize(BigInt.asUintN(64, size)));
    },
    fd_filestat_set_times: (n: number, atim: bigint, mtim: bigint, flags: number) => {
      const fd = fdOf(n, Rights.FD_FILESTAT_SET_TIMES);
      if (typeof fd === 'number') return fd;
      const times = timesOf(atim, mtim, flags);
      return times === null ? Errno.INVAL : errnoOf(fd.setTimes(times));
    },
    fd_prestat_get: (n: number, out: number) => {
      const fd = ctx.fds[n >>> 0];
      if (!(fd instanceof DirFd) || fd.preopenPath === null) return Errno.BADF;
      if (!ok(out, 8)) return Errno.FAULT;
      mem.writeU32(out, PREOPENTYPE_DIR);
      mem.writeU32(out + 4, Buffer.byteLength(fd.preopenPath));
      return Errno.SUCCESS;
    },
    fd_prestat_dir_name: (n: number, buf: number, len: number) => {
      const fd = ctx.fds[n >>> 0];
      if (!(fd instanceof DirFd) || fd.preopenPath === null) return Errno.BADF;
      const name = encoder.encode(fd.preopenPath);
      if (len >>> 0 < name.length) return Errno.NAMETOOLONG;
      if (!ok(buf, name.length)) return Errno.FAULT;
      mem.writeBytes(buf, name);
      return Errno.SUCCESS;
    },
    fd_readdir: (n: number, buf: number, len: number, cookie: bigint, bufused: number) => {
      const fd = dirOf(n, Rights.FD_READDIR);
      if (typeof fd === 'number') return fd;
      if (!ok(buf, len) || !ok(bufused, 4)) return Errno.FAULT;
      const cap = len >>> 0;
      const c = BigInt.asUintN(64, cookie);
      // Records are built first and the result sized to them, never to the guest's `len`
      // (which may be as large as its memory).
      const records: Uint8Array[] = [];
      let at = 0;
      let next = c > 0x7fffffffn ? 0x7fffffff : Number(c);
      const errno = fd.dir.readdir(next, (name, ino, filetype) => {
        const nameBytes = encoder.encode(name);
        const record = new Uint8Array(DIRENT_HEADER + nameBytes.length);
        const rv = new DataView(record.buffer);
        rv.setBigUint64(0, BigInt(++next), true);
        rv.setBigUint64(8, ino, true);
        rv.setUint32(16, nameBytes.length, true);
        record[20] = filetype;
        record.set(nameBytes, DIRENT_HEADER);
        // The last record may be cut: the guest sees bufused == len and asks again from its cookie.
        records.push(record.subarray(0, Math.min(record.length, cap - at)));
        at += records[records.length - 1]!.length;
        return at < cap;
      });
      if (errno < 0) return -errno;
      const out = new Uint8Array(at);
      let o = 0;
      for (const r of records) (out.set(r, o), (o += r.length));
      mem.writeBytes(buf, out, at);
      mem.writeU32(bufused, at);
      return Errno.SUCCESS;
    },

    // ---- paths ----
    path_open: (dirfd: number, dirflags: number, ptr: number, len: number, oflags: number, base: bigint, inheriting: bigint, fdflags: number, out: number) => {
      const creat = (oflags & Oflags.CREAT) !== 0;
      const trunc = (oflags & Oflags.TRUNC) !== 0;
      const need = Rights.PATH_OPEN | (creat ? Rights.PATH_CREATE_FILE : 0) | (trunc ? Rights.PATH_FILESTAT_SET_SIZE : 0);
      const before = (): number => {
        if (!ok(out, 4)) return Errno.FAULT;
        // A bit preview1 does not define is an invalid flags value (as Wasmtime answers it).
        return (oflags & ~OFLAGS_ALL) !== 0 || (fdflags & ~FDFLAGS_ALL) !== 0 || (dirflags & ~LOOKUP_SYMLINK_FOLLOW) !== 0 ? Errno.INVAL : Errno.SUCCESS;
      };
      return within(resolve(dirfd, need, ptr, len, (dirflags & LOOKUP_SYMLINK_FOLLOW) !== 0, before), ({ fd: parent, at }) => {
        const wantBase = rightsOf(base);
        const wantsWrite = (wantBase & Rights.FD_WRITE) !== 0 || (fdflags & Fdflags.APPEND) !== 0;
        if (parent.dir.mount.readonly && (creat || trunc || wantsWrite)) return Errno.ROFS;
        if (openCount() >= ctx.maxFds) return Errno.MFILE;
        const opened = at.dir.open(at.name, {
          create: creat,
          exclusive: (oflags & Oflags.EXCL) !== 0,
          truncate: trunc,
          directory: (oflags & Oflags.DIRECTORY) !== 0 || at.trailingSlash,
          read: (wantBase & (Rights.FD_READ | Rights.FD_READDIR)) !== 0 || (wantBase & Rights.FD_WRITE) === 0,
          write: wantsWrite,
        });
        if (typeof opened === 'number') return -opened;
        const inh = parent.rightsInheriting;
        const fd: Fd = isFile(opened)
          ? new FileFd(opened, wantBase & inh & FILE_RIGHTS, fdflags)
          : new DirFd(opened, wantBase & inh & DIR_RIGHTS, rightsOf(inheriting) & inh);
        mem.writeU32(out, allocFd(fd));
        return Errno.SUCCESS;
      });
    },
    path_create_directory: (dirfd: number, ptr: number, len: number) =>
      within(resolve(dirfd, Rights.PATH_CREATE_DIRECTORY, ptr, len, false), ({ at }) => {
        if (at.kind !== null) return Errno.EXIST;
        return errnoOf(at.dir.mkdir(at.name));
      }),
    path_remove_directory: (dirfd: number, ptr: number, len: number) =>
      within(resolve(dirfd, Rights.PATH_REMOVE_DIRECTORY, ptr, len, false), ({ fd, at }) => {
        if (at.kind === null) return Errno.NOENT;
        if (at.kind !== 'dir') return Errno.NOTDIR;
        if (at.name === '.') return at.dir === fd.dir ? Errno.BUSY : Errno.INVAL;
        return errnoOf(at.dir.rmdir(at.name));
      }),
    path_unlink_file: (dirfd: number, ptr: number, len: number) =>
      within(resolve(dirfd, Rights.PATH_UNLINK_FILE, ptr, len, false), ({ at }) => {
        if (at.kind === null) return Errno.NOENT;
        if (at.kind === 'dir') return Errno.ISDIR;
        if (at.trailingSlash) return Errno.NOTDIR;
        return errnoOf(at.dir.unlink(at.name));
      }),
    path_rename: (fromfd: number, fromPtr: number, fromLen: number, tofd: number, toPtr: number, toLen: number) =>
      within(resolve(fromfd, Rights.PATH_RENAME_SOURCE, fromPtr, fromLen, false, () => fdErrno(dirFor(tofd, Rights.PATH_RENAME_TARGET))), (a) =>
        within(resolve(tofd, Rights.PATH_RENAME_TARGET, toPtr, toLen, false), (b) => {
          if (a.fd.dir.mount !== b.fd.dir.mount) return Errno.XDEV;
          if (a.at.kind === null) return Errno.NOENT;
          if (a.at.name === '.' || b.at.name === '.') return Errno.BUSY;
          if (a.at.kind !== 'dir') {
            if (b.at.kind === 'dir') return Errno.ISDIR;
            if (a.at.trailingSlash || b.at.trailingSlash) return Errno.NOTDIR;
          }
          return errnoOf(a.at.dir.rename(a.at.name, b.at.dir, b.at.name));
        }),
      ),
    path_link: (fromfd: number, flags: number, fromPtr: number, fromLen: number, tofd: number, toPtr: number, toLen: number) => {
      // As Wasmtime: a hard link never follows a symlink; asking it to (or any unknown flag) is EINVAL, once both fds passed.
      const before = (): number => {
        const to = fdErrno(dirFor(tofd, Rights.PATH_LINK_TARGET));
        return to !== Errno.SUCCESS ? to : flags !== 0 ? Errno.INVAL : Errno.SUCCESS;
      };
      return within(resolve(fromfd, Rights.PATH_LINK_SOURCE, fromPtr, fromLen, false, before), (a) =>
        within(resolve(tofd, Rights.PATH_LINK_TARGET, toPtr, toLen, false), (b) => {
          if (a.fd.dir.mount !== b.fd.dir.mount) return Errno.XDEV;
          if (a.at.kind === null) return Errno.NOENT;
          if (a.at.kind === 'dir') return Errno.PERM;
          if (a.at.trailingSlash) return Errno.NOTDIR;
          const taken = destination(b.at);
          if (taken !== Errno.SUCCESS) return taken;
          return errnoOf(a.at.dir.link(a.at.name, b.at.dir, b.at.name));
        }),
      );
    },
    path_symlink: (targetPtr: number, targetLen: number, dirfd: number, ptr: number, len: number) => {
      let target = '';
      const before = (): number => {
        const t = pathAt(targetPtr, targetLen);
        if (typeof t === 'number') return t;
        target = t;
        return Errno.SUCCESS;
      };
      return within(resolve(dirfd, Rights.PATH_SYMLINK, ptr, len, false, before), ({ at }) => {
        const taken = destination(at);
        if (taken !== Errno.SUCCESS) return taken;
        // As Wasmtime: an absolute target could send another program on the host anywhere.
        if (target.startsWith('/')) return Errno.PERM;
        if (target.length === 0) return Errno.NOENT;
        return errnoOf(at.dir.symlink(target, at.name));
      });
    },
    path_readlink: (dirfd: number, ptr: number, len: number, buf: number, bufLen: number, bufused: number) => {
      const windows = (): number => (ok(buf, bufLen) && ok(bufused, 4) ? Errno.SUCCESS : Errno.FAULT);
      return within(resolve(dirfd, Rights.PATH_READLINK, ptr, len, false, windows), ({ at }) => {
        if (at.kind === null) return Errno.NOENT;
        if (at.kind !== 'symlink') return Errno.INVAL;
        const target = at.dir.readlink(at.name);
        if (typeof target === 'number') return -target;
        const bytes = encoder.encode(target);
        const n = Math.min(bytes.length, bufLen >>> 0);
        mem.writeBytes(buf, bytes, n);
        mem.writeU32(bufused, n);
        return Errno.SUCCESS;
      });
    },
    path_filestat_get: (dirfd: number, flags: number, ptr: number, len: number, out: number) => {
      const windows = (): number => (!ok(out, FILESTAT_SIZE) ? Errno.FAULT : (flags & ~LOOKUP_SYMLINK_FOLLOW) !== 0 ? Errno.INVAL : Errno.SUCCESS);
      return within(resolve(dirfd, Rights.PATH_FILESTAT_GET, ptr, len, (flags & LOOKUP_SYMLINK_FOLLOW) !== 0, windows), ({ at }) => {
        if (at.kind === null) return Errno.NOENT;
        if (at.trailingSlash && at.kind !== 'dir') return Errno.NOTDIR;
        const st = at.dir.stat(at.name);
        if (typeof st === 'number') return -st;
        writeFilestat(out, st);
        return Errno.SUCCESS;
      });
    },
    path_filestat_set_times: (dirfd: number, flags: number, ptr: number, len: number, atim: bigint, mtim: bigint, fst: number) => {
      const times = timesOf(atim, mtim, fst);
      const before = (): number => (times === null || (flags & ~LOOKUP_SYMLINK_FOLLOW) !== 0 ? Errno.INVAL : Errno.SUCCESS);
      return within(resolve(dirfd, Rights.PATH_FILESTAT_SET_TIMES, ptr, len, (flags & LOOKUP_SYMLINK_FOLLOW) !== 0, before), ({ at }) => {
        if (at.kind === null) return Errno.NOENT;
        return errnoOf(at.dir.setTimes(at.name, times!));
      });
    },

    // ---- poll ----
    poll_oneoff: (inPtr: number, outPtr: number, nsubs: number, neventsPtr: number) => {
      const n = nsubs >>> 0;
      if (n === 0) return Errno.INVAL;
      if (n > IO_MAX / SUBSCRIPTION_SIZE) return Errno.INVAL;
      if (!ok(inPtr, n * SUBSCRIPTION_SIZE) || !ok(outPtr, n * EVENT_SIZE) || !ok(neventsPtr, 4)) return Errno.FAULT;
      const subs = new Uint8Array(n * SUBSCRIPTION_SIZE);
      mem.readBytes(inPtr, subs.length, subs);
      return poll(subs, n, outPtr, neventsPtr);
    },

    // ---- sockets: no socket ever exists in a partition, so every fd is a bad fd or not a socket ----
    sock_accept: (fd: number, _flags: number, _out: number) => notSocket(fd),
    sock_recv: (fd: number, _a: number, _b: number, _c: number, _d: number, _e: number) => notSocket(fd),
    sock_send: (fd: number, _a: number, _b: number, _c: number, _d: number) => notSocket(fd),
    sock_shutdown: (fd: number, _how: number) => notSocket(fd),
  };

  /**
   * poll_oneoff: clock subscriptions (relative or absolute, on any clock) and fd readiness.
   * Files and console output are always ready; console input is ready when a line is queued or
   * input has ended. Blocks this partition's worker only (the watchdog still bounds it).
   */
  function poll(subs: Uint8Array, n: number, outPtr: number, neventsPtr: number): number {
    const dv = new DataView(subs.buffer);
    const events = new Uint8Array(n * EVENT_SIZE);
    const ev = new DataView(events.buffer);
    let waitOn: Fd | null = null;
    // A poll that suspended (shared placement) and runs again keeps its first start.
    const start = ctx.blocker.deadline(0);
    const deadlines: number[] = [];
    for (let i = 0; i < n; i++) {
      const at = i * SUBSCRIPTION_SIZE;
      deadlines.push(subs[at + 8] === EventType.CLOCK ? clockDeadline(dv, at, start) : Infinity);
    }
    for (;;) {
      let count = 0;
      let earliest = Infinity;
      const now = performance.now();
      for (let i = 0; i < n; i++) {
        const at = i * SUBSCRIPTION_SIZE;
        const tag = subs[at + 8]!;
        let errno: number = Errno.SUCCESS;
        let ready = false;
        let nbytes = 0;
        if (tag === EventType.CLOCK) {
          const d = deadlines[i]!;
          if (Number.isNaN(d)) (errno = ctx.clock === null ? Errno.NOTCAPABLE : Errno.INVAL), (ready = true);
          else if (d <= now) ready = true;
          else earliest = Math.min(earliest, d);
        } else if (tag === EventType.FD_READ || tag === EventType.FD_WRITE) {
          const fd = fdOf(dv.getUint32(at + 16, true), Rights.POLL_FD_READWRITE | (tag === EventType.FD_READ ? Rights.FD_READ : Rights.FD_WRITE));
          ready = true;
          if (typeof fd === 'number') errno = fd;
          else if (tag === EventType.FD_READ) {
            const r = fd.readable();
            if (r === -Errno.AGAIN) (ready = false), (waitOn ??= fd);
            else if (r < 0) errno = -r;
            else nbytes = r;
          }
        } else {
          errno = Errno.INVAL;
          ready = true;
        }
        if (!ready) continue;
        const e = count++ * EVENT_SIZE;
        events.set(subs.subarray(at, at + 8), e); // userdata
        ev.setUint16(e + 8, errno, true);
        events[e + 10] = tag > 2 ? 0 : tag;
        ev.setBigUint64(e + 16, BigInt(nbytes), true);
      }
      if (count > 0) {
        mem.writeBytes(outPtr, events, count * EVENT_SIZE);
        mem.writeU32(neventsPtr, count);
        return Errno.SUCCESS;
      }
      if (waitOn !== null) waitOn.waitReadable(earliest);
      else if (earliest < Infinity) ctx.blocker.sleep(earliest);
      else return Errno.INVAL; // nothing can ever become ready
      ctx.checkEnding();
    }
  }

  /** A clock subscription's deadline on the performance.now() scale, or NaN when its clock is unusable. */
  function clockDeadline(dv: DataView, at: number, start: number): number {
    const id = dv.getUint32(at + 16, true);
    const timeout = dv.getBigUint64(at + 24, true);
    const flags = dv.getUint16(at + 40, true);
    if (id > ClockId.THREAD_CPUTIME || ctx.clock === null) return NaN;
    let rel = timeout;
    if (flags & SUBCLOCKFLAG_ABSTIME) {
      const now = clockNow(id)!;
      rel = timeout > now ? timeout - now : 0n;
    }
    return start + Number(rel) / 1e6;
  }

  /** EBADF for an fd that is not open, ENOTSOCK for one that is (none is a socket). */
  function notSocket(fd: number): number {
    return ctx.fds[fd >>> 0] === undefined ? Errno.BADF : Errno.NOTSOCK;
  }

  /**
   * A link or symlink destination must not exist; with a trailing slash (POSIX, as Wasmtime on
   * Linux): a missing name is ENOENT, an existing file ENOTDIR, an existing directory EEXIST.
   */
  function destination(at: Walked): number {
    if (at.kind === null) return at.trailingSlash ? Errno.NOENT : Errno.SUCCESS;
    if (at.trailingSlash && at.kind !== 'dir') return Errno.NOTDIR;
    return Errno.EXIST;
  }

  // Wrap each function: count (first, like a hypercall: a call made after the guest's exit is
  // still a call it made), pending exit, the hypercall rate limit (fd_write and fd_pwrite pass
  // it themselves, with their bytes; proc_exit always passes), report faults.
  const imports: Record<string, Fn> = {};
  for (const [name, fn] of Object.entries(table) as [string, (...a: unknown[]) => number | void][]) {
    const selfAdmitted = name === 'fd_write' || name === 'fd_pwrite' || name === 'proc_exit';
    imports[name] = (...args: unknown[]) => {
      ctx.onCall(name);
      ctx.checkEnding();
      if (!selfAdmitted && !ctx.admit(0)) return Errno.AGAIN;
      const result = fn(...args);
      if (result === Errno.FAULT) ctx.onFault(name);
      return result;
    };
  }
  return imports;
}

/** argv / environ as one NUL-separated block plus each string's offset. */
function encodeBlock(strings: readonly string[]): { count: number; bytes: Uint8Array; offsets: number[] } {
  const parts = strings.map((s) => encoder.encode(s));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length + 1, 0));
  const offsets: number[] = [];
  let at = 0;
  for (const p of parts) {
    offsets.push(at);
    bytes.set(p, at);
    at += p.length + 1;
  }
  return { count: strings.length, bytes, offsets };
}
