/**
 * The hypercall cost measurement, shared by `bench/core.mjs` (which bundles this file with
 * esbuild) and the bench guard in `npm test` (test/bench/guard.test.ts). Every Wasmvisor row is
 * measured in the same process, interleaved with its baseline, so only ratios are compared.
 *
 * A tiny wasm module exports `loop(n, call, in_ptr, in_len, out_ptr, out_cap)`, which calls its
 * one import `hv.hypercall` n times. It is instantiated once per import:
 * - baselines: a bare JS function with the same (i32 x5) -> i32 signature that returns 0, and
 *   bare functions that copy 64 bytes in and 64 bytes out of the module's memory with no checks,
 *   through one view made after instantiation: with `subarray` + `set` (what GuestMemory did
 *   before), and in 32-bit words through DataViews (what GuestMemory does now for transfers of at
 *   most WORD_COPY_MAX bytes);
 * - the real `Dispatcher` over a real `GuestMemory` and a stats block in a SharedArrayBuffer,
 *   built as a partition's worker builds them: HV_CALL_VERSION with every buffer empty, and
 *   HV_CALL_ARGS_GET with a 64-byte input and a 64-byte output (a 64-byte argument block; the
 *   dispatcher copies the input once although ARGS_GET ignores it).
 * Before measuring, the dispatcher serves a mix of calls (console, clock, entropy, args, device
 * list) in another partition's boundary, as in any real worker: its code has then seen many
 * handlers and windows, not only the one call measured.
 *
 * The caller compiles the loop module's WAT (`LOOP_WAT`) and passes the bytes: the bench bundles
 * this file with esbuild and imports it from a data: URL, where no package can be imported.
 *
 * Time is the process's CPU time (process.cpuUsage) per run, not the wall clock: on a shared
 * machine a run that was preempted would otherwise count the other tenants' time.
 */
import { HV_ABI_VERSION, HvCall } from '../../host/abi/codes.ts';
import { Dispatcher } from '../../host/abi/dispatcher.ts';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { ClockDevice } from '../../host/devices/clock.ts';
import { EntropyDevice } from '../../host/devices/entropy.ts';
import type { Device } from '../../host/devices/device.ts';
import { allocateStats } from '../../host/channel/stats.ts';

/** The loop module, as WAT: the caller compiles it (wabt) and passes the bytes. */
export const LOOP_WAT = `(module
  (import "hv" "hypercall" (func $hypercall (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "loop") (param $n i32) (param $call i32) (param $ip i32) (param $il i32) (param $op i32) (param $oc i32) (result i32)
    (local $r i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $r (call $hypercall (local.get $call) (local.get $ip) (local.get $il) (local.get $op) (local.get $oc)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $r)))`;

type Hypercall = (call: number, inPtr: number, inLen: number, outPtr: number, outCap: number) => number;

interface LoopInstance {
  loop: (n: number, call: number, inPtr: number, inLen: number, outPtr: number, outCap: number) => number;
  memory: WebAssembly.Memory;
}

export interface HypercallCase {
  id: string;
  label: string;
  /** The id of the row this one is compared with. */
  baseline?: string;
  /** A second baseline shown beside the first (the stricter one). */
  alsoVs?: string;
  /** Runs to measure (the device row is slow and gets fewer). */
  runs?: number;
  /** Nanoseconds per call, one sample per run. */
  samples: number[];
}

const IN = 0;
const OUT = 128;
const LEN = 64;

