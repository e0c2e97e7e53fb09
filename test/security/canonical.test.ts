/** Canonical JSON: the byte form that is hashed and signed; its depth cap is what bounds its recursion. */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../host/errors.ts';
import { createHash } from 'node:crypto';
import { MAX_DEPTH, canonicalHash, canonicalJson } from '../../host/security/canonical.ts';

/** `levels` arrays around 1, built without recursion. */
function nested(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

describe('canonical JSON', () => {
  it('sorts keys, drops undefined members, writes no whitespace', () => {
    expect(canonicalJson({ b: [1, 'x', null, true], a: { d: undefined, c: 2.5 } })).toBe('{"a":{"c":2.5},"b":[1,"x",null,true]}');
  });

  it(`nests to MAX_DEPTH (${MAX_DEPTH}) levels; one more, or 100 000, is ERR_INVALID_ARGUMENT, never a stack overflow`, () => {
    expect(canonicalJson(nested(MAX_DEPTH))).toBe('['.repeat(MAX_DEPTH) + '1' + ']'.repeat(MAX_DEPTH));
    for (const levels of [MAX_DEPTH + 1, 100_000]) expect(() => canonicalJson(nested(levels))).toThrow(InvalidArgumentError);
  });

  it('refuses what has no canonical form', () => {
    for (const bad of [Number.NaN, Infinity, 1n, () => 0, new Date(0), Symbol('s')]) expect(() => canonicalJson({ v: bad })).toThrow(InvalidArgumentError);
  });
});

describe('canonicalHash', () => {
  it('is the SHA-256 of the canonical JSON as UTF-8, as a Hash object fed the string gives it', () => {
    const value = { z: [1, -0, 'é€😀'], a: { y: null, x: true }, m: 'line\n"quoted"' };
    const json = canonicalJson(value);
    expect(json).toBe('{"a":{"x":true,"y":null},"m":"line\\n\\"quoted\\"","z":[1,0,"é€😀"]}');
    expect(canonicalHash(value)).toBe(createHash('sha256').update(json, 'utf8').digest('hex'));
  });
});
