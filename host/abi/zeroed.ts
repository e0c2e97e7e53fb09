/**
 * Zeroed buffers allocated ahead of need, while a warm dedicated worker waits for its partition
 * (issue #15): a thread that has just been woken takes 40-100 µs to allocate a 64 KiB buffer
 * (measured on the 2-core machine), and a partition's start allocates several (the dispatcher's
 * two scratch buffers, the console's input buffer).
 *
 * Invariant: a reserved buffer is handed out once and was never written before: it is as zero
 * as a new one. A thread that reserved nothing (the root, a shared worker, a partition process)
 * allocates as before.
 */
const held = new Map<number, Uint8Array[]>();

/** Allocates `count` more zeroed buffers of `bytes` bytes, for `zeroedBytes` to hand out. */
export function reserveZeroed(bytes: number, count: number): void {
  let list = held.get(bytes);
  if (list === undefined) held.set(bytes, (list = []));
  for (let i = 0; i < count; i++) list.push(new Uint8Array(bytes));
}

/** A zeroed buffer of `bytes` bytes that owns its whole ArrayBuffer: a reserved one if any is left, else a new one. */
export function zeroedBytes(bytes: number): Uint8Array {
  return held.get(bytes)?.pop() ?? new Uint8Array(bytes);
}
