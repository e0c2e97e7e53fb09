/**
 * The dispatcher's contract beyond the per-call tests (test/abi/dispatcher.test.ts): its limits at
 * construction, the reasons its violation reports give, which refusals count as faults, the
 * device each ungranted call names, the WASI-facing entry points (reportFault, admitCall, exit,
 * checkEnding), the redo of a suspended call, and a host call's input and output.
 */
import { describe, expect, it } from 'vitest';
import { HV_ABI_VERSION, HV_MAX_TRANSFER, HvCall, HvStatus, callName, statusName } from '../../host/abi/codes.ts';
import { CALL_DEVICE, Dispatcher, GuestAbort, GuestExit, MAX_ARGS_BYTES, encodeArgs } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import type { ViolationRecord } from '../../host/channel/protocol.ts';
import { allocateStats, readMetrics } from '../../host/channel/stats.ts';
import { resolveRateLimit, type RateLimitSpec } from '../../host/limits/rate-limiter.ts';
import type { Device } from '../../host/devices/device.ts';

const PAGE = 65536;

function boundary(options: { args?: string[]; devices?: Device[]; hypercallRate?: RateLimitSpec; violationsPerSecond?: number } = {}) {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
  const gm = new GuestMemory();
  gm.bind(memory);
  const sab = allocateStats();
  const stats = new Float64Array(sab);
  const violations: ViolationRecord[] = [];
  let t = 0;
  const sleeps: number[] = [];
  const d = new Dispatcher({
    memory: gm,
    devices: options.devices ?? [],
    args: options.args ?? [],
    stats,
    onViolation: (v) => violations.push(v),
    ...(options.violationsPerSecond !== undefined ? { violationsPerSecond: options.violationsPerSecond } : {}),
    now: () => t,
    sleep: (ms) => {
      sleeps.push(ms);
      t += ms;
    },
    hypercallRate: resolveRateLimit(options.hypercallRate, 'limits.hypercallRate'),
  });
  const bytes = () => new Uint8Array(memory.buffer);
  return { memory, gm, d, violations, sleeps, bytes, advance: (ms: number) => (t += ms), metrics: () => readMetrics(sab) };
}

describe('Dispatcher construction', () => {
  it('refuses a GuestMemory that admits transfers longer than its scratch buffers, and takes one that admits exactly them', () => {
    expect(() => new Dispatcher({ memory: new GuestMemory(HV_MAX_TRANSFER + 1), devices: [], args: [], stats: new Float64Array(allocateStats()), onViolation: () => {} })).toThrow(
      new RangeError(`GuestMemory.maxTransfer ${HV_MAX_TRANSFER + 1} exceeds HV_MAX_TRANSFER (${HV_MAX_TRANSFER})`),
    );
    expect(() => new Dispatcher({ memory: new GuestMemory(HV_MAX_TRANSFER), devices: [], args: [], stats: new Float64Array(allocateStats()), onViolation: () => {} })).not.toThrow();
  });

  it('takes an argument block of exactly MAX_ARGS_BYTES and refuses one byte more, naming both sizes', () => {
    expect(MAX_ARGS_BYTES).toBe(HV_MAX_TRANSFER);
    const exact = boundary({ args: ['a'.repeat(MAX_ARGS_BYTES - 1)] });
    expect(exact.d.hypercall(HvCall.ARGS_SIZE, 0, 0, 0, 0)).toBe(MAX_ARGS_BYTES);
    expect(() => boundary({ args: ['a'.repeat(MAX_ARGS_BYTES - 2), 'b'] })).toThrow(new RangeError(`arguments take ${MAX_ARGS_BYTES + 1} bytes; the limit is ${MAX_ARGS_BYTES}`));
  });

  it('encodes arguments as UTF-8, each NUL-terminated, in order', () => {
    expect([...encodeArgs(['é', '', 'ab'])]).toEqual([0xc3, 0xa9, 0, 0, 0x61, 0x62, 0]);
    expect(encodeArgs([]).length).toBe(0);
  });

  it('lists each device record as four u32 (id, version, param0, param1), param words as unsigned', () => {
    const device: Device = { record: { id: 9, version: 0x10002, param0: -1, param1: 0x80000000 }, handlers: new Map() } as unknown as Device;
    const b = boundary({ devices: [device] });
    expect(b.d.hypercall(HvCall.DEVICE_LIST, 0, 0, 64, 16)).toBe(16);
    const dv = new DataView(b.memory.buffer, 64, 16);
    expect([dv.getUint32(0, true), dv.getUint32(4, true), dv.getUint32(8, true), dv.getUint32(12, true)]).toEqual([9, 0x10002, 0xffffffff, 0x80000000]);
  });
});

