import { HV_MAX_TRANSFER, HvStatus } from './codes.ts';

/** The unit GuestMemory.scrub looks at: the host's page. */
const SCRUB_PAGE = 4096;
const ZERO_PAGE = new Uint8Array(SCRUB_PAGE);

/**
 * Transfers of at most this many bytes are copied in 32-bit words; longer ones by TypedArray#set
 * (a memmove). Measured on Node 20 x64: 64 bytes take ~18 ns in words and ~60 ns with a
 * subarray + set, which costs about the same for any size up to ~200 bytes.
 */
export const WORD_COPY_MAX = 192;

/** Zeroes n bytes of `to` from `at`, 4 at a time. */
function zeroWords(to: DataView, at: number, n: number): void {
  let i = 0;
  // Stryker disable next-line ConditionalExpression,EqualityOperator,BooleanLiteral: the byte loop below zeroes whatever the word loop leaves, and zero has no byte order
  for (; i + 4 <= n; i += 4) to.setInt32(at + i, 0, true);
  for (; i < n; i++) to.setUint8(at + i, 0);
}

/** The shape of a Wasm memory that GuestMemory needs; a plain object works in tests. */
export interface MemoryLike {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}

/**
 * The one place where the host touches a guest's linear memory.
 *
 * Invariants:
 * - Every (ptr, len) is checked against the memory's size *at the moment of the access*
 *   (memory.grow replaces the buffer, so nothing is cached across calls but the view,
 *   which is re-made whenever the buffer changes).
 * - Pointers and lengths arrive as wasm i32 (signed in JS); they are read as u32. Their sum
 *   is below 2^33, far inside the 2^53 range where JS numbers are exact, so the bounds test
 *   `ptr + len <= size` cannot overflow.
 * - A transfer is at most `maxTransfer` bytes.
 * - Input is copied out of guest memory once, into host-owned scratch, before anything
 *   parses it: the guest cannot change bytes under the parser (no double fetch).
 * - Output is written all-or-nothing, only inside [ptr, ptr + cap), and the part of the
 *   window that the result does not fill is zeroed.
 *
 * Methods return an HvStatus code (0 = success) instead of throwing, so a hostile pointer
 * costs the guest a status and never costs the host an exception.
 *
 * Speed (this is the hottest code of every hypercall; numbers in bench/core.mjs):
 * - Sizes are read with `Uint8Array#length`, never `#byteLength`: on Node 20 (V8 11.3) the
 *   `byteLength` getter is not inlined by the optimizing compiler and costs a builtin call per
 *   read (~25 ns), while `length` compiles to a load and a detach check.
 * - Transfers of at most WORD_COPY_MAX bytes are copied in 32-bit words through DataViews
 *   (guest pointers have any alignment): for them `TypedArray#set` costs more than the copy, as
 *   it needs a fresh `subarray` object for the guest's window and a builtin call.
 */
export class GuestMemory {
  private memory: MemoryLike | null = null;
  private view: Uint8Array = new Uint8Array(0);
  private dv: DataView = new DataView(new ArrayBuffer(0));
  /** DataViews over the last scratch buffers copyIn wrote and copyOut read (the dispatcher's own, every call). */
  private inScratch: Uint8Array | null = null;
  private inScratchDv: DataView = this.dv;
  private outScratch: Uint8Array | null = null;
  private outScratchDv: DataView = this.dv;
  /** The size last reported to onResize. */
  private reportedSize = -1;
  /**
   * Called with the new size in bytes when bind() attaches a memory and at the first access after
   * the memory grew: how the dispatcher keeps a partition's memory counters current without
   * reading the size itself on every call.
   */
  onResize: ((bytes: number) => void) | null = null;

  constructor(readonly maxTransfer: number = HV_MAX_TRANSFER) {}

  /** Attaches the memory (after instantiation: during the wasm start function there is none yet). */
  bind(memory: MemoryLike): void {
    this.memory = memory;
    this.refresh();
  }

  /** Current size in bytes; 0 when no memory is bound. */
  get byteLength(): number {
    return this.size();
  }

  /**
   * The memory's size now, in bytes (0 when none is bound): one read of the view's length, which
   * memory.grow turns to 0 (then the view is re-made). Guest memory cannot change while host code
   * runs, so a caller may check several windows against one snapshot (checkAt) and then copy with
   * readChecked / writeChecked, as long as no guest code runs in between: the dispatcher does, to
   * read a typed array's length once per hypercall instead of once per check (each read is a
   * detach check and a few dependent loads, measurable at this scale).
   */
  size(): number {
    const n = this.view.length;
    return n !== 0 || this.memory === null ? n : this.refresh();
  }

