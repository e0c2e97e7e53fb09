/**
 * The WASI preview1 surface, in-thread: a real guest that imports every preview1 function (the
 * list and signatures come from host/wasi/imports.ts, the loader's source of truth) and exports
 * a trampoline to each, instantiated against the real WASI layer (host/wasi/setup.ts) over real
 * devices and a virtual file system seeded with files, for two partitions (A and B). An input is
 * a random sequence of WASI calls with random arguments: file descriptors around the open ones,
 * pointers and lengths at and around the memory's edges, random flags and rights, paths written
 * into memory first.
 *
 * Invariants, after every call:
 * - the result is a documented errno (0..76), or the call is proc_exit and ends the guest
 *   (GuestExit, sticky); no other exception;
 * - nothing of the other partition shows up: B's memory never holds A's file contents, and the
 *   reverse;
 * - the counters add up: `wasiCalls` is the number of calls made.
 */
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Dispatcher, GuestExit } from '../../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../../host/abi/guest-memory.ts';
import { SharedRing } from '../../../host/channel/ring.ts';
import { ClockDevice } from '../../../host/devices/clock.ts';
import { resolveDevices } from '../../../host/devices/config.ts';
import { ConsoleDevice } from '../../../host/devices/console.ts';
import { EntropyDevice } from '../../../host/devices/entropy.ts';
import { InputKind } from '../../../host/channel/protocol.ts';
import { Stat, allocateStats, readMetrics } from '../../../host/channel/stats.ts';
import { resolveWasi, type ResolvedWasi } from '../../../host/wasi/config.ts';
import { Errno } from '../../../host/wasi/errno.ts';
import { WASI_MODULE, WASI_SIGNATURES } from '../../../host/wasi/imports.ts';
import { createWasi } from '../../../host/wasi/setup.ts';
import { wat } from '../../loader/wat.ts';
import { boundaryU32, invariant, type Target } from '../framework.ts';

const PAGE = 65536;
const ERRNOS = new Set<number>(Object.values(Errno));
const NAMES = [...WASI_SIGNATURES.keys()];

/** The guest: every preview1 import, and an export `w_<name>` calling it with its own arguments. */
function guestSource(): string {
  const parts: string[] = [];
  for (const [name, sig] of WASI_SIGNATURES) {
    const params = sig.params.length ? `(param ${sig.params.join(' ')})` : '';
    const result = sig.results.length ? `(result ${sig.results.join(' ')})` : '';
    parts.push(`(import "${WASI_MODULE}" "${name}" (func $${name} ${params} ${result}))`);
  }
  parts.push('(memory (export "memory") 1 1)');
  for (const [name, sig] of WASI_SIGNATURES) {
    const params = sig.params.length ? `(param ${sig.params.join(' ')})` : '';
    const result = sig.results.length ? `(result ${sig.results.join(' ')})` : '';
    const args = sig.params.map((_, i) => `(local.get ${i})`).join(' ');
    parts.push(`(func (export "w_${name}") ${params} ${result} (call $${name} ${args}))`);
  }
  return `(module ${parts.join('\n')})`;
}
const guestModule = new WebAssembly.Module(wat(guestSource()) as Uint8Array<ArrayBuffer>);

export interface WasiCall {
  readonly who: 0 | 1;
  readonly fn: string;
  /** Raw argument values: i32s as numbers, i64s as bigints (converted by the signature). */
  readonly args: readonly bigint[];
  /** Written at `at` before the call (a path, an iovec, anything). */
  readonly data: Uint8Array;
  readonly at: number;
}

const i32 = fc.oneof(
  { weight: 3, arbitrary: boundaryU32([0, 3, 8, 16, PAGE - 16, PAGE, 0x8000_0000, 0xffff_ffff]) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 12 }) }, // fds, small flags and lengths
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
).map((v) => BigInt(v >>> 0));
const i64 = fc.oneof(fc.constantFrom(0n, 1n, 4096n, 0xffff_ffffn, 0x7fff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }));
const call: fc.Arbitrary<WasiCall> = fc.constantFrom(...NAMES).chain((fn) =>
  fc.record({
    who: fc.constantFrom(0 as const, 1 as const),
    fn: fc.constant(fn),
    args: fc.tuple(...WASI_SIGNATURES.get(fn)!.params.map((t) => (t === 'i64' ? i64 : i32))),
    data: fc.oneof(fc.uint8Array({ maxLength: 32 }), fc.constantFrom(...['data', 'data/a.txt', '../x', '/etc', 'a/../../b', 'new.txt'].map((p) => new TextEncoder().encode(p)))),
    at: fc.oneof(fc.constantFrom(0, 64, 128, 1024, PAGE - 8), fc.integer({ min: 0, max: PAGE - 1 })),
  }),
);

export const input = fc.array(call, { minLength: 1, maxLength: 24 });

const CANARY = ['A-SECRET-d1c3f0a9b8e7', 'B-SECRET-77aa55cc33ee'];
let configs: ResolvedWasi[] = [];
let seedDir = '';

interface Side {
  readonly memory: WebAssembly.Memory;
  readonly exports: WebAssembly.Exports;
  readonly stats: SharedArrayBuffer;
  /** The console's event ring, which the root drains (here: after every call). */
  readonly events: SharedRing;
  calls: number;
  ended: unknown;
  close(): void;
}