describe('Dispatcher violation reports', () => {
  it('names the bad window: out first, then in; a length past the maximum is named as such', () => {
    const b = boundary();
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, PAGE - 3, 4)).toBe(-HvStatus.INVALID_ADDRESS);
    expect(b.d.hypercall(HvCall.VERSION, PAGE, 1, PAGE - 3, 4)).toBe(-HvStatus.INVALID_ADDRESS);
    expect(b.d.hypercall(HvCall.VERSION, PAGE, 1, 0, 4)).toBe(-HvStatus.INVALID_ADDRESS);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, HV_MAX_TRANSFER + 1)).toBe(-HvStatus.TOO_LARGE);
    expect(b.d.hypercall(HvCall.VERSION, 0, -1, 0, 0)).toBe(-HvStatus.TOO_LARGE);
    expect(b.violations).toEqual([
      { call: 'VERSION', status: 'HV_STATUS_INVALID_ADDRESS', reason: `out buffer [0xfffd, +4) lies outside guest memory of ${PAGE} bytes` },
      { call: 'VERSION', status: 'HV_STATUS_INVALID_ADDRESS', reason: `out buffer [0xfffd, +4) lies outside guest memory of ${PAGE} bytes` },
      { call: 'VERSION', status: 'HV_STATUS_INVALID_ADDRESS', reason: `in buffer [0x10000, +1) lies outside guest memory of ${PAGE} bytes` },
      { call: 'VERSION', status: 'HV_STATUS_TOO_LARGE', reason: `out length ${HV_MAX_TRANSFER + 1} exceeds the per-call maximum of ${HV_MAX_TRANSFER} bytes` },
      { call: 'VERSION', status: 'HV_STATUS_TOO_LARGE', reason: `in length 4294967295 exceeds the per-call maximum of ${HV_MAX_TRANSFER} bytes` },
    ]);
    expect(b.metrics()).toMatchObject({ violations: 5, faults: 5, violationsSuppressed: 0 });
  });

  it('a window of exactly the per-call maximum that lies outside memory is named as outside, not as too long', () => {
    const b = boundary();
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 1, HV_MAX_TRANSFER)).toBe(-HvStatus.INVALID_ADDRESS);
    expect(b.violations[0]!.reason).toBe(`out buffer [0x1, +${HV_MAX_TRANSFER}) lies outside guest memory of ${PAGE} bytes`);
  });

  it('counts a refused capability or unknown call as a violation but not as a fault', () => {
    const b = boundary();
    expect(b.d.hypercall(HvCall.CLOCK_GET, 0, 0, 0, 0)).toBe(-HvStatus.ACCESS_DENIED);
    expect(b.d.hypercall(0x0999, 0, 0, 0, 0)).toBe(-HvStatus.INVALID_CALL);
    expect(b.metrics()).toMatchObject({ violations: 2, faults: 0 });
    expect(b.violations[1]).toEqual({ call: '0x0999', status: 'HV_STATUS_INVALID_CALL', reason: 'unknown call code 0x0999' });
  });

  it('names the device of every device call that was not granted (the high byte of the code is the device)', () => {
    const b = boundary();
    const expected: Record<string, string> = {
      CONSOLE_WRITE: 'console',
      CONSOLE_WRITE_ERR: 'console',
      CONSOLE_READ: 'console',
      CONSOLE_STREAM_WRITE: 'console',
      CONSOLE_STREAM_WRITE_ERR: 'console',
      CONSOLE_STREAM_READ: 'console',
      CLOCK_GET: 'clock',
      ENTROPY_GET: 'entropy',
      BLOCK_INFO: 'block',
      BLOCK_READ: 'block',
      BLOCK_WRITE: 'block',
      BLOCK_FLUSH: 'block',
      BLOCK_DISCARD: 'block',
      NET_INFO: 'net',
      NET_SEND: 'net',
      NET_RECV: 'net',
      NET_POLL: 'net',
      NET_TRY_SEND: 'net',
      ATTEST_INFO: 'attestation',
      ATTEST_REPORT: 'attestation',
    };
    for (const name of Object.keys(expected)) expect(b.d.hypercall(HvCall[name as keyof typeof HvCall], 0, 0, 0, 0), name).toBe(-HvStatus.ACCESS_DENIED);
    expect(Object.fromEntries(b.violations.map((v) => [v.call, v.reason]))).toEqual(
      Object.fromEntries(Object.entries(expected).map(([call, device]) => [call, `device ${device} is not granted to this partition`])),
    );
  });

  it('reports at most violationsPerSecond a second (default 100), and counts the rest as suppressed', () => {
    const b = boundary();
    for (let i = 0; i < 101; i++) b.d.hypercall(0x0999, 0, 0, 0, 0);
    expect(b.violations.length).toBe(100);
    b.advance(10); // 10 ms at 100 a second: one more report
    b.d.hypercall(0x0999, 0, 0, 0, 0);
    b.d.hypercall(0x0999, 0, 0, 0, 0);
    expect(b.violations.length).toBe(101);
    expect(b.metrics()).toMatchObject({ violations: 103, violationsSuppressed: 2 });
    const few = boundary({ violationsPerSecond: 2 });
    for (let i = 0; i < 3; i++) few.d.hypercall(0x0999, 0, 0, 0, 0);
    expect(few.violations.length).toBe(2);
  });

  it('statusName and callName name what they know and print what they do not', () => {
    expect(statusName(HvStatus.OUT_OF_RANGE)).toBe('HV_STATUS_OUT_OF_RANGE');
    expect(statusName(99)).toBe('HV_STATUS_99');
    expect(callName(HvCall.NET_TRY_SEND)).toBe('NET_TRY_SEND');
    expect(callName(0x12)).toBe('0x0012');
    expect(callName(-1)).toBe('0xffffffff');
  });
});

