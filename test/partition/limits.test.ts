/**
 * One source of truth for size limits (issue #10, items 1, 6 and 11): every size the validator
 * accepts works through every layer (spec → rings → worker → guest and back), at its edge, and
 * one past it is refused with a typed error before anything runs.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type Partition } from '../../host/index.ts';
import { MAX_CALL_BYTES, MAX_LINE_BYTES, MIN_LINE_BYTES, SHARED_RING_FILLS } from '../../host/limits/sizes.ts';
import { PLACEMENT, guest, hypervisor } from '../helpers.ts';

const MiB = 1 << 20;
let hv: Hypervisor | null = null;
afterEach(async () => {
  await hv?.close();
  hv = null;
});

function args(...words: number[]): Uint8Array {
  const b = new Uint8Array(words.length * 4);
  const v = new DataView(b.buffer);
  words.forEach((w, i) => v.setUint32(i * 4, w, true));
  return b;
}

/** FNV-1a over bytes, as guests/limits.ts computes it. */
function fnv(bytes: Uint8Array): number {
  let h = 2166136261;
  for (const b of bytes) h = Math.imul(h ^ b, 16777619) >>> 0;
  return h;
}

function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = 97 + (i % 26);
  return b;
}

async function limitsReactor(spec: Record<string, unknown> = {}, name = 'limits'): Promise<Partition> {
  hv ??= hypervisor();
  const p = await hv.createPartition({ name, module: guest('limits'), kind: 'reactor', restart: 'never', ...spec });
  await p.start();
  return p;
}

