import { Errno, Filetype } from './errno.ts';
import { nameBytes, type Dir, type File, type Mount, type NodeKind, type OpenRequest, type QuotaAccount, type Stat, type TimesRequest } from './fs.ts';

/**
 * The virtual file-system backend: a directory tree in the worker's heap, nothing else. Used for
 * preopens without a host folder and for `copy` mode (seeded by the root with a copy of a host
 * folder before the partition starts); no guest path ever reaches node:fs through it.
 *
 * Invariants:
 * - Every object the guest creates is charged to the partition's quota account *before* the
 *   change (a refused change leaves the tree as it was): each name (file, directory, symlink,
 *   hard link) one entry and its length in bytes; file contents and symlink targets their bytes.
 *   With the heap cost of an entry bounded (VFS_ENTRY_HEAP_BYTES), the quotas bound the worker's
 *   heap, and the guest sees ENOSPC, never the worker run out of memory.
 * - An inode's contents are released (and zeroed) when its last link and its last open fd are
 *   gone; an unlinked but open file keeps counting against the byte quota until it is closed.
 * - Nothing here recurses over the tree (it is guest-shaped): walks use explicit stacks.
 */

/** Buffer size for a file of `size` bytes: 1.5x plus 64, so appends are amortised O(1). */
export function capacityFor(size: number): number {
  return Math.min(size + (size >> 1) + 64, 0x7fffffff);
}

/**
 * Most JS heap one entry (a name, and the inode behind a new one) takes, its name included.
 * Measured (Node 20, 100 000 entries): a hard link 62 bytes with an 8-byte name, 309 with a
 * 255-byte one; a file 182 / 429; a directory (its own Map) 365 with an 8-byte name. The worst
 * case, a directory with a 255-character name of two-byte characters, stays under this bound.
 * The worker's heap limit and the admission reservation grow by this per allowed entry (see
 * wasiMemory in config.ts), so reaching the entry quota can never exhaust the worker's heap.
 */
export const VFS_ENTRY_HEAP_BYTES = 1024;

interface InodeBase {
  readonly ino: number;
  nlink: number;
  /** Open fds on this inode. */
  open: number;
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}
export interface FileInode extends InodeBase {
  readonly kind: 'file';
  data: Uint8Array;
  size: number;
}
export interface DirInode extends InodeBase {
  readonly kind: 'dir';
  readonly entries: Map<string, Inode>;
  /** The directory holding this one; a mount root's parent is itself. Null once removed. */
  parent: DirInode | null;
}
export interface SymlinkInode extends InodeBase {
  readonly kind: 'symlink';
  readonly target: string;
}
export type Inode = FileInode | DirInode | SymlinkInode;

export function filetypeOf(inode: Inode): number {
  return inode.kind === 'file' ? Filetype.REGULAR_FILE : inode.kind === 'dir' ? Filetype.DIRECTORY : Filetype.SYMBOLIC_LINK;
}

const EMPTY = new Uint8Array(0);

/** A partition's virtual trees (one per virtual preopen), on the partition's quota account. */
export class Vfs {
  /** Mount roots, for the end-of-run scrub. */
  readonly roots: DirInode[] = [];
  private nextIno = 1;

  constructor(
    readonly quota: QuotaAccount,
    /** Wall-clock time for timestamps (ns); from the clock device, 0 without one. */
    readonly now: () => bigint = () => 0n,
  ) {}

  /** Creates an empty virtual preopen; its root counts as one entry. Null when the quota has no room. */
  mount(guestPath: string, readonly: boolean): VDir | null {
    if (!this.quota.charge(0, 1)) return null;
    const root = this.newDir(null);
    root.parent = root;
    root.nlink = 1;
    this.roots.push(root);
    const mount: Mount = { guestPath, mode: 'virtual', readonly };
    return new VDir(this, mount, root);
  }

  newFile(): FileInode {
    const t = this.now();
    return { kind: 'file', ino: this.nextIno++, nlink: 0, open: 0, atim: t, mtim: t, ctim: t, data: EMPTY, size: 0 };
  }

  newDir(parent: DirInode | null): DirInode {
    const t = this.now();
    return { kind: 'dir', ino: this.nextIno++, nlink: 0, open: 0, atim: t, mtim: t, ctim: t, entries: new Map(), parent };
  }

  newSymlink(target: string): SymlinkInode {
    const t = this.now();
    return { kind: 'symlink', ino: this.nextIno++, nlink: 0, open: 0, atim: t, mtim: t, ctim: t, target };
  }

