import fc from 'fast-check';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Stderr } from '../../host/cli/stderr.ts';
import { MAX_GUEST_TEXT, MAX_QUOTED, escapeText, guestText, quoted } from '../../host/escape.ts';
import { InvalidArgumentError } from '../../host/errors.ts';
import { VirtualSwitch } from '../../host/net/switch.ts';
import { validateIntegrityOptions } from '../../host/security/integrity.ts';
import { Hypervisor } from '../../host/index.ts';
import { guest } from '../helpers.ts';

const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

describe('escapeText', () => {
  it('shows control characters as \\n, \\r, \\t, \\xNN and \\u{NNNN}', () => {
    expect(escapeText('a\nb\rc\td\x1b[2Je\x00f\x7fg\x9bh')).toBe('a\\nb\\rc\\td\\x1b[2Je\\x00f\\x7fg\\x9bh');
    expect(escapeText('x\u2028y\u2029z\u202eq\u2066r\u200es')).toBe('x\\u{2028}y\\u{2029}z\\u{202e}q\\u{2066}r\\u{200e}s');
  });

  it('keeps printable text, backslashes and non-ASCII letters as they are', () => {
    expect(escapeText('plain ASCII ~!@#$%^&*()_+ \\x1b é ü 漢字 🙂')).toBe('plain ASCII ~!@#$%^&*()_+ \\x1b é ü 漢字 🙂');
  });

  it('property: the result never carries an unsafe character, and escaping is idempotent', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const once = escapeText(s);
        expect(once).not.toMatch(UNSAFE);
        expect(escapeText(once)).toBe(once);
      }),
      { numRuns: 500 },
    );
  });

  it('guestText cuts long text and says how much it left out', () => {
    const long = 'x'.repeat(MAX_GUEST_TEXT + 10) + '\n';
    expect(guestText(long)).toBe(`${'x'.repeat(MAX_GUEST_TEXT)}… (11 more characters)`);
    expect(guestText('short\n')).toBe('short\\n');
  });
});

describe('the CLI stderr discipline', () => {
  function capture(): { err: Stderr; text: () => string } {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    return { err: new Stderr(out), text: () => text };
  }

  it('marks guest lines that read as a verdict or a host note, passes others through', () => {
    const { err, text } = capture();
    for (const line of ['ERR_X: y', 'wasmvisor: z', 'WasmVisor stats', ' \tERR_', 'ok\rERR_X', 'plain \x1b[1m', 'an ERR_ inside']) err.guestLine(line);
    err.verdict('ERR_GUEST_TRAP', 'a\nb');
    expect(text().split('\n')).toEqual([
      '[guest] ERR_X: y',
      '[guest] wasmvisor: z',
      '[guest] WasmVisor stats',
      '[guest]  \\tERR_',
      '[guest] ok\\rERR_X',
      'plain \x1b[1m',
      'an ERR_ inside',
      'ERR_GUEST_TRAP: a\\nb',
      '',
    ]);
  });

  it('starts the verdict on a line of its own after an unfinished block', () => {
    const { err, text } = capture();
    err.block('no newline');
    err.verdict('ERR_KILLED', 'stopped');
    expect(text()).toBe('no newline\nERR_KILLED: stopped\n');
  });
});

describe('library messages quote guest text escaped', () => {
  let hv: Hypervisor | undefined;
  afterEach(async () => {
    await hv?.close();
    hv = undefined;
  });

  it("a guest's abort message reaches error.message escaped, on one line", async () => {
    hv = new Hypervisor();
    const p = await hv.createPartition({ name: 'forge', module: guest('attack-forge'), devices: { console: true } });
    await p.start();
    const exit = await p.exited;
    expect(exit.reason).toBe('ERR_GUEST_TRAP');
    expect(exit.error?.message).toMatch(/^guest aborted: boom\\nERR_INTEGRITY: /);
    expect(exit.error?.message).not.toMatch(UNSAFE);
  });
});

describe('quoted: a caller\'s value in an error message', () => {
  it('shows a string in JSON quotes, cut after MAX_QUOTED characters with the rest counted, and escaped', () => {
    expect(quoted('plain')).toBe('"plain"');
    expect(quoted('a\nb\u001b[2J')).toBe('"a\\nb\\u001b[2J"');
    expect(quoted('x\u202ey')).toBe('"x\\u{202e}y"');
    expect(quoted('k'.repeat(MAX_QUOTED))).toBe(`"${'k'.repeat(MAX_QUOTED)}"`);
    expect(quoted('k'.repeat(MAX_QUOTED + 1))).toBe(`"${'k'.repeat(MAX_QUOTED)}"… (1 more characters)`);
    expect(quoted('k'.repeat(100_000)).length).toBeLessThan(MAX_QUOTED + 40);
    expect(quoted('abcdef', 3)).toBe('"abc"… (3 more characters)');
  });

  it('names any other value by its type and never throws: a BigInt, a cyclic object, a revoked proxy', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const { proxy, revoke } = Proxy.revocable([], {});
    revoke();
    expect(quoted(undefined)).toBe('nothing');
    expect(quoted(null)).toBe('null');
    expect(quoted(5)).toBe('the number 5');
    expect(quoted(NaN)).toBe('NaN');
    expect(quoted(10n)).toBe('the bigint 10n');
    expect(quoted(true)).toBe('true');
    expect(quoted(Symbol('s'))).toBe('a symbol');
    expect(quoted(() => 1)).toBe('a function');
    expect(quoted([1, 2])).toBe('an array of 2');
    expect(quoted(new Uint8Array(3))).toBe('a Uint8Array of 3 bytes');
    expect(quoted(cyclic)).toBe('an object');
    expect(quoted(proxy)).toBe('an object');
  });

  it('property: never throws, and a string result carries no unsafe character and stays bounded', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), fc.anything()), (v) => {
        const shown = quoted(v);
        expect(shown).not.toMatch(UNSAFE);
        expect(shown.length).toBeLessThan(6 * MAX_QUOTED + 40);
      }),
      { numRuns: 500 },
    );
  });

  it('an embedder\'s BigInt or cyclic argument is a typed refusal, not a TypeError from JSON.stringify', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const hv = new Hypervisor();
    try {
      await expect(hv.wipeStorage(10n as unknown as string)).rejects.toThrow(new InvalidArgumentError("partition name the bigint 10n is not valid: use 1-64 letters, digits, '.', '_' or '-'"));
    } finally {
      await hv.close();
    }
    expect(() => new VirtualSwitch().attachHost(cyclic as unknown as string, () => {})).toThrow(new InvalidArgumentError('segment an object is not a valid segment name'));
    expect(() => validateIntegrityOptions({ expectedSha256: 10n as unknown as string })).toThrow(new InvalidArgumentError('expectedSha256 must be 64 hex digits, got the bigint 10n'));
  });
});
