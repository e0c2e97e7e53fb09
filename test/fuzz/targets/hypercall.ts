/**
 * The guest → host hypercall surface, in-thread and fast. Two partitions (A and B), each the
 * production PartitionContext over real devices (see ../rig.ts): a real reactor guest whose `run`
 * export makes hypercall after hypercall through its `hv.hypercall` import, one instantiation
 * serving thousands of calls. An input is a random device configuration and a seed; the seed
 * expands into random calls (every assigned code, unassigned ones, pointers and lengths at and
 * around every boundary, well-formed inputs that reach the handlers), in batches alternating
 * between A and B. A partition is made afresh every REFRESH calls, and after its guest ended.
 * One iteration is one hypercall, with every invariant checked after it.
 *
 * Invariants, checked after every call:
 * - the result is an i32: ≥ 0, or a documented status negated; the only exceptions thrown are
 *   the guest's own ending (GuestExit, GuestAbort), and once thrown it is thrown again (sticky);
 * - a failed call leaves guest memory untouched; a successful one writes only inside its output
 *   window, and for calls that return a byte count, the window past that count is zeros (checked
 *   against a shadow copy of the memory the harness keeps up to date: one memcmp per call);
 * - nothing from the other partition shows up: A writes a random 16-byte canary to every device
 *   that keeps input (console, block), B's output windows never hold it, and the reverse;
 * - the counters add up: each call adds exactly one to its code's counter, and the total is the
 *   number of calls made;
 * - no call hangs (NoWaitBlocker), and no partition ends with ERR_INTERNAL.
 */
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { callName, HV_BLOCK_SECTOR_SIZE, HV_HYPERCALL, HV_MAX_TRANSFER, HvCall, HvStatus, statusName } from '../../../host/abi/codes.ts';
import type { WorkerInit } from '../../../host/channel/protocol.ts';
import { allocateStats, callStatSlot, readMetrics } from '../../../host/channel/stats.ts';
import { resolveDevices, type DevicesSpec } from '../../../host/devices/config.ts';
import { VirtualSwitch } from '../../../host/net/switch.ts';
import { issueCertificate } from '../../../host/security/guest-report.ts';
import { secretKeyFromSeed } from '../../../host/security/keys.ts';
import { blockInit, Storage, type BlockAttachment } from '../../../host/storage/storage.ts';
import { documentedStatuses } from '../../abi/abi-doc.ts';
import { concat } from '../../loader/bombs.mjs';
import { wat } from '../../loader/wat.ts';
import { invariant, scratchDir, type Target } from '../framework.ts';
import { edgeU32, Prng } from '../prng.ts';
import { driveSides, HarnessFinding, isGuestEnding, REFRESH, Rig, rings, WaitCut, type RigSide } from '../rig.ts';

const PAGE = 65536;
/** The statuses docs/ABI.md lets each call return ("Statuses by call"), by code; an unknown code may only be INVALID_CALL. */
const DOCUMENTED = new Map<number, Set<number>>([...documentedStatuses()].map(([name, statuses]) => [HvCall[name], new Set([...statuses].map((s) => HvStatus[s]))]));
const UNKNOWN_CALL = new Set<number>([HvStatus.INVALID_CALL]);
/** The calls that end the guest: drawn rarely (ENDING_ODDS), or a partition would rarely live past a few dozen calls. */
const ENDINGS: readonly number[] = [HvCall.EXIT, HvCall.ABORT];
const ENDING_ODDS = 1024;
const CODES = Object.values(HvCall).filter((c) => !ENDINGS.includes(c));
/** Calls whose success value is the number of bytes written at the start of the output window. */
const BYTE_COUNT_CALLS = new Set<number>([
  HvCall.DEVICE_LIST, HvCall.ARGS_GET, HvCall.INPUT_READ, HvCall.CONSOLE_READ, HvCall.CLOCK_GET, HvCall.ENTROPY_GET,
  HvCall.BLOCK_INFO, HvCall.BLOCK_READ, HvCall.NET_INFO, HvCall.NET_RECV,
]);

