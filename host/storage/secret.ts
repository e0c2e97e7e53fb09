/**
 * Buffers for key material. Node hands out small Buffers (`Buffer.from`, `Buffer.allocUnsafe`,
 * `Buffer.concat`, `fs.readFile` of a small file) as slices of one shared 8 KiB pool, so a 32-byte
 * key made that way sits beside whatever else the process allocated, and posting its view to a
 * worker copies the whole pool across. Every key, and everything that crosses to a worker next to
 * one, is made here instead: its own exactly-sized ArrayBuffer, zeroed by whoever owns it when
 * it is no longer needed.
 */

/** A zero-filled buffer of n bytes on its own ArrayBuffer (never a slice of Node's pool). */
export function secretBuffer(n: number): Buffer {
  return Buffer.allocUnsafeSlow(n).fill(0);
}

/** A copy of `src` on its own ArrayBuffer: the caller owns it and zeroes it when done. */
export function secretCopy(src: Uint8Array): Buffer {
  const b = Buffer.allocUnsafeSlow(src.length);
  b.set(src);
  return b;
}

/** True when the view covers its whole ArrayBuffer, so structured cloning copies nothing else. */
export function isStandalone(view: Uint8Array): boolean {
  // Stryker disable next-line ConditionalExpression: equivalent: a view that starts past 0 cannot also be as long as its buffer
  return view.byteOffset === 0 && view.buffer.byteLength === view.byteLength;
}
