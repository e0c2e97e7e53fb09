/**
 * The guest → host hypercall surface, in-thread and fast: two partitions (A and B), each a real
 * guest module instantiated against its own real Dispatcher, devices and memory, exactly as a
 * partition's worker wires them (host/partition/worker.ts). The guest exports `call(code, in_ptr,
 * in_len, out_ptr, out_cap)`, which makes the hypercall through its `hv.hypercall` import, so
 * every byte crosses the real Wasm → host boundary. An input is a random device configuration
 * and a random sequence of calls (every assigned code, unassigned ones, pointers and lengths at
 * and around every boundary), interleaved between A and B.
 *
 * Invariants, checked after every call:
 * - the result is an i32: ≥ 0, or a documented status negated; the only exceptions thrown are
 *   the guest's own ending (GuestExit, GuestAbort), and once thrown it is thrown again (sticky);
 * - a failed call leaves guest memory untouched; a successful one writes only inside its output
 *   window, and for calls that return a byte count, the window past that count is zeros;
 * - nothing from the other partition shows up: B's memory never holds A's canary (a random
 *   16-byte value A writes to every device it can), and the reverse;
 * - the counters add up: `hypercalls` is the number of calls made, per-call counts sum to it.
 */
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HV_MAX_TRANSFER, HvCall, HvStatus } from '../../../host/abi/codes.ts';
import { Dispatcher, GuestAbort, GuestExit } from '../../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../../host/abi/guest-memory.ts';
import { SharedRing } from '../../../host/channel/ring.ts';
import { BlockDevice } from '../../../host/devices/block.ts';
import { ClockDevice } from '../../../host/devices/clock.ts';
import { resolveDevices, type DevicesSpec } from '../../../host/devices/config.ts';
import { ConsoleDevice } from '../../../host/devices/console.ts';
import type { Device } from '../../../host/devices/device.ts';
import { EntropyDevice } from '../../../host/devices/entropy.ts';
import { NetDevice } from '../../../host/devices/net.ts';
import { VirtualSwitch } from '../../../host/net/switch.ts';
import { allocateStats, readMetrics } from '../../../host/channel/stats.ts';
import { InputKind } from '../../../host/channel/protocol.ts';
import { BlockImage } from '../../../host/storage/image.ts';
import { Storage, type BlockAttachment } from '../../../host/storage/storage.ts';
import { concat } from '../../loader/bombs.mjs';
import { wat } from '../../loader/wat.ts';
import { boundaryU32, invariant, type Target } from '../framework.ts';

const PAGE = 65536;
const STATUSES = new Set<number>(Object.values(HvStatus));
const CODES = Object.values(HvCall);
/** Calls whose success value is the number of bytes written at the start of the output window. */
const BYTE_COUNT_CALLS = new Set<number>([
  HvCall.DEVICE_LIST, HvCall.ARGS_GET, HvCall.INPUT_READ, HvCall.CONSOLE_READ, HvCall.CLOCK_GET, HvCall.ENTROPY_GET,
  HvCall.BLOCK_INFO, HvCall.BLOCK_READ, HvCall.NET_INFO, HvCall.NET_RECV,
]);

/** The guest: one exported trampoline to the one import. */
const GUEST = wat(`(module
  (import "hv" "hypercall" (func $hc (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (func (export "call") (param i32 i32 i32 i32 i32) (result i32)
    (call $hc (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4))))`);
const guestModule = new WebAssembly.Module(GUEST as Uint8Array<ArrayBuffer>);

export interface Step {
  /** 0: partition A, 1: partition B. */
  readonly who: 0 | 1;
  readonly code: number;
  readonly inPtr: number;
  readonly inLen: number;
  readonly outPtr: number;
  readonly outCap: number;
  /** Written at inPtr (as far as it fits) before the call: the call's input. */
  readonly data: Uint8Array;
}

export interface Input {
  readonly grant: { console: boolean; clock: boolean; entropy: boolean; block: boolean; net: boolean };
  readonly consoleLine: number;
  readonly mtu: number;
  readonly args: readonly string[];
  readonly steps: readonly Step[];
}

const ptr = boundaryU32([0, 16, PAGE - 64, PAGE - 16, PAGE, HV_MAX_TRANSFER, 0x8000_0000, 0xffff_ffff]);
const len = boundaryU32([0, 1, 4, 8, 16, 24, 64, 4096, PAGE, HV_MAX_TRANSFER]);
const code = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...CODES) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x0800 }) },
  { weight: 1, arbitrary: fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }) },
);
const hostile: fc.Arbitrary<Step> = fc.record({
  who: fc.constantFrom(0 as const, 1 as const),
  code,
  inPtr: ptr,
  inLen: len,
  outPtr: ptr,
  outCap: len,
  data: fc.uint8Array({ maxLength: 48 }),
});

