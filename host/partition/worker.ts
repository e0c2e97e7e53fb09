/**
 * A partition's worker thread: the child partition's whole world. It instantiates the guest
 * with exactly one import (`hv.hypercall`), runs `_start`, and reports how the run ended.
 * Console lines and violations go to the root on the event ring; counters in the stats block.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HV_HYPERCALL, HV_MODULE } from '../abi/codes.ts';
import { Dispatcher, FuelExhausted, GuestAbort, GuestExit } from '../abi/dispatcher.ts';
import { GuestMemory } from '../abi/guest-memory.ts';
import { SharedRing } from '../channel/ring.ts';
import { ClockDevice } from '../devices/clock.ts';
import { ConsoleDevice } from '../devices/console.ts';
import type { Device } from '../devices/device.ts';
import { EntropyDevice } from '../devices/entropy.ts';
import { BlockDevice } from '../devices/block.ts';
import { NetDevice } from '../devices/net.ts';
import { BlockImage } from '../storage/image.ts';
import { createWasi, type WasiInstance } from '../wasi/setup.ts';
import { FUEL_BUDGET, FUEL_EXHAUSTED, FUEL_GLOBAL, START_EXPORT } from '../loader/instrument.ts';
import { CpuGovernor } from '../limits/cpu-governor.ts';
import { Stat } from './stats.ts';
import { CallKind, EventKind, MAX_VIOLATION_BYTES, type ViolationRecord, type WorkerInit, type WorkerMessage, type WorkerOutcome } from './protocol.ts';
import { MessageReader, sendMessage } from '../channel/message.ts';

const encoder = new TextEncoder();

function post(message: WorkerMessage): void {
  parentPort!.postMessage(message);
}

/** Maps whatever ended the guest's run to an outcome with a stable code. */
export function classify(error: unknown): WorkerOutcome {
  if (error instanceof GuestExit) return { kind: 'exit', code: error.code };
  if (error instanceof FuelExhausted) {
    return { kind: 'error', error: 'ERR_LIMIT_CPU', message: `partition ${error.partition} ran out of fuel: its budget of ${error.budget} is spent` };
  }
  if (error instanceof GuestAbort) return { kind: 'error', error: 'ERR_GUEST_TRAP', message: `guest aborted: ${error.message}` };
  if (error instanceof WebAssembly.RuntimeError) return { kind: 'error', error: 'ERR_GUEST_TRAP', message: `guest trapped: ${error.message}` };
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    return { kind: 'error', error: 'ERR_GUEST_TRAP', message: 'guest trapped: stack overflow (maximum call stack size exceeded)' };
  }
  if (error instanceof WebAssembly.LinkError) return { kind: 'error', error: 'ERR_IMPORT_DENIED', message: `guest failed to link: ${error.message}` };
  if (error instanceof RangeError && /memory/i.test(error.message)) return { kind: 'error', error: 'ERR_LIMIT_MEMORY', message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { kind: 'error', error: 'ERR_INTERNAL', message: `runtime fault while running the guest: ${message}` };
}

const decoder = new TextDecoder();

/** A violation as one event record (JSON), its reason shortened so it always fits MAX_VIOLATION_BYTES. */
function violationRecord(v: ViolationRecord): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(v));
  if (bytes.length <= MAX_VIOLATION_BYTES) return bytes;
  return encoder.encode(JSON.stringify({ call: v.call.slice(0, 256), status: v.status.slice(0, 64), reason: `${v.reason.slice(0, 1024)}…` }));
}

/** The budget of a partition metered only for its CPU cap: never reached (2^53 − 1 units). */
const UNLIMITED_FUEL = Number.MAX_SAFE_INTEGER;

/** Polls, then sleeps, until the call ring has a record or is closed. */
function awaitRecord(calls: SharedRing, spinMicros: number): boolean {
  if (spinMicros > 0 && calls.peekLength() < 0 && !calls.closed) {
    // A short poll keeps a busy reactor's call latency off the futex wake-up path; bounded, and
    // only this partition's own thread pays for it.
    const end = performance.now() + spinMicros / 1000;
    while (calls.peekLength() < 0 && !calls.closed && performance.now() < end);
  }
  return calls.waitReadable() === 'ready';
}

