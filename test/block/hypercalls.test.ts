/**
 * The block device's hypercalls through the real dispatcher, in-thread: valid, edge and hostile
 * arguments, as test/abi/dispatcher.test.ts does for the other devices.
 */
import { mkdtempSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  HV_BLOCK_HEADER_SIZE,
  HV_BLOCK_MAX_READ_SECTORS,
  HV_BLOCK_MAX_WRITE_SECTORS,
  HV_BLOCK_SECTOR_SIZE,
  HV_BLOCK_WRITE_FUA,
  HV_MAX_TRANSFER,
  HvCall,
  HvDevice,
  HvStatus,
} from '../../host/abi/codes.ts';
import { Dispatcher } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { BlockDevice } from '../../host/devices/block.ts';
import { resolveDevices, type BlockSpec } from '../../host/devices/config.ts';
import { check } from '../../host/schema/check.ts';
import { DevicesSchema } from '../../host/schema/devices.ts';
import { allocateStats, readMetrics } from '../../host/channel/stats.ts';
import type { ViolationRecord } from '../../host/channel/protocol.ts';
import { BlockImage, dataOffset } from '../../host/storage/image.ts';
import { Storage, type BlockAttachment } from '../../host/storage/storage.ts';

const S = HV_BLOCK_SECTOR_SIZE;
const PAGES = 4;
const MEM = PAGES * 65536;