  /** Sets a file's size (growing zero-fills). ENOSPC when the byte quota would be exceeded; EFBIG past 2^31. */
  resize(file: FileInode, size: number): number {
    if (!Number.isSafeInteger(size) || size < 0) return Errno.INVAL;
    if (size > 0x7fffffff) return Errno.FBIG;
    const delta = size - file.size;
    if (delta > 0 && !this.quota.charge(delta, 0)) return Errno.NOSPC;
    if (delta < 0) this.quota.refund(-delta, 0);
    // Invariant: a file's buffer holds at most capacityFor(size) bytes, on growth *and* on
    // shrinking, so the worker's heap stays within 1.5 x the byte quota + 64 bytes per file
    // (grow-truncate-grow cannot pile up buffers the quota no longer sees).
    if (size > file.data.length || file.data.length > capacityFor(size)) {
      const next = new Uint8Array(size > file.data.length ? capacityFor(size) : size);
      next.set(file.data.subarray(0, Math.min(file.size, size)));
      file.data.fill(0);
      file.data = next;
    } else if (size < file.size) {
      // Shrunk bytes are zeroed so a later grow reads zeros, never stale data.
      file.data.fill(0, size, file.size);
    }
    file.size = size;
    return Errno.SUCCESS;
  }

  /** Frees an inode's contents once no link and no open fd is left. */
  release(inode: Inode): void {
    if (inode.nlink > 0 || inode.open > 0) return;
    if (inode.kind === 'file') {
      this.quota.refund(inode.size, 0);
      inode.data.fill(0);
      inode.data = EMPTY;
      inode.size = 0;
    } else if (inode.kind === 'symlink') {
      this.quota.refund(nameBytes(inode.target), 0);
    }
  }

  /** Adds a name (already charged) for `inode` in `dir`. */
  link(dir: DirInode, name: string, inode: Inode): void {
    dir.entries.set(name, inode);
    inode.nlink++;
    if (inode.kind === 'dir') inode.parent = dir;
    dir.mtim = dir.ctim = this.now();
  }

  /** Removes a name and refunds it (unless the caller accounted for it); the inode goes when nothing holds it. */
  unlink(dir: DirInode, name: string, refund = true): void {
    const inode = dir.entries.get(name);
    if (inode === undefined) return;
    dir.entries.delete(name);
    if (refund) this.quota.refund(nameBytes(name), 1);
    inode.nlink--;
    if (inode.kind === 'dir') inode.parent = null;
    dir.mtim = dir.ctim = this.now();
    this.release(inode);
  }

  /** Zeroes every file's contents (the end of a run: nothing the guest wrote outlives it in this heap). */
  scrub(): void {
    const seen = new Set<Inode>();
    // An explicit stack: the tree's depth is the guest's choice.
    const stack: DirInode[] = [...this.roots];
    for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
      for (const inode of dir.entries.values()) {
        if (seen.has(inode)) continue;
        seen.add(inode);
        if (inode.kind === 'file') inode.data.fill(0);
        else if (inode.kind === 'dir') stack.push(inode);
      }
    }
  }

  /** Is `inner` the same directory as `outer`, or inside it? (A loop, not recursion: depth is the guest's.) */
  contains(outer: DirInode, inner: DirInode): boolean {
    for (let d: DirInode | null = inner; d !== null; d = d.parent === d ? null : d.parent) {
      if (d === outer) return true;
    }
    return false;
  }
}

function statOf(inode: Inode): Stat {
  const size = inode.kind === 'file' ? inode.size : inode.kind === 'symlink' ? nameBytes(inode.target) : inode.entries.size;
  return {
    dev: 0n,
    ino: BigInt(inode.ino),
    filetype: filetypeOf(inode),
    nlink: BigInt(inode.nlink),
    size: BigInt(size),
    atim: inode.atim,
    mtim: inode.mtim,
    ctim: inode.ctim,
  };
}

function applyTimes(inode: Inode, times: TimesRequest, now: bigint): void {
  if (times.atim !== null) inode.atim = times.atim === 'now' ? now : times.atim;
  if (times.mtim !== null) inode.mtim = times.mtim === 'now' ? now : times.mtim;
  inode.ctim = now;
}

/** A directory of a virtual tree. References cost nothing here: the tree lives as long as the partition. */
export class VDir implements Dir {
  constructor(
    readonly vfs: Vfs,
    readonly mount: Mount,
    readonly inode: DirInode,
  ) {}

  retain(): Dir {
    return this;
  }
  release(): void {}

  private entry(name: string): Inode | null {
    return name === '.' ? this.inode : (this.inode.entries.get(name) ?? null);
  }

  /** A removed directory accepts no new names. */
  private get removed(): boolean {
    return this.inode.parent === null;
  }

