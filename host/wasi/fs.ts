import { Errno } from './errno.ts';

/**
 * The file-system model behind WASI's path and fd calls: one interface, two backends.
 * - `vfs.ts`: a virtual directory tree in the worker's memory (empty preopens, and `copy` mode).
 * - `hostfs.ts`: a host folder, read (and in `rw` mode written) in place, through directory fds.
 *
 * A backend only ever sees single names inside a directory it has open (`Dir`): every path the
 * guest passes is resolved here, by `walk`, one component at a time. That is where the
 * confinement lives, the same for both backends:
 * - a path never starts at `/` (ENOTCAPABLE);
 * - `..` pops back to a directory this resolution came through, and never above the directory
 *   the path starts from (ENOTCAPABLE), as Wasmtime's cap-std does;
 * - a symlink is followed by splicing its target into the remaining path, under the same rules:
 *   an absolute target is ENOTCAPABLE, and more than MAX_SYMLINKS in one resolution is ELOOP.
 */

/** Largest number of symlinks followed in one path resolution. */
export const MAX_SYMLINKS = 32;
/** Longest single name (bytes). */
export const MAX_NAME_BYTES = 255;
/**
 * Most directories one resolution may descend into (each held open on its `..` stack, beside the
 * directory it starts from): docs/ABI.md, "a path that descends more than 64 directories in one
 * call" is ENAMETOOLONG. Host directories are real fds of the host process, so one call must not
 * take thousands (a program can always walk further from an fd it opened on the way).
 */
export const MAX_WALK_DEPTH = 64;

export type NodeKind = 'file' | 'dir' | 'symlink' | 'other';

/** What fd_filestat_get / path_filestat_get report. */
export interface Stat {
  dev: bigint;
  ino: bigint;
  filetype: number;
  nlink: bigint;
  size: bigint;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}

/** How path_open opens a name (already checked against rights and the mount's mode). */
export interface OpenRequest {
  create: boolean;
  exclusive: boolean;
  truncate: boolean;
  /** The result must be a directory (O_DIRECTORY, or a trailing slash). */
  directory: boolean;
  read: boolean;
  write: boolean;
}

/** Per-partition file-system quotas, shared by every mount of the partition. */
export interface FsQuotas {
  /** Bytes: file contents, symlink targets and the names the guest creates. */
  maxBytes: number;
  /** Entries: files, directories, symlinks and hard links (each name counts once). */
  maxInodes: number;
  /** Open fds at once, stdio and preopens included. */
  maxFds: number;
  /** Longest path one call may pass, bytes. */
  maxPathBytes: number;
}

/**
 * The quota account: what the guest's file systems hold, charged *before* a change is made
 * (all or nothing), refunded when it goes away. For a host folder in `rw` mode it counts what
 * the guest added (net: growing a file charges, shrinking or removing one refunds).
 */
export class QuotaAccount {
  bytes = 0;
  entries = 0;
  constructor(readonly limits: FsQuotas) {}

  /** Takes `bytes` and `entries` if both fit; false (nothing taken) otherwise. */
  charge(bytes: number, entries: number): boolean {
    if (this.bytes + bytes > this.limits.maxBytes || this.entries + entries > this.limits.maxInodes) return false;
    this.bytes += bytes;
    this.entries += entries;
    return true;
  }

  refund(bytes: number, entries: number): void {
    this.bytes -= bytes;
    this.entries -= entries;
  }
}

/** Bytes a name costs against the quota. */
export function nameBytes(name: string): number {
  return Buffer.byteLength(name);
}

/** A preopen: where the guest sees it, and what kind of tree is behind it. */
export interface Mount {
  readonly guestPath: string;
  /** `ro`: nothing under it changes (EROFS); `rw`: changes reach the host folder; `virtual`: an in-memory tree. */
  readonly mode: 'ro' | 'rw' | 'virtual';
  /** No change is allowed under this mount (EROFS). */
  readonly readonly: boolean;
}

/**
 * An open directory of a backend. Names passed in are single components: never empty, `.`
 * only where documented, never `..`, never containing `/`. Results: >= 0 / an object on
 * success, a *negated* errno on failure.
 */
export interface Dir {
  readonly mount: Mount;
  /** What `name` is, without following a symlink; null when nothing is there. */
  lookup(name: string): NodeKind | null | number;
  /** Opens the directory `name` (not following a symlink). The caller releases it. */
  openDir(name: string): Dir | number;
  /** A symlink's target. */
  readlink(name: string): string | number;
  /** Stat of `name` without following it, or of this directory itself (`.`). */
  stat(name: string): Stat | number;
  /** Opens or creates `name` (a symlink is never followed: ELOOP). */
  open(name: string, request: OpenRequest): File | Dir | number;
  mkdir(name: string): number;
  rmdir(name: string): number;
  unlink(name: string): number;
  symlink(target: string, name: string): number;
  /** Moves `name` to `toName` in `to` (same mount). */
  rename(name: string, to: Dir, toName: string): number;
  /** A new name `toName` in `to` for the file (or symlink) `name` (same mount). */
  link(name: string, to: Dir, toName: string): number;
  /** Times of `name` (not following a symlink), or of this directory (`.`). */
  setTimes(name: string, times: TimesRequest): number;
  /**
   * Calls `each` with the entries from position `cookie` on (0 is `.`, 1 is `..`, then the
   * names); stops when `each` returns false. Returns 0 or a negated errno.
   */
  readdir(cookie: number, each: (name: string, ino: bigint, filetype: number) => boolean): number;
  /** Takes one more reference (an fd, or a path resolution holding it). */
  retain(): Dir;
  /** Drops one reference; the last one frees what the backend holds (a host fd). */
  release(): void;
}