const u32le = (...values: number[]): Uint8Array => {
  const out = new Uint8Array(values.length * 4);
  values.forEach((v, i) => new DataView(out.buffer).setUint32(i * 4, v >>> 0, true));
  return out;
};
const u64le = (v: bigint): Uint8Array => {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, v, true);
  return out;
};

/** A well-formed input for each call code: so that calls get past the checks and reach their handlers. */
const wellFormedInput = (c: number): fc.Arbitrary<Uint8Array> => {
  switch (c) {
    case HvCall.EXIT:
      return fc.integer().map((v) => u32le(v));
    case HvCall.CONSOLE_READ:
      return fc.constantFrom(new Uint8Array(0), u32le(1), u32le(0), u32le(2));
    case HvCall.CLOCK_GET:
      return fc.constantFrom(u32le(0), u32le(1), u32le(2));
    case HvCall.INPUT_READ:
      return fc.nat({ max: 64 }).map((o) => u32le(o));
    case HvCall.BLOCK_READ:
    case HvCall.BLOCK_DISCARD:
      return fc.tuple(fc.bigInt({ min: 0n, max: 300n }), fc.integer({ min: 0, max: 17 }), fc.constantFrom(0, 1, 2)).map(([sector, count, flags]) => concat([u64le(sector), u32le(count, flags)]));
    case HvCall.BLOCK_WRITE:
      return fc.tuple(fc.bigInt({ min: 0n, max: 300n }), fc.integer({ min: 0, max: 2 }), fc.constantFrom(0, 1), fc.uint8Array({ maxLength: 16 })).map(([sector, count, flags, data]) => concat([u64le(sector), u32le(count, flags), data]));
    case HvCall.NET_SEND:
      return fc.tuple(fc.constantFrom(0, 1, 2, 3, 0xffff_ffff, 0x0a000002), fc.uint8Array({ maxLength: 32 })).map(([dst, payload]) => concat([u32le(dst), payload]));
    case HvCall.NET_RECV:
      return fc.constantFrom(new Uint8Array(0), u32le(1, 0), u32le(0, 0), u32le(1, 5));
    case HvCall.NET_POLL:
      return fc.constantFrom(new Uint8Array(0), u32le(0), u32le(3));
    default:
      return fc.uint8Array({ maxLength: 32 });
  }
};


/** A call whose windows lie inside memory and whose input is well formed (its length is the input's). */
const plausible: fc.Arbitrary<Step> = fc.constantFrom(...CODES).chain((c) =>
  fc.record({
    who: fc.constantFrom(0 as const, 1 as const),
    code: fc.constant(c),
    inPtr: fc.integer({ min: 0, max: PAGE - 20_000 }),
    data: wellFormedInput(c),
    outPtr: fc.integer({ min: 0, max: PAGE - 20_000 }),
    outCap: fc.oneof(fc.integer({ min: 0, max: 96 }), fc.constantFrom(4096, 16_384)),
  }).map((r) => ({ ...r, inLen: r.data.length })),
);

const step: fc.Arbitrary<Step> = fc.oneof(hostile, plausible);

export const input: fc.Arbitrary<Input> = fc.record({
  grant: fc.record({ console: fc.boolean(), clock: fc.boolean(), entropy: fc.boolean(), block: fc.boolean(), net: fc.boolean() }),
  consoleLine: fc.integer({ min: 16, max: 4096 }),
  mtu: fc.integer({ min: 64, max: 1500 }),
  args: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
  steps: fc.array(step, { minLength: 1, maxLength: 24 }),
});

/** One in-thread partition: its memory, dispatcher and the counter of calls it made. */
interface Side {
  readonly memory: WebAssembly.Memory;
  readonly call: (code: number, inPtr: number, inLen: number, outPtr: number, outCap: number) => number;
  readonly dispatcher: Dispatcher;
  readonly stats: SharedArrayBuffer;
  readonly canary: Uint8Array;
  /** The console's event ring, which the root drains (here: after every call). */
  readonly events: SharedRing;
  calls: number;
  ended: unknown;
  close(): void;
}

