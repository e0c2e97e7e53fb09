/**
 * docs/ABI.md's "Statuses by call", machine-checked call by call. The test reads the table (each
 * call's accepted `in_len`, needed `out_cap` and statuses; abi-doc.ts) and drives every call from
 * a real guest: the production PartitionContext over real devices (a real encrypted block image,
 * real NICs on a real switch, a host-signed attestation certificate), built as the fuzzers build
 * it (test/fuzz/rig.ts), whose `run` export makes one hypercall through its `hv.hypercall` import
 * with the arguments the test writes into its memory. Then:
 *
 * (a) every status a call returned, over targeted inputs and a sweep of hostile windows (pointers
 *     at 0, unaligned, at and one past the end of memory, wrapping; lengths 0, 1, the maximum and
 *     one past it, 2^32 - 1), is one the doc lists for it (its row, or the statuses every call has);
 * (b) every status the doc lists for a call was returned by it here (none is out of reach);
 * (c) each row's bounds are the ones enforced: every `in_len` at and around each documented edge
 *     (accepted, or refused with the documented status), every `out_cap` at its minimum (accepted)
 *     and one below (BUFFER_TOO_SMALL), each window ending exactly at the end of memory (accepted)
 *     and one byte further (INVALID_ADDRESS), HV_MAX_TRANSFER and one past it.
 *
 * Nothing here waits: the rig's blocker turns every wait into "now" (a blocking call that found
 * nothing answers at once), so the file runs in about a second.
 */
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HV_BLOCK_HEADER_SIZE,
  HV_BLOCK_MAX_READ_SECTORS,
  HV_BLOCK_MAX_WRITE_SECTORS,
  HV_BLOCK_SECTOR_SIZE,
  HV_HYPERCALL,
  HV_MAX_TRANSFER,
  HV_NET_BROADCAST,
  HvCall,
  HvStatus,
  type HvCallName,
  type HvStatusName,
} from '../../host/abi/codes.ts';
import { CALL_DEVICE } from '../../host/abi/dispatcher.ts';
import { InputKind, type WorkerInit, type WorkerOutcome } from '../../host/channel/protocol.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { Errno } from '../../host/wasi/errno.ts';
import { allocateStats, Stat } from '../../host/channel/stats.ts';
import { resolveDevices, type DevicesSpec } from '../../host/devices/config.ts';
import { ConsoleOutput } from '../../host/devices/console.ts';
import type { ResolvedRateLimit } from '../../host/limits/rate-limiter.ts';
import { MAX_INPUT_LINE_BYTES } from '../../host/limits/sizes.ts';
import { VirtualSwitch, type NicAttachment } from '../../host/net/switch.ts';
import { issueCertificate } from '../../host/security/guest-report.ts';
import { secretKeyFromSeed } from '../../host/security/keys.ts';
import { dataOffset } from '../../host/storage/image.ts';
import { blockInit, Storage, type BlockAttachment } from '../../host/storage/storage.ts';
import { Rig, rings } from '../fuzz/rig.ts';
import { wat } from '../loader/wat.ts';
import { ABI_DOC, callTable, documentedStatuses, inputRule, outputNeed, section, statusTable, statusesIn } from './abi-doc.ts';

const PAGE = 65536;
/** Where `run` reads its call: u32 code, in_ptr, in_len, out_ptr, out_cap; it stores the result after them. */
const DESC = PAGE - 64;
const RESULT = DESC + 20;
/** Where `_initialize` stores what INPUT_SIZE, INPUT_READ and OUTPUT_WRITE returned outside a host call. */
const BOOT = PAGE - 32;
const GUEST = new WebAssembly.Module(
  wat(`(module
  (import "hv" "hypercall" (func $hc (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (func (export "_initialize")
    (i32.store (i32.const ${BOOT}) (call $hc (i32.const ${HvCall.INPUT_SIZE}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
    (i32.store (i32.const ${BOOT + 4}) (call $hc (i32.const ${HvCall.INPUT_READ}) (i32.const 0) (i32.const 0) (i32.const 256) (i32.const 16)))
    (i32.store (i32.const ${BOOT + 8}) (call $hc (i32.const ${HvCall.OUTPUT_WRITE}) (i32.const 256) (i32.const 1) (i32.const 0) (i32.const 0))))
  (func (export "run") (result i32)
    (i32.store (i32.const ${RESULT})
      (call $hc (i32.load (i32.const ${DESC})) (i32.load (i32.const ${DESC + 4})) (i32.load (i32.const ${DESC + 8}))
                (i32.load (i32.const ${DESC + 12})) (i32.load (i32.const ${DESC + 16}))))
    (i32.const 0)))`) as Uint8Array<ArrayBuffer>,
);
/** The call codes of the ABI, by name. */
const CALLS = Object.keys(HvCall) as HvCallName[];
const NAMES = new Map<number, HvCallName>(CALLS.map((n) => [HvCall[n], n]));
const name = (code: number): HvCallName | undefined => NAMES.get(code >>> 0);
const STATUSES = new Map<number, HvStatusName>((Object.keys(HvStatus) as HvStatusName[]).map((k) => [-HvStatus[k], k]));
const statusOf = (ret: number): HvStatusName | undefined => STATUSES.get(ret);
const status = (s: HvStatusName): number => -HvStatus[s];
const NET_MTU = 256;
const LINE = 'the queued line';
const HOST_KEY = secretKeyFromSeed(new Uint8Array(32).fill(0x42));

/** What the calls returned: call -> status -> the first case that provoked it. */
const seen = new Map<HvCallName, Map<HvStatusName, string>>();
/** Unknown codes -> what they returned. */
const unknownSeen = new Set<HvStatusName>();
let scenario = '';
function record(code: number, ret: number, what: () => string): void {
  if (ret >= 0) return;
  const s = statusOf(ret);
  if (s === undefined) throw new Error(`${what()} returned ${ret}, which is no status at all`);
  const n = name(code);
  if (n === undefined) {
    unknownSeen.add(s);
    return;
  }
  let m = seen.get(n);
  if (m === undefined) seen.set(n, (m = new Map()));
  if (!m.has(s)) m.set(s, `${scenario}: ${what()}`);
}

/** The call's guest ended (EXIT, ABORT): what `call` returns then. */
const ENDED = 'ended';
type Result = number | typeof ENDED;

let storage: Storage;
let dataDir: string;
let sw: VirtualSwitch;
const attachments: BlockAttachment[] = [];
const fds: number[] = [];
const guests: Guest[] = [];

