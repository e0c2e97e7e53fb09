import { HV_MAX_TRANSFER, HvStatus } from './codes.ts';

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
 */
export class GuestMemory {
  private memory: MemoryLike | null = null;
  private view: Uint8Array = new Uint8Array(0);
  private dv: DataView = new DataView(new ArrayBuffer(0));

  constructor(readonly maxTransfer: number = HV_MAX_TRANSFER) {}

  /** Attaches the memory (after instantiation: during the wasm start function there is none yet). */
  bind(memory: MemoryLike): void {
    this.memory = memory;
    this.view = new Uint8Array(memory.buffer);
    this.dv = new DataView(memory.buffer);
  }

  /** Current size in bytes; 0 when no memory is bound. */
  get byteLength(): number {
    return this.current().byteLength;
  }

  /** Status of an access to [ptr, ptr + len): SUCCESS, TOO_LARGE or INVALID_ADDRESS. */
  check(ptr: number, len: number): number {
    const p = ptr >>> 0;
    const n = len >>> 0;
    if (n > this.maxTransfer) return HvStatus.TOO_LARGE;
    if (p + n > this.current().byteLength) return HvStatus.INVALID_ADDRESS;
    return HvStatus.SUCCESS;
  }

  /** Copies guest bytes [ptr, ptr + len) into `dst` at offset 0. `dst` must hold len bytes. */
  copyIn(ptr: number, len: number, dst: Uint8Array): number {
    const status = this.check(ptr, len);
    if (status !== HvStatus.SUCCESS) return status;
    const p = ptr >>> 0;
    const n = len >>> 0;
    if (n > dst.length) return HvStatus.TOO_LARGE;
    if (n > 0) dst.set(this.view.subarray(p, p + n));
    return HvStatus.SUCCESS;
  }

  /**
   * Writes src[0, srcLen) to guest [ptr, ptr + cap) and zeroes guest [ptr + srcLen, ptr + cap).
   * Nothing is written unless the whole window is valid and the result fits.
   */
  copyOut(ptr: number, cap: number, src: Uint8Array, srcLen: number): number {
    const status = this.check(ptr, cap);
    if (status !== HvStatus.SUCCESS) return status;
    const p = ptr >>> 0;
    const c = cap >>> 0;
    if (srcLen > c) return HvStatus.BUFFER_TOO_SMALL;
    if (srcLen > src.length) return HvStatus.INVALID_ARGUMENT;
    const view = this.view;
    if (srcLen > 0) view.set(srcLen === src.length ? src : src.subarray(0, srcLen), p);
    if (c > srcLen) view.fill(0, p + srcLen, p + c);
    return HvStatus.SUCCESS;
  }

  // ---- Typed, checked access (used by the WASI layer; every method checks before it touches). ----

  /**
   * Status of [ptr, ptr + len) lying inside memory, *without* the per-transfer cap: for callers
   * that bound their own transfer (WASI I/O is capped per call by `maxTransfer` in total, and
   * host-generated results such as directory listings are bounded by the file-system quotas).
   */
  checkSpan(ptr: number, len: number): number {
    return (ptr >>> 0) + (len >>> 0) > this.current().byteLength ? HvStatus.INVALID_ADDRESS : HvStatus.SUCCESS;
  }

  /** The u32 (LE) at ptr, or -1 when [ptr, ptr + 4) is outside memory. */
  readU32(ptr: number): number {
    const p = ptr >>> 0;
    if (p + 4 > this.current().byteLength) return -1;
    return this.dv.getUint32(p, true);
  }

  /** Writes a u32 (LE) at ptr; all-or-nothing. */
  writeU32(ptr: number, value: number): number {
    const p = ptr >>> 0;
    if (p + 4 > this.current().byteLength) return HvStatus.INVALID_ADDRESS;
    this.dv.setUint32(p, value >>> 0, true);
    return HvStatus.SUCCESS;
  }

  /** Writes a u64 (LE) at ptr; all-or-nothing. */
  writeU64(ptr: number, value: bigint): number {
    const p = ptr >>> 0;
    if (p + 8 > this.current().byteLength) return HvStatus.INVALID_ADDRESS;
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
    const size = this.view.byteLength;
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
      if (p + n > view.byteLength || at + n > dst.length) return at;
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
      if (p + n > view.byteLength) return at;
      view.set(src.subarray(at, at + n), p);
      at += n;
    }
    return at;
  }

  /** Zeroes the whole memory: the last thing done with a partition's memory before it is dropped. */
  scrub(): void {
    this.current().fill(0);
  }

  /**
   * The view over the current buffer. memory.grow detaches the old ArrayBuffer (non-shared
   * memories are the only kind a partition may have), which makes the cached view's length 0:
   * that is the only case in which the view is re-made. Reading `memory.buffer` on every access
   * instead costs a native call per check, on the hottest path of every hypercall.
   */
  private current(): Uint8Array {
    const memory = this.memory;
    if (this.view.length === 0 && memory !== null) {
      this.view = new Uint8Array(memory.buffer);
      this.dv = new DataView(memory.buffer);
    }
    return this.view;
  }
}
