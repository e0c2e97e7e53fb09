/**
 * Byte-level helpers shared by the security room: LEB128 and length-prefixed encoding, hex, and
 * constant-time comparison. Reading the same encoding back is loader/sections.ts's ByteReader
 * (given the format's own error), the one bounded reader of the WebAssembly binary encoding.
 */
import { timingSafeEqual } from 'node:crypto';

/** Unsigned LEB128 encoding (minimal) of a value up to 2^32 − 1. */
export function leb128(value: number): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`LEB128 value out of range: ${value}`);
  const out: number[] = [];
  let v = value;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return Uint8Array.from(out);
}

/** A length-prefixed byte string: LEB128 length, then the bytes. */
export function lengthPrefixed(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return concat([leb128(bytes.length), bytes]);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** Hex (any case, even length) to bytes, or null when it is not hex. */
export function fromHex(text: string): Uint8Array | null {
  if (!HEX.test(text)) return null;
  return new Uint8Array(Buffer.from(text, 'hex'));
}

/** Constant-time equality of two byte strings (false for different lengths). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Text (UTF-8) bytes. */
export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
