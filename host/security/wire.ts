/**
 * Byte-level helpers shared by the security room: a bounded reader for LEB128 integers and
 * length-prefixed byte strings, hex, and constant-time comparison.
 *
 * Invariant: a Reader never reads past its `end`, never allocates before it has checked that
 * the bytes it is about to take exist, and reports every problem through the `fail` function its
 * caller gives it (so each format raises its own typed error, with the offset).
 */
import { timingSafeEqual } from 'node:crypto';

/** Builds the typed error a format raises for malformed input (`at` is the byte offset). */
export type Fail = (message: string, at: number) => Error;

export class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly fail: Fail,
    start = 0,
    readonly end: number = bytes.length,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  u8(what: string): number {
    if (this.pos >= this.end) throw this.fail(`${what}: unexpected end of data`, this.pos);
    return this.bytes[this.pos++]!;
  }

  /** An unsigned LEB128 of at most 32 bits: at most 5 bytes, unused high bits zero. */
  u32(what: string): number {
    const at = this.pos;
    let result = 0;
    for (let i = 0; i < 5; i++) {
      if (this.pos >= this.end) throw this.fail(`${what}: unexpected end of data in a LEB128 number`, at);
      const b = this.bytes[this.pos++]!;
      if (i === 4 && (b & 0x70) !== 0) throw this.fail(`${what}: LEB128 number does not fit in 32 bits`, at);
      result += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return result;
    }
    throw this.fail(`${what}: LEB128 number longer than 5 bytes`, at);
  }

  /** Takes `n` bytes as a view (no copy); `n` is checked against what is left first. */
  take(n: number, what: string): Uint8Array {
    if (n > this.remaining) throw this.fail(`${what}: ${n} bytes declared, only ${this.remaining} left`, this.pos);
    const view = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return view;
  }

  /** A u32 length, then that many bytes (a view); the length is checked before anything is taken. */
  slice(what: string, max = Infinity): Uint8Array {
    const at = this.pos;
    const n = this.u32(`${what} length`);
    if (n > max) throw this.fail(`${what}: length ${n} exceeds the limit of ${max} bytes`, at);
    return this.take(n, what);
  }

  /** A count that is checked against a limit and against the bytes left (each item takes at least `minItemBytes`). */
  count(what: string, max: number, minItemBytes: number): number {
    const at = this.pos;
    const n = this.u32(what);
    if (n > max) throw this.fail(`${what} ${n} exceeds the limit of ${max}`, at);
    if (n * minItemBytes > this.remaining) throw this.fail(`${what} ${n} cannot fit in the ${this.remaining} bytes left`, at);
    return n;
  }

  expectEnd(what: string): void {
    if (this.pos !== this.end) throw this.fail(`${what}: ${this.end - this.pos} unexpected trailing bytes`, this.pos);
  }
}

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
