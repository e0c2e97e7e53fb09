/**
 * A shared partition's outbox (host/worker/outbox.ts) when its run ends with messages still
 * queued: what it held of them is zeroed, the pieces a sender gathered across parts included.
 */
import { describe, expect, it } from 'vitest';
import { SharedRing } from '../../host/channel/ring.ts';
import { Outbox } from '../../host/worker/outbox.ts';

describe('an outbox dropped at the end of a run', () => {
  it('zeroes the queued output and what a sender gathered of it', () => {
    // A 64-byte ring takes one record of at most 60 bytes: a message of 40 + 100 bytes goes in
    // chunks, the first gathered from both parts, and then waits for room that never comes.
    const ring = new SharedRing(SharedRing.allocate(64));
    const outbox = new Outbox(ring, 1 << 20);
    const header = new Uint8Array(40).fill(0x11);
    const output = new Uint8Array(100).fill(0x22);
    outbox.push(1, [header, output], output);
    expect(outbox.empty).toBe(false);
    const sender = (outbox as unknown as { queue: { sender: { scratch: Uint8Array | null } }[] }).queue[0]!.sender;
    const gathered = sender.scratch!;
    expect(gathered.length).toBe(60);
    expect(gathered.subarray(0, 40).every((b) => b === 0x11) && gathered.subarray(40).every((b) => b === 0x22)).toBe(true);

    outbox.discard();
    expect(outbox.empty).toBe(true);
    expect(output.every((b) => b === 0)).toBe(true);
    expect(gathered.every((b) => b === 0)).toBe(true);
  });
});
