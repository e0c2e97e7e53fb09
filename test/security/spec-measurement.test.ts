/**
 * specForMeasurement: the data a partition's spec hash is computed from. Plain specs are copied
 * directly (issue #15: the JSON round trip was on the warm start's path); the result must be
 * exactly what the round trip makes, for every spec, or the spec hash would change.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_DEPTH, canonicalHash } from '../../host/security/canonical.ts';
import { specByRoundTrip as roundTrip, specForMeasurement } from '../../host/security/spec.ts';

/** `levels` objects around 1, built without recursion. */
function nested(levels: number): Record<string, unknown> {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { v };
  return v as Record<string, unknown>;
}

const leaf = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.string(),
  fc.double(), // NaN, ±Infinity, -0 included
  fc.integer(),
  fc.bigInt(),
  fc.uint8Array({ maxLength: 8 }),
  fc.constant(new Date(0)),
);
const value = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 6 }), tie('node'), { maxKeys: 4 })),
})).node;

describe('specForMeasurement', () => {
  it('is the JSON round trip for any value: plain data, non-finite numbers, -0, bytes, bigints, dates, undefined members', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 6 }), value, { maxKeys: 6 }), (spec) => {
        expect(specForMeasurement(spec)).toStrictEqual(roundTrip(spec));
      }),
      { numRuns: 500 },
    );
  });

  it('a resolved spec of plain data hashes as before; odd corners take the round trip', () => {
    const spec = {
      name: 'p',
      kind: 'command',
      args: ['a', 'ü', '\ud800'],
      devices: { console: { maxLineBytes: 4096 }, clock: { resolutionNs: 1e6, deterministic: null }, block: null },
      wasi: null,
      restart: { policy: 'never', max: Infinity, backoff: -0 },
      limits: { memoryPages: 16, timeoutMs: Infinity, fuel: null, cpu: undefined },
    };
    expect(canonicalHash(specForMeasurement(spec))).toBe(canonicalHash(roundTrip(spec)));
    // A hole or undefined in an array is null; a toJSON is called; __proto__ stays a plain key.
    // eslint-disable-next-line no-sparse-arrays
    const odd = { holes: [1, , 3], undef: [undefined], j: { toJSON: () => 'x' }, p: JSON.parse('{"__proto__": {"a": 1}}') as unknown, f: () => 1 };
    expect(specForMeasurement(odd)).toStrictEqual(roundTrip(odd));
    // -0 is 0 after the round trip (toStrictEqual does not tell them apart).
    expect(Object.is((specForMeasurement({ z: -0, a: [-0] }) as { z: number }).z, 0)).toBe(true);
    expect(Object.is((specForMeasurement({ a: [-0] }) as { a: number[] }).a[0], 0)).toBe(true);
  });

  it(`copies specs up to canonical JSON's depth (${MAX_DEPTH}) directly, and deeper ones as the round trip does`, () => {
    for (const levels of [MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 2]) expect(specForMeasurement(nested(levels))).toStrictEqual(roundTrip(nested(levels)));
  });
});