  /** Status of an access to [ptr, ptr + len) in a memory of `size` bytes: SUCCESS, TOO_LARGE or INVALID_ADDRESS. */
  checkAt(size: number, ptr: number, len: number): number {
    const n = len >>> 0;
    if (n > this.maxTransfer) return HvStatus.TOO_LARGE;
    if ((ptr >>> 0) + n > size) return HvStatus.INVALID_ADDRESS;
    return HvStatus.SUCCESS;
  }

  /**
   * The dispatcher's one test per call with buffers, and its input's one copy: size(), whether
   * both the output window [outPtr, outPtr + outCap) and the input window [inPtr, inPtr + inLen)
   * pass checkAt(size, ...), and when they do, readChecked of the input window into `dst` (which
   * must hold inLen bytes). Returns the size when both fit, else -1 - size (so a refusal still
   * knows the size it was checked against), with nothing copied. One call, not three: a reactor
   * called now and then runs its hypercalls in V8's interpreter or baseline tier, where each
   * call of a function costs (docs/PERFORMANCE.md, "Session 12: row 3" and "Session 13: row 3").
   */
  fitRead(outPtr: number, outCap: number, inPtr: number, inLen: number, dst: Uint8Array): number {
    let size = this.view.length;
    if (size === 0 && this.memory !== null) size = this.refresh();
    const o = outCap >>> 0;
    const n = inLen >>> 0;
    const p = inPtr >>> 0;
    const max = this.maxTransfer;
    if (!(o <= max && n <= max && (outPtr >>> 0) + o <= size && p + n <= size)) return -1 - size;
    // readChecked(p, n, dst), inline.
    // Stryker disable next-line ConditionalExpression,EqualityOperator: set and the word loop move the same bytes at any size (speed only)
    if (n > WORD_COPY_MAX) {
      dst.set(this.view.subarray(p, p + n));
    } else if (n > 0) {
      if (dst !== this.inScratch) {
        this.inScratch = dst;
        this.inScratchDv = new DataView(dst.buffer, dst.byteOffset, dst.length);
      }
      const from = this.dv;
      const to = this.inScratchDv;
      let i = 0;
      // Stryker disable next-line ConditionalExpression,EqualityOperator: the byte loop below copies whatever the word loop leaves (speed only)
      for (; i + 4 <= n; i += 4) to.setInt32(i, from.getInt32(p + i, true), true);
      for (; i < n; i++) to.setUint8(i, from.getUint8(p + i));
    }
    return size;
  }

  /** Status of an access to [ptr, ptr + len): SUCCESS, TOO_LARGE or INVALID_ADDRESS. */
  check(ptr: number, len: number): number {
    return this.checkAt(this.size(), ptr, len);
  }

  /** Copies guest bytes [ptr, ptr + len) into `dst` at offset 0. `dst` must hold len bytes. */
  copyIn(ptr: number, len: number, dst: Uint8Array): number {
    const status = this.check(ptr, len);
    if (status !== HvStatus.SUCCESS) return status;
    if (len >>> 0 > dst.length) return HvStatus.TOO_LARGE;
    this.readChecked(ptr >>> 0, len >>> 0, dst);
    return HvStatus.SUCCESS;
  }

  /**
   * Writes src[0, srcLen) to guest [ptr, ptr + cap) and zeroes guest [ptr + srcLen, ptr + cap).
   * Nothing is written unless the whole window is valid and the result fits.
   */
  copyOut(ptr: number, cap: number, src: Uint8Array, srcLen: number): number {
    const status = this.check(ptr, cap);
    if (status !== HvStatus.SUCCESS) return status;
    if (srcLen > cap >>> 0) return HvStatus.BUFFER_TOO_SMALL;
    if (srcLen > src.length) return HvStatus.INVALID_ARGUMENT;
    this.writeChecked(ptr >>> 0, cap >>> 0, src, srcLen);
    return HvStatus.SUCCESS;
  }

  /**
   * copyIn without its checks: the caller has checked [p, p + n) with checkAt against size(),
   * with no guest code run since, and dst holds n bytes. p and n are u32.
   */
  readChecked(p: number, n: number, dst: Uint8Array): void {
    // Stryker disable next-line ConditionalExpression,EqualityOperator: set and the word loop move the same bytes at any size (speed only)
    if (n > WORD_COPY_MAX) {
      dst.set(this.view.subarray(p, p + n));
    } else if (n > 0) {
      if (dst !== this.inScratch) {
        this.inScratch = dst;
        this.inScratchDv = new DataView(dst.buffer, dst.byteOffset, dst.length);
      }
      // n bytes, 4 at a time, read and written little-endian (so they arrive unchanged on any
      // platform); the loop is here, not in a helper both copies call: a reactor called now and
      // then runs this in V8's interpreter, where a call costs (docs/PERFORMANCE.md, row 3).
      const from = this.dv;
      const to = this.inScratchDv;
      let i = 0;
      // Stryker disable next-line ConditionalExpression,EqualityOperator: the byte loop below copies whatever the word loop leaves (speed only)
      for (; i + 4 <= n; i += 4) to.setInt32(i, from.getInt32(p + i, true), true);
      for (; i < n; i++) to.setUint8(i, from.getUint8(p + i));
    }
  }