/** Where the guest reads its next call: u32 go (0: stop), code, in_ptr, in_len, out_ptr, out_cap. */
const DESC = PAGE - 24;
/**
 * The guest: `run` calls the hypercall its descriptor names until the descriptor says stop. The
 * harness rewrites the descriptor inside each call, after checking it.
 */
const GUEST = wat(`(module
  (import "hv" "hypercall" (func $hc (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (func (export "run") (result i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load (i32.const ${DESC}))))
        (drop (call $hc (i32.load (i32.const ${DESC + 4})) (i32.load (i32.const ${DESC + 8})) (i32.load (i32.const ${DESC + 12}))
                        (i32.load (i32.const ${DESC + 16})) (i32.load (i32.const ${DESC + 20}))))
        (br $next)))
    (i32.const 0)))`);
const guestModule = new WebAssembly.Module(GUEST as Uint8Array<ArrayBuffer>);

export interface Step {
  readonly code: number;
  readonly inPtr: number;
  readonly inLen: number;
  readonly outPtr: number;
  readonly outCap: number;
  /** Written at inPtr (as far as it fits) before the call: the call's input. */
  readonly data: Uint8Array;
}

export interface Input {
  readonly grant: { console: boolean; clock: boolean; entropy: boolean; block: boolean; net: boolean; attestation?: boolean };
  readonly consoleLine: number;
  readonly mtu: number;
  readonly args: readonly string[];
  /** Expands into the calls (prng.ts). */
  readonly seed: number;
  /** Calls to make, in all (both partitions). */
  readonly calls: number;
}

const ptr = edgeU32([0, 16, PAGE - 64, PAGE - 16, PAGE, HV_MAX_TRANSFER, 0x8000_0000, 0xffff_ffff]);
const len = edgeU32([0, 1, 4, 8, 16, 24, 64, 4096, PAGE, HV_MAX_TRANSFER]);

const u32le = (...values: number[]): Uint8Array => {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint32(i * 4, v >>> 0, true));
  return out;
};
const u64le = (v: bigint): Uint8Array => {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, v, true);
  return out;
};

/** A well-formed input for a call code: so that calls get past the checks and reach their handlers. */
function wellFormedInput(r: Prng, c: number): Uint8Array {
  switch (c) {
    case HvCall.EXIT:
      return u32le(r.u32());
    case HvCall.CONSOLE_READ:
      return r.pick([new Uint8Array(0), u32le(1), u32le(0), u32le(2)]);
    case HvCall.CLOCK_GET:
      return u32le(r.int(0, 2));
    case HvCall.INPUT_READ:
      return u32le(r.int(0, 64));
    case HvCall.BLOCK_READ:
      // Mostly what fits the window randomStep gives a read (count × sector), now and then past the most.
      return concat([u64le(BigInt(r.int(0, 300))), u32le(r.chance(7, 8) ? r.int(0, 3) : r.int(4, 17), r.int(0, 2))]);
    case HvCall.BLOCK_DISCARD:
      return concat([u64le(BigInt(r.int(0, 300))), u32le(r.int(0, 17), r.int(0, 2))]);
    case HvCall.BLOCK_WRITE: {
      // Whole sectors (a write carries count × sector bytes), or a few bytes short or over.
      const count = r.int(0, 2);
      const slack = r.chance(7, 8) ? 0 : r.int(-3, 3);
      return concat([u64le(BigInt(r.int(0, 300))), u32le(count, r.int(0, 1)), r.exactly(Math.max(0, count * HV_BLOCK_SECTOR_SIZE + slack))]);
    }
    case HvCall.NET_SEND:
      return concat([u32le(r.pick([0, 1, 2, 3, 0xffff_ffff, 0x0a000002])), r.bytes(32)]);
    case HvCall.NET_RECV:
      return r.pick([new Uint8Array(0), u32le(1, 0), u32le(0, 0), u32le(1, 5)]);
    case HvCall.NET_POLL:
      return r.pick([new Uint8Array(0), u32le(0), u32le(3)]);
    case HvCall.ATTEST_REPORT:
      // 64 bytes of report data, then a nonce of up to HV_ATTEST_MAX_NONCE (and a little past it).
      return concat([r.bytes(64), r.bytes(72)]);
    default:
      return r.bytes(32);
  }
}

