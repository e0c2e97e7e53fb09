import { Errno, Fdflags, Filetype, Whence } from './errno.ts';
import type { Dir, File, Stat, TimesRequest } from './fs.ts';

/**
 * File descriptors. `Fd` is default-deny: every operation answers EBADF / ENOTSUP / EISDIR,
 * and each kind overrides only what it really supports, so adding a kind never widens what a
 * guest can do by accident. Results follow the hypercall convention: >= 0 is success (a byte
 * count or a position), < 0 is a negated errno.
 *
 * Rights are checked by the table in wasi.ts *before* an fd method runs; the methods check
 * only what rights cannot express (kind, quotas, position ranges).
 */
export class Fd {
  /** Rights this fd has, and rights fds opened through it may have (numbers: all fit in 30 bits). */
  rightsBase: number;
  rightsInheriting: number;
  fdflags = 0;

  constructor(
    readonly filetype: number,
    rightsBase: number,
    rightsInheriting: number,
  ) {
    this.rightsBase = rightsBase;
    this.rightsInheriting = rightsInheriting;
  }

  /** Reads into buf[0, buf.length); returns bytes read (0 = end of file). */
  read(_buf: Uint8Array): number {
    return -Errno.BADF;
  }
  /** Writes buf[0, n); returns bytes written. */
  write(_buf: Uint8Array, _n: number): number {
    return -Errno.BADF;
  }
  pread(_buf: Uint8Array, _offset: number): number {
    return -Errno.SPIPE;
  }
  pwrite(_buf: Uint8Array, _n: number, _offset: number): number {
    return -Errno.SPIPE;
  }
  /** Moves the position; returns the new one. */
  seek(_offset: bigint, _whence: number): number {
    return -Errno.SPIPE;
  }
  tell(): number {
    return -Errno.SPIPE;
  }
  /** Sets the size (fd_filestat_set_size). */
  setSize(_size: bigint): number {
    return -Errno.INVAL;
  }
  /** Bytes ready to read without blocking (poll_oneoff), or -errno. */
  readable(): number {
    return -Errno.BADF;
  }
  /** Blocks until readable(), end of input or the deadline (ms, performance.now() clock). */
  waitReadable(_deadlineMs: number): void {}
  /** fd_filestat_get: a console fd reports only its file type (all else 0). */
  stat(): Stat | number {
    return { dev: 0n, ino: 0n, filetype: this.filetype, nlink: 0n, size: 0n, atim: 0n, mtim: 0n, ctim: 0n };
  }
  /** fd_filestat_set_times: only files and directories have times. */
  setTimes(_times: TimesRequest): number {
    return -Errno.BADF;
  }
  /** fd_sync / fd_datasync. */
  sync(): number {
    return 0;
  }
  /** Called once when the fd is closed (or the partition ends). */
  close(): void {}
}

// ---- Console kinds: the partition's console device behind stdin/stdout/stderr. ----

/**
 * What the console fds need from the console device; a structural type, so wasi/ does not
 * import it. Byte streams: nothing is cut, added or dropped on the way.
 */
export interface ConsolePort {
  /**
   * Writes bytes[0, n) to the stream: the count written (a short count when the reader went
   * away part-way), -1 when the reader has gone, -2 when the rate limit refused the write
   * (nothing written). Waits while the reader is behind.
   */
  writeStream(stream: 'stdout' | 'stderr', bytes: Uint8Array, n: number, mayWait?: boolean): number;
  /** Reads input into out: the count (>= 1), 0 at end of input, -2 when none is ready (non-blocking or timed out). */
  readStream(out: Uint8Array, block: boolean, timeoutMs?: number): number;
  /** Input bytes ready without waiting, 0 at end of input, -2 when none. */
  readableBytes(): number;
  /** Waits up to timeoutMs for input (or its end) without consuming any. */
  waitInput(timeoutMs: number): void;
}

export class ConsoleOutFd extends Fd {
  constructor(private readonly console: ConsolePort, private readonly stream: 'stdout' | 'stderr', rights: number) {
    super(Filetype.CHARACTER_DEVICE, rights, 0);
  }
  /** `mayWait` false: fd_write's later iovecs, which end the write short rather than suspend a shared partition (its rerun would repeat the earlier ones). */
  override write(buf: Uint8Array, n: number, mayWait = true): number {
    const r = this.console.writeStream(this.stream, buf, n, mayWait);
    // Never report refused bytes as written: the reader gone is EPIPE, the rate limit EAGAIN.
    if (r === -1) return -Errno.PIPE;
    if (r === -2) return -Errno.AGAIN;
    return r;
  }
  override readable(): number {
    return -Errno.BADF;
  }
}

