/**
 * Bytes an embedder hands the runtime are copied when it hands them over (the class of issue
 * #10.4): later changes to its buffer never reach a guest, and nothing the runtime zeroes is
 * the embedder's memory.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { collect, guest } from '../helpers.ts';

let hv: Hypervisor | undefined;
afterEach(async () => {
  await hv?.close();
  hv = undefined;
});

describe('embedder bytes are copied when handed over', () => {
  it('console input: a line waiting for room is the line as it was at writeLineWhenReady', async () => {
    hv = new Hypervisor();
    const p = await hv.createPartition({ name: 'echo', module: guest('echo'), devices: { console: { inputBufferBytes: 64 } } });
    const out = collect(p);
    // Fill the 64-byte input buffer before the guest runs, so the next line has to wait.
    expect(p.writeLine('a'.repeat(52))).toBe(true);
    const line = Buffer.from('original');
    const queued = p.writeLineWhenReady(line);
    line.write('CHANGED!');
    await p.start();
    expect(await queued).toBe(true);
    p.endInput();
    await p.exited;
    expect(out.stdout).toEqual([`echo: ${'a'.repeat(52)}`, 'echo: original', 'bye (2 lines)']);
    expect(line.toString()).toBe('CHANGED!');
  });

  it('WASI stdin bytes: changes between createPartition and start never reach the guest', async () => {
    hv = new Hypervisor();
    const stdin = Buffer.from('line one\nline two\n');
    const p = await hv.createPartition({
      name: 'cat',
      module: new URL('../../guests/c/cat.wasm', import.meta.url),
      devices: { console: true },
      wasi: { args: ['cat'], stdin },
    });
    const out = collect(p);
    stdin.fill(0x58); // 'X'
    await p.start();
    expect((await p.exited).code).toBe(0);
    expect(out.stdout).toEqual(['line one', 'line two']);
    expect(stdin.every((b) => b === 0x58)).toBe(true);
  });
});