interface GuestOptions {
  /** Devices granted (resolved like a spec). Default: every device. */
  devices?: DevicesSpec;
  /** The console's input: one line queued and more to come (default), ended, or these bytes and then its end. */
  input?: 'line' | 'ended' | Uint8Array;
  hypercallRate?: ResolvedRateLimit | null;
  /** The block device's back end: a fresh image (default), or `fd` in place of its file. */
  blockFd?: (attachment: BlockAttachment) => number;
  maxOutputBytes?: number;
  args?: string[];
}

const ALL: DevicesSpec = {
  console: { linesPerSecond: 1_000_000 },
  clock: { resolutionMs: 1 },
  entropy: { seed: 'statuses' },
  block: { sizeMiB: 1 },
  net: { segment: 'lan', mtu: NET_MTU },
  attestation: true,
};

/** One partition: a real guest on real devices, in this thread. */
class Guest {
  readonly rig: Rig;
  readonly mem: Uint8Array;
  readonly console: ConsoleOutput | null;
  readonly nic: NicAttachment | null;
  readonly devices: number;

  constructor(options: GuestOptions, attachment: BlockAttachment | null) {
    const devices = resolveDevices(options.devices ?? ALL);
    this.devices = Object.values(devices).filter((d) => d !== null && d !== undefined).length;
    const nic = devices.net ? sw.attachNic(`g${guests.length}`, devices.net, () => {}) : null;
    this.nic = nic;
    const input = SharedRing.allocate(1 << 18);
    const ring = new SharedRing(input);
    const given = options.input ?? 'line';
    if (given === 'line') ring.tryWrite(InputKind.LINE, new TextEncoder().encode(LINE));
    if (given instanceof Uint8Array) for (let at = 0; at < given.length; at += 4096) ring.tryWrite(InputKind.BYTES, given.subarray(at, at + 4096));
    if (given === 'ended' || given instanceof Uint8Array) ring.close();
    const stdio = new SharedArrayBuffer(8);
    const block = attachment === null ? null : { ...blockInit(attachment), ...(options.blockFd ? { fd: options.blockFd(attachment) } : {}) };
    const init: WorkerInit = {
      name: `statuses-${guests.length}`,
      module: GUEST,
      args: options.args ?? ['statuses', 'one', 'two'],
      devices,
      stats: allocateStats(),
      events: rings.events(1 << 18),
      input,
      stdio,
      violationsPerSecond: 100,
      kind: 'reactor',
      calls: rings.calls(),
      maxInputBytes: 1024,
      maxOutputBytes: options.maxOutputBytes ?? HV_MAX_TRANSFER,
      spinMicros: 0,
      wasi: null,
      fuel: null,
      cpu: null,
      hypercallRate: options.hypercallRate ?? null,
      block,
      net: nic?.init ?? null,
      attestation: devices.attestation
        ? issueCertificate(HOST_KEY, { name: 'statuses', measurement: 'ab'.repeat(32), specHash: 'cd'.repeat(32), signerHash: null, runtimeRegister: '00'.repeat(32), issuedMs: 1_700_000_000_000 })
        : null,
    };
    // The root's side of the console's output state: its reader can go away (END_OF_STREAM).
    this.console = devices.console ? new ConsoleOutput(stdio, devices.console.maxLineBytes, { output() {}, wantsLines: () => false, line() {}, dropped() {}, resume() {} }) : null;
    this.rig = new Rig(init, (_name, fn) => fn, () => nic?.detach());
    this.mem = new Uint8Array(this.rig.memory!.buffer);
    guests.push(this);
  }

  get ended(): WorkerOutcome | null {
    return this.rig.outcome;
  }

  /** What `_initialize` got from INPUT_SIZE, INPUT_READ and OUTPUT_WRITE (outside any host call). */
  boot(): number[] {
    const v = new DataView(this.mem.buffer);
    return [0, 4, 8].map((o) => v.getInt32(BOOT + o, true));
  }

  /**
   * Makes one hypercall from the guest: `data` is written at in_ptr first (as far as memory
   * goes), `callInput` is the host call's input. Records a failure's status under the call.
   */
  call(code: number, inPtr = 0, inLen = 0, outPtr = 0, outCap = 0, data?: Uint8Array, callInput?: Uint8Array): Result {
    if (this.rig.outcome !== null) throw new Error(`${scenario}: the guest already ended (${JSON.stringify(this.rig.outcome)})`);
    const mem = this.mem;
    if (data !== undefined && inPtr >>> 0 < PAGE) mem.set(data.subarray(0, PAGE - (inPtr >>> 0)), inPtr >>> 0);
    const v = new DataView(mem.buffer);
    [code, inPtr, inLen, outPtr, outCap].forEach((x, i) => v.setUint32(DESC + 4 * i, x >>> 0, true));
    v.setInt32(RESULT, 0x7eadbeef, true);
    // The guest's bytes the output window covers (short of the descriptor, the test's own scratch).
    const from = Math.min(outPtr >>> 0, DESC);
    const before = mem.slice(from, Math.min(from + (outCap >>> 0), DESC));
    this.rig.batch(callInput);
    if (this.rig.outcome !== null) return ENDED;
    const ret = v.getInt32(RESULT, true);
    if (ret === 0x7eadbeef) throw new Error(`${scenario}: call 0x${(code >>> 0).toString(16)} returned nothing`);
    // A failed call writes nothing.
    if (ret < 0 && Buffer.compare(before, mem.subarray(from, from + before.length)) !== 0) throw new Error(`${scenario}: call 0x${(code >>> 0).toString(16)} failed with ${ret} but wrote its output window`);
    if (ret < 0) record(code, ret, () => `${name(code) ?? `0x${(code >>> 0).toString(16)}`}(in ${inPtr >>> 0}+${inLen >>> 0}, out ${outPtr >>> 0}+${outCap >>> 0})`);
    return ret;
  }

  close(): void {
    this.rig.close();
  }
}

async function guest(options: GuestOptions = {}): Promise<Guest> {
  const spec = options.devices ?? ALL;
  const attachment = spec.block ? await storage.attach(`statuses-${attachments.length}`, spec.block.sizeMiB) : null;
  if (attachment) attachments.push(attachment);
  return new Guest(options, attachment);
}

const u32 = (...values: number[]): Uint8Array => {
  const out = new Uint8Array(values.length * 4);
  values.forEach((x, i) => new DataView(out.buffer).setUint32(i * 4, x >>> 0, true));
  return out;
};
/** A block request header: sector, count, flags. */
const header = (sector: number, count: number, flags = 0): Uint8Array => {
  const out = new Uint8Array(HV_BLOCK_HEADER_SIZE);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, count, true);
  v.setUint32(12, flags, true);
  return out;
};
const zeros = (n: number) => new Uint8Array(n);