describe('Dispatcher: the entry points other surfaces (WASI) use', () => {
  it('reportFault counts a fault and a violation and reports EFAULT, under the same report rate', () => {
    const b = boundary({ violationsPerSecond: 1 });
    b.d.reportFault('wasi.fd_write', 'a pointer or length lies outside guest memory');
    b.d.reportFault('wasi.fd_read', 'again');
    expect(b.violations).toEqual([{ call: 'wasi.fd_write', status: 'EFAULT', reason: 'a pointer or length lies outside guest memory' }]);
    expect(b.metrics()).toMatchObject({ violations: 2, faults: 2, violationsSuppressed: 1 });
  });

  it('exit and checkEnding: the ending is sticky for every surface; EXIT takes the code as an i32', () => {
    const b = boundary();
    expect(() => b.d.checkEnding()).not.toThrow();
    expect(() => b.d.exit(0xffffffff)).toThrow(new GuestExit(-1));
    expect(() => b.d.checkEnding()).toThrow(new GuestExit(-1));
    expect(() => b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toThrow(new GuestExit(-1));
    const a = boundary();
    a.bytes().set(new TextEncoder().encode('bye'), 0);
    expect(() => a.d.hypercall(HvCall.ABORT, 0, 3, 0, 0)).toThrow(new GuestAbort('bye'));
    expect(() => a.d.checkEnding()).toThrow(new GuestAbort('bye'));
  });

  it('admitCall charges the hypercall rate limit for one operation of at most one transfer, and counts refusals', () => {
    const b = boundary({ hypercallRate: { opsPerSecond: 10, burstOps: 2, bytesPerSecond: HV_MAX_TRANSFER, burstBytes: HV_MAX_TRANSFER } });
    expect(b.d.admitCall(10 * HV_MAX_TRANSFER)).toBe(true); // charged as one transfer: it fits the bucket
    expect(b.d.admitCall(1)).toBe(false); // the byte bucket is empty
    expect(b.metrics().throttled.hypercalls.calls).toBe(1);
    expect(boundary().d.admitCall(Number.MAX_SAFE_INTEGER)).toBe(true); // no limit
  });

  it('EXIT and ABORT pass a spent hypercall rate limit: a guest can always end', () => {
    const b = boundary({ hypercallRate: { opsPerSecond: 1, burstOps: 1 } });
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(-HvStatus.RATE_LIMITED);
    new DataView(b.memory.buffer).setInt32(0, 7, true);
    expect(() => b.d.hypercall(HvCall.EXIT, 0, 4, 0, 0)).toThrow(new GuestExit(7));
    const a = boundary({ hypercallRate: { opsPerSecond: 1, burstOps: 1 } });
    a.d.hypercall(HvCall.VERSION, 0, 0, 0, 0);
    expect(() => a.d.hypercall(HvCall.ABORT, 0, 0, 0, 0)).toThrow(GuestAbort);
  });

  it('a redo of a suspended call is neither counted nor charged again; a redo of a refused call is charged', () => {
    const b = boundary({ hypercallRate: { opsPerSecond: 1, burstOps: 1, mode: 'reject' } });
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION); // admitted: the token is spent
    b.d.setRedo(true);
    expect(b.d.redoing).toBe(true);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION); // the same call again, free
    expect(b.d.admitCall(1)).toBe(true); // a WASI redo likewise
    b.d.setRedo(false);
    expect(b.d.redoing).toBe(false);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(-HvStatus.RATE_LIMITED); // a new call: refused
    b.d.setRedo(true);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(-HvStatus.RATE_LIMITED); // its redo was never admitted
    b.d.setRedo(false);
    expect(b.metrics().hypercallsByCall.VERSION).toBe(2); // the redos were counted by their first runs
    expect(b.metrics().throttled.hypercalls.calls).toBe(2);
  });

  it('a refused call refreshes the memory counters after a grow', () => {
    const b = boundary({ hypercallRate: { opsPerSecond: 1, burstOps: 1 } });
    b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0);
    b.memory.grow(2);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(-HvStatus.RATE_LIMITED);
    expect(b.metrics()).toMatchObject({ memoryBytes: 3 * PAGE, peakMemoryBytes: 3 * PAGE });
  });

  it('the peak is the largest memory the partition’s counters saw: a later, smaller instance lowers the size, not the peak', () => {
    // A restarted partition gets a new instance (and dispatcher) over the same counters.
    const sab = allocateStats();
    const stats = new Float64Array(sab);
    const run = (pages: number) => {
      const gm = new GuestMemory();
      gm.bind(new WebAssembly.Memory({ initial: pages, maximum: 4 }));
      const d = new Dispatcher({ memory: gm, devices: [], args: [], stats, onViolation: () => {} });
      d.updateMemoryStats();
    };
    run(3);
    run(1);
    expect(readMetrics(sab)).toMatchObject({ memoryBytes: PAGE, peakMemoryBytes: 3 * PAGE });
  });
});