/** Bytes of a call message before the input: f64 fuel, u16 name length (the name follows). */
const CALL_HEADER = 10;

/**
 * A reactor's life after instantiation: `_initialize` once, then one export call per request
 * until the root closes the call ring. A trap or exit inside a call propagates and ends the
 * worker: the root treats the instance as poisoned and never reuses it.
 */
function serveCalls(
  init: WorkerInit,
  instance: WebAssembly.Instance,
  dispatcher: Dispatcher,
  events: SharedRing,
  refuel: (budget: number) => void,
  busy: { idle(): void; resume(): void },
): void {
  const initialize = instance.exports._initialize;
  if (typeof initialize === 'function') initialize();
  if (dispatcher.ending) return;
  post({ type: 'ready' });
  const calls = new SharedRing(init.calls);
  // The root sends calls of at most maxInputBytes plus a name (an export name is at most 64 KiB).
  const reader = new MessageReader(calls, (kind) => (kind === CallKind.CALL ? CALL_HEADER + 65535 + init.maxInputBytes : -1));
  const header = new Uint8Array(4);
  for (;;) {
    // Waiting for a call is not running: neither the CPU time nor the CPU cap counts it.
    busy.idle();
    let request = reader.read();
    while (request === null) {
      if (!awaitRecord(calls, init.spinMicros)) break;
      request = reader.read();
    }
    busy.resume();
    if (request === null) break;
    const bytes = request.bytes;
    // Message: f64 fuel budget (0: the partition's own), u16 name length, name, input.
    const callFuel = new DataView(bytes.buffer, bytes.byteOffset).getFloat64(0, true);
    if (init.fuel !== null) refuel(callFuel > 0 ? callFuel : init.fuel);
    const nameLength = bytes[8]! | (bytes[9]! << 8);
    const name = decoder.decode(bytes.subarray(CALL_HEADER, CALL_HEADER + nameLength));
    const fn = instance.exports[name];
    // The root checked the export against the module; a mismatch here is a runtime bug.
    if (typeof fn !== 'function') throw new Error(`export ${name} is not a function`);
    dispatcher.beginCall(bytes.slice(CALL_HEADER + nameLength), init.maxOutputBytes);
    bytes.fill(0);
    const ret = (fn as () => number)() | 0;
    if (dispatcher.ending) return;
    const output = dispatcher.endCall();
    new DataView(header.buffer).setInt32(0, ret, true);
    // Chunked when larger than the ring: a result of any size up to maxOutputBytes gets through.
    const sent = sendMessage(events, EventKind.RESULT, [header, output], Infinity);
    output.fill(0);
    if (!sent) throw new Error('the root stopped reading results');
  }
}

