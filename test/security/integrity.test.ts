import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IntegrityError, InvalidArgumentError } from '../../host/errors.ts';
import { checkIntegrity } from '../../host/security/integrity.ts';
import { measure } from '../../host/loader/measure.ts';
import { guest } from '../loader/wat.ts';

describe('measure', () => {
  it('is the lowercase hex SHA-256 of the bytes, and stable', () => {
    const bytes = guest();
    const expected = createHash('sha256').update(bytes).digest('hex');
    expect(measure(bytes)).toBe(expected);
    expect(measure(bytes)).toBe(measure(Uint8Array.from(bytes)));
    expect(measure(bytes)).toMatch(/^[0-9a-f]{64}$/);
    // Known vector: SHA-256 of the empty string.
    expect(measure(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('changes with any byte', () => {
    const bytes = guest();
    const other = Uint8Array.from(bytes);
    other[0] = 0xff; // the magic number's first byte is 0x00
    expect(measure(other)).not.toBe(measure(bytes));
  });
});

describe('checkIntegrity', () => {
  const m = measure(guest());
  const other = 'ab'.repeat(32);

  it('admits a matching pin, in any case', () => {
    expect(() => checkIntegrity(m, { expectedSha256: m })).not.toThrow();
    expect(() => checkIntegrity(m, { expectedSha256: m.toUpperCase() })).not.toThrow();
    expect(() => checkIntegrity(m, {})).not.toThrow();
  });

  it('refuses a mismatching pin, showing both hashes', () => {
    expect(() => checkIntegrity(m, { expectedSha256: other })).toThrow(IntegrityError);
    expect(() => checkIntegrity(m, { expectedSha256: other })).toThrow(`module measurement sha256:${m} does not match the pinned sha256:${other}`);
  });

  it('refuses a malformed pin as an argument error, not an integrity failure', () => {
    for (const pin of ['', m.slice(1), `${m}0`, `sha256:${m}`, m.replace(/.$/, 'g'), ` ${m}`]) {
      expect(() => checkIntegrity(m, { expectedSha256: pin }), pin).toThrow(InvalidArgumentError);
    }
  });

  it('enforces an allow list, case-insensitively; an empty one admits nothing', () => {
    expect(() => checkIntegrity(m, { allowList: new Set([other, m.toUpperCase()]) })).not.toThrow();
    expect(() => checkIntegrity(m, { allowList: new Set([other]) })).toThrow(IntegrityError);
    expect(() => checkIntegrity(m, { allowList: new Set([other]) })).toThrow(/is not on the allow list \(1 entries\)/);
    expect(() => checkIntegrity(m, { allowList: new Set() })).toThrow(IntegrityError);
    expect(() => checkIntegrity(m, {})).not.toThrow();
    expect(() => checkIntegrity(m, { allowList: new Set(['nope']) })).toThrow(InvalidArgumentError);
  });

  it('applies both checks when both are given', () => {
    expect(() => checkIntegrity(m, { expectedSha256: m, allowList: new Set([other]) })).toThrow(IntegrityError);
    expect(() => checkIntegrity(m, { expectedSha256: other, allowList: new Set([m]) })).toThrow(IntegrityError);
  });
});