describe('Dispatcher: the hypercall rate limit on the dispatcher clock', () => {
  it('refills on the clock it was given: a spent limit passes again one period later', () => {
    const b = boundary({ hypercallRate: { opsPerSecond: 1, burstOps: 1 } });
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(-HvStatus.RATE_LIMITED);
    b.advance(999);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(-HvStatus.RATE_LIMITED);
    b.advance(1);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION);
  });

  it('block mode waits with the sleep it was given, for exactly the refill', () => {
    const b = boundary({ hypercallRate: { opsPerSecond: 10, burstOps: 1, mode: 'block' } });
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION);
    expect(b.sleeps).toEqual([100]);
    expect(b.metrics().throttled.hypercalls).toEqual({ calls: 1, waitedMs: 100 });
  });

  it('charges a call its input length in bytes, not a whole transfer', () => {
    const b = boundary({ hypercallRate: { bytesPerSecond: 1000, burstBytes: 64 } });
    for (let i = 0; i < 4; i++) expect(b.d.hypercall(HvCall.VERSION, 0, 16, 0, 0), `call ${i}`).toBe(HV_ABI_VERSION);
    expect(b.d.hypercall(HvCall.VERSION, 0, 16, 0, 0)).toBe(-HvStatus.RATE_LIMITED);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 0, 0)).toBe(HV_ABI_VERSION); // no input, no bytes
  });

  it('a WASI call refused by the limit is charged again when it is redone', () => {
    const b = boundary({ hypercallRate: { opsPerSecond: 1, burstOps: 1 } });
    expect(b.d.admitCall(0)).toBe(true);
    expect(b.d.admitCall(0)).toBe(false);
    b.d.setRedo(true);
    expect(b.d.admitCall(0)).toBe(false);
    b.d.setRedo(false);
    expect(b.metrics().throttled.hypercalls.calls).toBe(2);
  });
});

