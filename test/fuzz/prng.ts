/**
 * The fast generator behind the call-sequence targets: fast-check draws an input's shape (device
 * configuration, seed, number of calls; it shrinks those), and this PRNG expands the seed into the
 * calls themselves, a few nanoseconds each. The same (seed, count) always gives the same calls,
 * so a shrunk input is an exact reproducer.
 */

/** sfc32: small, fast, 128 bits of state, good enough statistics for fuzzing (not for secrets). */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed | 0;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform u32. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [min, max] (max − min < 2^32). */
  int(min: number, max: number): number {
    return min + Math.floor((this.u32() / 0x1_0000_0000) * (max - min + 1));
  }

  /** True with probability n/d. */
  chance(n: number, d: number): boolean {
    return this.u32() % d < n;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.u32() % items.length]!;
  }

  /** Up to `max` random bytes, into a fresh array. */
  bytes(max: number): Uint8Array {
    return this.exactly(this.int(0, max));
  }

  /** `n` random bytes, into a fresh array. */
  exactly(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < out.length; i += 4) {
      const v = this.u32();
      out[i] = v;
      if (i + 1 < out.length) out[i + 1] = v >>> 8;
      if (i + 2 < out.length) out[i + 2] = v >>> 16;
      if (i + 3 < out.length) out[i + 3] = v >>> 24;
    }
    return out;
  }

  /** A u64 as a bigint: boundary values and random ones. */
  u64(): bigint {
    if (this.chance(1, 2)) return this.pick(U64_EDGES);
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}

const U64_EDGES = [0n, 1n, 4096n, 0xffff_ffffn, 0x1_0000_0000n, 0x7fff_ffff_ffff_ffffn, 0x8000_0000_0000_0000n, 0xffff_ffff_ffff_ffffn];

/**
 * A u32 at and around the given edges (weight 4), small (weight 2) or anything (weight 1): the
 * same distribution as framework.ts's boundaryU32, drawn from a Prng.
 */
export function edgeU32(edges: readonly number[]): (r: Prng) => number {
  const near = edges.flatMap((e) => [e - 2, e - 1, e, e + 1, e + 2]).map((v) => v >>> 0);
  return (r) => {
    const w = r.int(0, 6);
    if (w < 4) return r.pick(near);
    if (w < 6) return r.int(0, 4096);
    return r.u32();
  };
}
