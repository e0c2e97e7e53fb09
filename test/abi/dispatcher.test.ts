import { beforeEach, describe, expect, it } from 'vitest';
import { HV_ABI_VERSION, HV_MAX_TRANSFER, HvCall, HvStatus } from '../../host/abi/codes.ts';
import { Dispatcher, GuestAbort, GuestExit } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { ClockDevice } from '../../host/devices/clock.ts';
import { resolveDevices } from '../../host/devices/config.ts';
import { ConsoleDevice } from '../../host/devices/console.ts';
import type { Device } from '../../host/devices/device.ts';
import { EntropyDevice } from '../../host/devices/entropy.ts';
import { EventKind, InputKind, STDIO_SLOTS, StdioSlot } from '../../host/channel/protocol.ts';
import { allocateStats, readMetrics } from '../../host/channel/stats.ts';
import type { ViolationRecord } from '../../host/channel/protocol.ts';

const PAGE = 65536;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A partition's boundary, in-thread: real memory, real devices, real dispatcher. */
function boundary(
  grant: { console?: boolean; clock?: boolean; entropy?: boolean } = { console: true, clock: true, entropy: true },
  args: string[] = [],
  options: { eventRingBytes?: number; consoleRateLimit?: object } = {},
) {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
  const gm = new GuestMemory();
  gm.bind(memory);
  const statsSab = allocateStats();
  const stats = new Float64Array(statsSab);
  const events = new SharedRing(SharedRing.allocate(options.eventRingBytes ?? 1 << 12));
  const input = new SharedRing(SharedRing.allocate(1 << 10));
  const stdio = new Int32Array(new SharedArrayBuffer(STDIO_SLOTS * 4));
  const resolved = resolveDevices({
    ...(grant.console ? { console: { maxLineBytes: 32, linesPerSecond: 1000, ...(options.consoleRateLimit ? { rateLimit: options.consoleRateLimit } : {}) } } : {}),
    ...(grant.clock ? { clock: { resolutionMs: 1, deterministic: { startMs: 1000, stepMs: 2 } } } : {}),
    ...(grant.entropy ? { entropy: { seed: 'test' } } : {}),
  });
  const devices: Device[] = [];
  const consoleDevice = resolved.console ? new ConsoleDevice(resolved.console, events, input, stats, () => 0, undefined, stdio) : null;
  if (consoleDevice) devices.push(consoleDevice);
  if (resolved.clock) devices.push(new ClockDevice(resolved.clock));
  if (resolved.entropy) devices.push(new EntropyDevice(resolved.entropy, stats));
  const violations: ViolationRecord[] = [];
  // A clock that stands still: the violation rate limit is tested exactly, however slow the machine.
  const d = new Dispatcher({ memory: gm, devices, args, stats, onViolation: (v) => violations.push(v), violationsPerSecond: 100, now: () => 0 });
  const bytes = () => new Uint8Array(memory.buffer);
  const put = (at: number, data: Uint8Array | number[]) => bytes().set(data, at);
  const u32 = (at: number, v: number) => new DataView(memory.buffer).setUint32(at, v, true);
  const call = (code: number, inPtr = 0, inLen = 0, outPtr = 0, outCap = 0) => d.hypercall(code, inPtr | 0, inLen | 0, outPtr | 0, outCap | 0);
  return { memory, d, bytes, put, u32, call, events, input, stdio, consoleDevice, violations, metrics: () => readMetrics(statsSab) };
}

type B = ReturnType<typeof boundary>;

/** Asserts guest memory is unchanged by `fn`. */
function untouched(b: B, fn: () => void): void {
  const before = b.bytes().slice();
  fn();
  expect(Buffer.compare(b.bytes(), before)).toBe(0);
}