/** One random call: hostile (any code, boundary windows) or plausible (in-bounds windows, well-formed input). */
export function randomStep(r: Prng): Step {
  const ending = r.chance(1, ENDING_ODDS);
  if (r.chance(1, 2)) {
    const w = r.int(0, 7);
    const code = ending ? r.pick(ENDINGS) : w < 6 ? r.pick(CODES) : w < 7 ? r.int(0, 0x0800) : r.u32() | 0;
    return { code, inPtr: ptr(r), inLen: len(r), outPtr: ptr(r), outCap: len(r), data: r.bytes(48) };
  }
  const code = ending ? r.pick(ENDINGS) : r.pick(CODES);
  const data = wellFormedInput(r, code);
  // A block read's window is its sectors (count × sector), mostly; other calls' a few bytes or a few KiB.
  const sectors = code === HvCall.BLOCK_READ && data.length >= 12 ? data[8]! : -1;
  const outCap = sectors >= 0 && r.chance(3, 4) ? Math.min(sectors, 4) * HV_BLOCK_SECTOR_SIZE : r.chance(3, 4) ? r.int(0, 96) : r.pick([4096, 16_384]);
  return { code, inPtr: r.int(0, PAGE - 20_000), inLen: data.length, outPtr: r.int(0, PAGE - 20_000), outCap, data };
}

export const input: fc.Arbitrary<Input> = fc.record({
  grant: fc.record({ console: fc.boolean(), clock: fc.boolean(), entropy: fc.boolean(), block: fc.boolean(), net: fc.boolean(), attestation: fc.boolean() }),
  consoleLine: fc.integer({ min: 16, max: 4096 }),
  mtu: fc.integer({ min: 64, max: 1500 }),
  args: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
  seed: fc.integer(),
  calls: fc.integer({ min: 1, max: 3 * REFRESH }),
});

/**
 * A fault a test injects after every call (the harness's own tests: each invariant must catch
 * its fault, or the fuzzer could pass while blind): gets the guest's memory, the call and its
 * result, the other side's canary; returns the result to check in place of the real one.
 */
export const inject: { fault: ((mem: Uint8Array, st: Step, ret: number, otherCanary: Uint8Array) => number) | null } = { fault: null };

/** The host key that certifies the partitions' attestation keys. */
const HOST_KEY = secretKeyFromSeed(new Uint8Array(32).fill(0x42));

/** Session-wide back-ends: one block image per side (a disk's data carries over), one switch. */
let images: BlockAttachment[] = [];
let storage: Storage | null = null;
let dataDir = '';
let netSwitch: VirtualSwitch | null = null;

/** One side (A or B): its live partition, the shadow of its memory, and the calls it is to make. */
class Side implements RigSide<Step> {
  rig: Rig | null = null;
  private mem = new Uint8Array(0);
  private shadow = new Uint8Array(PAGE);
  private readonly expected = new Map<number, number>();
  private total = 0;
  /** Calls the current partition served. */
  served = 0;
  /** Calls made and checked, over all of this side's partitions. */
  made = 0;
  private queue: Step[] = [];
  private pos = 0;
  private planting = false;
  readonly canary = new Uint8Array(16);

  constructor(readonly who: 0 | 1, private readonly input: Input) {
    for (let i = 0; i < 16; i++) this.canary[i] = 0xa0 + who * 0x10 + i; // distinct per side, not all zero
  }

  other!: Side;