describe('Dispatcher: the call table and output windows', () => {
  it('the code one past the highest ABI call is unknown, like every code after it', () => {
    const b = boundary();
    const highest = Math.max(...Object.values(HvCall));
    expect(b.d.hypercall(highest + 1, 0, 0, 0, 0)).toBe(-HvStatus.INVALID_CALL);
    expect(b.d.hypercall(highest, 0, 0, 0, 0)).toBe(-HvStatus.ACCESS_DENIED);
    expect(b.violations.map((v) => v.status)).toEqual(['HV_STATUS_INVALID_CALL', 'HV_STATUS_ACCESS_DENIED']);
  });

  it('every ABI call is the dispatcher’s own or a granted-or-not device’s: none is refused as unknown, each counted under its name', () => {
    const b = boundary();
    const own = new Set<number>([HvCall.VERSION, HvCall.DEVICE_LIST, HvCall.EXIT, HvCall.ABORT, HvCall.ARGS_SIZE, HvCall.ARGS_GET, HvCall.INPUT_SIZE, HvCall.INPUT_READ, HvCall.OUTPUT_WRITE]);
    const expected: Record<string, number> = {};
    for (const [name, code] of Object.entries(HvCall)) {
      if (own.has(code)) continue;
      expect(CALL_DEVICE.has(code)).toBe(true);
      expect(b.d.hypercall(code, 0, 0, 0, 0)).toBe(-HvStatus.ACCESS_DENIED); // no device granted
      expected[name] = 1;
    }
    expect(Object.keys(expected).length + own.size).toBe(Object.keys(HvCall).length);
    expect(b.metrics().hypercallsByCall).toEqual(expected);
    expect(b.violations.every((v) => v.status === 'HV_STATUS_ACCESS_DENIED')).toBe(true);
  });

  it('a result of 0 bytes still zeroes the whole output window', () => {
    const b = boundary();
    b.bytes().fill(0xaa, 64, 100);
    expect(b.d.hypercall(HvCall.DEVICE_LIST, 0, 0, 64, 32)).toBe(0); // no device granted: no records
    expect(b.bytes().subarray(64, 96).every((x) => x === 0)).toBe(true);
    expect(b.bytes()[96]).toBe(0xaa);
  });

  it('a call that writes no output never passes on what an earlier call left in the host scratch', () => {
    const b = boundary({ args: ['x'.repeat(300)] });
    expect(b.d.hypercall(HvCall.ARGS_GET, 0, 0, 0, 512)).toBe(301); // the host scratch now holds 300 'x'
    b.bytes().fill(0xaa, 1024, 1024 + 512);
    // VERSION's result is a number, not a length: the window it was given must be all zeros.
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 1024, 512)).toBe(HV_ABI_VERSION);
    expect(b.bytes().subarray(1024, 1024 + 512).every((x) => x === 0)).toBe(true);
    expect(b.d.hypercall(HvCall.VERSION, 0, 0, 1024, 16)).toBe(HV_ABI_VERSION);
    expect(b.bytes().subarray(1024, 1024 + 16).every((x) => x === 0)).toBe(true);
  });
});

