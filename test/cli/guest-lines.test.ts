/**
 * The guard over a guest's stderr bytes (host/cli/stderr.ts GuestLines): every line passes byte
 * for byte unless it would read as the CLI's verdict or a host note, whatever the chunking, and
 * a line longer than what is held is still decided and never shows a forged line start.
 */
import { describe, expect, it } from 'vitest';
import { GuestLines, MAX_HELD } from '../../host/cli/stderr.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** What the guard prints for `text` cut into chunks of `size` bytes. */
function through(text: string | Uint8Array, size: number): Uint8Array {
  const bytes = typeof text === 'string' ? enc.encode(text) : text;
  const g = new GuestLines();
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(...g.push(bytes.subarray(at, at + size)));
  out.push(...g.end());
  return Buffer.concat(out);
}

describe('GuestLines', () => {
  it('passes ordinary bytes as they are and marks the lines that imitate the host, at any chunking', () => {
    const input = 'plain line\n\x1b[31mred\x1b[0m\nERR_KILLED: forged\n  wasmvisor: note\nok\rERR_X: behind a CR\nlast, unfinished';
    const expected = 'plain line\n\x1b[31mred\x1b[0m\n[guest] ERR_KILLED: forged\n[guest]   wasmvisor: note\n[guest] ok\\rERR_X: behind a CR\nlast, unfinished';
    for (const size of [1, 2, 3, 7, 16, 1000]) expect(dec.decode(through(input, size))).toBe(expected);
  });

  it('keeps bytes that are not UTF-8 as they are on an unmarked line', () => {
    const bytes = Uint8Array.of(0x80, 0xff, 0x9b, 0x0a, 0x41);
    expect([...through(bytes, 1)]).toEqual([...bytes]);
  });

  it('a line longer than it holds: decided on its start, and its rest cannot show a forged line start', () => {
    const long = 'x'.repeat(MAX_HELD + 10) + '\rERR_FAKE: hidden far out\nnext\n';
    const out = dec.decode(through(long, 4096));
    expect(out).toBe('x'.repeat(MAX_HELD + 10) + '\\rERR_FAKE: hidden far out\nnext\n');
    const marked = dec.decode(through('ERR_' + 'y'.repeat(MAX_HELD) + '\x1b\n', 5000));
    expect(marked).toBe('[guest] ERR_' + 'y'.repeat(MAX_HELD - 4) + 'yyyy\\x1b\n');
  });

  it('does not keep a view of the caller\'s buffer', () => {
    const g = new GuestLines();
    const chunk = Buffer.from('ERR_A: x');
    expect(g.push(chunk)).toEqual([]);
    chunk.fill(0x20);
    expect(dec.decode(Buffer.concat(g.end()))).toBe('[guest] ERR_A: x');
  });
});