  /** A fresh partition for this side's configuration, with its canary planted and its memory painted. */
  fresh(): void {
    this.rig?.close();
    const g = this.input.grant;
    const who = this.who;
    const spec: DevicesSpec = {};
    if (g.console) spec.console = { maxLineBytes: this.input.consoleLine, linesPerSecond: 1_000_000 };
    if (g.clock) spec.clock = { resolutionMs: 1, deterministic: { startMs: 1000, stepMs: 3 } };
    if (g.entropy) spec.entropy = { seed: `side-${who}` };
    if (g.block) spec.block = { sizeMiB: 1, rateLimitMode: 'reject' };
    if (g.net) spec.net = { segment: who === 0 ? 'red' : 'blue', mtu: this.input.mtu };
    if (g.attestation) spec.attestation = true;
    const devices = resolveDevices(spec);
    const nic = devices.net ? netSwitch!.attachNic(`side-${who}`, devices.net, () => {}) : null;
    const init: WorkerInit = {
      name: `fuzz-${who}`,
      module: guestModule,
      args: [...this.input.args],
      devices,
      stats: allocateStats(),
      events: rings.events(1 << 18),
      input: rings.input(`line for ${who}`),
      stdio: new SharedArrayBuffer(8),
      violationsPerSecond: 100, // the Hypervisor's default: most reports of a hostile stream are counted, not sent
      kind: 'reactor',
      calls: rings.calls(),
      maxInputBytes: 0,
      maxOutputBytes: HV_MAX_TRANSFER,
      spinMicros: 0,
      wasi: null,
      fuel: null,
      cpu: null,
      hypercallRate: null,
      block: devices.block ? blockInit(images[who]!) : null,
      net: nic?.init ?? null,
      // As the security monitor issues it when the device is granted: a partition key and a certificate signed by the host key.
      attestation: devices.attestation ? issueCertificate(HOST_KEY, { name: `fuzz-${who}`, measurement: 'ab'.repeat(32), specHash: 'cd'.repeat(32), signerHash: null, runtimeRegister: '00'.repeat(32), issuedMs: 1_700_000_000_000 }) : null,
    };
    this.expected.clear();
    this.total = 0;
    this.served = 0;
    this.rig = new Rig(init, (name, fn) => (name === HV_HYPERCALL ? this.hook(fn as unknown as Hypercall) : fn) as never, () => nic?.detach());
    this.mem = new Uint8Array(this.rig.memory!.buffer);
    this.plant();
  }

  /** Every device that keeps input gets the canary once, from a fixed spot; then memory is painted. */
  private plant(): void {
    const mem = this.mem;
    mem.set(this.canary, 0);
    const header = new Uint8Array(16); // BLOCK_WRITE: sector 0, count 1, flags 0
    new DataView(header.buffer).setUint32(8, 1, true);
    mem.set(header, 64);
    for (let i = 0; i < 4096; i += 16) mem.set(this.canary, 80 + i);
    this.planting = true;
    const none = new Uint8Array(0);
    this.run([
      { code: HvCall.CONSOLE_WRITE, inPtr: 0, inLen: 16, outPtr: 0, outCap: 0, data: none },
      { code: HvCall.CONSOLE_WRITE_ERR, inPtr: 0, inLen: 16, outPtr: 0, outCap: 0, data: none },
      { code: HvCall.BLOCK_WRITE, inPtr: 64, inLen: 16 + 4096, outPtr: 0, outCap: 0, data: none },
    ]);
    this.planting = false;
    // A non-zero pattern that holds neither canary: a stray write of zeros, or an output window the
    // host forgot to zero, then shows as a changed byte.
    for (let i = 0; i < mem.length; i++) mem[i] = 0x01 + (i % 0x55);
    this.shadow.set(mem);
  }

  /** Runs `steps` in one batch of the guest's `run`; returns false when the partition ended. */
  run(steps: Step[]): boolean {
    this.queue = steps;
    this.pos = 0;
    this.prepare();
    return this.rig!.batch();
  }