let images: BlockAttachment[] = [];
/** One open image per side for the whole session (opening one syncs it): its data carries over between inputs, as a disk's does. */
let blockImages: BlockImage[] = [];
let storage: Storage | null = null;
let dataDir = '';
let netSwitch: VirtualSwitch | null = null;
/**
 * One console event ring per side for the whole session (drained after every call, as the
 * root does), with room for the most lines one call can make (64 KiB of one-byte lines): a full
 * ring would make every further line wait EVENT_RING_WAIT_MS for a drain that, within one call,
 * cannot come. Made once: a megabyte per side per input was a good part of an input's cost.
 */
let eventRings: SharedRing[] = [];

function side(who: 0 | 1, input: Input): Side {
  const spec: DevicesSpec = {};
  const g = input.grant;
  if (g.console) spec.console = { maxLineBytes: input.consoleLine, linesPerSecond: 1_000_000 };
  if (g.clock) spec.clock = { resolutionMs: 1, deterministic: { startMs: 1000, stepMs: 3 } };
  if (g.entropy) spec.entropy = { seed: `side-${who}` };
  if (g.block) spec.block = { sizeMiB: 1, rateLimitMode: 'reject' };
  if (g.net) spec.net = { segment: who === 0 ? 'red' : 'blue', mtu: input.mtu };
  const devices = resolveDevices(spec);
  const statsSab = allocateStats();
  const stats = new Float64Array(statsSab);
  const events = eventRings[who]!;
  while (events.tryRead() !== null); // empty, as a fresh partition's
  const consoleIn = new SharedRing(SharedRing.allocate(1 << 10));
  consoleIn.tryWrite(InputKind.LINE, new TextEncoder().encode(`line for ${who}`));
  consoleIn.close(); // end of input: a blocking read returns instead of waiting forever
  const list: Device[] = [];
  const closers: (() => void)[] = [];
  if (devices.console) list.push(new ConsoleDevice(devices.console, events, consoleIn, stats));
  if (devices.clock) list.push(new ClockDevice(devices.clock));
  if (devices.entropy) list.push(new EntropyDevice(devices.entropy, stats));
  if (devices.block) {
    const a = images[who]!;
    list.push(new BlockDevice(devices.block, blockImages[who]!, stats, { sleep: () => {} }));
  }
  if (devices.net) {
    const nic = netSwitch!.attachNic(`side-${who}`, devices.net, () => {});
    const rx = new SharedRing(nic.init.port.rx);
    rx.close(); // as when the partition is being destroyed: a blocking receive returns
    list.push(new NetDevice(nic.init, { txWaitMs: 0 }));
    closers.push(() => nic.detach());
  }
  const memory = new GuestMemory();
  const dispatcher = new Dispatcher({ memory, devices: list, args: [...input.args], stats, onViolation: () => {}, violationsPerSecond: 1_000_000, sleep: () => {} });
  const instance = new WebAssembly.Instance(guestModule, { hv: { hypercall: dispatcher.hypercall } });
  const mem = instance.exports.memory as WebAssembly.Memory;
  memory.bind(mem);
  const call = instance.exports.call as Side['call'];
  const canary = new Uint8Array(16);
  for (let i = 0; i < 16; i++) canary[i] = 0xa0 + who * 0x10 + i; // distinct per side, not all zero
  return { memory: mem, call, dispatcher, stats: statsSab, canary, events, calls: 0, ended: null, close: () => {
    // The block device is not closed: it would close the session's image.
    for (const d of list) if (d.name !== 'block') d.close?.();
    for (const c of closers) c();
  } };
}

/** Whether `haystack` contains `needle`. */
function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(needle) >= 0;
}

/** Every device that takes input gets the canary once, from a fixed spot. */
function plantCanary(s: Side): void {
  const bytes = new Uint8Array(s.memory.buffer);
  bytes.set(s.canary, 0);
  const header = new Uint8Array(16); // BLOCK_WRITE: sector 0, count 1, flags 0
  new DataView(header.buffer).setUint32(8, 1, true);
  bytes.set(header, 64);
  for (let i = 0; i < 4096; i += 16) bytes.set(s.canary, 80 + i);
  const calls: [number, number, number][] = [
    [HvCall.CONSOLE_WRITE, 0, 16],
    [HvCall.CONSOLE_WRITE_ERR, 0, 16],
    [HvCall.BLOCK_WRITE, 64, 16 + 4096],
  ];
  for (const [code, at, n] of calls) {
    s.call(code, at, n, 0, 0);
    s.calls++;
  }
  paint(bytes);
}

