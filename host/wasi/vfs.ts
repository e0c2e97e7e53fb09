import { Errno, Filetype } from './errno.ts';

/**
 * A partition's virtual file system: inodes in the worker's heap, nothing else. No guest path
 * ever reaches node:fs; the only host files involved are the seed folders, which the *root*
 * copies (as plain data) before the partition starts.
 *
 * Invariants:
 * - Every resolution starts at a directory fd's inode and never goes above the root of the
 *   preopen (mount) that fd belongs to: `..` at a mount root, an absolute path and an absolute
 *   symlink target are all ENOTCAPABLE, whatever the guest tries. Symlinks are followed at
 *   most MAX_SYMLINKS times in one resolution (ELOOP).
 * - Quotas (bytes of file data and symlink targets, inodes, path length, name length) are
 *   checked *before* a change is made, so a refused change leaves the tree as it was.
 * - An inode's storage is released when its last link and its last open fd are gone; an
 *   unlinked but open file keeps counting against the byte quota (no quota bypass by unlink).
 */

/** Buffer size for a file of `size` bytes: 1.5x plus 64, so appends are amortised O(1). */
export function capacityFor(size: number): number {
  return Math.min(size + (size >> 1) + 64, 0x7fffffff);
}

/** Largest number of symlinks followed in one path resolution. */
export const MAX_SYMLINKS = 32;
/** Longest single name (bytes). */
export const MAX_NAME_BYTES = 255;

export interface VfsQuotas {
  /** Bytes of file contents and symlink targets, across every preopen. */
  maxBytes: number;
  /** Files, directories and symlinks, across every preopen (the preopen roots count). */
  maxInodes: number;
  /** Longest path a call may pass, in bytes. */
  maxPathBytes: number;
}

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

/** A preopen: a virtual directory tree the guest reaches by its guest path. */
export interface Mount {
  readonly guestPath: string;
  readonly root: DirInode;
  readonly readonly: boolean;
}

/** Where a path led: the directory holding the last component, its name, and what is there (if anything). */
export interface Resolved {
  dir: DirInode;
  name: string;
  inode: Inode | null;
  /** The path ended in `/`: the result must be a directory. */
  trailingSlash: boolean;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

export class Vfs {
  readonly mounts: Mount[] = [];
  bytesUsed = 0;
  inodesUsed = 0;
  private nextIno = 1;

  constructor(
    readonly quotas: VfsQuotas,
    /** Wall-clock time for timestamps (ns); from the clock device, 0 without one. */
    readonly now: () => bigint = () => 0n,
  ) {}

  /** Creates an empty preopen root. Throws (host-side) when the inode quota is already spent. */
  mount(guestPath: string, readonly: boolean): Mount {
    const root = this.newDir(null);
    if (root === null) throw new RangeError('the inode quota is too small for the preopens');
    root.parent = root;
    root.nlink = 1;
    const m: Mount = { guestPath, root, readonly };
    this.mounts.push(m);
    return m;
  }

  // ---- Inodes and quotas ----

  newFile(data?: Uint8Array): FileInode | null {
    const size = data?.length ?? 0;
    if (this.inodesUsed + 1 > this.quotas.maxInodes || this.bytesUsed + size > this.quotas.maxBytes) return null;
    this.inodesUsed++;
    this.bytesUsed += size;
    const t = this.now();
    return { kind: 'file', ino: this.nextIno++, nlink: 0, open: 0, atim: t, mtim: t, ctim: t, data: data ? data.slice() : new Uint8Array(0), size };
  }

  newDir(parent: DirInode | null): DirInode | null {
    if (this.inodesUsed + 1 > this.quotas.maxInodes) return null;
    this.inodesUsed++;
    const t = this.now();
    return { kind: 'dir', ino: this.nextIno++, nlink: 0, open: 0, atim: t, mtim: t, ctim: t, entries: new Map(), parent };
  }

  newSymlink(target: string): SymlinkInode | null {
    const size = Buffer.byteLength(target);
    if (this.inodesUsed + 1 > this.quotas.maxInodes || this.bytesUsed + size > this.quotas.maxBytes) return null;
    this.inodesUsed++;
    this.bytesUsed += size;
    const t = this.now();
    return { kind: 'symlink', ino: this.nextIno++, nlink: 0, open: 0, atim: t, mtim: t, ctim: t, target };
  }

  /** Sets a file's size (growing zero-fills). ENOSPC when the byte quota would be exceeded; EFBIG past 2^31. */
  resize(file: FileInode, size: number): number {
    if (!Number.isSafeInteger(size) || size < 0) return Errno.INVAL;
    if (size > 0x7fffffff) return Errno.FBIG;
    const delta = size - file.size;
    if (delta > 0 && this.bytesUsed + delta > this.quotas.maxBytes) return Errno.NOSPC;
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
    this.bytesUsed += delta;
    return Errno.SUCCESS;
  }

  /** Drops a link or an open reference; frees the inode's storage when none is left. */
  release(inode: Inode): void {
    if (inode.nlink > 0 || inode.open > 0) return;
    this.inodesUsed--;
    if (inode.kind === 'file') {
      this.bytesUsed -= inode.size;
      inode.data.fill(0);
      inode.data = new Uint8Array(0);
      inode.size = 0;
    } else if (inode.kind === 'symlink') {
      this.bytesUsed -= Buffer.byteLength(inode.target);
    }
  }