  /** Writes the next step's input and descriptor (or stop) into guest memory and its shadow. */
  private prepare(): void {
    const st = this.queue[this.pos];
    const mem = this.mem;
    if (st === undefined) {
      writeU32(mem, DESC, 0);
      writeU32(this.shadow, DESC, 0);
      return;
    }
    if (st.inPtr < PAGE && st.data.length > 0) {
      const data = st.data.subarray(0, Math.min(st.data.length, PAGE - st.inPtr));
      mem.set(data, st.inPtr);
      this.shadow.set(data, st.inPtr);
    }
    for (const target of [mem, this.shadow]) {
      writeU32(target, DESC, 1);
      writeU32(target, DESC + 4, st.code);
      writeU32(target, DESC + 8, st.inPtr);
      writeU32(target, DESC + 12, st.inLen);
      writeU32(target, DESC + 16, st.outPtr);
      writeU32(target, DESC + 20, st.outCap);
    }
  }

  /** The harness around the production `hv.hypercall`: the call, then its invariants, then the next descriptor. */
  private hook(hypercall: Hypercall): Hypercall {
    return (code, inPtr, inLen, outPtr, outCap) => {
      const st = this.queue[this.pos]!;
      const rig = this.rig!;
      rig.blocker.waits = 0;
      if (rig.blocker.cut) throw new WaitCut(); // the partition is being ended
      let ret = 0;
      let thrown: unknown = null;
      try {
        ret = hypercall(code, inPtr, inLen, outPtr, outCap);
      } catch (error) {
        thrown = error;
      }
      if (rig.blocker.cut) {
        // The call would have waited long: it was cut short, and the partition ends (not a finding).
        this.made++;
        this.served++;
        throw thrown ?? new WaitCut();
      }
      this.total++;
      this.count(code);
      if (inject.fault !== null && !this.planting && thrown === null) ret = inject.fault(this.mem, st, ret, this.other.canary);
      if (!this.planting) {
        try {
          this.check(st, { code, inPtr, inLen, outPtr, outCap }, ret, thrown, hypercall);
        } catch (finding) {
          rig.finding = finding;
          throw finding;
        }
      } else if (thrown !== null) {
        rig.finding = new HarnessFinding(`planting the canary threw ${describe(thrown)}`);
        throw rig.finding;
      }
      this.pos++;
      if (thrown !== null) throw thrown;
      this.prepare();
      return ret;
    };
  }