/**
 * An input of `length` bytes whose contents are valid for the call, so that only its length
 * decides: reads that could wait are non-blocking, block requests name sector 0 and as many
 * sectors as the length carries, a send goes to `dst`.
 */
function validInput(call: HvCallName, length: number, dst = 0): Uint8Array {
  const data = zeros(length);
  const v = new DataView(data.buffer);
  switch (call) {
    case 'CONSOLE_READ':
    case 'CONSOLE_STREAM_READ':
    case 'NET_RECV':
      if (length >= 4) v.setUint32(0, 1, true); // non-blocking; NET_RECV's timeout 0
      break;
    case 'BLOCK_READ':
    case 'BLOCK_DISCARD':
      if (length >= 12) v.setUint32(8, 1, true);
      break;
    case 'BLOCK_WRITE':
      if (length >= 12) v.setUint32(8, Math.max(1, Math.floor((length - HV_BLOCK_HEADER_SIZE) / HV_BLOCK_SECTOR_SIZE)), true);
      break;
    case 'NET_SEND':
    case 'NET_TRY_SEND':
      if (length >= 4) v.setUint32(0, dst, true);
      break;
    default:
  }
  return data;
}

const doc = statusTable();
const countMax = (() => {
  const m = /`count` is 1 to (\d+) for a read or discard,\s+1 to (\d+) for a\s+write/.exec(section('### Statuses by call'));
  if (!m) throw new Error('docs/ABI.md: "Statuses by call" no longer states the sector counts');
  return { read: Number(m[1]), write: Number(m[2]) };
})();
const maxTransfer = Number(/\*\*`HV_MAX_TRANSFER` = (\d+)\*\*/.exec(ABI_DOC)?.[1]);
const ruleOf = (call: HvCallName) => inputRule(doc.get(call)!.inLen, maxTransfer, { MTU: NET_MTU, maxCount: call === 'BLOCK_WRITE' ? countMax.write : countMax.read });

const DOCUMENTED = documentedStatuses();
const documented = (call: HvCallName): Set<HvStatusName> => DOCUMENTED.get(call)!;