describe('call payloads past 16 MiB (a ring record holds 2^24 - 1 bytes)', () => {
  it('a 17 MiB input reaches the guest whole, queued behind another call and sent directly', async () => {
    const p = await limitsReactor({ limits: { maxInputBytes: 17 * MiB + 1, memoryPages: 64 } });
    const input = new Uint8Array(17 * MiB + 1).map((_, i) => (i * 31) & 0xff);
    const expected = [input.length, fnv(input)];
    // Two at once: the second waits in the queue while the first is chunked through the ring.
    const [a, b] = await Promise.all([p.call('digest', input), p.call('digest', input)]);
    for (const out of [a, b]) {
      const v = new DataView(out.buffer, out.byteOffset);
      expect([v.getUint32(0, true), v.getUint32(4, true)]).toEqual(expected);
    }
    // The partition still serves calls: the in-flight slot was cleared each time.
    expect((await p.call('digest', new Uint8Array(3))).length).toBe(8);
  });

  it('at the record edge (16 MiB - 1 in and out) a call crosses within the default call budget, in a bounded number of ring hand-offs', async () => {
    // Regression: a shared partition's rings were 4 KiB whatever its limits, so a 16 MiB - 1
    // input took 4,096 root <-> worker hand-offs (two thread wake-ups each): seconds on a loaded
    // machine, past the default call budget (5 s) that these calls run under.
    const edge = (1 << 24) - 1;
    const p = await limitsReactor({ limits: { maxInputBytes: edge, maxOutputBytes: edge, memoryPages: 16 } });
    const input = pattern(edge);
    const waitsBefore = p.metrics().sched.waits;
    const d = await p.call('digest', input);
    const v = new DataView(d.buffer, d.byteOffset);
    expect([v.getUint32(0, true), v.getUint32(4, true)]).toEqual([edge, fnv(input)]);
    const out = await p.call('fill', args(edge, 65536));
    expect(out.length).toBe(edge);
    expect(Buffer.compare(out.subarray(edge - 26), pattern(edge).subarray(edge - 26))).toBe(0);
    // Each wait of a shared partition for the next chunk (or for room for its result) is one
    // hand-off; its rings hold 1/SHARED_RING_FILLS of the largest message, so each direction
    // takes about that many (4 KiB rings took over 6,000 for the two calls). A partition process
    // runs on the child's scheduler, so it counts its waits too (its call ring is up to 1 MiB,
    // its event ring 64 KiB: ~270 for these two calls). A dedicated worker blocks on its ring
    // instead and counts none.
    const waits = p.metrics().sched.waits - waitsBefore;
    if (PLACEMENT === 'shared' || PLACEMENT === 'process') expect(waits).toBeLessThan(4 * SHARED_RING_FILLS);
    else expect(waits).toBe(0);
  });

  it('a guest output over 16 MiB arrives whole, up to maxOutputBytes; one byte more is TOO_LARGE for the guest', async () => {
    const max = 17 * MiB;
    const p = await limitsReactor({ limits: { maxOutputBytes: max } });
    const out = await p.call('fill', args(max, 65536));
    expect(out.length).toBe(max);
    expect(Buffer.compare(out.subarray(max - 26), pattern(max).subarray(max - 26))).toBe(0);
    await expect(p.call('fill', args(max + 1, 65536))).rejects.toMatchObject({ code: 'ERR_GUEST_CALL', status: 1 });
    expect((await p.call('fill', args(5, 5))).length).toBe(5);
  });

  it('the largest accepted limit (64 MiB) is accepted, one byte more is refused with ERR_INVALID_ARGUMENT before loading', async () => {
    hv = hypervisor();
    await expect(hv.createPartition({ name: 'x', module: guest('limits'), kind: 'reactor', limits: { maxInputBytes: MAX_CALL_BYTES + 1 } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringContaining('limits.maxInputBytes'),
    });
    await expect(hv.createPartition({ name: 'y', module: guest('limits'), kind: 'reactor', limits: { maxOutputBytes: MAX_CALL_BYTES + 1 } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
    const p = await hv.createPartition({ name: 'z', module: guest('limits'), kind: 'reactor', limits: { maxInputBytes: MAX_CALL_BYTES, maxOutputBytes: MAX_CALL_BYTES } });
    await p.start();
    await expect(p.call('digest', new Uint8Array(MAX_CALL_BYTES + 1))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('maxInputBytes') });
  });
});

describe('OUTPUT_WRITE appends into one growing buffer', () => {
  it('a guest can use its whole output allowance in one-byte writes (1 MiB, the default limit)', async () => {
    const p = await limitsReactor();
    const out = await p.call('fill', args(MiB, 1), { timeoutMs: 60_000 });
    expect(out.length).toBe(MiB);
    expect(Buffer.compare(out, pattern(MiB))).toBe(0);
    // One byte more is the guest's TOO_LARGE, not a worker out of heap.
    await expect(p.call('fill', args(MiB + 1, 4096))).rejects.toMatchObject({ code: 'ERR_GUEST_CALL', status: 1 });
  }, 90_000);
});

describe('ring sizes follow the limits they carry', () => {
  it('maxLineBytes 65536 with maxOutputBytes 0: a line of exactly 65536 bytes gets through whole', async () => {
    const p = await limitsReactor({ devices: { console: { maxLineBytes: MAX_LINE_BYTES } }, limits: { maxOutputBytes: 0, maxInputBytes: 16 } });
    const lines: string[] = [];
    p.on('console', (line) => lines.push(line));
    await p.call('print', args(MAX_LINE_BYTES));
    await p.call('print', args(MAX_LINE_BYTES + 1));
    await new Promise((r) => setTimeout(r, 50));
    expect(lines.map((l) => l.length)).toEqual([MAX_LINE_BYTES, MAX_LINE_BYTES]);
    expect(lines[0]).toBe(new TextDecoder().decode(pattern(MAX_LINE_BYTES)));
    expect(p.metrics().console.bytesTruncated).toBe(1);
  });

  it('console input lines up to 65536 bytes are taken even with the smallest input buffer; one more byte is refused', async () => {
    hv = hypervisor();
    const p = await hv.createPartition({ name: 'echo', module: guest('echo'), devices: { console: { inputBufferBytes: 64 } } });
    expect(p.writeLine('x'.repeat(65536))).toBe(true);
    expect(() => p.writeLine('x'.repeat(65537))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    await p.stop();
  });
});

describe('the accepted configuration space works (property)', () => {
  it('any accepted reactor spec starts, prints a line of its maxLineBytes, takes an input of its maxInputBytes and returns maxOutputBytes', async () => {
    hv = hypervisor({ memoryBudgetBytes: 64 * 1024 * MiB });
    const size = fc.oneof(
      fc.constantFrom(0, 1, 4095, 4096, 4097, 65532, 65536, 65537, (1 << 24) - 1, 1 << 24, MAX_CALL_BYTES),
      fc.integer({ min: 0, max: 200_000 }),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          maxInputBytes: size,
          maxOutputBytes: size,
          maxLineBytes: fc.oneof(fc.constantFrom(MIN_LINE_BYTES, 4096, 65532, MAX_LINE_BYTES), fc.integer({ min: MIN_LINE_BYTES, max: MAX_LINE_BYTES })),
          inputBufferBytes: fc.oneof(fc.constantFrom(64, 65536, 1 << 24), fc.integer({ min: 64, max: 1 << 20 })),
        }),
        async (l) => {
          const p = await hv!.createPartition({
            name: `prop-${n++}`,
            module: guest('limits'),
            kind: 'reactor',
            restart: 'never',
            devices: { console: { maxLineBytes: l.maxLineBytes, inputBufferBytes: l.inputBufferBytes } },
            limits: { maxInputBytes: l.maxInputBytes, maxOutputBytes: l.maxOutputBytes, memoryPages: 16 },
          });
          try {
            const lines: number[] = [];
            p.on('console', (line) => lines.push(line.length));
            await p.start();
            expect(p.state).toBe('running');
            // Each call's input (u32 args) must fit maxInputBytes; the digest call uses exactly the maximum.
            if (l.maxInputBytes >= 4) {
              await p.call('print', args(l.maxLineBytes));
            }
            const input = pattern(l.maxInputBytes);
            if (l.maxOutputBytes >= 8) {
              const d = await p.call('digest', input);
              const v = new DataView(d.buffer, d.byteOffset);
              expect([v.getUint32(0, true), v.getUint32(4, true)]).toEqual([input.length, fnv(input)]);
            } else {
              // The guest read it all, then found no room for its 8-byte answer: its own status 4.
              await expect(p.call('digest', input)).rejects.toMatchObject({ code: 'ERR_GUEST_CALL', status: 4 });
            }
            if (l.maxInputBytes >= 8) expect((await p.call('fill', args(l.maxOutputBytes, 65536))).length).toBe(l.maxOutputBytes);
            await new Promise((r) => setTimeout(r, 10));
            if (l.maxInputBytes >= 4) expect(lines).toEqual([l.maxLineBytes]);
            expect(p.state).toBe('running');
          } finally {
            await p.destroy();
          }
        },
      ),
      { numRuns: 12, seed: 20240515 },
    );
  }, 120_000);
});