/** Hostile windows every call must refuse without touching memory. */
function hostile(b: B, code: number): void {
  const size = b.bytes().length;
  const cases: [number, number, number, number, number][] = [
    [0, 0, size, 1, HvStatus.INVALID_ADDRESS], // out just past the end
    [0, 0, size - 7, 8, HvStatus.INVALID_ADDRESS], // out straddles the end
    [0, 0, 0xfffffff0, 0x20, HvStatus.INVALID_ADDRESS], // out wraps in u32
    [size, 1, 0, 0, HvStatus.INVALID_ADDRESS], // in just past the end
    [0xfffffff0, 0x20, 0, 0, HvStatus.INVALID_ADDRESS], // in wraps
    [0, -1, 0, 0, HvStatus.TOO_LARGE], // in length 0xFFFFFFFF
    [0, 0, 0, -1, HvStatus.TOO_LARGE], // out length 0xFFFFFFFF
    [0, HV_MAX_TRANSFER + 1, 0, 0, HvStatus.TOO_LARGE],
  ];
  for (const [ip, il, op, oc, status] of cases) {
    untouched(b, () => expect(b.call(code, ip, il, op, oc), `call 0x${code.toString(16)} in=(${ip},${il}) out=(${op},${oc})`).toBe(-status));
  }
}

let b: B;
beforeEach(() => {
  b = boundary();
});

