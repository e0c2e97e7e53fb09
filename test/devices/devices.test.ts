import { describe, expect, it } from 'vitest';
import { HvCall, HvClock, HvStatus } from '../../host/abi/codes.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { ClockDevice, type TimeSource } from '../../host/devices/clock.ts';
import { resolveDevices } from '../../host/devices/config.ts';
import { check } from '../../host/schema/check.ts';
import { DevicesSchema } from '../../host/schema/devices.ts';
import { ConsoleDevice } from '../../host/devices/console.ts';
import { allocateStats, readMetrics } from '../../host/channel/stats.ts';
import { EventKind, InputKind } from '../../host/channel/protocol.ts';

const enc = new TextEncoder();

describe('console device', () => {
  it('rate-limits lines: over the bucket they are dropped, counted, and the write says RATE_LIMITED', () => {
    let t = 0;
    const stats = allocateStats();
    const events = new SharedRing(SharedRing.allocate(4096));
    const config = resolveDevices({ console: { linesPerSecond: 10, burstLines: 3 } }).console!;
    const dev = new ConsoleDevice(config, events, new SharedRing(SharedRing.allocate(64)), new Float64Array(stats), () => t);
    const write = dev.handlers.get(HvCall.CONSOLE_WRITE)!;
    const five = enc.encode('1\n2\n3\n4\n5\n');
    expect(write(five, five.length, new Uint8Array(0), 0)).toBe(-HvStatus.RATE_LIMITED);
    expect(readMetrics(stats).console).toMatchObject({ linesOut: 3, linesDropped: 2 });
    t += 100; // one line's worth of refill at 10 lines/s
    const one = enc.encode('6\n');
    expect(write(one, one.length, new Uint8Array(0), 0)).toBe(2);
    expect(write(one, one.length, new Uint8Array(0), 0)).toBe(-HvStatus.RATE_LIMITED);
    dev.close();
    const lines: string[] = [];
    const drops: number[][] = [];
    for (let r = events.tryRead(); r; r = events.tryRead()) {
      if (r.kind === EventKind.DROPPED) {
        // u8 stream, then f64 refused bytes, dropped lines, truncated bytes.
        const v = new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.length);
        drops.push([r.bytes[0]!, v.getFloat64(4, true), v.getFloat64(12, true), v.getFloat64(20, true)]);
      } else lines.push(new TextDecoder().decode(r.bytes));
    }
    expect(lines).toEqual(['1\n', '2\n', '3\n', '6\n']);
    // Dropped lines are reported before the next accepted write, and the rest when the console closes.
    expect(drops).toEqual([
      [EventKind.STDOUT, 0, 2, 0],
      [EventKind.STDOUT, 0, 1, 0],
    ]);
    expect(readMetrics(stats).console.linesDropped).toBe(3);
  });

  it('zeroes its last output line and its unread input on close (what the guest was sent does not outlive the run)', () => {
    const stats = allocateStats();
    const events = new SharedRing(SharedRing.allocate(4096));
    const input = new SharedRing(SharedRing.allocate(4096));
    const dev = new ConsoleDevice(resolveDevices({ console: true }).console!, events, input, new Float64Array(stats));
    const out = enc.encode('the output secret\nand a tail');
    dev.handlers.get(HvCall.CONSOLE_WRITE)!(out, out.length, new Uint8Array(0), 0);
    // A line of input read in part: the rest waits in the device's buffer.
    expect(input.tryWrite(InputKind.LINE, enc.encode('hunter2 is the password'))).toBe(true);
    const read = new Uint8Array(7);
    expect(dev.handlers.get(HvCall.CONSOLE_STREAM_READ)!(new Uint8Array(0), 0, read, read.length)).toBe(7);
    const held = dev as unknown as { stdoutLines: { line: Uint8Array }; input: { buf: Uint8Array } };
    const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
    // The tail over the first line's bytes: the rest of that line is still there.
    expect(text(held.stdoutLines.line)).toContain('and a tail secret');
    expect(text(held.input.buf)).toContain(' is the password');
    dev.close();
    expect(held.stdoutLines.line.every((b) => b === 0)).toBe(true);
    expect(held.input.buf.every((b) => b === 0)).toBe(true);
    // Closing still delivered the unterminated tail first.
    const lines: string[] = [];
    for (let r = events.tryRead(); r !== null; r = events.tryRead()) lines.push(text(r.bytes));
    expect(lines).toEqual(['the output secret\n', 'and a tail']);
  });

  it('reads the last input when it arrives, and the input ends, between its look for a record and its look at the end', () => {
    const stats = allocateStats();
    const input = new SharedRing(SharedRing.allocate(4096));
    const dev = new ConsoleDevice(resolveDevices({ console: true }).console!, new SharedRing(SharedRing.allocate(4096)), input, new Float64Array(stats));
    // The root's side of the same ring writes its last bytes and closes right after the device found it empty.
    const root = new SharedRing(input.sab);
    const peek = input.peekLength.bind(input);
    let raced = false;
    input.peekLength = () => {
      const n = peek();
      if (n < 0 && !raced) {
        raced = true;
        expect(root.tryWrite(InputKind.BYTES, enc.encode('no newline'))).toBe(true);
        root.close();
      }
      return n;
    };
    const out = new Uint8Array(64);
    const read = dev.handlers.get(HvCall.CONSOLE_READ)!;
    const n = read(new Uint8Array(0), 0, out, out.length);
    expect(raced).toBe(true);
    expect(n).toBe(10);
    expect(new TextDecoder().decode(out.subarray(0, n))).toBe('no newline');
    expect(read(new Uint8Array(0), 0, out, out.length)).toBe(-HvStatus.END_OF_STREAM);
  });

  it('delivers an unterminated last line on close', () => {
    const stats = allocateStats();
    const events = new SharedRing(SharedRing.allocate(4096));
    const dev = new ConsoleDevice(resolveDevices({ console: true }).console!, events, new SharedRing(SharedRing.allocate(64)), new Float64Array(stats));
    const tail = enc.encode('no newline');
    dev.handlers.get(HvCall.CONSOLE_WRITE)!(tail, tail.length, new Uint8Array(0), 0);
    expect(events.tryRead()).toBeNull();
    dev.close();
    expect(new TextDecoder().decode(events.tryRead()!.bytes)).toBe('no newline');
  });
});

