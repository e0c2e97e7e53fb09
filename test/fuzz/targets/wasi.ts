/**
 * The WASI preview1 surface, in-thread and fast. Two partitions (A and B), each the production
 * PartitionContext (see ../rig.ts) with WASI enabled: createWasi over the devices wireDevices
 * made, and a virtual file system seeded from real folders. The guest imports every preview1
 * function (the list and signatures come from host/wasi/imports.ts, the loader's source of
 * truth); its `run` export reads a call descriptor (function index, raw argument slots) from its
 * own memory and makes that call through its import, again and again, one instantiation serving
 * thousands of calls. An input is a seed that expands into random calls: file descriptors
 * around the open ones, pointers and lengths at and around the memory's edges, random flags and
 * rights, paths written into memory first; batches alternate between A and B, and a partition
 * (its file system included) is made afresh every REFRESH calls and after proc_exit. One
 * iteration is one WASI call, with every invariant checked after it.
 *
 * Invariants, after every call:
 * - the result is a documented errno (0..76), or the call is proc_exit and ends the guest
 *   (GuestExit, sticky: a second call throws it again); no other exception;
 * - nothing of the other partition shows up: B's memory never holds A's file contents, and the
 *   reverse (looked for whenever the call changed memory; a shadow copy tells);
 * - the counters add up: `wasiCalls` is the number of calls made;
 * - no call hangs (NoWaitBlocker), and no partition ends with ERR_INTERNAL.
 */
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GuestExit } from '../../../host/abi/dispatcher.ts';
import type { WorkerInit } from '../../../host/channel/protocol.ts';
import { allocateStats, Stat } from '../../../host/channel/stats.ts';
import { resolveDevices } from '../../../host/devices/config.ts';
import { resolveWasi, type ResolvedWasi } from '../../../host/wasi/config.ts';
import { Errno } from '../../../host/wasi/errno.ts';
import { WASI_MODULE, WASI_SIGNATURES } from '../../../host/wasi/imports.ts';
import { wat } from '../../loader/wat.ts';
import { invariant, scratchDir, type Target } from '../framework.ts';
import { edgeU32, Prng } from '../prng.ts';
import { driveSides, REFRESH, Rig, rings, WaitCut, type RigSide } from '../rig.ts';

const PAGE = 65536;
const ERRNOS = new Set<number>(Object.values(Errno));
const NAMES = [...WASI_SIGNATURES.keys()];
/** proc_exit ends the guest: drawn rarely, or a partition would live a few dozen calls. */
const ENDING = 'proc_exit';
const ENDING_ODDS = 1024;
const CALLS = NAMES.filter((n) => n !== ENDING);
/** Where the guest reads its next call: u32 go (0: stop), u32 function index, then 8-byte argument slots. */
const DESC = PAGE - 96;

/** The guest: every preview1 import, and `run`, which makes the call its descriptor names until told to stop. */
function guestSource(): string {
  const parts: string[] = [];
  for (const [name, sig] of WASI_SIGNATURES) {
    const params = sig.params.length ? `(param ${sig.params.join(' ')})` : '';
    const result = sig.results.length ? `(result ${sig.results.join(' ')})` : '';
    parts.push(`(import "${WASI_MODULE}" "${name}" (func $${name} ${params} ${result}))`);
  }
  parts.push('(memory (export "memory") 1 1)');
  // A br_table over the function index: block i ends where the call to function i is made.
  let body = `(br_table ${NAMES.map((_, i) => `$f${i}`).join(' ')} $done (i32.load (i32.const ${DESC + 4})))`;
  NAMES.forEach((name, i) => {
    const sig = WASI_SIGNATURES.get(name)!;
    const args = sig.params.map((t, k) => `(${t}.load (i32.const ${DESC + 8 + 8 * k}))`).join(' ');
    const call = `(call $${name} ${args})`;
    body = `(block $f${i} ${body}) ${sig.results.length ? `(drop ${call})` : call} (br $next)`;
  });
  parts.push(`(func (export "run") (result i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (i32.load (i32.const ${DESC}))))
      ${body}))
    (i32.const 0))`);
  return `(module ${parts.join('\n')})`;
}
const guestModule = new WebAssembly.Module(wat(guestSource()) as Uint8Array<ArrayBuffer>);

export interface WasiCall {
  readonly fn: string;
  /** Raw argument values: i32s as u32 numbers in bigints, i64s as bigints. */
  readonly args: readonly bigint[];
  /** Written at `at` before the call (a path, an iovec, anything). */
  readonly data: Uint8Array;
  readonly at: number;
}