  private check(st: Step, got: Omit<Step, 'data'>, ret: number, thrown: unknown, hypercall: Hypercall): void {
    const what = () => `${this.who ? 'B' : 'A'} call 0x${(st.code >>> 0).toString(16)} in=(${st.inPtr},${st.inLen}) out=(${st.outPtr},${st.outCap})`;
    invariant((got.code | 0) === (st.code | 0) && (got.inPtr | 0) === (st.inPtr | 0) && (got.inLen | 0) === (st.inLen | 0) && (got.outPtr | 0) === (st.outPtr | 0) && (got.outCap | 0) === (st.outCap | 0), () => `${what()}: the guest passed ${JSON.stringify(got)} (harness out of step)`);
    const mem = this.mem;
    const shadow = this.shadow;
    this.made++;
    this.served++;
    const slot = callStatSlot(st.code);
    invariant(!this.rig!.blocker.hung, () => `${what()} hung: it waited again and again with its deadline passed`);
    if (thrown !== null) {
      invariant(isGuestEnding(thrown), () => `${what()} threw ${describe(thrown)}`);
      invariant(Buffer.compare(mem, shadow) === 0, () => `${what()}: the ending call wrote guest memory`);
      // Sticky: the next call throws the same ending, and writes nothing.
      let again: unknown = null;
      try {
        hypercall(st.code, st.inPtr, st.inLen, st.outPtr, st.outCap);
      } catch (error) {
        again = error;
      }
      this.total++;
      this.count(st.code);
      invariant(again === thrown, () => `${what()}: after ${describe(thrown)} the next call ${again === null ? 'returned' : `threw ${describe(again)}`} (not sticky)`);
    } else {
      invariant(Number.isInteger(ret) && ret >= -0x8000_0000 && ret <= 0x7fff_ffff, () => `${what()} returned ${String(ret)}`);
      if (ret < 0) {
        invariant((DOCUMENTED.get(st.code >>> 0) ?? UNKNOWN_CALL).has(-ret), () => `${what()} returned the undocumented status ${-ret} (${statusName(-ret)}: not in docs/ABI.md's row for ${callName(st.code)})`);
        invariant(Buffer.compare(mem, shadow) === 0, () => `${what()} failed with ${-ret} but wrote guest memory`);
      } else {
        const from = Math.min(st.outPtr >>> 0, PAGE);
        const to = Math.min(from + (st.outCap >>> 0), PAGE);
        invariant(Buffer.compare(mem.subarray(0, from), shadow.subarray(0, from)) === 0 && Buffer.compare(mem.subarray(to), shadow.subarray(to)) === 0, () => `${what()} wrote outside its output window`);
        if (BYTE_COUNT_CALLS.has(st.code) && ret <= st.outCap >>> 0) {
          for (let i = from + ret; i < to; i++) invariant(mem[i] === 0, () => `${what()} returned ${ret} but left byte ${i} of its window non-zero`);
        }
        if (to > from) {
          shadow.set(mem.subarray(from, to), from);
          const seen = Buffer.from(mem.buffer, Math.max(0, from - 15), to - Math.max(0, from - 15));
          invariant(seen.indexOf(this.other.canary) < 0, () => `${what()}: the other partition's canary appeared in this one's memory`);
        }
      }
    }
    const stats = this.rig!.stats;
    invariant(stats[slot] === this.expected.get(slot), () => `${what()}: its counter is ${stats[slot]}, calls made ${this.expected.get(slot)}`);
    if ((this.total & 255) === 0) {
      const m = readMetrics(stats.buffer as SharedArrayBuffer);
      invariant(m.hypercalls === this.total, () => `${what()}: hypercalls counter ${m.hypercalls}, calls made ${this.total}`);
    }
  }

  /** Counts a call the partition's counters must show. */
  private count(code: number): void {
    const slot = callStatSlot(code);
    this.expected.set(slot, (this.expected.get(slot) ?? 0) + 1);
  }

  close(): void {
    this.rig?.close();
    this.rig = null;
  }
}

type Hypercall = (code: number, inPtr: number, inLen: number, outPtr: number, outCap: number) => number;

function writeU32(bytes: Uint8Array, at: number, v: number): void {
  bytes[at] = v & 0xff;
  bytes[at + 1] = (v >>> 8) & 0xff;
  bytes[at + 2] = (v >>> 16) & 0xff;
  bytes[at + 3] = (v >>> 24) & 0xff;
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

/** Makes `input.calls` calls, in batches on A and B; returns how many were made and checked. */
function run(input: Input): Promise<number> {
  const a = new Side(0, input);
  const b = new Side(1, input);
  a.other = b;
  b.other = a;
  // The switch's pumps run between batches: frames reach the other side's NIC, if allowed.
  const pump = input.grant.net ? (batch: number) => ((batch & 7) === 0 ? new Promise<void>((resolve) => setImmediate(resolve)) : undefined) : undefined;
  return driveSides([a, b], input.seed, input.calls, randomStep, pump);
}

export const hypercall: Target<Input> = {
  name: 'hypercall',
  surface: 'guest → host hypercalls: every code, every device, boundary windows, two reusable partitions',
  input,
  async setup() {
    dataDir = mkdtempSync(path.join(scratchDir(), 'wasmvisor-fuzz-'));
    storage = new Storage({ dataDir, masterKey: new Uint8Array(32).fill(7) });
    images = [await storage.attach('fuzz-a', 1), await storage.attach('fuzz-b', 1)];
    netSwitch = new VirtualSwitch();
  },
  async teardown() {
    for (const a of images) await storage?.detach(a);
    netSwitch?.close();
    rmSync(dataDir, { recursive: true, force: true });
  },
  run,
};