beforeAll(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'wv-statuses-'));
  storage = new Storage({ dataDir, masterKey: new Uint8Array(32).fill(9) });
  sw = new VirtualSwitch();
});
afterAll(async () => {
  for (const g of guests) g.close();
  for (const a of attachments) await storage.detach(a);
  for (const fd of fds) closeSync(fd);
  sw.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('docs/ABI.md "Statuses by call" is the contract the host keeps', () => {
  it('lists every call once, with what the calls table says each returns', () => {
    expect([...doc.keys()].sort()).toEqual([...CALLS].sort());
    expect(maxTransfer).toBe(HV_MAX_TRANSFER);
    expect(countMax).toEqual({ read: HV_BLOCK_MAX_READ_SECTORS, write: HV_BLOCK_MAX_WRITE_SECTORS });
    expect(section('### Statuses by call')).toMatch(/\*\*every call\*\* but `ABORT` can return `INVALID_ADDRESS` and `TOO_LARGE`[\s\S]*?every call\s+but `EXIT` and `ABORT` `RATE_LIMITED`[\s\S]*?every\s+call of a device `ACCESS_DENIED`/);
    for (const row of callTable()) {
      for (const s of statusesIn(row.returns)) expect(documented(row.name), `${row.name}: the calls table names ${s}`).toContain(s);
    }
  });

  it('outside a host call, INPUT_SIZE, INPUT_READ and OUTPUT_WRITE are NOT_IN_CALL', async () => {
    scenario = 'in _initialize';
    const g = await guest({ devices: {} });
    const [size, read, write] = g.boot();
    expect([size, read, write]).toEqual([status('NOT_IN_CALL'), status('NOT_IN_CALL'), status('NOT_IN_CALL')]);
    record(HvCall.INPUT_SIZE, size!, () => 'INPUT_SIZE()');
    record(HvCall.INPUT_READ, read!, () => 'INPUT_READ(out 256+16)');
    record(HvCall.OUTPUT_WRITE, write!, () => 'OUTPUT_WRITE(in 256+1)');
    // Inside one, they work.
    expect(g.call(HvCall.INPUT_SIZE, 0, 0, 0, 0, undefined, new TextEncoder().encode('abc'))).toBe(3);
    g.close();
  });

  it('a device that is not granted is ACCESS_DENIED, before its windows are looked at', async () => {
    scenario = 'no device granted';
    const g = await guest({ devices: {} });
    for (const [code] of CALL_DEVICE) {
      expect(g.call(code, 0, 0, 0, 0), name(code)).toBe(status('ACCESS_DENIED'));
      expect(g.call(code, PAGE, 1, 0xffff_fff0, HV_MAX_TRANSFER + 1), name(code)).toBe(status('ACCESS_DENIED'));
    }
    g.close();
  });

  it('the hypercall rate limit refuses every call but EXIT and ABORT (RATE_LIMITED), before the device grant', async () => {
    scenario = 'limits.hypercallRate spent';
    // One call's worth of tokens, refilled once in 1000 s: _initialize's first call takes it.
    const g = await guest({ devices: {}, hypercallRate: { bytes: null, ops: { perSecond: 0.001, burst: 1, oneTimeBurst: 0 }, mode: 'reject' } });
    for (const n of CALLS) {
      if (n === 'EXIT' || n === 'ABORT') continue;
      expect(g.call(HvCall[n], 0, 0, 0, 0), n).toBe(status('RATE_LIMITED'));
    }
    for (const code of [0x0009, 0x0106, 0x0800, 0xffff_ffff]) expect(g.call(code), `unknown 0x${code.toString(16)}`).toBe(status('RATE_LIMITED'));
    // EXIT passes the limit: a guest can always end.
    expect(g.call(HvCall.EXIT, 0, 3, 0, 0)).toBe(status('INVALID_ARGUMENT'));
    expect(g.call(HvCall.EXIT, 0, 4, 0, 0, u32(7))).toBe(ENDED);
    expect(g.ended).toEqual({ kind: 'exit', code: 7 });
    const h = await guest({ devices: {}, hypercallRate: { bytes: null, ops: { perSecond: 0.001, burst: 1, oneTimeBurst: 0 }, mode: 'reject' } });
    expect(h.call(HvCall.ABORT, 0, 2, 0, 0, new TextEncoder().encode('no'))).toBe(ENDED);
    expect(h.ended).toMatchObject({ kind: 'error', error: 'ERR_GUEST_TRAP' });
  });

  it('unknown codes are INVALID_CALL, whatever their windows', async () => {
    scenario = 'unknown codes';
    const g = await guest();
    for (const code of [0x0009, 0x00ff, 0x0106, 0x0201, 0x0301, 0x0405, 0x0505, 0x0602, 0x0700, 0x1_0000, 0x8000_0000, 0xffff_ffff]) {
      expect(g.call(code), `0x${code.toString(16)}`).toBe(status('INVALID_CALL'));
      expect(g.call(code, PAGE, 2, PAGE, HV_MAX_TRANSFER + 1), `0x${code.toString(16)}`).toBe(status('INVALID_CALL'));
    }
    g.close();
  });

  it('every call: HV_MAX_TRANSFER and one past it, windows ending at the end of memory and one byte past, out before in, wrap-around', async () => {
    scenario = 'windows';
    let g = await guest();
    for (const n of CALLS) {
      if (n === 'ABORT') continue; // never returns: below
      const code = HvCall[n];
      const rule = ruleOf(n);
      // The shortest accepted input that is not empty (or 0), at the very end of memory: accepted.
      const len = [1, 4, 8, 16, 64, 4 + 1, 16 + 4096].find((l) => rule.accepts(l)) ?? 0;
      const need = n === 'BLOCK_READ' ? HV_BLOCK_SECTOR_SIZE : 1024;
      const fresh = async () => {
        if (g.ended !== null) g = await guest();
      };
      const expectEdge = (ret: Result, what: string) => expect(ret === ENDED || (ret !== status('INVALID_ADDRESS') && ret !== status('TOO_LARGE')), `${n} ${what}: ${String(ret)}`).toBe(true);
      // Too large: refused before anything else, in or out.
      expect(g.call(code, 0, HV_MAX_TRANSFER + 1, 0, 0), n).toBe(status('TOO_LARGE'));
      expect(g.call(code, 0, 0, 0, HV_MAX_TRANSFER + 1), n).toBe(status('TOO_LARGE'));
      expect(g.call(code, 0, 0xffff_ffff, 0, 0), n).toBe(status('TOO_LARGE'));
      // One byte past the end of memory, in or out; wrapping sums are out of range.
      expect(g.call(code, PAGE - len + 1, len || 1, 0, 0), n).toBe(status('INVALID_ADDRESS'));
      expect(g.call(code, PAGE + 1, 0, 0, 0), n).toBe(status('INVALID_ADDRESS'));
      expect(g.call(code, 0, 0, PAGE - need + 1, need), n).toBe(status('INVALID_ADDRESS'));
      expect(g.call(code, 0xffff_fff0, 0x20, 0, 0), n).toBe(status('INVALID_ADDRESS'));
      expect(g.call(code, 0, 0, 0xffff_fff0, 0x20), n).toBe(status('INVALID_ADDRESS'));
      // The output window is checked first: a bad one wins over a too-large input.
      expect(g.call(code, 0, HV_MAX_TRANSFER + 1, PAGE, 1), n).toBe(status('INVALID_ADDRESS'));
      expect(g.call(code, PAGE, 1, 0, HV_MAX_TRANSFER + 1), n).toBe(status('TOO_LARGE'));
      // Ending exactly at the end of memory: accepted (the call runs), also at odd addresses.
      if (n === 'EXIT') continue; // it ends the guest: below
      expectEdge(g.call(code, PAGE - len, len, 0x1001, need, validInput(n, len)), 'input at the end');
      await fresh();
      expectEdge(g.call(code, 0x0003, len, PAGE - need, need, validInput(n, len)), 'output at the end');
      await fresh();
      expectEdge(g.call(code, PAGE, 0, PAGE, 0), 'empty windows at the end');
      await fresh();
      // HV_MAX_TRANSFER itself is within bounds.
      expectEdge(g.call(code, 0, 0, 0, HV_MAX_TRANSFER, undefined), 'out_cap HV_MAX_TRANSFER');
      await fresh();
    }
    g.close();
    // ABORT ends the guest whatever its windows; a refused one takes the message's place.
    const windows: [number, number, number, number, RegExp][] = [
      [0, HV_MAX_TRANSFER + 1, 0, 0, /in length 65537 exceeds the per-call maximum of 65536 bytes/],
      [PAGE - 3, 4, 0, 0, /in buffer \[0xfffd, \+4\) lies outside guest memory/],
      [0xffff_fff0, 0x20, 0, 0, /in buffer \[0xfffffff0, \+32\) lies outside/],
      [0, 4, PAGE, 1, /out buffer \[0x10000, \+1\) lies outside/],
      [0, 4, 0, 0xffff_ffff, /out length 4294967295 exceeds/],
    ];
    for (const [ip, il, op, oc, message] of windows) {
      const a = await guest({ devices: {} });
      expect(a.call(HvCall.ABORT, ip, il, op, oc)).toBe(ENDED);
      expect(a.ended).toMatchObject({ kind: 'error', error: 'ERR_GUEST_TRAP', message: expect.stringMatching(message) });
    }
    for (const n of ['EXIT', 'ABORT'] as const) {
      const e = await guest({ devices: {} });
      expect(e.call(HvCall[n], PAGE - 4, 4, PAGE, 0, u32(3)), n).toBe(ENDED);
      expect(e.ended, n).toMatchObject(n === 'EXIT' ? { kind: 'exit', code: 3 } : { kind: 'error', error: 'ERR_GUEST_TRAP' });
    }
  });

  it('every call: each in_len at and around the documented edges is accepted, or refused with the documented status', async () => {
    scenario = 'in_len edges';
    let g = await guest();
    for (const n of CALLS) {
      const code = HvCall[n];
      const rule = ruleOf(n);
      const lengths = [...new Set([0, 1, 2, 3, 4, 5, 7, 8, 9, ...rule.edges, HV_MAX_TRANSFER, HV_MAX_TRANSFER + 1])].sort((a, b) => a - b);
      for (const len of lengths) {
        if (g.ended !== null) g = await guest();
        // No output window: a call that accepts its input then fails on its window
        // (BUFFER_TOO_SMALL), waits for nothing (WOULD_BLOCK) or succeeds.
        const ret = g.call(code, 0, len, 0, 0, validInput(n, len));
        const what = `${n} with in_len ${len}`;
        if (len > HV_MAX_TRANSFER) expect(ret, what).toBe(n === 'ABORT' ? ENDED : status('TOO_LARGE'));
        else if (rule.accepts(len)) expect(ret !== status('INVALID_ARGUMENT') && ret !== status(rule.refusal(len + 1)), `${what} is documented as accepted; got ${String(ret)}`).toBe(true);
        else expect(ret, `${what} is documented as refused with ${rule.refusal(len)}`).toBe(status(rule.refusal(len)));
      }
    }
    g.close();
  });

  it('every call with a minimum out_cap: accepted at it, BUFFER_TOO_SMALL one below (nothing consumed)', async () => {
    scenario = 'out_cap edges';
    const g = await guest();
    const b = await guest({ devices: { net: ALL.net! } });
    const argsSize = g.call(HvCall.ARGS_SIZE) as number;
    // A frame for g to receive, sent by b straight into g's queue.
    const payload = 37;
    expect(b.call(HvCall.NET_TRY_SEND, 0, 4 + payload, 0, 0, validInput('NET_TRY_SEND', 4 + payload, g.nic!.address))).toBe(payload);
    const symbols: Record<string, number[]> = {
      '16 × devices': [16 * g.devices],
      'the argument block': [argsSize],
      'the line': [LINE.length],
      '4096 × count': [HV_BLOCK_SECTOR_SIZE, HV_BLOCK_SECTOR_SIZE * HV_BLOCK_MAX_READ_SECTORS],
      "8 + the frame's payload": [8 + payload],
    };
    let checked = 0;
    for (const n of CALLS) {
      const need = outputNeed(doc.get(n)!.outCap);
      if (need.any) continue;
      const sizes = 'bytes' in need ? [need.bytes] : symbols[need.symbol];
      expect(sizes, `${n}: no value for "${'symbol' in need ? need.symbol : ''}" in this test`).toBeDefined();
      for (const size of sizes!) {
        const len = n === 'ATTEST_REPORT' ? 64 : n === 'CLOCK_GET' || n === 'CONSOLE_READ' ? 4 : n === 'BLOCK_READ' ? 16 : 0;
        const input = validInput(n, len);
        if (n === 'BLOCK_READ') new DataView(input.buffer).setUint32(8, size / HV_BLOCK_SECTOR_SIZE, true);
        // The input sits near the end of memory, the window (up to all of memory) from 0.
        expect(g.call(HvCall[n], PAGE - 1024, len, 0, size - 1, input), `${n} with out_cap ${size - 1}`).toBe(status('BUFFER_TOO_SMALL'));
        expect(g.call(HvCall[n], PAGE - 1024, len, 0, size, input), `${n} with out_cap ${size}`).toBe(size);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(10);
    g.close();
    b.close();
  });
  it('INPUT_READ and OUTPUT_WRITE: an offset past the input, an output past maxOutputBytes', async () => {
    scenario = 'host call';
    const g = await guest({ devices: {}, maxOutputBytes: 100 });
    const abc = new TextEncoder().encode('abc');
    expect(g.call(HvCall.INPUT_READ, 0, 4, 0x100, 8, u32(3), abc)).toBe(0); // the end: nothing left
    expect(g.call(HvCall.INPUT_READ, 0, 4, 0x100, 8, u32(4), abc)).toBe(status('INVALID_ARGUMENT'));
    expect(g.call(HvCall.INPUT_READ, 0, 4, 0x100, 8, u32(0xffff_ffff), abc)).toBe(status('INVALID_ARGUMENT'));
    expect(g.call(HvCall.OUTPUT_WRITE, 0, 100, 0, 0)).toBe(100);
    expect(g.call(HvCall.OUTPUT_WRITE, 0, 101, 0, 0)).toBe(status('TOO_LARGE'));
    g.close();
  });

  it('console: lines over the rate, a rate limit in reject mode, a reader that has gone, input waiting, ended, too long, unknown flags', async () => {
    scenario = 'console';
    const text = (s: string) => new TextEncoder().encode(s);
    const lines = await guest({ devices: { console: { linesPerSecond: 1, burstLines: 1 } } });
    for (const code of [HvCall.CONSOLE_WRITE, HvCall.CONSOLE_WRITE_ERR]) {
      // One line per second: within three back-to-back lines, one is over the rate.
      const got = [0, 1, 2].map((i) => lines.call(code, 0, 2, 0, 0, text(`${i}\n`)));
      expect(got, name(code)).toContain(status('RATE_LIMITED'));
    }
    const limited = await guest({ devices: { console: { rateLimit: { opsPerSecond: 0.001, burstOps: 1, mode: 'reject' } } } });
    for (const code of [HvCall.CONSOLE_WRITE, HvCall.CONSOLE_WRITE_ERR, HvCall.CONSOLE_STREAM_WRITE, HvCall.CONSOLE_STREAM_WRITE_ERR]) {
      const got = [0, 1].map(() => limited.call(code, 0, 3, 0, 0, text('ab\n')));
      expect(got, name(code)).toContain(status('RATE_LIMITED'));
    }
    const gone = await guest({ devices: { console: {} } });
    expect(gone.call(HvCall.CONSOLE_STREAM_WRITE, 0, 3, 0, 0, text('ok\n'))).toBe(3);
    gone.console!.close('stdout');
    gone.console!.close('stderr');
    for (const code of [HvCall.CONSOLE_WRITE, HvCall.CONSOLE_WRITE_ERR, HvCall.CONSOLE_STREAM_WRITE, HvCall.CONSOLE_STREAM_WRITE_ERR]) {
      expect(gone.call(code, 0, 3, 0, 0, text('ab\n')), name(code)).toBe(status('END_OF_STREAM'));
    }
    // Line input: too long for the window (it stays queued), read, then nothing yet, unknown flags.
    const input = await guest({ devices: { console: {} } });
    expect(input.call(HvCall.CONSOLE_READ, 0, 4, 0x100, 4, u32(1))).toBe(status('BUFFER_TOO_SMALL'));
    expect(input.call(HvCall.CONSOLE_READ, 0, 4, 0x100, 64, u32(1))).toBe(LINE.length);
    expect(input.call(HvCall.CONSOLE_READ, 0, 4, 0x100, 64, u32(1))).toBe(status('WOULD_BLOCK'));
    expect(input.call(HvCall.CONSOLE_STREAM_READ, 0, 4, 0x100, 64, u32(1))).toBe(status('WOULD_BLOCK'));
    for (const code of [HvCall.CONSOLE_READ, HvCall.CONSOLE_STREAM_READ]) {
      expect(input.call(code, 0, 4, 0x100, 64, u32(2)), name(code)).toBe(status('INVALID_ARGUMENT'));
      expect(input.call(code, 0, 4, 0x100, 64, u32(0x8000_0001)), name(code)).toBe(status('INVALID_ARGUMENT'));
    }
    // Byte input: the next bytes; none asked for is 0.
    const stream = await guest({ devices: { console: {} } });
    expect(stream.call(HvCall.CONSOLE_STREAM_READ, 0, 0, 0x100, 0)).toBe(0);
    expect(stream.call(HvCall.CONSOLE_STREAM_READ, 0, 4, 0x100, 5, u32(1))).toBe(5);
    // Input ended: both reads are END_OF_STREAM, blocking or not.
    const ended = await guest({ devices: { console: {} }, input: 'ended' });
    for (const code of [HvCall.CONSOLE_READ, HvCall.CONSOLE_STREAM_READ]) {
      expect(ended.call(code, 0, 0, 0x100, 64), name(code)).toBe(status('END_OF_STREAM'));
      expect(ended.call(code, 0, 4, 0x100, 64, u32(1)), name(code)).toBe(status('END_OF_STREAM'));
    }
    // The longest line: MAX_INPUT_LINE_BYTES (65536) bytes without a newline are one line; the byte
    // after them, at the end of input, is the last.
    const longest = Number(/(\d+) bytes without a newline are delivered as\s+one line/.exec(section('### Console'))?.[1]);
    expect(longest).toBe(MAX_INPUT_LINE_BYTES);
    const long = await guest({ devices: { console: {} }, input: new Uint8Array(longest + 1).fill(0x61) });
    expect(long.call(HvCall.CONSOLE_READ, 0, 0, 0, longest - 1)).toBe(status('BUFFER_TOO_SMALL'));
    expect(long.call(HvCall.CONSOLE_READ, 0, 0, 0, longest)).toBe(longest);
    expect(long.call(HvCall.CONSOLE_READ, 0, 0, 0, longest)).toBe(1);
    expect(long.call(HvCall.CONSOLE_READ, 0, 0, 0, longest)).toBe(status('END_OF_STREAM'));
    for (const g of [lines, limited, gone, input, stream, ended, long]) g.close();
  });

  it('overlapping windows: the input is read once, before the output is written', async () => {
    scenario = 'overlapping windows';
    const g = await guest({ devices: { clock: { deterministic: { startMs: 1000, stepMs: 1 } }, attestation: true } });
    // CLOCK_GET's id and its result in the same bytes; an unaligned pair.
    expect(g.call(HvCall.CLOCK_GET, 0x101, 4, 0x101, 8, u32(1))).toBe(8);
    expect(new DataView(g.mem.buffer).getBigUint64(0x101, true)).toBe(1_000_000_000n);
    // ATTEST_REPORT's report data and nonce under its report: the report carries them as they were.
    const data = new Uint8Array(64 + 16).map((_, i) => i + 1);
    expect(g.call(HvCall.ATTEST_REPORT, 0x203, data.length, 0x203, 512, data)).toBe(512);
    expect([...g.mem.subarray(0x203 + 320, 0x203 + 384)]).toEqual([...data.subarray(0, 64)]);
    expect([...g.mem.subarray(0x203 + 384, 0x203 + 400)]).toEqual([...data.subarray(64)]);
    g.close();
  });

  it('clock: an unknown id', async () => {
    scenario = 'clock';
    const g = await guest({ devices: { clock: {} } });
    expect(g.call(HvCall.CLOCK_GET, 0, 4, 0x100, 8, u32(1))).toBe(8);
    expect(g.call(HvCall.CLOCK_GET, 0, 4, 0x100, 8, u32(2))).toBe(status('INVALID_ARGUMENT'));
    expect(g.call(HvCall.CLOCK_GET, 0, 4, 0x100, 8, u32(0xffff_ffff))).toBe(status('INVALID_ARGUMENT'));
    g.close();
  });

  it('block: counts and flags, the end of the disk, reject-mode rate limit, tampered sectors, failing host I/O', async () => {
    scenario = 'block';
    const S = HV_BLOCK_SECTOR_SIZE;
    const sectors = 256; // 1 MiB
    const g = await guest({ devices: { block: { sizeMiB: 1 } } });
    const read = (sector: number, count: number, flags = 0, out = count * S) => g.call(HvCall.BLOCK_READ, PAGE - 1024, 16, 0, out, header(sector, count, flags));
    const write = (sector: number, count: number, flags = 0) => {
      g.mem.fill(0x5a, 0x1000, 0x1000 + count * S);
      g.mem.set(header(sector, count, flags), 0x1000 - 16);
      return g.call(HvCall.BLOCK_WRITE, 0x1000 - 16, 16 + count * S, 0, 0);
    };
    const discard = (sector: number, count: number, flags = 0) => g.call(HvCall.BLOCK_DISCARD, 0, 16, 0, 0, header(sector, count, flags));
    // Counts: 1 .. 16 (read, discard), 1 .. 15 (write).
    expect(read(0, HV_BLOCK_MAX_READ_SECTORS)).toBe(HV_BLOCK_MAX_READ_SECTORS * S);
    expect(read(0, HV_BLOCK_MAX_READ_SECTORS + 1, 0, HV_MAX_TRANSFER)).toBe(status('INVALID_ARGUMENT'));
    expect(read(0, 0)).toBe(status('INVALID_ARGUMENT'));
    expect(discard(0, HV_BLOCK_MAX_READ_SECTORS)).toBe(0);
    expect(discard(0, HV_BLOCK_MAX_READ_SECTORS + 1)).toBe(status('INVALID_ARGUMENT'));
    expect(discard(0, 0)).toBe(status('INVALID_ARGUMENT'));
    expect(write(0, HV_BLOCK_MAX_WRITE_SECTORS)).toBe(HV_BLOCK_MAX_WRITE_SECTORS * S);
    // A header claiming more sectors than the input carries, or than a write may carry.
    g.mem.set(header(0, HV_BLOCK_MAX_WRITE_SECTORS + 1), 0);
    expect(g.call(HvCall.BLOCK_WRITE, 0, 16 + HV_BLOCK_MAX_WRITE_SECTORS * S, 0, 0)).toBe(status('INVALID_ARGUMENT'));
    expect(g.call(HvCall.BLOCK_WRITE, 0, 16, 0, 0, header(0, 0))).toBe(status('INVALID_ARGUMENT'));
    // Flags: only a write's FUA.
    expect(write(1, 1, 1)).toBe(S);
    expect(write(1, 1, 2)).toBe(status('INVALID_ARGUMENT'));
    expect(read(1, 1, 1)).toBe(status('INVALID_ARGUMENT'));
    expect(discard(1, 1, 1)).toBe(status('INVALID_ARGUMENT'));
    // The end of the disk: the last sector is in, one past it (or 2^53, or 2^64 - 1) is not.
    expect(read(sectors - 1, 1)).toBe(S);
    expect(read(sectors - 1, 2)).toBe(status('OUT_OF_RANGE'));
    expect(read(sectors, 1)).toBe(status('OUT_OF_RANGE'));
    expect(g.call(HvCall.BLOCK_READ, 0, 16, 0x1000, S, (() => { const h = header(0, 1); new DataView(h.buffer).setBigUint64(0, 2n ** 64n - 1n, true); return h; })())).toBe(status('OUT_OF_RANGE'));
    expect(read(2 ** 53, 1)).toBe(status('OUT_OF_RANGE'));
    expect(write(sectors - 1, 1)).toBe(S);
    expect(write(sectors, 1)).toBe(status('OUT_OF_RANGE'));
    expect(discard(sectors - HV_BLOCK_MAX_READ_SECTORS, HV_BLOCK_MAX_READ_SECTORS)).toBe(0);
    expect(discard(sectors - HV_BLOCK_MAX_READ_SECTORS + 1, HV_BLOCK_MAX_READ_SECTORS)).toBe(status('OUT_OF_RANGE'));
    // Checks come in the documented order: count before range, range before the window.
    expect(read(sectors, HV_BLOCK_MAX_READ_SECTORS + 1, 0, 0)).toBe(status('INVALID_ARGUMENT'));
    expect(read(sectors, 1, 0, 0)).toBe(status('OUT_OF_RANGE'));
    expect(read(0, 1, 0, S - 1)).toBe(status('BUFFER_TOO_SMALL'));
    // Tampered: both stored versions of sector 3 damaged on the host's disk.
    expect(write(3, 1)).toBe(S);
    expect(g.call(HvCall.BLOCK_FLUSH)).toBe(0);
    expect(write(3, 1)).toBe(S);
    const fd = attachments.at(-1)!.fd;
    for (const slot of [0, 1]) writeSync(fd, Buffer.alloc(64, 0xee), 0, 64, dataOffset(3, slot));
    expect(read(3, 1)).toBe(status('INTEGRITY'));
    g.close();

    // Reject mode: one request per 1000 s.
    scenario = 'block, rateLimitMode reject';
    const r = await guest({ devices: { block: { sizeMiB: 1, rateLimitMode: 'reject', opsPerSecond: 0.001, burstOps: 1 } } });
    expect(r.call(HvCall.BLOCK_FLUSH)).toBe(0);
    expect(r.call(HvCall.BLOCK_FLUSH)).toBe(status('RATE_LIMITED'));
    expect(r.call(HvCall.BLOCK_READ, 0, 16, 0x1000, S, header(0, 1))).toBe(status('RATE_LIMITED'));
    r.mem.set(header(0, 1), 0x1000 - 16);
    expect(r.call(HvCall.BLOCK_WRITE, 0x1000 - 16, 16 + S, 0, 0)).toBe(status('RATE_LIMITED'));
    expect(r.call(HvCall.BLOCK_DISCARD, 0, 16, 0, 0, header(0, 1))).toBe(status('RATE_LIMITED'));
    expect(r.call(HvCall.BLOCK_INFO, 0, 0, 0x100, 16)).toBe(16); // not a request
    r.close();

    // The host's file fails: the image opened read-only takes no write (and, sticky, no flush).
    scenario = 'block, the host cannot write the image';
    const ro = await guest({ devices: { block: { sizeMiB: 1 } }, blockFd: (a) => { const f = openSync(a.path, 'r'); fds.push(f); return f; } });
    expect(ro.call(HvCall.BLOCK_READ, 0, 16, 0x1000, S, header(0, 1))).toBe(S);
    ro.mem.set(header(0, 1), 0x1000 - 16);
    expect(ro.call(HvCall.BLOCK_WRITE, 0x1000 - 16, 16 + S, 0, 0)).toBe(status('IO_ERROR'));
    expect(ro.call(HvCall.BLOCK_DISCARD, 0, 16, 0, 0, header(0, 1))).toBe(status('IO_ERROR'));
    expect(ro.call(HvCall.BLOCK_FLUSH)).toBe(status('IO_ERROR'));
    expect(ro.call(HvCall.BLOCK_READ, 0, 16, 0x1000, S, header(0, 1))).toBe(S); // reads go on
    ro.close();
    scenario = 'block, the host cannot read the image';
    const dir = await guest({ devices: { block: { sizeMiB: 1 } }, blockFd: () => { const f = openSync(dataDir, 'r'); fds.push(f); return f; } });
    expect(dir.call(HvCall.BLOCK_READ, 0, 16, 0x1000, S, header(0, 1))).toBe(status('IO_ERROR'));
    dir.close();
  });

  it('network: over the send budget, a destination or tx ring with no room, a frame too big for the window, an unplugged NIC', async () => {
    scenario = 'network';
    const a = await guest({ devices: { net: { segment: 'wan', mtu: NET_MTU, rxQueueBytes: 1024 } } });
    const b = await guest({ devices: { net: { segment: 'wan', mtu: NET_MTU } } });
    const to = (dst: number, n: number) => validInput('NET_SEND', 4 + n, dst);
    // b -> a straight into a's receive queue, until it is full: NET_TRY_SEND says so at once.
    let sent = 0;
    let full: Result = 0;
    for (let i = 0; i < 100 && typeof full === 'number' && full >= 0; i++) {
      full = b.call(HvCall.NET_TRY_SEND, 0, 4 + NET_MTU, 0, 0, to(a.nic!.address, NET_MTU));
      if (full === NET_MTU) sent++;
    }
    expect(full).toBe(status('WOULD_BLOCK'));
    expect(sent).toBeGreaterThan(0);
    // a's queue: a frame larger than the window stays queued; then it is read; then the queue drains.
    expect(a.call(HvCall.NET_RECV, 0, 8, 0x100, 8 + NET_MTU - 1, u32(1, 0))).toBe(status('BUFFER_TOO_SMALL'));
    expect(a.call(HvCall.NET_RECV, 0, 8, 0x100, 8 + NET_MTU, u32(1, 0))).toBe(8 + NET_MTU);
    expect(a.call(HvCall.NET_RECV, 0, 8, 0x100, 8 + NET_MTU, u32(2, 0))).toBe(status('INVALID_ARGUMENT'));
    for (let i = 1; i < sent; i++) expect(a.call(HvCall.NET_RECV, 0, 0, 0x100, 8 + NET_MTU)).toBe(8 + NET_MTU);
    expect(a.call(HvCall.NET_RECV, 0, 8, 0x100, 8 + NET_MTU, u32(1, 0))).toBe(status('WOULD_BLOCK'));
    expect(a.call(HvCall.NET_RECV, 0, 0, 0x100, 8 + NET_MTU)).toBe(status('WOULD_BLOCK')); // its wait (cut to now here) found nothing
    // The waits a call asks for, in ms (the rig's blocker ends each at once): the documented timeouts.
    const asked: number[] = [];
    const deadline = a.rig.blocker.deadline.bind(a.rig.blocker);
    a.rig.blocker.deadline = (ms?: number) => (asked.push(ms ?? NaN), deadline());
    const waits = (code: number, input: Uint8Array, out = 0): number[] => {
      asked.length = 0;
      a.call(code, 0, input.length, 0x100, out, input);
      return [...asked];
    };
    expect(waits(HvCall.NET_RECV, u32(0, 0xffff_ffff), 8 + NET_MTU), '0xFFFFFFFF: forever').toEqual([Infinity]);
    expect(waits(HvCall.NET_RECV, u32(0, 7), 8 + NET_MTU)).toEqual([7]);
    expect(waits(HvCall.NET_RECV, u32(1, 7), 8 + NET_MTU), 'non-blocking').toEqual([0]);
    expect(waits(HvCall.NET_POLL, u32(0xffff_ffff))).toEqual([Infinity]);
    expect(waits(HvCall.NET_POLL, u32(7, b.nic!.address))).toEqual([7]);
    // Through the root (broadcast): the tx ring fills while the root is not draining it. NET_SEND
    // waits for room for as long as the doc says, NET_TRY_SEND not at all.
    const sendWaitMs = 1000 * Number(/`NET_SEND` waits up to (\d+) s for room/.exec(section('### Network (1.2; flow control 1.3)'))?.[1]);
    for (const code of [HvCall.NET_SEND, HvCall.NET_TRY_SEND]) {
      let r: Result = 0;
      asked.length = 0;
      for (let i = 0; i < 10_000 && typeof r === 'number' && r >= 0; i++) r = a.call(code, 0, 4 + NET_MTU, 0, 0, to(HV_NET_BROADCAST, NET_MTU));
      expect(r, name(code)).toBe(status('WOULD_BLOCK'));
      expect(asked, name(code)).toEqual(code === HvCall.NET_SEND ? [sendWaitMs] : []);
    }
    // Unplugged (the hypervisor closes): the receive queue is closed.
    a.nic!.detach();
    expect(a.call(HvCall.NET_RECV, 0, 0, 0x100, 8 + NET_MTU)).toBe(status('END_OF_STREAM'));
    expect(a.call(HvCall.NET_RECV, 0, 8, 0x100, 8 + NET_MTU, u32(1, 0))).toBe(status('END_OF_STREAM'));
    a.close();
    b.close();

    scenario = 'network, one frame per second';
    for (const code of [HvCall.NET_SEND, HvCall.NET_TRY_SEND]) {
      const c = await guest({ devices: { net: { segment: 'wan', mtu: NET_MTU, sendFramesPerSecond: 1 } } });
      const got = [0, 1, 2].map(() => c.call(code, 0, 4 + 8, 0, 0, to(HV_NET_BROADCAST, 8)));
      expect(got, name(code)).toContain(status('RATE_LIMITED'));
      c.close();
    }
  });

  it('a sweep of hostile windows and contents over every call returns only documented statuses', async () => {
    scenario = 'hostile sweep';
    // Pointers at 0, unaligned, at and one past the end, wrapping; lengths 0, 1, odd, the maximum, one past it, 2^32 - 1.
    const ins: [number, number][] = [[0, 0], [0, 4], [3, 8], [1, 16], [PAGE - 4, 4], [PAGE, 0], [PAGE - 1, 2], [0, PAGE], [0xffff_fff0, 0x20], [0, 0xffff_ffff]];
    const outs: [number, number][] = [[0, 0], [0x101, 8], [PAGE - 8, 8], [PAGE, 0], [PAGE - 1, 2], [0x2000, 4096], [0, PAGE], [0xffff_fffc, 8]];
    const fills = [0x00, 0xff];
    const all = await guest({ input: 'ended' });
    let calls = 0;
    const problems: string[] = [];
    // ABORT ends its guest whatever it is given (its windows are checked above): not swept.
    const swept = CALLS.filter((n) => n !== 'ABORT');
    for (const n of swept) {
      // EXIT ends its guest when it is valid: it gets a fresh one without devices (cheap to make).
      const ending = n === 'EXIT';
      let g = ending ? await guest({ devices: {} }) : all;
      for (const fill of fills) {
        g.mem.fill(fill, 0, DESC);
        for (const [inPtr, inLen] of ins) {
          for (const [outPtr, outCap] of outs) {
            if (g.ended !== null) {
              g = await guest({ devices: {} });
              g.mem.fill(fill, 0, DESC);
            }
            const ret = g.call(HvCall[n], inPtr, inLen, outPtr, outCap);
            calls++;
            if (ret === ENDED ? n !== 'EXIT' : ret < 0 && !documented(n).has(statusOf(ret)!)) problems.push(`${n}(in ${inPtr}+${inLen}, out ${outPtr}+${outCap}, fill ${fill}) returned ${ret}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(calls).toBe(swept.length * fills.length * ins.length * outs.length);
    all.close();
  });

  it('(a) no call returned a status its row does not list; (b) every listed status was provoked', () => {
    expect(seen.size, 'this check reads what the cases above recorded: run the whole file').toBeGreaterThan(0);
    const problems: string[] = [];
    for (const n of CALLS) {
      const got = seen.get(n) ?? new Map<HvStatusName, string>();
      for (const [s, where] of got) if (!documented(n).has(s)) problems.push(`${n} returned ${s}, which docs/ABI.md does not list for it (${where})`);
      for (const s of documented(n)) if (!got.has(s)) problems.push(`${n}: docs/ABI.md lists ${s}, which no case here provoked`);
    }
    expect(problems).toEqual([]);
    expect([...unknownSeen].sort()).toEqual(['INVALID_CALL', 'RATE_LIMITED']);
  });
  it('WASI: the errno values docs/ABI.md lists are preview1\'s, and every errno the WASI layer names itself is listed (a static read: the host file system\'s own errors are mapped by name)', () => {
    const listed = new Map<string, number>();
    for (const m of section('### errno values used').matchAll(/`E([A-Z0-9]+)` (\d+)/g)) listed.set(m[1] === '2BIG' ? 'TOOBIG' : m[1]!, Number(m[2]));
    expect(listed.size).toBeGreaterThan(20);
    for (const [key, value] of listed) expect(Errno[key as keyof typeof Errno], `E${key}`).toBe(value);
    const dir = new URL('../../host/wasi/', import.meta.url);
    const named = new Set<string>();
    for (const file of readdirSync(dir)) {
      if (!file.endsWith('.ts') || file === 'errno.ts') continue;
      // hostfs.ts maps the host's error codes by name (the doc's "mapped to the preview1 number of the same name").
      const text = readFileSync(new URL(file, dir), 'utf8').replace(/const NODE_ERRNO[\s\S]*?\n\};/, '');
      for (const m of text.matchAll(/Errno\.([A-Z0-9]+)/g)) named.add(m[1]!);
    }
    expect([...named].filter((k) => !listed.has(k)).sort()).toEqual([]);
  });
});
