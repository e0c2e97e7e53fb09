/**
 * A simulated disk under the block engine, at the level of the system calls it makes
 * (`FileOps`: pread, pwrite, fsync), so the real `fdIo` loops and the real engine run on it.
 *
 * - A volatile write cache: completed writes are visible to reads at once and reach the medium
 *   at fsync. A power cut keeps, drops or tears (per 512-byte device sector) each cached write,
 *   in any order; a process crash keeps the cache.
 * - Failures, injected by a plan: a write can fail with ENOSPC or EIO after changing a random
 *   part of its range, or come back short; an fsync can fail with EIO the way Linux fails it:
 *   the cached writes reach the medium only in part, and the cache still shows them (the pages
 *   are marked clean), so a retried fsync succeeds although the data is not on the medium.
 * - Space: each file takes 4 KiB blocks from a `Space` it may share with other files; a write
 *   that needs blocks beyond it fails with ENOSPC (after a short write when part of it fitted).
 */
import type { FileOps } from '../../host/storage/image.ts';

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type FaultKind = 'enospc' | 'eio' | 'short' | 'fsync' | 'read';

/** Fail the `index`-th call (from 0) of the kind's operation: writes for enospc/eio/short, fsyncs, reads. */
export interface Fault {
  kind: FaultKind;
  index: number;
}

/** Free blocks shared by the files of one simulated file system. */
export class Space {
  constructor(public freeBlocks: number) {}
}

const BLOCK = 4096;
const DEVICE_SECTOR = 512;

export function errno(code: string, call: string): Error {
  return Object.assign(new Error(`${code}: simulated failure, ${call}`), { code });
}

interface CachedWrite {
  pos: number;
  bytes: Buffer;
}

export class SimDisk implements FileOps {
  readonly durable: Buffer;
  private pending: CachedWrite[] = [];
  /** Writes whose writeback failed: still what reads see, never on the medium. */
  private ghosts: CachedWrite[] = [];
  private readonly allocated = new Set<number>();
  readonly calls = { read: 0, write: 0, fsync: 0 };
  /** Set when the planned fault has fired. */
  fired: FaultKind | null = null;
  fault: Fault | null = null;

  constructor(
    size: number,
    private readonly rnd: () => number = Math.random,
    private readonly space: Space = new Space(Infinity),
  ) {
    this.durable = Buffer.alloc(size);
  }

  readSync(_fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    if (this.trip('read', this.calls.read++)) throw errno('EIO', 'read');
    const n = Math.max(0, Math.min(length, this.durable.length - position));
    if (n === 0) return 0; // at or past the end, as a file reads
    const view = Buffer.from(buf.buffer, buf.byteOffset + offset, n);
    this.durable.copy(view, 0, position, position + n);
    for (const w of [...this.ghosts, ...this.pending]) {
      const from = Math.max(position, w.pos);
      const to = Math.min(position + n, w.pos + w.bytes.length);
      if (from < to) w.bytes.copy(view, from - position, from - w.pos, to - w.pos);
    }
    return n;
  }

  writeSync(_fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    const index = this.calls.write++;
    const src = Buffer.from(buf.buffer, buf.byteOffset + offset, length);
    if (this.trip('enospc', index) || this.trip('eio', index)) {
      // A failed write may still have changed part of its range in the cache.
      const part = Math.floor(this.rnd() * length);
      if (part > 0) this.pending.push({ pos: position, bytes: Buffer.from(src.subarray(0, part)) });
      throw errno(this.fired === 'enospc' ? 'ENOSPC' : 'EIO', 'write');
    }
    let n = length;
    if (this.trip('short', index)) n = 1 + Math.floor(this.rnd() * (length - 1));
    // Allocate the blocks the write touches; stop at the first one that does not fit.
    for (let b = Math.floor(position / BLOCK); b * BLOCK < position + n; b++) {
      if (this.allocated.has(b)) continue;
      if (this.space.freeBlocks < 1) {
        n = b * BLOCK - position;
        if (n <= 0) throw errno('ENOSPC', 'write');
        break;
      }
      this.space.freeBlocks--;
      this.allocated.add(b);
    }
    this.pending.push({ pos: position, bytes: Buffer.from(src.subarray(0, n)) });
    return n;
  }