  /** Charges a new name (one entry and its bytes, plus `extraBytes`): false when over the quota. */
  private chargeName(name: string, extraBytes = 0): boolean {
    return this.vfs.quota.charge(nameBytes(name) + extraBytes, 1);
  }

  lookup(name: string): NodeKind | null | number {
    return this.entry(name)?.kind ?? null;
  }

  openDir(name: string): Dir | number {
    const inode = this.entry(name);
    if (inode === null) return -Errno.NOENT;
    if (inode.kind !== 'dir') return -Errno.NOTDIR;
    return new VDir(this.vfs, this.mount, inode);
  }

  readlink(name: string): string | number {
    const inode = this.entry(name);
    if (inode === null) return -Errno.NOENT;
    return inode.kind === 'symlink' ? inode.target : -Errno.INVAL;
  }

  stat(name: string): Stat | number {
    const inode = this.entry(name);
    return inode === null ? -Errno.NOENT : statOf(inode);
  }

  open(name: string, r: OpenRequest): File | Dir | number {
    let inode = this.entry(name);
    if (inode === null) {
      if (!r.create) return -Errno.NOENT;
      if (r.directory) return -Errno.ISDIR;
      if (this.removed) return -Errno.NOENT;
      if (!this.chargeName(name)) return -Errno.NOSPC;
      const file = this.vfs.newFile();
      this.vfs.link(this.inode, name, file);
      inode = file;
    } else if (r.create && r.exclusive) {
      return -Errno.EXIST;
    }
    if (inode.kind === 'symlink') return -Errno.LOOP;
    if (inode.kind === 'dir') {
      if (r.write || r.truncate) return -Errno.ISDIR;
      return new VDir(this.vfs, this.mount, inode);
    }
    if (r.directory) return -Errno.NOTDIR;
    if (r.truncate) {
      const errno = this.vfs.resize(inode, 0);
      if (errno !== Errno.SUCCESS) return -errno;
    }
    return new VFile(this.vfs, this.mount, inode);
  }

  mkdir(name: string): number {
    if (this.entry(name) !== null) return -Errno.EXIST;
    if (this.removed) return -Errno.NOENT;
    if (!this.chargeName(name)) return -Errno.NOSPC;
    this.vfs.link(this.inode, name, this.vfs.newDir(this.inode));
    return 0;
  }

  rmdir(name: string): number {
    const inode = this.entry(name);
    if (inode === null) return -Errno.NOENT;
    if (inode.kind !== 'dir') return -Errno.NOTDIR;
    if (inode.entries.size > 0) return -Errno.NOTEMPTY;
    this.vfs.unlink(this.inode, name);
    return 0;
  }

  unlink(name: string): number {
    const inode = this.entry(name);
    if (inode === null) return -Errno.NOENT;
    if (inode.kind === 'dir') return -Errno.ISDIR;
    this.vfs.unlink(this.inode, name);
    return 0;
  }

  symlink(target: string, name: string): number {
    if (this.entry(name) !== null) return -Errno.EXIST;
    if (this.removed) return -Errno.NOENT;
    if (!this.chargeName(name, nameBytes(target))) return -Errno.NOSPC;
    this.vfs.link(this.inode, name, this.vfs.newSymlink(target));
    return 0;
  }

  rename(name: string, to: Dir, toName: string): number {
    if (!(to instanceof VDir) || to.vfs !== this.vfs) return -Errno.XDEV;
    const src = this.entry(name);
    if (src === null) return -Errno.NOENT;
    const dst = to.entry(toName);
    if (src === dst) return 0;
    if (src.kind === 'dir') {
      if (this.vfs.contains(src, to.inode)) return -Errno.INVAL;
      if (dst !== null && dst.kind !== 'dir') return -Errno.NOTDIR;
      if (dst !== null && dst.kind === 'dir' && dst.entries.size > 0) return -Errno.NOTEMPTY;
    } else if (dst !== null && dst.kind === 'dir') {
      return -Errno.ISDIR;
    }
    if (to.removed) return -Errno.NOENT;
    // Net effect on the quota, checked before anything moves: the name changes, and a replaced
    // destination gives back its entry (its own name bytes equal the new name's).
    const q = this.vfs.quota;
    const bytes = dst === null ? nameBytes(toName) - nameBytes(name) : -nameBytes(name);
    if (bytes > 0 && !q.charge(bytes, 0)) return -Errno.NOSPC;
    if (bytes < 0) q.refund(-bytes, 0);
    if (dst !== null) {
      this.vfs.unlink(to.inode, toName, false);
      q.refund(0, 1);
    }
    // Move the link: the inode keeps its link count and its storage.
    this.inode.entries.delete(name);
    to.inode.entries.set(toName, src);
    if (src.kind === 'dir') src.parent = to.inode;
    this.inode.mtim = to.inode.mtim = src.ctim = this.vfs.now();
    return 0;
  }