/** fd/path_filestat_set_times arguments, decoded. */
export interface TimesRequest {
  atim: bigint | 'now' | null;
  mtim: bigint | 'now' | null;
}

/** An open regular file of a backend. Positions and sizes are below 2^53 (checked by the caller). */
export interface File {
  readonly mount: Mount;
  /** Largest size and position: 2^31 - 1 for a virtual file, 2^53 - 1 for a host file. */
  readonly maxSize: number;
  /** Reads into buf from `offset`; the count (0 at or past the end). */
  pread(buf: Uint8Array, offset: number): number;
  /** Writes buf[0, n) at `offset` (growing the file, zero-filled, as needed). */
  pwrite(buf: Uint8Array, n: number, offset: number): number;
  /** Current size, or a negated errno. */
  size(): number;
  setSize(size: number): number;
  stat(): Stat | number;
  setTimes(times: TimesRequest): number;
  sync(): number;
  close(): void;
}

/** Is what `Dir.open` returned a file (else a directory)? */
export function isFile(opened: File | Dir): opened is File {
  return 'pread' in opened;
}

/** Where a path led: the directory holding the last component (held: release it), its name and what is there. */
export interface Walked {
  dir: Dir;
  /** The last component, or `.` when the path names a directory of the walk itself. */
  name: string;
  /** What is at `name` (not followed), null when nothing is there. */
  kind: NodeKind | null;
  /** The path ended in `/`: the result must be a directory. */
  trailingSlash: boolean;
}

/**
 * Resolves `path` from `start` (which stays held by its owner). Intermediate symlinks are always
 * followed; the last one only with `follow` (or a trailing slash). Returns the result, holding
 * one reference to its `dir`, or a negated errno; either way nothing else stays held.
 */
export function walk(start: Dir, path: string, follow: boolean): Walked | number {
  if (path.length === 0) return -Errno.NOENT;
  if (path.startsWith('/')) return -Errno.NOTCAPABLE;
  // Components still to walk, back to front (a stack: a symlink's target is pushed on top).
  const parts = path.split('/').reverse();
  let trailingSlash = false;
  while (parts.length > 1 && parts[0] === '') {
    parts.shift();
    trailingSlash = true;
  }
  const stack: Dir[] = [start.retain()];
  const fail = (errno: number): number => {
    for (const d of stack) d.release();
    return -errno;
  };
  const done = (name: string, kind: NodeKind | null): Walked => {
    const dir = stack.pop()!;
    for (const d of stack) d.release();
    return { dir, name, kind, trailingSlash };
  };
  let symlinks = MAX_SYMLINKS;
  while (parts.length > 0) {
    const name = parts.pop()!;
    const last = parts.length === 0;
    if (name === '' || name === '.') {
      if (last) return done('.', 'dir');
      continue;
    }
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) return fail(Errno.NAMETOOLONG);
    if (name === '..') {
      // Confined to the directory the path starts from: its parent is not this call's to see.
      if (stack.length === 1) return fail(Errno.NOTCAPABLE);
      stack.pop()!.release();
      if (last) return done('.', 'dir');
      continue;
    }
    const dir = stack[stack.length - 1]!;
    const kind = dir.lookup(name);
    if (typeof kind === 'number') return fail(-kind);
    if (kind === 'symlink' && (!last || follow || trailingSlash)) {
      if (--symlinks < 0) return fail(Errno.LOOP);
      const target = dir.readlink(name);
      if (typeof target === 'number') return fail(-target);
      if (target.startsWith('/')) return fail(Errno.NOTCAPABLE);
      if (target.length === 0) return fail(Errno.NOENT);
      // The target replaces this component; a trailing slash of the path still applies to the end.
      const more = target.split('/');
      for (let i = more.length - 1; i >= 0; i--) parts.push(more[i]!);
      continue;
    }
    if (last) return done(name, kind);
    if (kind === null) return fail(Errno.NOENT);
    if (kind !== 'dir') return fail(Errno.NOTDIR);
    // stack[0] is the starting directory: stack.length - 1 descents so far.
    if (stack.length > MAX_WALK_DEPTH) return fail(Errno.NAMETOOLONG);
    const next = dir.openDir(name);
    if (typeof next === 'number') return fail(-next);
    stack.push(next);
  }
  return done('.', 'dir');
}
