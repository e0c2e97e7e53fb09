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

  constructor(readonly maxTransfer: number = HV_MAX_TRANSFER) {}

  /** Attaches the memory (after instantiation: during the wasm start function there is none yet). */
  bind(memory: MemoryLike): void {
    this.memory = memory;
    this.view = new Uint8Array(memory.buffer);
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
    if (this.view.length === 0 && memory !== null) this.view = new Uint8Array(memory.buffer);
    return this.view;
  }
}
