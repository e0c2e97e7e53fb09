/**
 * The device model. A device is a set of hypercall handlers plus the record it shows in
 * DEVICE_LIST. Handlers never see guest memory: the dispatcher hands them host-owned scratch
 * buffers (input already copied in, output copied out all-or-nothing afterwards), so a device
 * cannot get a bounds check wrong.
 *
 * Default-deny: a call whose device was not granted never reaches a device at all; the
 * dispatcher answers ACCESS_DENIED and reports a violation.
 */

/**
 * A hypercall handler. `input[0, inLen)` holds the guest's input; the handler may write
 * `out[0, outCap)` (already zeroed) and returns the call's result: >= 0 on success (for calls
 * with output, the number of bytes it wrote, which must be <= outCap), or a negated HvStatus.
 */
export type Handler = (input: Uint8Array, inLen: number, out: Uint8Array, outCap: number) => number;

/** Handlers that declared they write a dense prefix (see `writesPrefix`). */
const PREFIX_WRITERS = new WeakSet<Handler>();

/**
 * Declares that `handler`, whenever it returns r >= 0, has written every byte of out[0, r)
 * itself, and that it does not rely on `out` being zeroed. The dispatcher then skips zeroing
 * its output scratch and copies only out[0, r) to the guest, zeroing the rest of the guest's
 * window directly: a 64 KiB receive window holding a 64-byte frame costs one memset instead of
 * a memset and two 64 KiB copies. Stale scratch bytes past r are never copied anywhere; the
 * scratch is the partition's own. Opt-in: a handler that writes sparsely must not use it.
 */
export function writesPrefix(handler: Handler): Handler {
  PREFIX_WRITERS.add(handler);
  return handler;
}

/** Whether `handler` was declared with writesPrefix. */
export function isPrefixWriter(handler: Handler): boolean {
  return PREFIX_WRITERS.has(handler);
}

/** What DEVICE_LIST shows for a device. */
export interface DeviceRecord {
  id: number;
  version: number;
  param0: number;
  param1: number;
}

export interface Device {
  /** Lower-case device name, as in the partition spec (`console`, `clock`, `entropy`). */
  readonly name: string;
  readonly record: DeviceRecord;
  /** Handlers by call code. Only codes that belong to this device. */
  readonly handlers: ReadonlyMap<number, Handler>;
  /** Flushes buffered state; called once when the guest stops running normally. */
  close?(): void;
}

/** Reads a u32 (LE) from the first 4 input bytes, or returns -1 when there are not exactly 4. */
export function readU32Arg(input: Uint8Array, inLen: number): number {
  return inLen === 4 ? readU32(input, 0) : -1;
}

/** Reads a u32 (LE) at `at`. */
export function readU32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** Writes `v` as a u32 (LE) at `at`: how devices put scalars into their output scratch. */
export function writeU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v & 0xff;
  out[at + 1] = (v >>> 8) & 0xff;
  out[at + 2] = (v >>> 16) & 0xff;
  out[at + 3] = (v >>> 24) & 0xff;
}