  link(name: string, to: Dir, toName: string): number {
    if (!(to instanceof VDir) || to.vfs !== this.vfs) return -Errno.XDEV;
    const src = this.entry(name);
    if (src === null) return -Errno.NOENT;
    if (src.kind === 'dir') return -Errno.PERM;
    if (to.entry(toName) !== null) return -Errno.EXIST;
    if (to.removed) return -Errno.NOENT;
    // A hard link is a name like any other: it costs an entry and its bytes.
    if (!to.chargeName(toName)) return -Errno.NOSPC;
    this.vfs.link(to.inode, toName, src);
    src.ctim = this.vfs.now();
    return 0;
  }

  setTimes(name: string, times: TimesRequest): number {
    const inode = this.entry(name);
    if (inode === null) return -Errno.NOENT;
    applyTimes(inode, times, this.vfs.now());
    return 0;
  }

  readdir(cookie: number, each: (name: string, ino: bigint, filetype: number) => boolean): number {
    const dir = this.inode;
    if (cookie === 0 && !each('.', BigInt(dir.ino), Filetype.DIRECTORY)) return 0;
    if (cookie <= 1 && !each('..', BigInt((dir.parent ?? dir).ino), Filetype.DIRECTORY)) return 0;
    const names = [...dir.entries.keys()].sort();
    for (let i = Math.max(0, cookie - 2); i < names.length; i++) {
      const inode = dir.entries.get(names[i]!)!;
      if (!each(names[i]!, BigInt(inode.ino), filetypeOf(inode))) break;
    }
    return 0;
  }
}

/** A regular file of a virtual tree, open. */
export class VFile implements File {
  readonly maxSize = 0x7fffffff;
  constructor(
    private readonly vfs: Vfs,
    readonly mount: Mount,
    readonly inode: FileInode,
  ) {
    inode.open++;
  }

  pread(buf: Uint8Array, offset: number): number {
    const f = this.inode;
    if (offset >= f.size) return 0;
    const n = Math.min(buf.length, f.size - offset);
    buf.set(f.data.subarray(offset, offset + n));
    f.atim = this.vfs.now();
    return n;
  }

  pwrite(buf: Uint8Array, n: number, offset: number): number {
    const f = this.inode;
    const end = offset + n;
    if (end > f.size) {
      const errno = this.vfs.resize(f, end);
      if (errno !== Errno.SUCCESS) return -errno;
    }
    f.data.set(buf.subarray(0, n), offset);
    f.mtim = f.ctim = this.vfs.now();
    return n;
  }

  size(): number {
    return this.inode.size;
  }

  setSize(size: number): number {
    return -this.vfs.resize(this.inode, size);
  }

  stat(): Stat {
    return statOf(this.inode);
  }

  setTimes(times: TimesRequest): number {
    applyTimes(this.inode, times, this.vfs.now());
    return 0;
  }

  sync(): number {
    return 0;
  }

  close(): void {
    this.inode.open--;
    this.vfs.release(this.inode);
  }
}

/** A seed entry, as the root sends it to the worker (plain data). Paths are relative, `/`-separated. */
export type SeedEntry =
  | { path: string; kind: 'dir' }
  | { path: string; kind: 'file'; data: Uint8Array }
  | { path: string; kind: 'symlink'; target: string };

/**
 * Builds a copy-mode mount's tree from seed entries (parents before children), charging the
 * quota like the guest's own creations. Returns 0 or an errno (NOSPC over the quota).
 */
export function seedMount(root: VDir, entries: readonly SeedEntry[]): number {
  const vfs = root.vfs;
  for (const e of entries) {
    const parts = e.path.split('/');
    const name = parts.pop()!;
    let dir = root.inode;
    for (const p of parts) {
      const next = dir.entries.get(p);
      if (next === undefined || next.kind !== 'dir') return Errno.NOENT;
      dir = next;
    }
    const extra = e.kind === 'file' ? e.data.length : e.kind === 'symlink' ? nameBytes(e.target) : 0;
    if (!vfs.quota.charge(nameBytes(name) + extra, 1)) return Errno.NOSPC;
    let inode: Inode;
    if (e.kind === 'dir') inode = vfs.newDir(dir);
    else if (e.kind === 'symlink') inode = vfs.newSymlink(e.target);
    else {
      const file = vfs.newFile();
      file.data = e.data.slice();
      file.size = e.data.length;
      inode = file;
    }
    vfs.link(dir, name, inode);
  }
  return Errno.SUCCESS;
}