describe('clock device', () => {
  const fake = (mono: bigint, wall: bigint): TimeSource => ({ monotonicNs: () => mono, wallNs: () => wall });

  it('rounds down to the resolution, and the monotonic clock starts at the partition', () => {
    let mono = 5_000_000_000n;
    const src: TimeSource = { monotonicNs: () => mono, wallNs: () => 1_700_000_000_123_456_789n };
    const clock = new ClockDevice(resolveDevices({ clock: { resolutionMs: 10 } }).clock!, src);
    expect(clock.read(HvClock.MONOTONIC)).toBe(0n);
    mono += 25_999_999n;
    expect(clock.read(HvClock.MONOTONIC)).toBe(20_000_000n);
    expect(clock.read(HvClock.WALL)).toBe(1_700_000_000_120_000_000n);
    expect(clock.read(7)).toBeNull();
  });

  it('defaults to 1 ms resolution and supports 1 µs', () => {
    const ms = new ClockDevice(resolveDevices({ clock: true }).clock!, fake(0n, 1_234_567_891n));
    expect(ms.read(HvClock.WALL)).toBe(1_234_000_000n);
    const us = new ClockDevice(resolveDevices({ clock: { resolutionMs: 0.001 } }).clock!, fake(0n, 1_234_567_891n));
    expect(us.read(HvClock.WALL)).toBe(1_234_567_000n);
  });

  it('deterministic mode steps from a fixed start', () => {
    const clock = new ClockDevice(resolveDevices({ clock: { deterministic: { startMs: 5, stepMs: 0.5 } } }).clock!);
    expect([clock.read(HvClock.WALL), clock.read(HvClock.WALL), clock.read(HvClock.MONOTONIC)]).toEqual([5_000_000n, 5_000_000n, 0n]);
    // 5.5 ms rounds down to 5 ms at the default 1 ms resolution; the third reading is 6 ms.
    expect(clock.read(HvClock.WALL)).toBe(6_000_000n);
  });
});

describe('device grants', () => {
  it('grants nothing by default', () => {
    expect(resolveDevices(undefined)).toEqual({ console: null, clock: null, entropy: null, block: null, net: null, attestation: null });
    expect(resolveDevices({ console: false })).toEqual({ console: null, clock: null, entropy: null, block: null, net: null, attestation: null });
  });
  it('refuses unknown devices and out-of-range settings with ERR_INVALID_ARGUMENT naming the path', () => {
    const devices = (spec: unknown) => resolveDevices(check(DevicesSchema, spec, 'devices'));
    expect(() => devices({ gpu: true })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('devices: gpu: unknown key') }));
    // net needs a segment: `true` is not a grant of it.
    expect(() => devices({ net: true })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => devices({ net: { segment: 'no spaces' } })).toThrow(/net\.segment/);
    expect(() => devices({ net: { segment: 'blue', mtu: 63 } })).toThrow(/net\.mtu/);
    expect(() => devices({ net: { segment: 'blue', mtu: 65529 } })).toThrow(/net\.mtu/);
    expect(devices({ net: { segment: 'blue', mtu: 65528 } }).net).toMatchObject({ mtu: 65528, host: false, rxQueueBytes: 131072 });
    expect(devices({ net: { segment: 'blue' } }).net).toMatchObject({ mtu: 1500, rxQueueBytes: 65536 });
    expect(() => devices({ console: { maxLineBytes: 15 } })).toThrow(/maxLineBytes/);
    expect(() => devices({ console: { maxLineBytes: 65537 } })).toThrow(/maxLineBytes/);
    expect(devices({ console: { maxLineBytes: 65536 } }).console).toMatchObject({ maxLineBytes: 65536 });
    expect(() => devices({ console: { linesPerSec: 5 } })).toThrow('devices: console.linesPerSec: unknown key; did you mean linesPerSecond?');
    expect(() => devices({ clock: { resolutionMs: 0.0001 } })).toThrow(/resolutionMs/);
    expect(() => devices({ entropy: { seed: {} } })).toThrow(/seed/);
  });
});