  fsyncSync(): void {
    if (this.trip('fsync', this.calls.fsync++)) {
      // Linux: some of the data reached the medium, the rest is lost, and the pages are clean.
      this.scatter(this.pending);
      this.ghosts.push(...this.pending);
      this.pending = [];
      throw errno('EIO', 'fsync');
    }
    for (const w of this.pending) w.bytes.copy(this.durable, w.pos);
    this.pending = [];
  }

  /** Power cut: each cached write is kept, dropped or torn into device sectors, in a random order. */
  powerLoss(): void {
    this.scatter(this.pending);
    this.pending = [];
    this.ghosts = [];
  }

  /** Bytes a writer has in the cache that are not yet on the medium. */
  get cachedWrites(): number {
    return this.pending.length;
  }

  private scatter(writes: CachedWrite[]): void {
    const order = [...writes];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(this.rnd() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const w of order) {
      const r = this.rnd();
      if (r < 0.35) w.bytes.copy(this.durable, w.pos);
      else if (r < 0.65) continue;
      else {
        for (let at = 0; at < w.bytes.length; ) {
          const end = Math.min(w.bytes.length, (Math.floor((w.pos + at) / DEVICE_SECTOR) + 1) * DEVICE_SECTOR - w.pos);
          if (this.rnd() < 0.5) w.bytes.copy(this.durable, w.pos + at, at, end);
          at = end;
        }
      }
    }
  }

  private trip(kind: FaultKind, index: number): boolean {
    if (this.fired !== null || this.fault === null || this.fault.kind !== kind || this.fault.index !== index) return false;
    this.fired = kind;
    return true;
  }
}

const PATTERN_MUL = 2654435761;
/** PATTERN_MUL^-1 mod 2^32 (Newton's iteration; PATTERN_MUL is odd), to read a version's id back from its first word. */
const PATTERN_INV = (() => {
  let x = PATTERN_MUL;
  for (let i = 0; i < 5; i++) x = Math.imul(x, 2 - Math.imul(PATTERN_MUL, x));
  return x >>> 0;
})();

/** The pattern of version `id` of sector s (id 0: zeros, the state of a new or discarded sector). */
export function pattern(id: number, s: number, size = 4096): Buffer {
  const b = Buffer.alloc(size);
  if (id === 0) return b;
  for (let i = 0; i < size / 4; i++) b.writeUInt32LE((Math.imul(id, PATTERN_MUL) + s * 7919 + i) >>> 0, i * 4);
  return b;
}

/** The version whose pattern (for sector s) data is, or -1 when it is no whole version of s. */
export function versionOf(data: Buffer, s: number): number {
  if (data.every((x) => x === 0)) return 0;
  const id = Math.imul((data.readUInt32LE(0) - s * 7919) >>> 0, PATTERN_INV) >>> 0;
  return data.equals(pattern(id, s, data.length)) ? id : -1;
}

/**
 * What a workload wrote, and what it may read back: per sector, the versions in write order
 * (0 = zeros) and the index of the newest version at the last durability point (a flush that
 * returned, or an open, which fsyncs). A read may return any version from that floor on.
 */
export class SectorModel {
  readonly history: number[][];
  readonly floor: number[];
  constructor(readonly sectors: number) {
    this.history = Array.from({ length: sectors }, () => [0]);
    this.floor = new Array<number>(sectors).fill(0);
  }
  wrote(s: number, id: number): void {
    this.history[s]!.push(id);
  }
  durable(): void {
    this.history.forEach((h, s) => (this.floor[s] = h.length - 1));
  }
  /**
   * Checks what sector s read: one whole version, no older than the floor. Returns a problem or
   * null. After a reboot (`settled`: the engine fsyncs what it finds when it opens), what was read
   * is the sector's state: later versions were lost and cannot come back. Within a session they
   * can: after a failed write a read falls back to the flushed version, and the newer, unflushed
   * one may still reach the medium before a power cut.
   */
  check(s: number, data: Buffer, settled = false): string | null {
    const h = this.history[s]!;
    // Versions are unique ids (0, zeros, may repeat): which one data is takes one pattern, not one per version.
    const id = versionOf(data, s);
    const k = id < 0 ? -1 : h.lastIndexOf(id);
    if (k >= this.floor[s]!) {
      if (settled) this.history[s] = h.slice(0, k + 1);
      return null;
    }
    const older = id < 0 ? -1 : h.indexOf(id);
    return `sector ${s} ${older >= 0 ? `went back to version #${older}, before its durable #${this.floor[s]}` : 'is not any whole version'}`;
  }
}