function run(init: WorkerInit): WorkerOutcome {
  const stats = new Float64Array(init.stats);
  const events = new SharedRing(init.events);
  const input = new SharedRing(init.input);
  const memory = new GuestMemory();

  const devices: Device[] = [];
  const consoleDevice = init.devices.console ? new ConsoleDevice(init.devices.console, events, input, stats) : null;
  const clockDevice = init.devices.clock ? new ClockDevice(init.devices.clock) : null;
  const entropyDevice = init.devices.entropy ? new EntropyDevice(init.devices.entropy, stats) : null;
  if (consoleDevice) devices.push(consoleDevice);
  if (clockDevice) devices.push(clockDevice);
  if (entropyDevice) devices.push(entropyDevice);
  if (init.devices.block && init.block) {
    const image = new BlockImage(init.block);
    init.block.dataKey.fill(0); // BlockImage keeps its own copy, dropped when the device closes
    devices.push(new BlockDevice(init.devices.block, image, stats));
  }
  if (init.devices.net && init.net) devices.push(new NetDevice(init.net));

  const dispatcher = new Dispatcher({
    memory,
    devices,
    args: init.args,
    stats,
    violationsPerSecond: init.violationsPerSecond,
    hypercallRate: init.hypercallRate,
    onViolation: (v: ViolationRecord) => {
      // Never blocks: a guest must not be able to stall itself on its own violation reports.
      if (!events.tryWrite(EventKind.VIOLATION, violationRecord(v))) stats[Stat.VIOLATIONS_SUPPRESSED]!++;
    },
  });

  const hv: Record<string, WebAssembly.ImportValue> = { [HV_HYPERCALL]: dispatcher.hypercall };
  // A metered module imports its budget and its exhaustion hook and exports its counter (all
  // added by the instrumenter, never declared by the guest; see instrument.ts). A module is
  // metered for a fuel budget, a CPU cap, or both.
  const metered = init.fuel !== null || init.cpu !== null;
  let fuel: WebAssembly.Global | null = null;
  // The counter is handed out in slices: each time a slice is spent the hook runs (the CPU cap's
  // periodic interrupt) and refills it with the next slice, at most what is left of the budget.
  // The run stops where the whole budget would have: the first checkpoint whose charge takes the
  // total past the budget is the same however the budget is cut into slices, so a fuel limit
  // stays deterministic with a cap. Without a cap the slice is the whole budget (one refill).
  // `meter`: the budget in force (a reactor's is per call), the fuel consumed before the current
  // slice, the slice's size, and the fuel spent under earlier budgets.
  const sliceFuel = init.cpu?.sliceFuel ?? Infinity;
  const firstBudget = init.fuel ?? UNLIMITED_FUEL;
  const meter = { budget: firstBudget, base: 0, slice: Math.min(sliceFuel, firstBudget), spentBefore: 0 };
  const pauseCell = new Int32Array(new SharedArrayBuffer(4));
  const base = { pausedMs: stats[Stat.CPU_PAUSED_MS]!, pauses: stats[Stat.CPU_PAUSES]!, cpuMs: stats[Stat.CPU_TIME_MS]!, work: stats[Stat.WORK_FUEL]! };
  const governor = init.cpu
    ? new CpuGovernor({
        maxPercent: init.cpu.maxPercent,
        periodMs: init.cpu.periodMs,
        now: () => performance.now(),
        // A private cell nobody notifies: the wait always runs to its timeout. It blocks only this
        // partition's worker; the watchdog and stop() still end it (terminate interrupts the wait).
        // The pause is counted before it starts, so a partition killed while paused reports it.
        sleep: (ms) => {
          stats[Stat.CPU_PAUSES]!++;
          stats[Stat.CPU_PAUSED_MS]! += ms;
          Atomics.wait(pauseCell, 0, 0, ms);
        },
      })
    : null;
  /** Fuel consumed under the budget in force (may exceed it by the last charge, until clamped). */
  const used = (): number => (fuel === null ? 0 : meter.base + meter.slice - Number(fuel.value as bigint));
  if (init.fuel !== null) stats[Stat.FUEL_BUDGET] = init.fuel;
  if (metered) {
    hv[FUEL_BUDGET] = new WebAssembly.Global({ value: 'i64', mutable: false }, BigInt(meter.slice));
    hv[FUEL_EXHAUSTED] = () => {
      if (dispatcher.ending !== null) throw dispatcher.ending;
      const total = used();
      // The counter stays negative: a guest that catches this comes back here at its next checkpoint.
      if (fuel === null || total > meter.budget) throw (dispatcher.ending = new FuelExhausted(init.name, meter.budget));
      if (governor !== null) {
        governor.checkpoint();
        // Counters are the partition's, cumulative over a reactor's restarts: this run's on top of `base`.
        stats[Stat.CPU_PAUSED_MS] = base.pausedMs + governor.pausedMs;
        stats[Stat.CPU_PAUSES] = base.pauses + governor.pauses;
        stats[Stat.CPU_TIME_MS] = base.cpuMs + busyClock.ms();
        stats[Stat.WORK_FUEL] = base.work + meter.spentBefore + total;
      }
      meter.base = total;
      meter.slice = Math.min(sliceFuel, meter.budget - total);
      fuel.value = BigInt(meter.slice);
    };
  }
  const spent = (): number => Math.min(meter.budget, used());
  /** Gives the next call a fresh budget (reactors): what the last one spent is kept in the total. */
  const refuel = (callBudget: number): void => {
    if (fuel === null) return;
    meter.spentBefore += spent();
    meter.budget = callBudget;
    meter.base = 0;
    meter.slice = Math.min(sliceFuel, callBudget);
    fuel.value = BigInt(meter.slice);
  };
  /**
   * Time the worker spent running guest code (start-up, _start, reactor calls), less the time
   * the CPU cap paused it. Wall time: Node 20 has no per-thread CPU clock.
   */
  let busySince: number | null = null;
  let busyMs = 0;
  const busyClock = {
    ms: () => busyMs + (busySince === null ? 0 : performance.now() - busySince) - (governor?.pausedMs ?? 0),
    idle: () => {
      if (busySince !== null) busyMs += performance.now() - busySince;
      busySince = null;
      stats[Stat.CPU_TIME_MS] = base.cpuMs + busyClock.ms();
    },
    resume: () => {
      busySince ??= performance.now();
      governor?.resume();
    },
  };

  // WASI, when the spec enables it: a second import module on the same memory, devices and exit path.
  let wasi: WasiInstance | null = null;
  let outcome: WorkerOutcome;
  try {
    if (init.wasi !== null) {
      wasi = createWasi(init.wasi, {
        memory,
        console: consoleDevice,
        clock: clockDevice,
        entropy: entropyDevice,
        exit: (code) => dispatcher.exit(code),
        checkEnding: () => dispatcher.checkEnding(),
        onCall: () => stats[Stat.WASI_CALLS]!++,
        onFault: (name) => dispatcher.reportFault(`wasi.${name}`, 'a pointer or length lies outside guest memory'),
      });
    }
    const importObject: WebAssembly.Imports = { [HV_MODULE]: hv };
    if (wasi !== null) importObject[wasi.module] = wasi.imports;
    post({ type: 'running' });
    busyClock.resume();
    // The wasm start function (if any) runs inside this constructor, under the root's watchdog.
    const instance = new WebAssembly.Instance(init.module, importObject);
    const counter = instance.exports[FUEL_GLOBAL];
    if (counter instanceof WebAssembly.Global) fuel = counter;
    // A metered module's start function, moved out of instantiation by the instrumenter so the
    // counter is reachable; it runs before memory is bound, as a real start function would.
    const hoistedStart = instance.exports[START_EXPORT];
    if (typeof hoistedStart === 'function') hoistedStart();
    const mem = instance.exports.memory;
    if (!(mem instanceof WebAssembly.Memory)) {
      // The loader's policy makes this unreachable; kept as a second line of defence.
      throw new Error('guest does not export memory');
    }
    memory.bind(mem);
    dispatcher.updateMemoryStats();
    if (init.kind === 'reactor') {
      serveCalls(init, instance, dispatcher, events, refuel, busyClock);
    } else {
      const start = instance.exports._start;
      if (typeof start !== 'function') throw new Error('guest does not export _start');
      start();
    }
    // A guest that caught its own exit and returned still exits with the code it asked for.
    outcome = dispatcher.ending ? classify(dispatcher.ending) : { kind: 'exit', code: 0 };
  } catch (error) {
    outcome = classify(dispatcher.ending ?? error);
  }
  busyClock.idle();
  dispatcher.updateMemoryStats();
  wasi?.close();
  if (fuel !== null) {
    // The counter only decreases, and may end below zero by the last charge: clamp to the budget.
    const total = meter.spentBefore + spent();
    stats[Stat.WORK_FUEL] = base.work + total;
    if (init.fuel !== null) stats[Stat.FUEL_CONSUMED] = total;
  }
  for (const d of devices) d.close?.();
  // Scrub: nothing the guest held outlives the run in this thread's heap.
  memory.scrub();
  return outcome;
}

if (parentPort !== null) {
  let outcome: WorkerOutcome;
  try {
    outcome = run(workerData as WorkerInit);
  } catch (error) {
    outcome = classify(error);
  }
  post({ type: 'done', outcome });
}