let dir: string;
let storage: Storage;
const open: { a: BlockAttachment; img: BlockImage }[] = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-blockcall-'));
  storage = new Storage({ dataDir: dir });
});
afterEach(async () => {
  for (const { a, img } of open.splice(0)) {
    img.close();
    await storage.detach(a);
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A partition's boundary with a 1 MiB disk (256 sectors), in-thread. */
async function boundary(spec: Partial<BlockSpec> = {}, clock?: { now: () => number; sleep: (ms: number) => void }) {
  const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES });
  const gm = new GuestMemory();
  gm.bind(memory);
  const statsSab = allocateStats();
  const stats = new Float64Array(statsSab);
  const resolved = resolveDevices({ block: { sizeMiB: 1, ...spec } });
  const a = await storage.attach(`p${open.length}`, 1);
  const img = new BlockImage({ fd: a.fd, sectorCount: a.sectorCount, imageId: a.imageId, dataKey: a.dataKey });
  open.push({ a, img });
  const device = new BlockDevice(resolved.block!, img, stats, clock ?? {});
  const violations: ViolationRecord[] = [];
  const d = new Dispatcher({ memory: gm, devices: [device], args: [], stats, onViolation: (v) => violations.push(v) });
  const bytes = () => new Uint8Array(memory.buffer);
  const dv = () => new DataView(memory.buffer);
  const call = (code: number, inPtr = 0, inLen = 0, outPtr = 0, outCap = 0) => d.hypercall(code, inPtr | 0, inLen | 0, outPtr | 0, outCap | 0);
  /** Puts a (sector, count, flags) header at `at`. */
  const header = (at: number, sector: number | bigint, count: number, flags = 0) => {
    dv().setBigUint64(at, BigInt(sector), true);
    dv().setUint32(at + 8, count, true);
    dv().setUint32(at + 12, flags, true);
  };
  return { memory, bytes, dv, call, header, violations, metrics: () => readMetrics(statsSab), device };
}

type B = Awaited<ReturnType<typeof boundary>>;

function untouched(b: B, fn: () => void): void {
  const before = b.bytes().slice();
  fn();
  expect(Buffer.compare(b.bytes(), before)).toBe(0);
}

/** Writes `count` sectors filled with `byte` from guest offset 0x10000 (header at 0x10000, data after). */
function write(b: B, sector: number, count: number, byte: number, flags = 0): number {
  b.header(0x10000, sector, count, flags);
  b.bytes().fill(byte, 0x10000 + HV_BLOCK_HEADER_SIZE, 0x10000 + HV_BLOCK_HEADER_SIZE + count * S);
  return b.call(HvCall.BLOCK_WRITE, 0x10000, HV_BLOCK_HEADER_SIZE + count * S);
}

/** Reads `count` sectors into guest offset 0x20000; returns the result and the bytes. */
function read(b: B, sector: number | bigint, count: number, outCap = count * S): { r: number; data: Uint8Array } {
  b.header(0, sector, count);
  const r = b.call(HvCall.BLOCK_READ, 0, HV_BLOCK_HEADER_SIZE, 0x20000, outCap);
  return { r, data: b.bytes().slice(0x20000, 0x20000 + count * S) };
}

describe('block hypercalls', () => {
  it('are denied (and reported) when block is not granted', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const gm = new GuestMemory();
    gm.bind(memory);
    const violations: ViolationRecord[] = [];
    const d = new Dispatcher({ memory: gm, devices: [], args: [], stats: new Float64Array(allocateStats()), onViolation: (v) => violations.push(v) });
    for (const code of [HvCall.BLOCK_INFO, HvCall.BLOCK_READ, HvCall.BLOCK_WRITE, HvCall.BLOCK_FLUSH, HvCall.BLOCK_DISCARD]) {
      expect(d.hypercall(code, 0, 16, 0, 16)).toBe(-HvStatus.ACCESS_DENIED);
    }
    expect(violations).toHaveLength(5);
    expect(violations[0]!.reason).toMatch(/device block is not granted/);
  });

  it('DEVICE_LIST shows the disk: id 4, sector count, encrypted flag', async () => {
    const b = await boundary();
    expect(b.call(HvCall.DEVICE_LIST, 0, 0, 0, 16)).toBe(16);
    expect([0, 4, 8, 12].map((o) => b.dv().getUint32(o, true))).toEqual([HvDevice.BLOCK, 1, 256, 1]);
  });

  describe('BLOCK_INFO', () => {
    it('returns the geometry', async () => {
      const b = await boundary();
      b.bytes().fill(0xaa, 100, 132);
      expect(b.call(HvCall.BLOCK_INFO, 0, 0, 100, 32)).toBe(16);
      const v = b.dv();
      expect([v.getUint32(100, true), v.getUint16(104, true), v.getUint16(106, true), v.getBigUint64(108, true)]).toEqual([
        S,
        HV_BLOCK_MAX_READ_SECTORS,
        HV_BLOCK_MAX_WRITE_SECTORS,
        256n,
      ]);
      expect(b.bytes().subarray(116, 132).every((x) => x === 0)).toBe(true);
    });
    it('refuses input, and a window smaller than 16 bytes, writing nothing', async () => {
      const b = await boundary();
      untouched(b, () => expect(b.call(HvCall.BLOCK_INFO, 0, 4, 100, 16)).toBe(-HvStatus.INVALID_ARGUMENT));
      untouched(b, () => expect(b.call(HvCall.BLOCK_INFO, 0, 0, 100, 15)).toBe(-HvStatus.BUFFER_TOO_SMALL));
      expect(b.call(HvCall.BLOCK_INFO, 0, 0, MEM - 16, 16)).toBe(16); // ends exactly at the end of memory
    });
  });

  describe('BLOCK_READ and BLOCK_WRITE', () => {
    it('read unwritten sectors as zeros, over stale guest bytes', async () => {
      const b = await boundary();
      b.bytes().fill(0x55, 0x20000, 0x20000 + 16 * S);
      const { r, data } = read(b, 240, 16);
      expect(r).toBe(16 * S);
      expect(data.every((x) => x === 0)).toBe(true);
    });
    it('never shows an earlier read through a later one: unwritten sectors and the window past the data are zeros', async () => {
      // BLOCK_READ writes its output densely (the dispatcher does not zero its scratch first), so
      // the scratch still holds the previous read's plaintext when the next one starts.
      const b = await boundary();
      expect(write(b, 0, 15, 0x5a)).toBe(15 * S);
      expect(write(b, 15, 1, 0x5a)).toBe(S);
      expect(read(b, 0, 16).data.every((x) => x === 0x5a)).toBe(true);
      b.bytes().fill(0x55, 0x20000, 0x20000 + 16 * S);
      // sectors 15..30: one written, fifteen never written; then one sector in a 16-sector window
      const mixed = read(b, 15, 16);
      expect(mixed.r).toBe(16 * S);
      expect(mixed.data.subarray(0, S).every((x) => x === 0x5a)).toBe(true);
      expect(mixed.data.subarray(S).every((x) => x === 0)).toBe(true);
      expect(read(b, 0, 16).r).toBe(16 * S);
      b.bytes().fill(0x55, 0x20000, 0x20000 + 16 * S);
      const one = read(b, 20, 1, 16 * S);
      expect(one.r).toBe(S);
      expect(b.bytes().subarray(0x20000, 0x20000 + 16 * S).every((x) => x === 0)).toBe(true);
      // A read that fails part-way (INTEGRITY at sector 3, after sectors 0..2 reached the
      // scratch) writes nothing to the guest.
      expect(b.call(HvCall.BLOCK_FLUSH)).toBe(0);
      expect(write(b, 3, 1, 0x66)).toBe(S); // sector 3 now has a version in each slot
      const fd = open.at(-1)!.a.fd;
      for (const k of [0, 1]) writeSync(fd, Buffer.alloc(64, 0xee), 0, 64, dataOffset(3, k));
      b.bytes().fill(0x55, 0x20000, 0x20000 + 16 * S);
      b.header(0, 0, 16);
      untouched(b, () => expect(b.call(HvCall.BLOCK_READ, 0, HV_BLOCK_HEADER_SIZE, 0x20000, 16 * S)).toBe(-HvStatus.INTEGRITY));
    });
    it('round-trip one to fifteen sectors per write, sixteen per read', async () => {
      const b = await boundary();
      expect(write(b, 0, 1, 0x11)).toBe(S);
      expect(write(b, 1, HV_BLOCK_MAX_WRITE_SECTORS, 0x22)).toBe(15 * S);
      expect(write(b, 241, 15, 0x33, HV_BLOCK_WRITE_FUA)).toBe(15 * S); // the last sectors of the disk
      const { r, data } = read(b, 0, 16);
      expect(r).toBe(16 * S);
      expect(data.subarray(0, S).every((x) => x === 0x11)).toBe(true);
      expect(data.subarray(S).every((x) => x === 0x22)).toBe(true);
      expect(read(b, 255, 1).data.every((x) => x === 0x33)).toBe(true);
      const m = b.metrics();
      expect(m.block.writeBytes).toBe(31 * S);
      expect(m.block.readBytes).toBe(17 * S);
      expect(m.block.flushes).toBe(1); // the FUA write
    });
    it('a full sixteen-sector read fills exactly HV_MAX_TRANSFER', async () => {
      const b = await boundary();
      expect(16 * S).toBe(HV_MAX_TRANSFER);
      b.header(0, 0, 16);
      expect(b.call(HvCall.BLOCK_READ, 0, 16, MEM - HV_MAX_TRANSFER, HV_MAX_TRANSFER)).toBe(HV_MAX_TRANSFER);
    });
    it('answer past-the-end requests with OUT_OF_RANGE, touching nothing', async () => {
      const b = await boundary();
      for (const [sector, count] of [
        [256, 1],
        [255, 2],
        [241, 16],
        [2 ** 32, 1],
        [2n ** 53n, 1],
        [2n ** 64n - 1n, 1],
      ] as [number | bigint, number][]) {
        b.header(0, sector, count);
        untouched(b, () => expect(b.call(HvCall.BLOCK_READ, 0, 16, 0x20000, 16 * S), `read ${sector}+${count}`).toBe(-HvStatus.OUT_OF_RANGE));
        untouched(b, () => expect(b.call(HvCall.BLOCK_DISCARD, 0, 16), `discard ${sector}+${count}`).toBe(-HvStatus.OUT_OF_RANGE));
      }
      expect(write(b, 256, 1, 1)).toBe(-HvStatus.OUT_OF_RANGE);
      expect(write(b, 250, 7, 1)).toBe(-HvStatus.OUT_OF_RANGE);
      expect(read(b, 0, 1).data.every((x) => x === 0)).toBe(true);
      expect(b.metrics().block.writeBytes).toBe(0);
    });
    it('refuse malformed requests with INVALID_ARGUMENT', async () => {
      const b = await boundary();
      b.header(0, 0, 1);
      for (const inLen of [0, 12, 15, 17, 32]) {
        untouched(b, () => expect(b.call(HvCall.BLOCK_READ, 0, inLen, 0x20000, S), `read in_len ${inLen}`).toBe(-HvStatus.INVALID_ARGUMENT));
      }
      for (const [count, flags] of [[0, 0], [17, 0], [0xffffffff, 0], [1, 1], [1, 0x80000000]]) {
        b.header(0, 0, count!, flags!);
        untouched(b, () => expect(b.call(HvCall.BLOCK_READ, 0, 16, 0x20000, 16 * S), `read count ${count} flags ${flags}`).toBe(-HvStatus.INVALID_ARGUMENT));
      }
      // writes: the length must match the count exactly, count 1..15, flags only FUA
      b.header(0x10000, 0, 2);
      for (const inLen of [0, 15, 16, 16 + S, 16 + 2 * S - 1, 16 + 2 * S + 1]) {
        expect(b.call(HvCall.BLOCK_WRITE, 0x10000, inLen), `write in_len ${inLen}`).toBe(-HvStatus.INVALID_ARGUMENT);
      }
      b.header(0x10000, 0, 16);
      expect(b.call(HvCall.BLOCK_WRITE, 0x10000, HV_MAX_TRANSFER)).toBe(-HvStatus.INVALID_ARGUMENT); // 16 sectors can never fit
      b.header(0x10000, 0, 0);
      expect(b.call(HvCall.BLOCK_WRITE, 0x10000, 16)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(write(b, 0, 1, 9, 2)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(b.call(HvCall.BLOCK_FLUSH, 0, 4)).toBe(-HvStatus.INVALID_ARGUMENT);
      expect(b.metrics().block.writeBytes).toBe(0);
    });
    it('a read window too small is BUFFER_TOO_SMALL and writes nothing', async () => {
      const b = await boundary();
      write(b, 0, 2, 0x77);
      b.header(0, 0, 2);
      untouched(b, () => expect(b.call(HvCall.BLOCK_READ, 0, 16, 0x20000, 2 * S - 1)).toBe(-HvStatus.BUFFER_TOO_SMALL));
    });
    it('refuse hostile windows without touching memory or the disk', async () => {
      const b = await boundary();
      const cases: [number, number, number, number, number][] = [
        [0, 16, MEM, 1, HvStatus.INVALID_ADDRESS],
        [0, 16, MEM - S + 1, S, HvStatus.INVALID_ADDRESS],
        [0, 16, 0xfffff000, 0x2000, HvStatus.INVALID_ADDRESS],
        [MEM - 8, 16, 0, S, HvStatus.INVALID_ADDRESS],
        [0xfffffff8, 16, 0, S, HvStatus.INVALID_ADDRESS],
        [0, -1, 0, S, HvStatus.TOO_LARGE],
        [0, 16, 0, -1, HvStatus.TOO_LARGE],
        [0, 16, 0, HV_MAX_TRANSFER + S, HvStatus.TOO_LARGE],
      ];
      b.header(0, 0, 1);
      for (const code of [HvCall.BLOCK_INFO, HvCall.BLOCK_READ, HvCall.BLOCK_WRITE, HvCall.BLOCK_DISCARD, HvCall.BLOCK_FLUSH]) {
        for (const [ip, il, op, oc, status] of cases) {
          untouched(b, () => expect(b.call(code, ip, il, op, oc), `0x${code.toString(16)} in=(${ip},${il}) out=(${op},${oc})`).toBe(-status));
        }
      }
      const m = b.metrics();
      expect(m.block.writeBytes + m.block.readBytes + m.block.flushes).toBe(0);
      expect(m.faults).toBeGreaterThan(0);
    });
  });

  describe('BLOCK_FLUSH and BLOCK_DISCARD', () => {
    it('discard makes sectors read as zeros; flush returns 0', async () => {
      const b = await boundary();
      write(b, 10, 4, 0x44);
      expect(b.call(HvCall.BLOCK_FLUSH)).toBe(0);
      b.header(0, 11, 2);
      expect(b.call(HvCall.BLOCK_DISCARD, 0, 16)).toBe(0);
      const { data } = read(b, 10, 4);
      expect(data.subarray(0, S).every((x) => x === 0x44)).toBe(true);
      expect(data.subarray(S, 3 * S).every((x) => x === 0)).toBe(true);
      expect(data.subarray(3 * S).every((x) => x === 0x44)).toBe(true);
      expect(b.call(HvCall.BLOCK_FLUSH)).toBe(0);
      expect(b.metrics().block).toMatchObject({ flushes: 2, discardBytes: 2 * S });
    });
    it('discard refuses count 0, more than 16, flags, and a wrong length', async () => {
      const b = await boundary();
      for (const [count, flags] of [[0, 0], [17, 0], [1, 1]]) {
        b.header(0, 0, count!, flags!);
        expect(b.call(HvCall.BLOCK_DISCARD, 0, 16)).toBe(-HvStatus.INVALID_ARGUMENT);
      }
      expect(b.call(HvCall.BLOCK_DISCARD, 0, 20)).toBe(-HvStatus.INVALID_ARGUMENT);
    });
  });

  describe('rate limits', () => {
    it('a request over the byte budget waits for its tokens (clock-injected, no sleeping)', async () => {
      let t = 0;
      const slept: number[] = [];
      const b = await boundary(
        { bytesPerSecond: 65536, burstBytes: 65536, opsPerSecond: 1000 },
        { now: () => t, sleep: (ms) => { slept.push(ms); t += ms; } },
      );
      expect(write(b, 0, 15, 1)).toBe(15 * S); // 60 KiB of the 64 KiB burst
      expect(slept).toEqual([]);
      expect(write(b, 15, 2, 1)).toBe(2 * S); // needs 8 KiB, 4 KiB left: waits 4 KiB at 64 KiB/s = 62.5 ms
      expect(slept).toHaveLength(1);
      expect(slept[0]).toBeCloseTo(62.5, 5);
      expect(b.metrics().block.throttledMs).toBeCloseTo(62.5, 5);
    });
    it('the ops bucket counts every request, flushes included', async () => {
      let t = 0;
      const slept: number[] = [];
      const b = await boundary({ opsPerSecond: 10, burstOps: 2 }, { now: () => t, sleep: (ms) => { slept.push(ms); t += ms; } });
      expect(b.call(HvCall.BLOCK_FLUSH)).toBe(0);
      expect(b.call(HvCall.BLOCK_FLUSH)).toBe(0);
      expect(slept).toEqual([]);
      expect(b.call(HvCall.BLOCK_FLUSH)).toBe(0);
      expect(slept).toHaveLength(1);
      expect(slept[0]).toBeCloseTo(100, 5);
    });
    it("rateLimitMode 'reject': over the limit the request returns RATE_LIMITED at once and does nothing", async () => {
      let t = 0;
      const slept: number[] = [];
      const b = await boundary({ opsPerSecond: 10, burstOps: 2, rateLimitMode: 'reject' }, { now: () => t, sleep: (ms) => { slept.push(ms); t += ms; } });
      expect(write(b, 0, 1, 1)).toBe(S);
      expect(write(b, 1, 1, 1)).toBe(S);
      expect(write(b, 2, 1, 1)).toBe(-HvStatus.RATE_LIMITED);
      expect(slept).toEqual([]);
      expect(b.metrics().throttled.block.calls).toBe(1);
      t += 100; // one request's refill
      expect(write(b, 2, 1, 1)).toBe(S);
      expect(() => devices({ block: { sizeMiB: 1, rateLimitMode: 'drop' } })).toThrow(/rateLimitMode/);
    });
    it('a request that fails its checks costs no tokens', async () => {
      let t = 0;
      const slept: number[] = [];
      const b = await boundary({ opsPerSecond: 1, burstOps: 1 }, { now: () => t, sleep: (ms) => { slept.push(ms); t += ms; } });
      for (let i = 0; i < 5; i++) expect(write(b, 300, 1, 1)).toBe(-HvStatus.OUT_OF_RANGE);
      expect(write(b, 0, 1, 1)).toBe(S);
      expect(slept).toEqual([]);
    });
  });

  it('spec validation: sizeMiB required and bounded, burst at least one full request', () => {
    expect(() => devices({ block: {} })).toThrow('devices: block.sizeMiB: is required');
    expect(() => devices({ block: true })).toThrow('devices: block: expected false or an object, got true');
    expect(() => devices({ block: { sizeMiB: 0 } })).toThrow('devices: block.sizeMiB: expected an integer from 1 to 4096, got the number 0');
    expect(() => devices({ block: { sizeMiB: 1.5 } })).toThrow(/sizeMiB: expected an integer/);
    expect(() => devices({ block: { sizeMiB: 4097 } })).toThrow(/sizeMiB/);
    expect(devices({ block: { sizeMiB: 4096 } }).block).toMatchObject({ sizeMiB: 4096 });
    expect(() => devices({ block: { sizeMiB: 1, burstBytes: 65535 } })).toThrow(/burstBytes/);
    expect(devices({ block: { sizeMiB: 1, burstBytes: 65536 } }).block).toMatchObject({ burstBytes: 65536 });
    expect(() => devices({ block: { sizeMiB: 1, path: '' } })).toThrow(/path/);
    expect(devices({ block: { sizeMiB: 1, bytesPerSecond: 1000 } }).block).toMatchObject({ burstBytes: 65536, burstOps: 20000 });
    expect(devices({}).block).toBeNull();
    expect(devices({ block: false }).block).toBeNull();
  });
});

/** Device grants as createPartition takes them: checked against the schema, then resolved. */
function devices(spec: unknown) {
  return resolveDevices(check(DevicesSchema, spec, 'devices'));
}
