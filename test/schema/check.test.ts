import { describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { check, duplicateJsonKey, explain, formatPath, nearest } from '../../host/schema/check.ts';
import { InvalidArgumentError } from '../../host/errors.ts';

const Console = Type.Object({ linesPerSecond: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })) }, { additionalProperties: false });
const Spec = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    limits: Type.Optional(Type.Object({ memoryPages: Type.Optional(Type.Integer({ minimum: 1, maximum: 65536 })), timeoutMs: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false })),
    devices: Type.Optional(Type.Object({ console: Type.Optional(Type.Union([Type.Boolean(), Console])) }, { additionalProperties: false })),
    kind: Type.Optional(Type.Union([Type.Literal('command'), Type.Literal('reactor')])),
  },
  { additionalProperties: false },
);

function message(value: unknown): string {
  try {
    check(Spec, value, 'partition spec');
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).code).toBe('ERR_INVALID_ARGUMENT');
    return (error as Error).message;
  }
  throw new Error('check accepted an invalid value');
}

describe('schema check', () => {
  it('returns a valid value unchanged', () => {
    const v = { name: 'a', limits: { memoryPages: 16 }, devices: { console: { linesPerSecond: 5 } } };
    expect(check(Spec, v, 'spec')).toBe(v);
    expect(explain(Spec, v)).toEqual([]);
  });

  it('names an unknown key with its path and a near miss', () => {
    expect(message({ name: 'a', device: { console: true } })).toBe('partition spec: device: unknown key; did you mean devices?');
    expect(message({ name: 'a', limits: { timeout: 10 } })).toContain('limits.timeout: unknown key; did you mean timeoutMs?');
    expect(message({ name: 'a', devices: { console: { linesPerSec: 5 } } })).toContain('devices.console.linesPerSec: unknown key; did you mean linesPerSecond?');
  });

  it('lists the known keys when nothing is near', () => {
    expect(message({ name: 'a', zzzzzzzz: 1 })).toContain('zzzzzzzz: unknown key (known: name, limits, devices, kind)');
  });

  it('says a number given as a string was a string', () => {
    expect(message({ name: 'a', limits: { memoryPages: '16' } })).toContain('limits.memoryPages: expected an integer from 1 to 65536, got the string "16"');
  });

  it('states the range at and past each edge', () => {
    expect(explain(Spec, { name: 'a', limits: { memoryPages: 65536 } })).toEqual([]);
    expect(message({ name: 'a', limits: { memoryPages: 65537 } })).toContain('got the number 65537');
    expect(message({ name: 'a', limits: { memoryPages: 0 } })).toContain('expected an integer from 1 to 65536, got the number 0');
    expect(message({ name: 'a', limits: { memoryPages: 1.5 } })).toContain('got the number 1.5');
  });

  it('explains literals, missing keys and non-objects', () => {
    expect(message({ name: 'a', kind: 'daemon' })).toContain(`kind: expected "command" or "reactor", got the string "daemon"`);
    expect(message({})).toContain('name: is required');
    expect(message(null)).toContain('(root): expected an object, got null');
    // An argument not given at all (hv.createPool(spec), hv.createPartition()): named too, where
    // it said "does not match its schema".
    expect(message(undefined)).toBe('partition spec: (root): expected an object, got nothing');
  });

  it('bounds the message however many problems there are', () => {
    const v: Record<string, unknown> = { name: 'a' };
    for (let i = 0; i < 100; i++) v[`k${i}`] = i;
    const m = message(v);
    expect(m).toContain('and 95 more problems');
    expect(m.length).toBeLessThan(1000);
  });

  it('formats paths and near misses', () => {
    expect(formatPath('')).toBe('(root)');
    expect(formatPath('/a/0/b c')).toBe('a[0]["b c"]');
    expect(nearest('datadir', ['dataDir', 'storageKey'])).toBe('dataDir');
    expect(nearest('x'.repeat(10_000), ['dataDir'])).toBeNull();
  });

  it('finds the first key given twice in one object, reading strings to their real end', () => {
    expect(duplicateJsonKey('{"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]}')).toBeNull();
    expect(duplicateJsonKey('{"a": 1, "a": 2}')).toEqual({ path: '', key: 'a' });
    expect(duplicateJsonKey('{"x": [{}, {"k": 1, "k": 2}]}')).toEqual({ path: '/x/1', key: 'k' });
    // Strings ending in backslashes: an even run closes the string, an odd run escapes the quote.
    const bs = '\\';
    const tricky = `{"a${bs}${bs}": 1, "v": "${bs}${bs}${bs}"${bs}${bs}", "a${bs}${bs}": 2}`;
    expect(Object.keys(JSON.parse(tricky) as object)).toEqual([`a${bs}`, 'v']);
    expect(duplicateJsonKey(tricky)).toEqual({ path: '', key: `a${bs}` });
    expect(duplicateJsonKey(`{"a": "${bs}${bs}", "a": 1}`)).toEqual({ path: '', key: 'a' });
    expect(duplicateJsonKey(JSON.stringify({ [`a${bs}`]: 1, b: bs, c: `q"${bs}"`, d: 'a' }))).toBeNull();
    // Not JSON (an unterminated string): no key, and an end.
    expect(duplicateJsonKey('{"a": "x')).toBeNull();
    // A key inside a long string is text, not a key.
    expect(duplicateJsonKey(JSON.stringify({ m: `${'x'.repeat(1 << 20)}", "m": "`, n: 1 }))).toBeNull();
  });
});