function side(who: 0 | 1): Side {
  const devices = resolveDevices({ console: { linesPerSecond: 1_000_000 }, clock: { deterministic: { startMs: 5, stepMs: 1 } }, entropy: { seed: `w${who}` } });
  const statsSab = allocateStats();
  const stats = new Float64Array(statsSab);
  const events = new SharedRing(SharedRing.allocate(1 << 16));
  const consoleIn = new SharedRing(SharedRing.allocate(1 << 10));
  consoleIn.tryWrite(InputKind.LINE, new TextEncoder().encode('stdin line'));
  consoleIn.close();
  const console = new ConsoleDevice(devices.console!, events, consoleIn, stats);
  const clock = new ClockDevice(devices.clock!);
  const entropy = new EntropyDevice(devices.entropy!, stats);
  const memory = new GuestMemory();
  const dispatcher = new Dispatcher({ memory, devices: [console, clock, entropy], args: [], stats, onViolation: () => {} });
  const wasi = createWasi(configs[who]!, {
    memory,
    console,
    clock,
    entropy,
    exit: (code) => dispatcher.exit(code),
    checkEnding: () => dispatcher.checkEnding(),
    admit: (bytes) => dispatcher.admitCall(bytes),
    onCall: () => stats[Stat.WASI_CALLS]!++,
    onFault: (name) => dispatcher.reportFault(`wasi.${name}`, 'a pointer or length lies outside guest memory'),
  });
  const instance = new WebAssembly.Instance(guestModule, { [WASI_MODULE]: wasi.imports as WebAssembly.ModuleImports });
  const mem = instance.exports.memory as WebAssembly.Memory;
  memory.bind(mem);
  return { memory: mem, exports: instance.exports, stats: statsSab, events, calls: 0, ended: null, close: () => wasi.close() };
}

function run(calls: readonly WasiCall[]): void {
  const sides = [side(0), side(1)] as const;
  try {
    for (const c of calls) {
      const s = sides[c.who];
      const mem = new Uint8Array(s.memory.buffer);
      mem.set(c.data.subarray(0, Math.max(0, Math.min(c.data.length, mem.length - c.at))), c.at);
      const sig = WASI_SIGNATURES.get(c.fn)!;
      const args = sig.params.map((t, i) => (t === 'i64' ? BigInt.asIntN(64, c.args[i]!) : Number(BigInt.asIntN(32, c.args[i]!))));
      const what = () => `${c.who ? 'B' : 'A'} ${c.fn}(${c.args.join(', ')})`;
      let ret: unknown;
      let thrown: unknown = null;
      s.calls++;
      try {
        ret = (s.exports[`w_${c.fn}`] as (...a: unknown[]) => unknown)(...args);
      } catch (error) {
        thrown = error;
      }
      if (thrown !== null) {
        invariant(thrown instanceof GuestExit, () => `${what()} threw ${thrown instanceof Error ? (thrown.stack ?? thrown.message) : String(thrown)}`);
        invariant(s.ended === null || s.ended === thrown, () => `${what()}: a second, different ending`);
        s.ended = thrown;
      } else {
        invariant(s.ended === null, () => `${what()} returned after proc_exit (not sticky)`);
        if (sig.results.length === 1) invariant(typeof ret === 'number' && ERRNOS.has(ret), () => `${what()} returned ${String(ret)}, not a documented errno`);
      }
      const other = new TextEncoder().encode(CANARY[1 - c.who]);
      while (s.events.tryRead() !== null); // as the root's event pump does
      invariant(Buffer.from(s.memory.buffer).indexOf(other) < 0, () => `${what()}: the other partition's file contents appeared in this one's memory`);
      const m = readMetrics(s.stats);
      invariant(m.wasiCalls === s.calls, () => `${what()}: wasiCalls ${m.wasiCalls}, calls made ${s.calls}`);
    }
  } finally {
    for (const s of sides) s.close();
  }
}

export const wasi: Target<readonly WasiCall[]> = {
  name: 'wasi',
  surface: 'guest → host WASI preview1: every function, random arguments, a seeded file system, two partitions',
  input,
  async setup() {
    seedDir = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-fuzz-wasi-'));
    configs = [];
    for (const who of [0, 1]) {
      const dir = path.join(seedDir, String(who));
      const { mkdirSync } = await import('node:fs');
      mkdirSync(path.join(dir, 'sub'), { recursive: true });
      writeFileSync(path.join(dir, 'a.txt'), `${CANARY[who]} file of side ${who}\n`);
      writeFileSync(path.join(dir, 'sub', 'b.bin'), new Uint8Array(300).fill(who + 1));
      configs.push(await resolveWasi({ args: ['fuzz', `side${who}`], env: { SIDE: String(who) }, preopens: [{ guestPath: '/data', hostPath: dir }, { guestPath: '/ro', hostPath: dir, readonly: true }], stdin: 'console', quotas: { maxBytes: 1 << 16, maxInodes: 64, maxFds: 16 } }, ['fuzz']));
    }
  },
  async teardown() {
    rmSync(seedDir, { recursive: true, force: true });
  },
  run,
};