describe('Dispatcher: a host call to an export', () => {
  it('INPUT_READ from an offset: at the end reads nothing, one past it is INVALID_ARGUMENT', () => {
    const b = boundary();
    b.d.beginCall(new Uint8Array([1, 2, 3]), 16);
    expect(b.d.hypercall(HvCall.INPUT_SIZE, 0, 0, 0, 0)).toBe(3);
    const dv = new DataView(b.memory.buffer);
    dv.setUint32(0, 3, true);
    expect(b.d.hypercall(HvCall.INPUT_READ, 0, 4, 64, 8)).toBe(0);
    dv.setUint32(0, 4, true);
    expect(b.d.hypercall(HvCall.INPUT_READ, 0, 4, 64, 8)).toBe(-HvStatus.INVALID_ARGUMENT);
    expect(b.d.hypercall(HvCall.INPUT_READ, 0, 3, 64, 8)).toBe(-HvStatus.INVALID_ARGUMENT); // an offset is 4 bytes
    dv.setUint32(0, 1, true);
    expect(b.d.hypercall(HvCall.INPUT_READ, 0, 4, 64, 8)).toBe(2);
    expect([...b.bytes().subarray(64, 67)]).toEqual([2, 3, 0]);
  });

  it('OUTPUT_WRITE grows its buffer past the first 256 bytes and keeps every byte in order, up to the limit', () => {
    const b = boundary();
    b.d.beginCall(new Uint8Array(0), 1000);
    const all: number[] = [];
    for (let i = 0; i < 1000; i += 100) {
      const chunk = Array.from({ length: 100 }, (_, j) => (i + j) % 251);
      b.bytes().set(chunk, 0);
      expect(b.d.hypercall(HvCall.OUTPUT_WRITE, 0, 100, 0, 0)).toBe(100);
      all.push(...chunk);
    }
    expect(b.d.hypercall(HvCall.OUTPUT_WRITE, 0, 1, 0, 0)).toBe(-HvStatus.TOO_LARGE);
    expect(b.d.hypercall(HvCall.OUTPUT_WRITE, 0, 0, 0, 0)).toBe(0);
    expect([...b.d.endCall()]).toEqual(all);
  });

  it('one write of the whole allowance at once, and many one-byte writes, both arrive whole', () => {
    const b = boundary();
    b.d.beginCall(new Uint8Array(0), 5000);
    b.bytes().fill(7, 0, 5000);
    expect(b.d.hypercall(HvCall.OUTPUT_WRITE, 0, 5000, 0, 0)).toBe(5000);
    expect(b.d.endCall()).toEqual(new Uint8Array(5000).fill(7));
    b.d.beginCall(new Uint8Array(0), 600);
    for (let i = 0; i < 600; i++) {
      b.bytes()[0] = i & 0xff;
      expect(b.d.hypercall(HvCall.OUTPUT_WRITE, 0, 1, 0, 0)).toBe(1);
    }
    expect([...b.d.endCall()]).toEqual(Array.from({ length: 600 }, (_, i) => i & 0xff));
  });

  it('endCall zeroes the input it was given and ends the call; without a call it returns nothing', () => {
    const b = boundary();
    const input = new Uint8Array([5, 6, 7]);
    b.d.beginCall(input, 8);
    expect([...b.d.endCall()]).toEqual([]);
    expect([...input]).toEqual([0, 0, 0]);
    expect(b.d.hypercall(HvCall.INPUT_SIZE, 0, 0, 0, 0)).toBe(-HvStatus.NOT_IN_CALL);
    expect(b.d.endCall().length).toBe(0);
  });
});
