/**
 * The channel sizes a partition gets (host/limits/sizes.ts): a power of two of at least 64 bytes
 * per ring, the input ring always large enough for the longest console line the root accepts,
 * and the dedicated/shared, command/reactor, console/no-console cases each at their edges.
 */
import { describe, expect, it } from 'vitest';
import {
  MAX_INPUT_LINE_BYTES,
  MIN_RING_BYTES,
  RING_RECORD_HEADER,
  channelBytes,
  channelSizes,
  ringCapacity,
  type ChannelLimits,
} from '../../host/limits/sizes.ts';

const base: ChannelLimits = { kind: 'reactor', maxInputBytes: 0, maxOutputBytes: 0, maxLineBytes: null, inputBufferBytes: null, placement: 'dedicated' };

describe('ringCapacity', () => {
  it('is the smallest power of two of at least 64 that holds n, at each edge and one past it', () => {
    expect(ringCapacity(0)).toBe(64);
    expect(ringCapacity(64)).toBe(64);
    expect(ringCapacity(65)).toBe(128);
    expect(ringCapacity(4096)).toBe(4096);
    expect(ringCapacity(4097)).toBe(8192);
    expect(ringCapacity(1 << 26)).toBe(1 << 26);
  });
});

describe('channelSizes', () => {
  it('a dedicated partition: 64 KiB of events, 256 KiB with a console (its byte streams move in quarter rings)', () => {
    expect(channelSizes(base).events).toBe(65536);
    expect(channelSizes({ ...base, maxLineBytes: 16 }).events).toBe(4 * 65536);
  });

  it('a dedicated reactor: a call ring for its input plus framing, from 4 KiB up to 64 KiB', () => {
    expect(channelSizes({ ...base, maxInputBytes: 0 }).calls).toBe(MIN_RING_BYTES);
    expect(channelSizes({ ...base, maxInputBytes: MIN_RING_BYTES - 1024 }).calls).toBe(MIN_RING_BYTES);
    expect(channelSizes({ ...base, maxInputBytes: MIN_RING_BYTES - 1023 }).calls).toBe(2 * MIN_RING_BYTES);
    expect(channelSizes({ ...base, maxInputBytes: 65536 - 1024 }).calls).toBe(65536);
    // Larger inputs travel in chunks: the ring is a throughput choice, never the bound.
    expect(channelSizes({ ...base, maxInputBytes: 1 << 26 }).calls).toBe(65536);
  });

  it('a command (no calls) gets the smallest call ring, dedicated or shared', () => {
    expect(channelSizes({ ...base, kind: 'command', maxInputBytes: 1 << 20 }).calls).toBe(64);
    expect(channelSizes({ ...base, kind: 'command', placement: 'shared' }).calls).toBe(64);
  });

  it('a shared partition (thousands per process) gets the minimum event and call rings, whatever its limits', () => {
    const s = channelSizes({ ...base, placement: 'shared', maxInputBytes: 1 << 20, maxLineBytes: 65536 });
    expect(s.events).toBe(MIN_RING_BYTES);
    expect(s.calls).toBe(MIN_RING_BYTES);
  });

  it('a shared reactor’s rings follow its largest call: 1/256 of it, from 4 KiB up to 64 KiB; a shared command’s events stay at 4 KiB', () => {
    const big = { ...base, placement: 'shared' as const, maxInputBytes: 1 << 24, maxOutputBytes: 1 << 24 };
    expect(channelSizes(big)).toMatchObject({ events: 65536, calls: 65536 });
    expect(channelSizes({ ...big, maxInputBytes: 2 << 20, maxOutputBytes: 4 << 20 })).toMatchObject({ events: 16384, calls: 8192 });
    expect(channelSizes({ ...big, kind: 'command' })).toMatchObject({ events: MIN_RING_BYTES, calls: 64 });
  });

  it('a partition process’s call ring takes up to 1 MiB of a large input; a dedicated worker’s stops at 64 KiB', () => {
    expect(channelSizes({ ...base, placement: 'process', maxInputBytes: 1 << 22 }).calls).toBe(1 << 20);
    expect(channelSizes({ ...base, placement: 'process', maxInputBytes: 100_000 }).calls).toBe(131072);
    expect(channelSizes({ ...base, maxInputBytes: 1 << 22 }).calls).toBe(65536);
  });

  it('the input ring holds the longest line the root accepts, or the input buffer when larger; 64 bytes without a console', () => {
    expect(channelSizes(base).input).toBe(64);
    const smallest = channelSizes({ ...base, inputBufferBytes: 1 }).input;
    expect(smallest).toBeGreaterThanOrEqual(MAX_INPUT_LINE_BYTES + RING_RECORD_HEADER);
    expect(smallest).toBe(ringCapacity(MAX_INPUT_LINE_BYTES + RING_RECORD_HEADER));
    expect(channelSizes({ ...base, inputBufferBytes: 1 << 20 }).input).toBe(1 << 20);
    expect(channelSizes({ ...base, inputBufferBytes: (1 << 20) + 1 }).input).toBe(1 << 21);
  });

  it('channelBytes counts every ring and its control block', () => {
    expect(channelBytes({ events: 4096, calls: 64, input: 128 })).toBe(4096 + 64 + 128 + 3 * 32);
  });
});