export interface Input {
  readonly seed: number;
  readonly calls: number;
}

const edge = edgeU32([0, 3, 8, 16, PAGE - 16, PAGE, 0x8000_0000, 0xffff_ffff]);
function i32(r: Prng): bigint {
  const w = r.int(0, 6);
  const v = w < 3 ? edge(r) : w < 6 ? r.int(0, 12) : r.int(0, 0xffff); // boundaries; fds, small flags and lengths; anything small
  return BigInt(v >>> 0);
}
const PATHS = ['data', 'data/a.txt', '../x', '/etc', 'a/../../b', 'new.txt', 'sub/b.bin', 'ro/a.txt'].map((p) => new TextEncoder().encode(p));
const SPOTS = [0, 64, 128, 1024, PAGE - 8];

/** One random WASI call. */
export function randomCall(r: Prng): WasiCall {
  const fn = r.chance(1, ENDING_ODDS) ? ENDING : r.pick(CALLS);
  const args = WASI_SIGNATURES.get(fn)!.params.map((t) => (t === 'i64' ? r.u64() : i32(r)));
  const data = r.chance(1, 2) ? r.bytes(32) : r.pick(PATHS);
  const at = r.chance(1, 2) ? r.pick(SPOTS) : r.int(0, PAGE - 1);
  return { fn, args, data, at };
}

export const input: fc.Arbitrary<Input> = fc.record({ seed: fc.integer(), calls: fc.integer({ min: 1, max: 3 * REFRESH }) });

/** A fault a test injects after every call (see hypercall.ts's `inject`): returns the result to check. */
export const inject: { fault: ((mem: Uint8Array, call: WasiCall, ret: unknown, otherCanary: Uint8Array) => unknown) | null } = { fault: null };

const CANARY = ['A-SECRET-d1c3f0a9b8e7', 'B-SECRET-77aa55cc33ee'].map((s) => new TextEncoder().encode(s));
let configs: ResolvedWasi[] = [];
let seedDir = '';

class Side implements RigSide<WasiCall> {
  rig: Rig | null = null;
  private mem = new Uint8Array(0);
  private readonly shadow = new Uint8Array(PAGE);
  private queue: WasiCall[] = [];
  private pos = 0;
  private total = 0;
  served = 0;
  made = 0;
  other!: Side;

  constructor(readonly who: 0 | 1) {}

  fresh(): void {
    this.rig?.close();
    const who = this.who;
    const init: WorkerInit = {
      name: `fuzz-wasi-${who}`,
      module: guestModule,
      args: ['fuzz', `side${who}`],
      devices: resolveDevices({ console: { linesPerSecond: 1_000_000 }, clock: { deterministic: { startMs: 5, stepMs: 1 } }, entropy: { seed: `w${who}` } }),
      stats: allocateStats(),
      events: rings.events(1 << 18),
      input: rings.input('stdin line'),
      stdio: new SharedArrayBuffer(8),
      violationsPerSecond: 100,
      kind: 'reactor',
      calls: rings.calls(),
      maxInputBytes: 0,
      maxOutputBytes: PAGE,
      spinMicros: 0,
      wasi: configs[who]!,
      fuel: null,
      cpu: null,
      hypercallRate: null,
      block: null,
      net: null,
    };
    this.total = 0;
    this.served = 0;
    this.rig = new Rig(init, (name, fn) => (name.startsWith(`${WASI_MODULE}.`) ? this.hook(name.slice(WASI_MODULE.length + 1), fn as unknown as WasiFn) : fn) as never);
    this.mem = new Uint8Array(this.rig.memory!.buffer);
    this.shadow.set(this.mem);
  }

  run(calls: WasiCall[]): void {
    this.queue = calls;
    this.pos = 0;
    this.prepare();
    this.rig!.batch();
  }

  /** Writes the next call's data and descriptor (or stop) into guest memory and its shadow. */
  private prepare(): void {
    const c = this.queue[this.pos];
    for (const target of [this.mem, this.shadow]) {
      const view = new DataView(target.buffer, target.byteOffset, PAGE);
      if (c === undefined) {
        view.setUint32(DESC, 0, true);
        continue;
      }
      target.set(c.data.subarray(0, Math.max(0, Math.min(c.data.length, PAGE - c.at))), c.at);
      view.setUint32(DESC, 1, true);
      view.setUint32(DESC + 4, NAMES.indexOf(c.fn), true);
      c.args.forEach((v, k) => view.setBigUint64(DESC + 8 + 8 * k, v, true));
    }
  }