describe('hypercall ABI v1 through the dispatcher', () => {
  describe('VERSION', () => {
    it('returns the ABI version and zeroes an output window it was given', () => {
      expect(b.call(HvCall.VERSION)).toBe(HV_ABI_VERSION);
      b.put(100, new Uint8Array(8).fill(0xaa));
      expect(b.call(HvCall.VERSION, 0, 0, 100, 8)).toBe(HV_ABI_VERSION);
      expect([...b.bytes().subarray(100, 108)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    });
    it('accepts an output window ending exactly at the end of memory', () => {
      expect(b.call(HvCall.VERSION, 0, 0, PAGE - 16, 16)).toBe(HV_ABI_VERSION);
    });
    it('refuses hostile windows', () => hostile(b, HvCall.VERSION));
  });

  describe('DEVICE_LIST', () => {
    it('lists the granted devices as 16-byte records', () => {
      expect(b.call(HvCall.DEVICE_LIST, 0, 0, 0, 64)).toBe(48);
      const v = new DataView(b.memory.buffer);
      const ids = [0, 16, 32].map((at) => v.getUint32(at, true));
      expect(ids).toEqual([1, 2, 3]);
      expect(v.getUint32(8, true)).toBe(32); // console maxLineBytes
      expect(v.getUint32(16 + 8, true)).toBe(1_000_000); // clock resolution ns
      expect(v.getUint32(16 + 12, true)).toBe(1); // deterministic
      expect([...b.bytes().subarray(48, 64)].every((x) => x === 0)).toBe(true);
    });
    it('refuses a window too small for all records, writing nothing', () => {
      untouched(b, () => expect(b.call(HvCall.DEVICE_LIST, 0, 0, 0, 47)).toBe(-HvStatus.BUFFER_TOO_SMALL));
    });
    it('lists nothing that was not granted', () => {
      const none = boundary({});
      expect(none.call(HvCall.DEVICE_LIST, 0, 0, 0, 64)).toBe(0);
    });
    it('works at the edge of memory', () => {
      expect(b.call(HvCall.DEVICE_LIST, 0, 0, PAGE - 48, 48)).toBe(48);
    });
    it('refuses hostile windows', () => hostile(b, HvCall.DEVICE_LIST));
  });

  describe('EXIT and ABORT', () => {
    it('EXIT unwinds with the code, and every later call unwinds again', () => {
      b.u32(0, -5 >>> 0);
      expect(() => b.call(HvCall.EXIT, 0, 4)).toThrow(GuestExit);
      expect(b.d.ending).toEqual(new GuestExit(-5));
      expect(() => b.call(HvCall.VERSION)).toThrow(GuestExit);
    });
    it('EXIT needs exactly 4 bytes of input', () => {
      expect(b.call(HvCall.EXIT, 0, 3)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(b.call(HvCall.EXIT, 0, 8)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(b.d.ending).toBeNull();
    });
    it('EXIT input at the edge of memory', () => {
      expect(() => b.call(HvCall.EXIT, PAGE - 4, 4)).toThrow(GuestExit);
    });
    it('ABORT unwinds with the message', () => {
      b.put(10, enc.encode('boom at x.ts:1:2'));
      try {
        b.call(HvCall.ABORT, 10, 16);
        expect.unreachable();
      } catch (e) {
        expect(e).toEqual(new GuestAbort('boom at x.ts:1:2'));
      }
    });
    it('EXIT refuses hostile windows without ending the guest', () => {
      hostile(b, HvCall.EXIT);
      expect(b.d.ending).toBeNull();
    });
    it('ABORT never returns: a window the host cannot read is reported, and the guest ends all the same', () => {
      const size = b.bytes().length;
      const cases: [number, number, number, number, string, RegExp][] = [
        [size, 1, 0, 0, 'HV_STATUS_INVALID_ADDRESS', /^\(no message: its in buffer \[0x10000, \+1\) lies outside guest memory of 65536 bytes\)$/],
        [0xfffffff0, 0x20, 0, 0, 'HV_STATUS_INVALID_ADDRESS', /in buffer \[0xfffffff0, \+32\) lies outside/],
        [0, HV_MAX_TRANSFER + 1, 0, 0, 'HV_STATUS_TOO_LARGE', /in length 65537 exceeds the per-call maximum of 65536 bytes/],
        [0, 4, size, 1, 'HV_STATUS_INVALID_ADDRESS', /out buffer \[0x10000, \+1\) lies outside/],
      ];
      for (const [ip, il, op, oc, status, message] of cases) {
        const a = boundary();
        untouched(a, () => expect(() => a.call(HvCall.ABORT, ip, il, op, oc)).toThrow(GuestAbort));
        expect((a.d.ending as GuestAbort).message).toMatch(message);
        expect(a.violations).toEqual([expect.objectContaining({ call: 'ABORT', status })]);
        expect(a.metrics().faults).toBe(1);
        expect(() => a.call(HvCall.VERSION)).toThrow(a.d.ending as GuestAbort); // sticky
      }
    });
  });

  describe('ARGS_SIZE and ARGS_GET', () => {
    it('return the NUL-terminated UTF-8 argument block', () => {
      const a = boundary({}, ['a', 'bé', '']);
      expect(a.call(HvCall.ARGS_SIZE)).toBe(7); // 'a' 1+1, 'bé' 3+1, '' 0+1
      expect(a.call(HvCall.ARGS_GET, 0, 0, 200, 7)).toBe(7);
      expect(dec.decode(a.bytes().subarray(200, 207))).toBe('a\0bé\0\0');
    });
    it('refuse a window one byte too small', () => {
      const a = boundary({}, ['abc']);
      untouched(a, () => expect(a.call(HvCall.ARGS_GET, 0, 0, 0, 3)).toBe(-HvStatus.BUFFER_TOO_SMALL));
      expect(a.call(HvCall.ARGS_GET, 0, 0, PAGE - 4, 4)).toBe(4);
    });
    it('refuse hostile windows', () => {
      hostile(b, HvCall.ARGS_SIZE);
      hostile(b, HvCall.ARGS_GET);
    });
  });

  describe('CONSOLE_WRITE / CONSOLE_WRITE_ERR', () => {
    it('cut output into lines on the event ring, per stream', () => {
      b.put(0, enc.encode('hi\nthere\n'));
      expect(b.call(HvCall.CONSOLE_WRITE, 0, 9)).toBe(9);
      b.put(0, enc.encode('oops\n'));
      expect(b.call(HvCall.CONSOLE_WRITE_ERR, 0, 5)).toBe(5);
      const recs = [b.events.tryRead(), b.events.tryRead(), b.events.tryRead()];
      // Each line reaches the output stream with its newline: the root sees bytes.
      expect(recs.map((r) => [r!.kind, dec.decode(r!.bytes)])).toEqual([[1, 'hi\n'], [1, 'there\n'], [2, 'oops\n']]);
      expect(b.metrics().console.linesOut).toBe(3);
    });
    it('keep the first maxLineBytes of a long line and count the rest', () => {
      b.put(0, enc.encode('x'.repeat(40) + '\n'));
      b.call(HvCall.CONSOLE_WRITE, 0, 41);
      expect(b.events.tryRead()!.bytes.length).toBe(32 + 1);
      expect(b.metrics().console.bytesTruncated).toBe(8);
    });
    it('accept input ending at the edge of memory', () => {
      b.put(PAGE - 3, enc.encode('ab\n'));
      expect(b.call(HvCall.CONSOLE_WRITE, PAGE - 3, 3)).toBe(3);
    });
    it('refuse hostile windows and emit nothing', () => {
      hostile(b, HvCall.CONSOLE_WRITE);
      hostile(b, HvCall.CONSOLE_WRITE_ERR);
      expect(b.events.tryRead()).toBeNull();
    });
  });

  describe('CONSOLE_READ', () => {
    it('returns a queued line and zeroes the rest of the window', () => {
      b.input.tryWrite(InputKind.LINE, enc.encode('hello'));
      b.put(300, new Uint8Array(16).fill(0xaa));
      expect(b.call(HvCall.CONSOLE_READ, 0, 0, 300, 16)).toBe(5);
      expect(dec.decode(b.bytes().subarray(300, 305))).toBe('hello');
      expect([...b.bytes().subarray(305, 316)].every((x) => x === 0)).toBe(true);
    });
    it('keeps a line that does not fit, so the guest can retry', () => {
      b.input.tryWrite(InputKind.LINE, enc.encode('hello'));
      untouched(b, () => expect(b.call(HvCall.CONSOLE_READ, 0, 0, 0, 4)).toBe(-HvStatus.BUFFER_TOO_SMALL));
      expect(b.call(HvCall.CONSOLE_READ, 0, 0, PAGE - 5, 5)).toBe(5);
    });
    it('non-blocking: WOULD_BLOCK when empty; END_OF_STREAM after close', () => {
      b.u32(0, 1);
      expect(b.call(HvCall.CONSOLE_READ, 0, 4, 16, 16)).toBe(-HvStatus.WOULD_BLOCK);
      b.input.close();
      expect(b.call(HvCall.CONSOLE_READ, 0, 4, 16, 16)).toBe(-HvStatus.END_OF_STREAM);
      expect(b.call(HvCall.CONSOLE_READ, 0, 0, 16, 16)).toBe(-HvStatus.END_OF_STREAM);
    });
    it('refuses unknown flags and malformed flag words', () => {
      b.u32(0, 2);
      expect(b.call(HvCall.CONSOLE_READ, 0, 4, 16, 16)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(b.call(HvCall.CONSOLE_READ, 0, 2, 16, 16)).toBe(-HvStatus.INVALID_ARGUMENT);
    });
    it('a hostile window consumes nothing', () => {
      b.input.tryWrite(InputKind.LINE, enc.encode('keep'));
      hostile(b, HvCall.CONSOLE_READ);
      expect(b.input.peekLength()).toBe(4);
    });
  });

  describe('CONSOLE_STREAM_WRITE / CONSOLE_STREAM_WRITE_ERR (1.3)', () => {
    const drain = (ring: SharedRing): [number, string][] => {
      const out: [number, string][] = [];
      for (let r = ring.tryRead(); r !== null; r = ring.tryRead()) out.push([r.kind, Buffer.from(r.bytes).toString('latin1')]);
      return out;
    };
    it('deliver the bytes exactly: no line cutting, no newline added, any byte value', () => {
      b.put(0, [0x61, 0x0d, 0x0a, 0x62, 0xff, 0x00]);
      expect(b.call(HvCall.CONSOLE_STREAM_WRITE, 0, 6)).toBe(6);
      expect(b.call(HvCall.CONSOLE_STREAM_WRITE_ERR, 3, 3)).toBe(3);
      expect(drain(b.events)).toEqual([[EventKind.STDOUT, 'a\r\nb\xff\x00'], [EventKind.STDERR, 'b\xff\x00']]);
      // 40 bytes with maxLineBytes 32: nothing is truncated on the byte stream.
      b.put(100, new Uint8Array(40).fill(0x78));
      expect(b.call(HvCall.CONSOLE_STREAM_WRITE, 100, 40)).toBe(40);
      expect(drain(b.events)).toEqual([[EventKind.STDOUT, 'x'.repeat(40)]]);
      expect(b.metrics().console).toMatchObject({ bytesOut: 49, bytesTruncated: 0, linesOut: 0 });
    });
    it('an empty write returns 0 and sends nothing; a full HV_MAX_TRANSFER write goes out in pieces, in order', () => {
      expect(b.call(HvCall.CONSOLE_STREAM_WRITE, 0, 0)).toBe(0);
      expect(b.events.peekLength()).toBe(-1);
      const big = boundary(undefined, [], { eventRingBytes: 1 << 18 });
      const data = new Uint8Array(HV_MAX_TRANSFER).map((_, i) => i * 7);
      big.put(0, data);
      expect(big.call(HvCall.CONSOLE_STREAM_WRITE, 0, HV_MAX_TRANSFER)).toBe(HV_MAX_TRANSFER);
      const got = Buffer.concat(drain(big.events).map(([, s]) => Buffer.from(s, 'latin1')));
      expect(got.equals(Buffer.from(data))).toBe(true);
    });
    it('answer END_OF_STREAM once the reader has gone, and send nothing', () => {
      Atomics.store(b.stdio, StdioSlot.STDOUT_CLOSED, 1);
      b.put(0, enc.encode('late'));
      expect(b.call(HvCall.CONSOLE_STREAM_WRITE, 0, 4)).toBe(-HvStatus.END_OF_STREAM);
      expect(b.call(HvCall.CONSOLE_WRITE, 0, 4)).toBe(-HvStatus.END_OF_STREAM);
      expect(b.call(HvCall.CONSOLE_STREAM_WRITE_ERR, 0, 4)).toBe(4); // stderr still has its reader
      expect(drain(b.events)).toEqual([[EventKind.STDERR, 'late']]);
    });
    it('over a reject-mode rate limit: RATE_LIMITED, nothing sent, the bytes counted and reported as dropped', () => {
      // The device's clock stands still: the bucket (65536 bytes) never refills.
      const r = boundary(undefined, [], { eventRingBytes: 1 << 18, consoleRateLimit: { bytesPerSecond: 65536, burstBytes: 65536, mode: 'reject' } });
      r.put(0, new Uint8Array(60000).fill(0x41));
      expect(r.call(HvCall.CONSOLE_STREAM_WRITE, 0, 60000)).toBe(60000);
      expect(r.call(HvCall.CONSOLE_STREAM_WRITE, 0, 60000)).toBe(-HvStatus.RATE_LIMITED);
      expect(r.call(HvCall.CONSOLE_STREAM_WRITE, 0, 5536)).toBe(5536); // exactly what is left
      expect(r.metrics().console).toMatchObject({ bytesDropped: 60000, bytesOut: 65536 });
      expect(r.call(HvCall.CONSOLE_STREAM_WRITE, 0, 1)).toBe(-HvStatus.RATE_LIMITED);
      r.consoleDevice!.close();
      // Refused bytes are reported, in stream order, before the next accepted write and when the console closes.
      const records: [number, number][] = [];
      for (let rec = r.events.tryRead(); rec !== null; rec = r.events.tryRead()) {
        records.push([rec.kind, rec.kind === EventKind.DROPPED ? new DataView(rec.bytes.buffer).getFloat64(4, true) : rec.bytes.length]);
        if (rec.kind === EventKind.DROPPED) expect(rec.bytes[0]).toBe(EventKind.STDOUT);
      }
      expect(records).toEqual([[EventKind.STDOUT, 60000], [EventKind.DROPPED, 60000], [EventKind.STDOUT, 5536], [EventKind.DROPPED, 1]]);
    });
    it('refuse hostile windows and send nothing', () => {
      hostile(b, HvCall.CONSOLE_STREAM_WRITE);
      hostile(b, HvCall.CONSOLE_STREAM_WRITE_ERR);
      expect(b.events.tryRead()).toBeNull();
    });
  });

  describe('CONSOLE_STREAM_READ (1.3)', () => {
    it('reads the input bytes exactly, lines with their newline, in pieces as small as out_cap', () => {
      b.input.tryWrite(InputKind.LINE, enc.encode('hey'));
      b.input.tryWrite(InputKind.BYTES, new Uint8Array([0x0d, 0x0a, 0xff, 0x00]));
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 0, 100, 2)).toBe(2);
      expect([...b.bytes().subarray(100, 102)]).toEqual([0x68, 0x65]);
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 0, 100, 16)).toBe(2);
      expect([...b.bytes().subarray(100, 102)]).toEqual([0x79, 0x0a]);
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 0, 100, 16)).toBe(4);
      expect([...b.bytes().subarray(100, 116)]).toEqual([0x0d, 0x0a, 0xff, 0x00, ...Array(12).fill(0)]);
      expect(b.metrics().console.bytesIn).toBe(8);
    });
    it('out_cap 0 reads nothing; non-blocking: WOULD_BLOCK when empty; END_OF_STREAM after the end', () => {
      b.input.tryWrite(InputKind.BYTES, enc.encode('x'));
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 0, 0, 0)).toBe(0);
      b.u32(0, 1);
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 4, 16, 16)).toBe(1);
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 4, 16, 16)).toBe(-HvStatus.WOULD_BLOCK);
      b.input.close();
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 4, 16, 16)).toBe(-HvStatus.END_OF_STREAM);
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 0, 16, 16)).toBe(-HvStatus.END_OF_STREAM);
    });
    it('refuses unknown flags and malformed flag words', () => {
      b.u32(0, 2);
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 4, 16, 16)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 3, 16, 16)).toBe(-HvStatus.INVALID_ARGUMENT);
    });
    it('CONSOLE_READ cuts lines out of raw bytes; the last bytes before the end are a line', () => {
      b.input.tryWrite(InputKind.BYTES, enc.encode('ab\r\ncd'));
      expect(b.call(HvCall.CONSOLE_READ, 0, 0, 16, 16)).toBe(3);
      expect(dec.decode(b.bytes().subarray(16, 19))).toBe('ab\r');
      b.u32(0, 1);
      expect(b.call(HvCall.CONSOLE_READ, 0, 4, 16, 16)).toBe(-HvStatus.WOULD_BLOCK);
      b.input.close();
      expect(b.call(HvCall.CONSOLE_READ, 0, 0, 16, 16)).toBe(2);
      expect(b.call(HvCall.CONSOLE_READ, 0, 0, 16, 16)).toBe(-HvStatus.END_OF_STREAM);
    });
    it('a hostile window consumes nothing', () => {
      b.input.tryWrite(InputKind.BYTES, enc.encode('keep'));
      hostile(b, HvCall.CONSOLE_STREAM_READ);
      expect(b.input.peekLength()).toBe(4);
      expect(b.call(HvCall.CONSOLE_STREAM_READ, 0, 0, 16, 16)).toBe(4);
    });
  });

  describe('CLOCK_GET', () => {
    it('reads deterministic monotonic and wall clocks as u64 ns', () => {
      const v = () => new DataView(b.memory.buffer).getBigUint64(64, true);
      b.u32(0, 0);
      expect(b.call(HvCall.CLOCK_GET, 0, 4, 64, 8)).toBe(8);
      expect(v()).toBe(0n);
      expect(b.call(HvCall.CLOCK_GET, 0, 4, 64, 8)).toBe(8);
      expect(v()).toBe(2_000_000n);
      b.u32(0, 1);
      b.call(HvCall.CLOCK_GET, 0, 4, 64, 8);
      expect(v()).toBe(1_000_000_000n);
    });
    it('refuses unknown clock ids, wrong input length and small windows', () => {
      b.u32(0, 2);
      expect(b.call(HvCall.CLOCK_GET, 0, 4, 64, 8)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(b.call(HvCall.CLOCK_GET, 0, 0, 64, 8)).toBe(-HvStatus.INVALID_ARGUMENT);
      b.u32(0, 0);
      untouched(b, () => expect(b.call(HvCall.CLOCK_GET, 0, 4, 64, 7)).toBe(-HvStatus.BUFFER_TOO_SMALL));
    });
    it('works at the edge of memory', () => {
      b.u32(PAGE - 4, 0);
      expect(b.call(HvCall.CLOCK_GET, PAGE - 4, 4, PAGE - 8, 8)).toBe(8);
    });
    it('refuses hostile windows', () => hostile(b, HvCall.CLOCK_GET));
  });

  describe('ENTROPY_GET', () => {
    it('fills the whole window; a seed makes the stream reproducible', () => {
      const other = boundary();
      expect(b.call(HvCall.ENTROPY_GET, 0, 0, 0, 64)).toBe(64);
      expect(other.call(HvCall.ENTROPY_GET, 0, 0, 0, 64)).toBe(64);
      expect(Buffer.compare(b.bytes().subarray(0, 64), other.bytes().subarray(0, 64))).toBe(0);
      expect(b.bytes().subarray(0, 64).some((x) => x !== 0)).toBe(true);
      expect(b.metrics().entropyBytes).toBe(64);
    });
    it('takes 0 and HV_MAX_TRANSFER bytes, refuses one more', () => {
      expect(b.call(HvCall.ENTROPY_GET, 0, 0, 0, 0)).toBe(0);
      b.memory.grow(1);
      expect(b.call(HvCall.ENTROPY_GET, 0, 0, 0, HV_MAX_TRANSFER)).toBe(HV_MAX_TRANSFER);
      expect(b.call(HvCall.ENTROPY_GET, 0, 0, 0, HV_MAX_TRANSFER + 1)).toBe(-HvStatus.TOO_LARGE);
    });
    it('refuses hostile windows', () => hostile(b, HvCall.ENTROPY_GET));
  });

  describe('INPUT_SIZE, INPUT_READ and OUTPUT_WRITE (reactor calls)', () => {
    it('answer NOT_IN_CALL outside a host call', () => {
      expect(b.call(HvCall.INPUT_SIZE)).toBe(-HvStatus.NOT_IN_CALL);
      expect(b.call(HvCall.INPUT_READ, 0, 0, 0, 8)).toBe(-HvStatus.NOT_IN_CALL);
      expect(b.call(HvCall.OUTPUT_WRITE, 0, 4)).toBe(-HvStatus.NOT_IN_CALL);
    });
    it('read the input from an offset, in pieces, and zero the rest of the window', () => {
      const input = enc.encode('0123456789');
      b.d.beginCall(input, 100);
      expect(b.call(HvCall.INPUT_SIZE)).toBe(10);
      b.put(200, new Uint8Array(8).fill(0xaa));
      expect(b.call(HvCall.INPUT_READ, 0, 0, 200, 4)).toBe(4);
      expect(dec.decode(b.bytes().subarray(200, 204))).toBe('0123');
      b.u32(0, 8);
      expect(b.call(HvCall.INPUT_READ, 0, 4, 200, 8)).toBe(2);
      expect([...b.bytes().subarray(200, 208)]).toEqual([56, 57, 0, 0, 0, 0, 0, 0]);
      b.u32(0, 10);
      expect(b.call(HvCall.INPUT_READ, 0, 4, 200, 8)).toBe(0); // offset == size: nothing left
      b.u32(0, 11);
      expect(b.call(HvCall.INPUT_READ, 0, 4, 200, 8)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(b.call(HvCall.INPUT_READ, 0, 3, 200, 8)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(b.call(HvCall.INPUT_READ, 0, 0, PAGE - 10, 10)).toBe(10);
      b.d.endCall();
      expect([...input].every((x) => x === 0)).toBe(true); // the host's copy is scrubbed
    });
    it('append output up to the limit; one byte past it is TOO_LARGE and appends nothing', () => {
      b.d.beginCall(new Uint8Array(0), 8);
      b.put(0, enc.encode('abcdefghi'));
      expect(b.call(HvCall.OUTPUT_WRITE, 0, 5)).toBe(5);
      expect(b.call(HvCall.OUTPUT_WRITE, 5, 4)).toBe(-HvStatus.TOO_LARGE);
      expect(b.call(HvCall.OUTPUT_WRITE, PAGE - 3, 3)).toBe(3);
      expect(b.call(HvCall.OUTPUT_WRITE, 0, 0)).toBe(0);
      b.put(0, enc.encode('zzzzz')); // later changes to guest memory do not reach the output
      expect(dec.decode(b.d.endCall())).toBe('abcde\0\0\0');
      expect(b.call(HvCall.OUTPUT_WRITE, 0, 1)).toBe(-HvStatus.NOT_IN_CALL);
    });
    it('refuse hostile windows', () => {
      b.d.beginCall(enc.encode('x'), 100);
      hostile(b, HvCall.INPUT_SIZE);
      hostile(b, HvCall.INPUT_READ);
      hostile(b, HvCall.OUTPUT_WRITE);
      expect(b.d.endCall().length).toBe(0);
    });
  });

  describe('capabilities and unknown calls', () => {
    it('ungranted devices answer ACCESS_DENIED and report a violation', () => {
      const none = boundary({});
      for (const code of [HvCall.CONSOLE_WRITE, HvCall.CONSOLE_WRITE_ERR, HvCall.CONSOLE_READ, HvCall.CLOCK_GET, HvCall.ENTROPY_GET, HvCall.CONSOLE_STREAM_WRITE, HvCall.CONSOLE_STREAM_WRITE_ERR, HvCall.CONSOLE_STREAM_READ]) {
        untouched(none, () => expect(none.call(code, 0, 4, 0, 8)).toBe(-HvStatus.ACCESS_DENIED));
      }
      expect(none.violations.map((v) => v.call)).toEqual(['CONSOLE_WRITE', 'CONSOLE_WRITE_ERR', 'CONSOLE_READ', 'CLOCK_GET', 'ENTROPY_GET', 'CONSOLE_STREAM_WRITE', 'CONSOLE_STREAM_WRITE_ERR', 'CONSOLE_STREAM_READ']);
      expect(none.violations[3]).toEqual({ call: 'CLOCK_GET', status: 'HV_STATUS_ACCESS_DENIED', reason: 'device clock is not granted to this partition' });
    });
    it('unknown call codes answer INVALID_CALL', () => {
      for (const code of [0x0009, 0x0106, 0x0201, 0x0405, 0x04ff, -1, 0x7fffffff]) expect(b.call(code)).toBe(-HvStatus.INVALID_CALL);
      expect(b.violations[0]).toMatchObject({ call: '0x0009', status: 'HV_STATUS_INVALID_CALL' });
      expect(b.metrics().hypercallsByCall.UNKNOWN).toBe(7);
    });
    it('bounds violation reports: beyond the rate they are only counted', () => {
      for (let i = 0; i < 150; i++) b.call(HvCall.VERSION, 0, 0, PAGE, 1);
      expect(b.violations.length).toBe(100);
      expect(b.metrics()).toMatchObject({ violations: 150, violationsSuppressed: 50, faults: 150 });
    });
    it('sees memory growth at once: a window valid only after grow', () => {
      expect(b.call(HvCall.VERSION, 0, 0, PAGE, 16)).toBe(-HvStatus.INVALID_ADDRESS);
      b.memory.grow(1);
      expect(b.call(HvCall.VERSION, 0, 0, PAGE, 16)).toBe(HV_ABI_VERSION);
      expect(b.metrics().memoryBytes).toBe(2 * PAGE);
    });
  });
});