  /**
   * copyOut without its checks: the caller has checked [p, p + cap) with checkAt against size(),
   * with no guest code run since, and srcLen <= min(cap, src.length). p and cap are u32.
   */
  writeChecked(p: number, cap: number, src: Uint8Array, srcLen: number): void {
    // Stryker disable next-line ConditionalExpression,EqualityOperator: set and the word loop write the same bytes at any size (speed only)
    if (srcLen > WORD_COPY_MAX) {
      this.view.set(srcLen === src.length ? src : src.subarray(0, srcLen), p);
    } else if (srcLen > 0) {
      if (src !== this.outScratch) {
        this.outScratch = src;
        this.outScratchDv = new DataView(src.buffer, src.byteOffset, src.length);
      }
      // As in readChecked: 4 bytes at a time, little-endian on both sides.
      const from = this.outScratchDv;
      const to = this.dv;
      let i = 0;
      // Stryker disable next-line ConditionalExpression,EqualityOperator: the byte loop below copies whatever the word loop leaves (speed only)
      for (; i + 4 <= srcLen; i += 4) to.setInt32(p + i, from.getInt32(i, true), true);
      for (; i < srcLen; i++) to.setUint8(p + i, from.getUint8(i));
    }
    const rest = cap - srcLen;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: fill and zeroWords zero the same bytes at any size (speed only)
    if (rest > WORD_COPY_MAX) this.view.fill(0, p + srcLen, p + cap);
    else if (rest > 0) zeroWords(this.dv, p + srcLen, rest);
  }

  // ---- Typed, checked access (used by the WASI layer; every method checks before it touches). ----

  /**
   * Status of [ptr, ptr + len) lying inside memory, *without* the per-transfer cap: for callers
   * that bound their own transfer (WASI I/O is capped per call by `maxTransfer` in total, and
   * host-generated results such as directory listings are bounded by the file-system quotas).
   */
  checkSpan(ptr: number, len: number): number {
    return (ptr >>> 0) + (len >>> 0) > this.current().length ? HvStatus.INVALID_ADDRESS : HvStatus.SUCCESS;
  }

  /** The u32 (LE) at ptr, or -1 when [ptr, ptr + 4) is outside memory. */
  readU32(ptr: number): number {
    const p = ptr >>> 0;
    if (p + 4 > this.current().length) return -1;
    return this.dv.getUint32(p, true);
  }

  /** Writes a u32 (LE) at ptr; all-or-nothing. */
  writeU32(ptr: number, value: number): number {
    const p = ptr >>> 0;
    if (p + 4 > this.current().length) return HvStatus.INVALID_ADDRESS;
    this.dv.setUint32(p, value >>> 0, true);
    return HvStatus.SUCCESS;
  }

  /** Writes a u64 (LE) at ptr; all-or-nothing. */
  writeU64(ptr: number, value: bigint): number {
    const p = ptr >>> 0;
    if (p + 8 > this.current().length) return HvStatus.INVALID_ADDRESS;
    this.dv.setBigUint64(p, BigInt.asUintN(64, value), true);
    return HvStatus.SUCCESS;
  }

  /** Writes src[0, len) at ptr (no zero-fill beyond it); all-or-nothing, not capped (see checkSpan). */
  writeBytes(ptr: number, src: Uint8Array, len: number = src.length): number {
    if (len > src.length) return HvStatus.INVALID_ARGUMENT;
    if (this.checkSpan(ptr, len) !== HvStatus.SUCCESS) return HvStatus.INVALID_ADDRESS;
    if (len > 0) this.view.set(len === src.length ? src : src.subarray(0, len), ptr >>> 0);
    return HvStatus.SUCCESS;
  }

  /** Copies guest [ptr, ptr + len) into dst at offset 0 (dst must hold len bytes); not capped (see checkSpan). */
  readBytes(ptr: number, len: number, dst: Uint8Array): number {
    const n = len >>> 0;
    if (n > dst.length) return HvStatus.TOO_LARGE;
    if (this.checkSpan(ptr, n) !== HvStatus.SUCCESS) return HvStatus.INVALID_ADDRESS;
    const p = ptr >>> 0;
    if (n > 0) dst.set(this.view.subarray(p, p + n));
    return HvStatus.SUCCESS;
  }