/** stdin from the console's input stream: the bytes the host sent, exactly; end of input reads as 0 bytes. */
export class ConsoleInFd extends Fd {
  constructor(private readonly console: ConsolePort, rights: number) {
    super(Filetype.CHARACTER_DEVICE, rights, 0);
  }
  override read(buf: Uint8Array): number {
    const n = this.console.readStream(buf, (this.fdflags & Fdflags.NONBLOCK) === 0);
    return n === -2 ? -Errno.AGAIN : n;
  }
  override readable(): number {
    const n = this.console.readableBytes();
    return n === -2 ? -Errno.AGAIN : n;
  }
  override waitReadable(deadlineMs: number): void {
    this.console.waitInput(Math.max(0, deadlineMs - performance.now()));
  }
}

/** stdin from fixed bytes given in the spec (tests, batch jobs): reads them once, then EOF. */
export class BytesInFd extends Fd {
  private at = 0;
  constructor(private readonly bytes: Uint8Array, rights: number) {
    super(Filetype.CHARACTER_DEVICE, rights, 0);
  }
  override read(buf: Uint8Array): number {
    const n = Math.min(buf.length, this.bytes.length - this.at);
    buf.set(this.bytes.subarray(this.at, this.at + n));
    this.at += n;
    return n;
  }
  override readable(): number {
    return this.bytes.length - this.at;
  }
}

// ---- File-system kinds: the same for a virtual tree and a host folder (see fs.ts). ----

/** A regular file. */
export class FileFd extends Fd {
  private position = 0;

  constructor(readonly file: File, rightsBase: number, fdflags: number) {
    super(Filetype.REGULAR_FILE, rightsBase, 0);
    this.fdflags = fdflags;
  }
  override read(buf: Uint8Array): number {
    const n = this.file.pread(buf, this.position);
    if (n > 0) this.position += n;
    return n;
  }
  override write(buf: Uint8Array, n: number): number {
    if ((this.fdflags & Fdflags.APPEND) !== 0) {
      const size = this.file.size();
      if (size < 0) return size;
      this.position = size;
    }
    const written = this.pwrite(buf, n, this.position);
    if (written > 0) this.position += written;
    return written;
  }
  override pread(buf: Uint8Array, offset: number): number {
    return this.file.pread(buf, offset);
  }
  override pwrite(buf: Uint8Array, n: number, offset: number): number {
    if (offset + n > this.file.maxSize) return -Errno.FBIG;
    return this.file.pwrite(buf, n, offset);
  }
  override seek(offset: bigint, whence: number): number {
    let base: bigint;
    if (whence === Whence.SET) base = 0n;
    else if (whence === Whence.CUR) base = BigInt(this.position);
    else if (whence === Whence.END) {
      const size = this.file.size();
      if (size < 0) return size;
      base = BigInt(size);
    } else return -Errno.INVAL;
    const next = base + offset;
    if (next < 0n) return -Errno.INVAL;
    if (next > BigInt(this.file.maxSize)) return -Errno.OVERFLOW;
    this.position = Number(next);
    return this.position;
  }
  override tell(): number {
    return this.position;
  }
  override setSize(size: bigint): number {
    if (size < 0n) return -Errno.INVAL;
    if (size > BigInt(this.file.maxSize)) return -Errno.FBIG;
    return this.file.setSize(Number(size));
  }
  override readable(): number {
    const size = this.file.size();
    return size < 0 ? size : Math.max(0, size - this.position);
  }
  override stat(): Stat | number {
    return this.file.stat();
  }
  override setTimes(times: TimesRequest): number {
    return this.file.setTimes(times);
  }
  override sync(): number {
    return this.file.sync();
  }
  override close(): void {
    this.file.close();
  }
}

/** A directory: the base of path operations. */
export class DirFd extends Fd {
  constructor(
    /** The directory; this fd holds one reference to it, dropped on close. */
    readonly dir: Dir,
    rightsBase: number,
    rightsInheriting: number,
    /** Set on preopens: the guest path fd_prestat_dir_name reports. */
    readonly preopenPath: string | null = null,
  ) {
    super(Filetype.DIRECTORY, rightsBase, rightsInheriting);
  }
  override read(): number {
    return -Errno.ISDIR;
  }
  override write(): number {
    return -Errno.ISDIR;
  }
  override pread(): number {
    return -Errno.ISDIR;
  }
  override pwrite(): number {
    return -Errno.ISDIR;
  }
  override stat(): Stat | number {
    return this.dir.stat('.');
  }
  override setTimes(times: TimesRequest): number {
    return this.dir.setTimes('.', times);
  }
  override close(): void {
    this.dir.release();
  }
}