  private hook(name: string, fn: WasiFn): WasiFn {
    return (...args) => {
      const c = this.queue[this.pos]!;
      const rig = this.rig!;
      rig.blocker.waits = 0;
      if (rig.blocker.cut) throw new WaitCut(); // the partition is being ended
      let ret: unknown;
      let thrown: unknown = null;
      try {
        ret = fn(...args);
      } catch (error) {
        thrown = error;
      }
      if (rig.blocker.cut) {
        // The call would have waited long: it was cut short, and the partition ends (not a finding).
        this.made++;
        this.served++;
        throw thrown ?? new WaitCut();
      }
      if (inject.fault !== null && thrown === null) ret = inject.fault(this.mem, c, ret, CANARY[1 - this.who]!);
      try {
        this.check(name, c, ret, thrown, fn, args);
      } catch (finding) {
        rig.finding = finding;
        throw finding;
      }
      this.pos++;
      if (thrown !== null) throw thrown;
      this.prepare();
      return ret;
    };
  }

  private check(name: string, c: WasiCall, ret: unknown, thrown: unknown, fn: WasiFn, args: unknown[]): void {
    const what = () => `${this.who ? 'B' : 'A'} ${c.fn}(${c.args.join(', ')})`;
    invariant(name === c.fn, () => `${what()}: the guest called ${name} (harness out of step)`);
    this.made++;
    this.served++;
    this.total++;
    invariant(!this.rig!.blocker.hung, () => `${what()} hung: it waited again and again with its deadline passed`);
    const sig = WASI_SIGNATURES.get(c.fn)!;
    if (thrown !== null) {
      invariant(thrown instanceof GuestExit, () => `${what()} threw ${thrown instanceof Error ? (thrown.stack ?? thrown.message) : String(thrown)}`);
      let again: unknown = null;
      try {
        fn(...args);
      } catch (error) {
        again = error;
      }
      this.total++;
      invariant(again === thrown, () => `${what()}: a call after proc_exit ${again === null ? 'returned' : 'threw something else'} (not sticky)`);
    } else if (sig.results.length === 1) {
      invariant(typeof ret === 'number' && ERRNOS.has(ret), () => `${what()} returned ${String(ret)}, not a documented errno`);
    }
    if (Buffer.compare(this.mem, this.shadow) !== 0) {
      invariant(Buffer.from(this.mem.buffer).indexOf(CANARY[1 - this.who]!) < 0, () => `${what()}: the other partition's file contents appeared in this one's memory`);
      this.shadow.set(this.mem);
    }
    const calls = this.rig!.stats[Stat.WASI_CALLS]!;
    invariant(calls === this.total, () => `${what()}: wasiCalls ${calls}, calls made ${this.total}`);
  }

  close(): void {
    this.rig?.close();
    this.rig = null;
  }
}

type WasiFn = (...args: unknown[]) => unknown;

/** Makes `input.calls` calls, in batches on A and B; returns how many were made and checked. */
function run(input: Input): Promise<number> {
  const a = new Side(0);
  const b = new Side(1);
  a.other = b;
  b.other = a;
  return driveSides([a, b], input.seed, input.calls, randomCall);
}

export const wasi: Target<Input> = {
  name: 'wasi',
  surface: 'guest → host WASI preview1: every function, random arguments, a seeded file system, two reusable partitions',
  input,
  async setup() {
    seedDir = mkdtempSync(path.join(scratchDir(), 'wasmvisor-fuzz-wasi-'));
    configs = [];
    for (const who of [0, 1]) {
      const dir = path.join(seedDir, String(who));
      mkdirSync(path.join(dir, 'sub'), { recursive: true });
      writeFileSync(path.join(dir, 'a.txt'), `${new TextDecoder().decode(CANARY[who])} file of side ${who}\n`);
      writeFileSync(path.join(dir, 'sub', 'b.bin'), new Uint8Array(300).fill(who + 1));
      configs.push(await resolveWasi({ args: ['fuzz', `side${who}`], env: { SIDE: String(who) }, preopens: [{ guestPath: '/data', hostPath: dir }, { guestPath: '/ro', hostPath: dir, readonly: true }], stdin: 'console', quotas: { maxBytes: 1 << 16, maxInodes: 64, maxFds: 16 } }, ['fuzz']));
    }
  },
  async teardown() {
    rmSync(seedDir, { recursive: true, force: true });
  },
  run,
};