/**
 * Fills guest memory with a non-zero pattern that holds neither canary: a stray write of zeros,
 * or an output window the host forgot to zero, then shows as a changed byte.
 */
function paint(bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = 0x01 + (i % 0x55);
}

function run(input: Input): void {
  const sides = [side(0, input), side(1, input)] as const;
  try {
    for (const s of sides) plantCanary(s);
    for (const st of input.steps) {
      const s = sides[st.who];
      const other = sides[1 - st.who]!;
      const mem = new Uint8Array(s.memory.buffer);
      if (st.inPtr < mem.length) mem.set(st.data.subarray(0, Math.min(st.data.length, mem.length - st.inPtr)), st.inPtr);
      const before = mem.slice();
      let ret: number | undefined;
      let thrown: unknown = null;
      s.calls++;
      try {
        ret = s.call(st.code, st.inPtr | 0, st.inLen | 0, st.outPtr | 0, st.outCap | 0);
      } catch (error) {
        thrown = error;
      }
      const what = () => `${st.who ? 'B' : 'A'} call 0x${(st.code >>> 0).toString(16)} in=(${st.inPtr},${st.inLen}) out=(${st.outPtr},${st.outCap})`;
      if (thrown !== null) {
        invariant(thrown instanceof GuestExit || thrown instanceof GuestAbort, () => `${what()} threw ${String(thrown)}`);
        invariant(s.ended === null || s.ended === thrown, () => `${what()}: a second, different ending after ${String(s.ended)}`);
        s.ended = thrown;
        invariant(Buffer.compare(mem, before) === 0, () => `${what()}: the ending call wrote guest memory`);
      } else {
        invariant(s.ended === null, () => `${what()} returned ${ret} after the guest's ending (not sticky)`);
        invariant(Number.isInteger(ret) && ret! >= -0x8000_0000 && ret! <= 0x7fff_ffff, () => `${what()} returned ${String(ret)}`);
        if (ret! < 0) {
          invariant(STATUSES.has(-ret!), () => `${what()} returned the undocumented status ${-ret!}`);
          invariant(Buffer.compare(mem, before) === 0, () => `${what()} failed with ${-ret!} but wrote guest memory`);
        } else {
          const from = Math.min(st.outPtr >>> 0, mem.length);
          const to = Math.min(from + (st.outCap >>> 0), mem.length);
          const same = (a: number, b: number) => Buffer.compare(mem.subarray(a, b), before.subarray(a, b)) === 0;
          invariant(same(0, from) && same(to, mem.length), () => `${what()} wrote outside its output window`);
          if (BYTE_COUNT_CALLS.has(st.code) && ret! <= st.outCap >>> 0 && to <= mem.length) {
            for (let i = from + ret!; i < to; i++) invariant(mem[i] === 0, () => `${what()} returned ${ret} but left byte ${i} of its window non-zero`);
          }
        }
      }
      while (s.events.tryRead() !== null); // as the root's event pump does
      invariant(!contains(new Uint8Array(s.memory.buffer), other.canary), () => `${what()}: the other partition's canary appeared in this one's memory`);
      const m = readMetrics(s.stats);
      invariant(m.hypercalls === s.calls, () => `${what()}: hypercalls counter ${m.hypercalls}, calls made ${s.calls}`);
      const sum = Object.values(m.hypercallsByCall).reduce((a, b) => a + b, 0);
      invariant(sum === m.hypercalls, () => `${what()}: per-call counters sum to ${sum}, total ${m.hypercalls}`);
    }
  } finally {
    for (const s of sides) s.close();
  }
}

export const hypercall: Target<Input> = {
  name: 'hypercall',
  surface: 'guest → host hypercalls: every code, every device, boundary windows, two partitions',
  input,
  async setup() {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-fuzz-'));
    storage = new Storage({ dataDir, masterKey: new Uint8Array(32).fill(7) });
    images = [await storage.attach('fuzz-a', 1), await storage.attach('fuzz-b', 1)];
    blockImages = images.map((a) => new BlockImage({ fd: a.fd, sectorCount: a.sectorCount, imageId: a.imageId, dataKey: Buffer.from(a.dataKey) }));
    netSwitch = new VirtualSwitch();
    eventRings = [new SharedRing(SharedRing.allocate(1 << 20)), new SharedRing(SharedRing.allocate(1 << 20))];
  },
  async teardown() {
    for (const image of blockImages) image.close();
    for (const a of images) await storage?.detach(a);
    netSwitch?.close();
    rmSync(dataDir, { recursive: true, force: true });
  },
  run,
};