  link(dir: DirInode, name: string, inode: Inode): void {
    dir.entries.set(name, inode);
    inode.nlink++;
    if (inode.kind === 'dir') inode.parent = dir;
    dir.mtim = dir.ctim = this.now();
  }

  unlink(dir: DirInode, name: string): void {
    const inode = dir.entries.get(name);
    if (inode === undefined) return;
    dir.entries.delete(name);
    inode.nlink--;
    if (inode.kind === 'dir') inode.parent = null;
    dir.mtim = dir.ctim = this.now();
    this.release(inode);
  }

  /** Zeroes every file's contents (the end of a run: nothing the guest wrote outlives it in this heap). */
  scrub(): void {
    const seen = new Set<Inode>();
    const walk = (dir: DirInode): void => {
      for (const inode of dir.entries.values()) {
        if (seen.has(inode)) continue;
        seen.add(inode);
        if (inode.kind === 'file') inode.data.fill(0);
        else if (inode.kind === 'dir') walk(inode);
      }
    };
    for (const m of this.mounts) walk(m.root);
  }

  // ---- Paths ----

  /** Decodes a guest path: EILSEQ for invalid UTF-8, EINVAL for NUL, ENAMETOOLONG past the quota. */
  decodePath(bytes: Uint8Array): string | number {
    if (bytes.length > this.quotas.maxPathBytes) return Errno.NAMETOOLONG;
    if (bytes.includes(0)) return Errno.INVAL;
    try {
      return decoder.decode(bytes);
    } catch {
      return Errno.ILSEQ;
    }
  }

  /**
   * Resolves `path` relative to `start` inside `mount`. Intermediate symlinks are always
   * followed; the last one only with `follow`. Returns the parent directory, the last name and
   * what is there (null if nothing), or an errno.
   */
  resolve(mount: Mount, start: DirInode, path: string, follow: boolean): Resolved | number {
    if (path.length === 0) return Errno.NOENT;
    if (path.startsWith('/')) return Errno.NOTCAPABLE;
    let budget = MAX_SYMLINKS;
    // Work list of components still to walk, front first.
    const parts = path.split('/');
    let trailingSlash = false;
    while (parts.length > 1 && parts[parts.length - 1] === '') {
      parts.pop();
      trailingSlash = true;
    }
    let dir = start;
    if (dir.parent === null) return Errno.NOENT;
    for (;;) {
      const name = parts.shift()!;
      const last = parts.length === 0;
      if (name === '' || name === '.') {
        if (last) return { dir, name: '.', inode: dir, trailingSlash };
        continue;
      }
      if (Buffer.byteLength(name) > MAX_NAME_BYTES) return Errno.NAMETOOLONG;
      if (name === '..') {
        if (dir === mount.root) return Errno.NOTCAPABLE;
        const up = dir.parent;
        if (up === null) return Errno.NOENT;
        dir = up;
        if (last) return { dir, name: '.', inode: dir, trailingSlash };
        continue;
      }
      const inode = dir.entries.get(name) ?? null;
      if (inode !== null && inode.kind === 'symlink' && (!last || follow || trailingSlash)) {
        if (--budget < 0) return Errno.LOOP;
        if (inode.target.startsWith('/')) return Errno.NOTCAPABLE;
        if (inode.target.length === 0) return Errno.NOENT;
        const more = inode.target.split('/');
        if (last && trailingSlash) more.push('');
        parts.unshift(...more);
        continue;
      }
      if (last) return { dir, name, inode, trailingSlash };
      if (inode === null) return Errno.NOENT;
      if (inode.kind !== 'dir') return Errno.NOTDIR;
      dir = inode;
    }
  }

  /** Is `inner` the same directory as `outer`, or inside it? (rename must not move a directory into itself) */
  contains(outer: DirInode, inner: DirInode): boolean {
    for (let d: DirInode | null = inner; d !== null; d = d.parent === d ? null : d.parent) {
      if (d === outer) return true;
    }
    return false;
  }
}

/** A seed entry, as the root sends it to the worker (plain data). Paths are relative, `/`-separated. */
export type SeedEntry =
  | { path: string; kind: 'dir' }
  | { path: string; kind: 'file'; data: Uint8Array }
  | { path: string; kind: 'symlink'; target: string };

/** Builds a mount's tree from seed entries (parents before children). Returns an errno on quota failure. */
export function seedMount(vfs: Vfs, mount: Mount, entries: readonly SeedEntry[]): number {
  for (const e of entries) {
    const parts = e.path.split('/');
    const name = parts.pop()!;
    let dir = mount.root;
    for (const p of parts) {
      const next = dir.entries.get(p);
      if (next === undefined || next.kind !== 'dir') return Errno.NOENT;
      dir = next;
    }
    const inode = e.kind === 'dir' ? vfs.newDir(dir) : e.kind === 'file' ? vfs.newFile(e.data) : vfs.newSymlink(e.target);
    if (inode === null) return Errno.NOSPC;
    vfs.link(dir, name, inode);
  }
  return Errno.SUCCESS;
}