  /**
   * Reads an array of `count` iovecs ({u32 buf, u32 len}, 8 bytes each) at `iovs` into `spans`
   * as flat [ptr0, len0, ptr1, len1, ...], checking the array and *every* buffer it names
   * (so a later scatter or gather cannot fault half-way). The spans are cut so that together
   * they hold at most `maxTransfer` bytes: a larger request becomes a short read or write.
   * Returns the total bytes the spans hold, or -status.
   */
  readIovecs(iovs: number, count: number, spans: number[]): number {
    spans.length = 0;
    const n = count >>> 0;
    if (n > this.maxTransfer / 8) return -HvStatus.TOO_LARGE;
    if (this.checkSpan(iovs, n * 8) !== HvStatus.SUCCESS) return -HvStatus.INVALID_ADDRESS;
    const size = this.view.length;
    const dv = this.dv;
    let total = 0;
    for (let i = 0, at = iovs >>> 0; i < n; i++, at += 8) {
      const buf = dv.getUint32(at, true);
      const len = dv.getUint32(at + 4, true);
      if (buf + len > size) return -HvStatus.INVALID_ADDRESS;
      const take = Math.min(len, this.maxTransfer - total);
      if (take > 0) {
        spans.push(buf, take);
        total += take;
      }
    }
    return total;
  }

  /** Copies the bytes of checked spans (from readIovecs) into dst, in order; returns bytes copied. */
  gather(spans: readonly number[], dst: Uint8Array): number {
    const view = this.current();
    let at = 0;
    for (let i = 0; i < spans.length; i += 2) {
      const p = spans[i]!;
      const n = spans[i + 1]!;
      if (p + n > view.length || at + n > dst.length) return at;
      dst.set(view.subarray(p, p + n), at);
      at += n;
    }
    return at;
  }

  /**
   * A view of the checked span [ptr, ptr + len) (from readIovecs), for host code that copies or
   * writes it out at once (a console write): one copy instead of gathering first. The view is
   * used before the guest runs again and never kept (memory.grow would detach it).
   */
  spanView(ptr: number, len: number): Uint8Array {
    const p = ptr >>> 0;
    return this.current().subarray(p, p + (len >>> 0));
  }

  /** Writes src[0, len) across checked spans (from readIovecs), in order; returns bytes written. */
  scatter(spans: readonly number[], src: Uint8Array, len: number): number {
    const view = this.current();
    let at = 0;
    for (let i = 0; i < spans.length && at < len; i += 2) {
      const p = spans[i]!;
      const n = Math.min(spans[i + 1]!, len - at);
      if (p + n > view.length) return at;
      view.set(src.subarray(at, at + n), p);
      at += n;
    }
    return at;
  }

  /**
   * Zeroes the whole memory: the last thing done with a partition's memory before it is dropped.
   * Page by page (4 KiB, the host's page), writing only pages that hold a non-zero byte: a page
   * the guest never wrote reads as the kernel's shared zero page, while writing zeros to it
   * would first make the kernel allocate and zero a page for it. Most of a small guest's memory
   * is never written; its scrub costs half (exit.wasm, 2 pages: 73 -> 38 us, load 20).
   */
  scrub(): void {
    const view = this.current();
    for (let at = 0; at < view.length; at += SCRUB_PAGE) {
      const page = view.subarray(at, at + SCRUB_PAGE);
      if (Buffer.compare(page, page.length === SCRUB_PAGE ? ZERO_PAGE : ZERO_PAGE.subarray(0, page.length)) !== 0) page.fill(0);
    }
  }

  /**
   * The view over the current buffer. memory.grow detaches the old ArrayBuffer (non-shared
   * memories are the only kind a partition may have), which makes the cached view's length 0:
   * that is the only case in which the view is re-made. Reading `memory.buffer` on every access
   * instead costs a native call per check, on the hottest path of every hypercall.
   */
  private current(): Uint8Array {
    if (this.view.length === 0 && this.memory !== null) this.refresh();
    return this.view;
  }

  /** Re-makes the views over the memory's current buffer; returns its size. */
  private refresh(): number {
    const buffer = this.memory!.buffer;
    this.view = new Uint8Array(buffer);
    this.dv = new DataView(buffer);
    const size = this.view.length;
    if (size !== this.reportedSize) {
      this.reportedSize = size;
      this.onResize?.(size);
    }
    return size;
  }
}