/** Builds every case (instances checked for the right answers before anything is timed). */
async function build(loopBytes: Uint8Array<ArrayBuffer>): Promise<{ cases: HypercallCase[]; run: Map<string, (n: number) => void> }> {
  const loopModule = await WebAssembly.compile(loopBytes);

  const instantiate = async (hypercall: Hypercall): Promise<LoopInstance> => {
    const inst = await WebAssembly.instantiate(loopModule, { hv: { hypercall } });
    const memory = inst.exports.memory as WebAssembly.Memory;
    const view = new Uint8Array(memory.buffer);
    for (let i = 0; i < LEN; i++) view[IN + i] = i + 1;
    return { loop: inst.exports.loop as LoopInstance['loop'], memory };
  };
  const withDispatcher = async (devices: (stats: Float64Array) => Device[], args: string[]): Promise<LoopInstance> => {
    const memory = new GuestMemory();
    const stats = new Float64Array(allocateStats());
    const d = new Dispatcher({ memory, devices: devices(stats), args, stats, onViolation: () => {} });
    const t = await instantiate(d.hypercall);
    memory.bind(t.memory);
    return t;
  };

  // Another partition's boundary serves a mix of calls first (see the header).
  {
    const memory = new GuestMemory();
    memory.bind(new WebAssembly.Memory({ initial: 1 }));
    const stats = new Float64Array(allocateStats());
    const devices = [new ClockDevice({ resolutionNs: 1000, deterministic: null }), new EntropyDevice({ seed: 'warm' }, stats)];
    const d = new Dispatcher({ memory, devices, args: ['warm-up'], stats, onViolation: () => {} });
    const mix: [number, number, number][] = [
      [HvCall.VERSION, 0, 0],
      [HvCall.DEVICE_LIST, 0, 64],
      [HvCall.ARGS_SIZE, 0, 0],
      [HvCall.ARGS_GET, 0, 16],
      [HvCall.INPUT_SIZE, 0, 0],
      [HvCall.CLOCK_GET, 4, 8],
      [HvCall.ENTROPY_GET, 0, 32],
      [HvCall.CONSOLE_WRITE, 4, 0], // not granted: refused
    ];
    for (let i = 0; i < 20_000; i++) for (const [call, inLen, outCap] of mix) d.hypercall(call, 1024, inLen, 2048, outCap);
  }

  const bareNoop = await instantiate((_call, _inPtr, _inLen, _outPtr, _outCap) => 0);
  const scratch = new Uint8Array(65536);
  const scratchDv = new DataView(scratch.buffer);
  let subView = new Uint8Array(0);
  const bareCopy = await instantiate((_call, inPtr, inLen, outPtr, outCap) => {
    scratch.set(subView.subarray(inPtr, inPtr + inLen));
    subView.set(scratch.subarray(0, outCap), outPtr);
    return outCap;
  });
  subView = new Uint8Array(bareCopy.memory.buffer);
  let wordsDv = new DataView(new ArrayBuffer(0));
  const bareWords = await instantiate((_call, inPtr, inLen, outPtr, outCap) => {
    const g = wordsDv;
    for (let i = 0; i + 4 <= inLen; i += 4) scratchDv.setInt32(i, g.getInt32(inPtr + i, true), true);
    for (let i = 0; i + 4 <= outCap; i += 4) g.setInt32(outPtr + i, scratchDv.getInt32(i, true), true);
    return outCap;
  });
  wordsDv = new DataView(bareWords.memory.buffer);
  const arg = 'a'.repeat(LEN - 1); // one argument, NUL-terminated: a 64-byte ARGS_GET block
  const hvVersion = await withDispatcher(() => [], []);
  const hvArgs = await withDispatcher(() => [], [arg]);
  const hvEntropy = await withDispatcher((stats) => [new EntropyDevice({ seed: 'bench' }, stats)], []);

  const rows: [HypercallCase, LoopInstance, [number, number, number, number, number], number][] = [
    [{ id: 'bare_noop', label: 'bare import, no-op (baseline)', samples: [] }, bareNoop, [0, 0, 0, 0, 0], 0],
    [{ id: 'version', label: 'HV_CALL_VERSION via Dispatcher', baseline: 'bare_noop', samples: [] }, hvVersion, [HvCall.VERSION, 0, 0, 0, 0], HV_ABI_VERSION],
    [{ id: 'bare_copy64', label: 'bare import, copy 64 B in + 64 B out, subarray+set (baseline)', samples: [] }, bareCopy, [0, IN, LEN, OUT, LEN], LEN],
    [{ id: 'bare_words64', label: 'bare import, copy 64 B in + 64 B out, 32-bit words (baseline)', samples: [] }, bareWords, [0, IN, LEN, OUT, LEN], LEN],
    [{ id: 'args_get64', label: 'HV_CALL_ARGS_GET 64 B in + 64 B out via Dispatcher', baseline: 'bare_copy64', alsoVs: 'bare_words64', samples: [] }, hvArgs, [HvCall.ARGS_GET, IN, LEN, OUT, LEN], LEN],
    [{ id: 'entropy64', label: 'HV_CALL_ENTROPY_GET 64/64, seeded (incl. device)', baseline: 'bare_copy64', runs: 3, samples: [] }, hvEntropy, [HvCall.ENTROPY_GET, IN, LEN, OUT, LEN], LEN],
  ];
  // Correctness first: every import answers what it should, so no row times an error path.
  for (const [c, t, a, expect] of rows) {
    const r = t.loop(1, ...a);
    if (r !== expect) throw new Error(`bench: ${c.id} returned ${r}, expected ${expect}`);
  }
  const argsOut = new Uint8Array(hvArgs.memory.buffer, OUT, LEN);
  if (new TextDecoder().decode(argsOut.subarray(0, LEN - 1)) !== arg || argsOut[LEN - 1] !== 0) throw new Error('bench: ARGS_GET wrote the wrong bytes');
  for (const t of [bareCopy, bareWords]) {
    const out = new Uint8Array(t.memory.buffer, OUT, LEN);
    if (out[0] !== 1 || out[LEN - 1] !== LEN) throw new Error('bench: a bare copy wrote the wrong bytes');
  }
  const run = new Map(rows.map(([c, t, a]) => [c.id, (n: number) => void t.loop(n, ...a)]));
  return { cases: rows.map(([c]) => c), run };
}

export interface MeasureOptions {
  /** LOOP_WAT compiled to a binary. */
  loop: Uint8Array<ArrayBuffer>;
  /** Calls per run. */
  calls: number;
  /** Runs per case (rounds over every case, interleaved). */
  runs: number;
  /** Warm-up rounds of calls/4 each, so V8 has tiered up every function first. */
  warmup?: number;
  /** Only these case ids (default: all). */
  only?: readonly string[];
  onProgress?: (message: string) => void;
}

/** Measures the cases, interleaved round by round so drift and other tenants' load hit every case alike. */
export async function measureHypercalls(options: MeasureOptions): Promise<HypercallCase[]> {
  const { cases: all, run } = await build(options.loop);
  const cases = options.only ? all.filter((c) => options.only!.includes(c.id)) : all;
  const once = (id: string, n: number): number => {
    const t0 = process.cpuUsage();
    run.get(id)!(n);
    const d = process.cpuUsage(t0);
    return ((d.user + d.system) * 1000) / n;
  };
  const warmup = options.warmup ?? 3;
  for (let w = 0; w < warmup; w++) {
    for (const c of cases) once(c.id, Math.max(1, options.calls >> 2));
    options.onProgress?.(`hypercalls: warm-up ${w + 1}/${warmup}`);
  }
  for (let r = 0; r < options.runs; r++) {
    for (const c of cases) if (r < (c.runs ?? options.runs)) c.samples.push(once(c.id, options.calls));
    options.onProgress?.(`hypercalls: run ${r + 1}/${options.runs}`);
  }
  return cases;
}

/** Median of a sample. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
