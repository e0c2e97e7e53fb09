/**
 * One partition inside a worker: its instance, memory, dispatcher, devices, meter and counters.
 * A worker holds one context (dedicated placement) or many (shared placement, scheduled by
 * host/worker/scheduler.ts); a context never sees another's state.
 *
 * A context is a small state machine driven by `resume()`, which runs the guest until it ends,
 * waits for something (the next call, room for its result), or is suspended in the middle of
 * the guest (shared placement only: a blocking hypercall or the end of its time slice). The
 * dedicated driver (`runDedicated`) waits by blocking its own thread; the shared scheduler waits
 * by running other contexts.
 */
import { performance } from 'node:perf_hooks';
import { HV_HYPERCALL, HV_MODULE } from '../abi/codes.ts';
import { Dispatcher, FuelExhausted } from '../abi/dispatcher.ts';
import { GuestMemory } from '../abi/guest-memory.ts';
import { threadBlocker, type Blocker, type WaitCondition } from '../channel/blocker.ts';
import { MessageReader } from '../channel/message.ts';
import { Outbox } from './outbox.ts';
import { RecentWait, SpinBudget, spinFor } from '../channel/spin.ts';
import { CallKind, EventKind, MAX_VIOLATION_BYTES, type ViolationRecord, type WorkerInit, type WorkerMessage, type WorkerOutcome } from '../channel/protocol.ts';
import { SharedRing } from '../channel/ring.ts';
import { Stat } from '../channel/stats.ts';
import type { OutputSink } from '../devices/console.ts';
import { CpuGovernor } from '../limits/cpu-governor.ts';
import { FUEL_BUDGET, FUEL_EXHAUSTED, FUEL_GLOBAL, START_EXPORT } from '../loader/instrument.ts';
import { createWasi, type WasiInstance } from '../wasi/setup.ts';
import { wireDevices, type DeviceSet } from './devices.ts';
import { classify } from './outcome.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The budget of a partition metered only for its CPU cap: never reached (2^53 − 1 units). */
const UNLIMITED_FUEL = Number.MAX_SAFE_INTEGER;

/**
 * The busy clock's reading, in ms: the monotonic clock under `performance.now()` (libuv's
 * hrtime, the same nanoseconds), read in one call of Node's. `performance.now()` is three of its
 * JavaScript functions (the method, a brand check and the wrapper around it), which a reactor
 * called now and then runs in V8's interpreter, twice per call (docs/PERFORMANCE.md, "Session 12:
 * row 3"). Only differences of these readings are used (busy time, a call's gap), so the origin
 * does not matter; the nanoseconds convert to a double exactly for 104 days of uptime (2^53 ns),
 * within a few nanoseconds after that, far below what the counters resolve.
 */
const hrtimeNs = process.hrtime.bigint;

/**
 * The values the reactor's call path uses from the protocol's tables, taken once: `CallKind.CALL`
 * is a load of a module variable and of its property, which a reactor called now and then runs in
 * V8's interpreter or baseline tier (an inline-cache builtin each, docs/PERFORMANCE.md, "Session
 * 13: row 3").
 */
const CALL_KIND = CallKind.CALL;
const RESULT_KIND = EventKind.RESULT;
const CPU_TIME_MS = Stat.CPU_TIME_MS;

/** Bytes of a call message before the input: f64 fuel, u16 name length (the name follows). */
const CALL_HEADER = 10;

/** A violation as one event record (JSON), its reason shortened so it always fits MAX_VIOLATION_BYTES. */
function violationRecord(v: ViolationRecord): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(v));
  if (bytes.length <= MAX_VIOLATION_BYTES) return bytes;
  return encoder.encode(JSON.stringify({ call: v.call.slice(0, 256), status: v.status.slice(0, 64), reason: `${v.reason.slice(0, 1024)}…` }));
}

/** What `resume()` reports: the run ended, it waits for a condition, or it was preempted (run it again). */
export type Step = { kind: 'ended'; outcome: WorkerOutcome } | { kind: 'wait'; wait: WaitCondition } | { kind: 'yield' };

/** The one `yield` step (it carries nothing). */
const YIELD: Step = Object.freeze({ kind: 'yield' });

/**
 * How a context reaches its guest and its waits, given by its placement: a dedicated worker
 * blocks its thread and calls exports directly; a shared one suspends (host/worker/suspend.ts).
 */
export interface Placement {
  /** True when a wait blocks the thread (dedicated); false when it suspends the guest (shared). */
  readonly blocksThread: boolean;
  readonly blocker: Blocker;
  /** Where the console's lines go (null: straight into the event ring, waiting for room). */
  readonly sink: ((outbox: Outbox) => OutputSink) | null;
  /** Extra imports and exports the placement's code transform added (e.g. Asyncify); null for none. */
  bind(instance: WebAssembly.Instance, memory: WebAssembly.Memory): void;
  /**
   * Calls a guest entry point. Returns its value, or SUSPENDED when the guest was unwound in the
   * middle (shared placement), with `pending()` saying what it waits for; calling `invoke` again
   * with the same `fn` resumes it where it stopped.
   */
  invoke(fn: () => unknown): unknown;
  /** What a suspended guest waits for (null: it was preempted, and may run at once). */
  pending(): WaitCondition | null;
  /** True while the guest is being unwound (its exports return early; the caller must stop too). */
  unwinding(): boolean;
  /** Wraps an import so the guest can be suspended inside it (identity for a dedicated worker). */
  wrapImport<F extends (...args: never[]) => unknown>(name: string, fn: F, redo: (on: boolean) => void): F;
  /** Called at every fuel checkpoint after the budget and the CPU cap: may preempt the guest. */
  checkpoint(): void;
  /** The CPU cap's pause until `deadline`; `then` runs when it is over (at once after a blocking sleep, or when the guest resumes). */
  pause(deadline: number, then: () => void): void;
  /** Zeroes what the placement keeps of the guest's memory (a suspended guest's bytes under its saved frames): the run is over. */
  scrub(): void;
}

/** Returned by `Placement.invoke` for a guest that was unwound. */
export const SUSPENDED: unique symbol = Symbol('suspended');

/** The dedicated worker's placement: nothing is ever suspended. */
export const blockingPlacement: Placement = {
  blocksThread: true,
  blocker: threadBlocker,
  sink: null,
  bind() {},
  invoke: (fn) => fn(),
  pending: () => null,
  unwinding: () => false,
  wrapImport: (_name, fn) => fn,
  checkpoint() {},
  pause(deadline, then) {
    threadBlocker.sleep(deadline);
    then();
  },
  scrub() {},
};

/**
 * A context's phase. Small integers, not strings: `advance` switches on it at every step, and a
 * reactor called now and then runs that switch in V8's interpreter or baseline tier, where a
 * string case is a builtin call (docs/PERFORMANCE.md, "Session 12: row 3").
 */
const BOOT = 0;
const MAIN = 1;
const INIT = 2;
const IDLE = 3;
const CALL = 4;
const RESULT = 5;
const CLOSING = 6;
const ENDED = 7;
type Phase = typeof BOOT | typeof MAIN | typeof INIT | typeof IDLE | typeof CALL | typeof RESULT | typeof CLOSING | typeof ENDED;

/**
 * A GuestMemory made ahead, while a warm dedicated worker waits for its partition (after its
 * warm-up, host/worker/main.ts): the first one a worker made after sitting idle took it about
 * 0.1 ms, on the start's path (measured with timestamps, 30 starts, load 8-12; the next one
 * ~10 µs). Handed out once, never bound to a memory before.
 */
let heldMemory: GuestMemory | null = null;

/** Makes the GuestMemory the next context in this thread takes. */
export function holdGuestMemory(): void {
  heldMemory ??= new GuestMemory();
}

function guestMemory(): GuestMemory {
  const memory = heldMemory ?? new GuestMemory();
  heldMemory = null;
  return memory;
}

/** Bytes of console lines a shared partition may have queued before its writes wait. */
const OUTBOX_BYTES = 65536;

export class PartitionContext {
  readonly name: string;
  readonly stats: Float64Array;
  readonly events: SharedRing;
  readonly calls: SharedRing;
  readonly input: SharedRing;
  /** True while the reactor waits for its next call: idle time is neither CPU time nor a slice. */
  get idle(): boolean {
    return this.phase === IDLE;
  }

  private phase: Phase = BOOT;
  private readonly memory = guestMemory();
  private readonly devices: DeviceSet;
  private readonly dispatcher: Dispatcher;
  private readonly hv: Record<string, WebAssembly.ImportValue>;
  private wasi: WasiInstance | null = null;
  private instance: WebAssembly.Instance | null = null;
  private fuel: WebAssembly.Global | null = null;
  private readonly governor: CpuGovernor | null;
  private readonly meter: { budget: number; base: number; slice: number; spentBefore: number };
  private readonly sliceFuel: number;
  /**
   * metrics.cpu.fuel is the work of a partition with a fuel budget or a CPU cap; a shared
   * partition is metered only to be scheduled, and reports none, as it would in a dedicated worker.
   */
  private readonly reportsWork: boolean;
  private readonly base: { pausedMs: number; pauses: number; cpuMs: number; work: number };
  private busySince: number | null = null;
  private busyMs = 0;
  /** When the clock was last paused (ms, the busy clock: hrtimeNs), or -1: the start of an idle reactor's wait. */
  private idleSince = -1;
  /**
   * How long this reactor waited for each of its recent calls (from the end of one call to the
   * start of the next), µs: a dedicated worker polls for the next call only when that is short.
   * Taken from the clock reads the CPU time needs anyway: no clock read of its own.
   */
  readonly callGaps = new RecentWait();
  /**
   * The idle reactor's wait for its next call, and the step that reports it: one of each per
   * context, the sequence number updated per wait (a step is used before the context runs again).
   */
  private readonly idleWait: { what: 'readable'; ring: SharedRing; seq: number; deadline: number };
  private readonly idleStep: Step;
  /** A DataView over the buffer the last call message was read into (the reader reuses it). */
  private callView: DataView = new DataView(new ArrayBuffer(8));
  private readonly reader: MessageReader | null;
  /** The bound of a call message (its header, the longest export name, the largest input). */
  private readonly maxCall: number;
  private current: { fn: () => unknown; name: string } | null = null;
  /** The export the last call named (see callTarget). */
  private lastTarget: { key: Uint8Array; name: string; fn: () => unknown } | null = null;
  /** A result's header (its i32 status), reused: the outbox copies it when it must queue. */
  private readonly resultHeader = new Uint8Array(4);
  private readonly resultView = new DataView(this.resultHeader.buffer);
  /** Messages on their way into the event ring, in order (results; a shared partition's lines). */
  readonly outbox: Outbox;
  private outcome: WorkerOutcome | null = null;

  constructor(
    readonly init: WorkerInit,
    private readonly placement: Placement,
    private readonly post: (message: WorkerMessage) => void,
  ) {
    this.name = init.name;
    this.stats = new Float64Array(init.stats);
    this.events = new SharedRing(init.events);
    this.input = new SharedRing(init.input);
    this.calls = new SharedRing(init.calls);
    this.idleWait = { what: 'readable', ring: this.calls, seq: 0, deadline: Infinity };
    this.idleStep = { kind: 'wait', wait: this.idleWait };
    const stats = this.stats;
    this.outbox = new Outbox(this.events, OUTBOX_BYTES);
    this.devices = wireDevices(init, { events: this.events, input: this.input }, stats, placement.blocker, placement.sink?.(this.outbox) ?? null);
    this.dispatcher = new Dispatcher({
      memory: this.memory,
      devices: this.devices.all,
      args: init.args,
      stats,
      violationsPerSecond: init.violationsPerSecond,
      hypercallRate: init.hypercallRate,
      sleep: (ms) => placement.blocker.sleep(performance.now() + ms),
      onViolation: (v: ViolationRecord) => {
        // Never blocks: a guest must not be able to stall itself on its own violation reports. A
        // shared partition's small ring is backed by its outbox (bounded, flushed by the scheduler).
        const record = violationRecord(v);
        const sent = placement.sink === null ? this.events.tryWrite(EventKind.VIOLATION, record) : this.outbox.offer(EventKind.VIOLATION, record);
        if (!sent) stats[Stat.VIOLATIONS_SUPPRESSED]!++;
      },
    });
    // Metered for a fuel budget, a CPU cap, or shared placement (its checkpoints are the preemption points).
    const metered = init.fuel !== null || init.cpu !== null || init.sliceFuel !== undefined;
    // The counter is handed out in slices: each time a slice is spent the hook runs (the CPU cap's
    // periodic interrupt, a shared worker's preemption point) and refills it with the next slice,
    // at most what is left of the budget. The run stops where the whole budget would have: the
    // first checkpoint whose charge takes the total past the budget is the same however the
    // budget is cut into slices, so a fuel limit stays deterministic with a cap or in a shared
    // worker. `meter`: the budget in force (a reactor's is per call), the fuel consumed before
    // the current slice, the slice's size, and the fuel spent under earlier budgets.
    this.sliceFuel = init.sliceFuel ?? init.cpu?.sliceFuel ?? Infinity;
    this.reportsWork = init.fuel !== null || init.cpu !== null;
    const firstBudget = init.fuel ?? UNLIMITED_FUEL;
    this.meter = { budget: firstBudget, base: 0, slice: Math.min(this.sliceFuel, firstBudget), spentBefore: 0 };
    this.base = { pausedMs: stats[Stat.CPU_PAUSED_MS]!, pauses: stats[Stat.CPU_PAUSES]!, cpuMs: stats[Stat.CPU_TIME_MS]!, work: stats[Stat.WORK_FUEL]! };
    // Paused through the placement (checkpoint: due() and resumed()), never by its own sleep.
    this.governor = init.cpu
      ? new CpuGovernor({ maxPercent: init.cpu.maxPercent, periodMs: init.cpu.periodMs, now: () => performance.now(), sleep: () => {} })
      : null;
    if (init.fuel !== null) stats[Stat.FUEL_BUDGET] = init.fuel;
    const redo = (on: boolean): void => this.dispatcher.setRedo(on);
    this.hv = { [HV_HYPERCALL]: placement.wrapImport(HV_HYPERCALL, this.dispatcher.hypercall, redo) };
    if (metered) {
      this.hv[FUEL_BUDGET] = new WebAssembly.Global({ value: 'i64', mutable: false }, BigInt(this.meter.slice));
      this.hv[FUEL_EXHAUSTED] = placement.wrapImport(FUEL_EXHAUSTED, () => this.checkpoint(), () => {});
    }
    // The bound of a call message, worked out once (the reader asks for it at every call).
    const callKind = CallKind.CALL;
    const maxCall = (this.maxCall = CALL_HEADER + 65535 + init.maxInputBytes);
    this.reader = init.kind === 'reactor' ? new MessageReader(this.calls, (kind) => (kind === callKind ? maxCall : -1)) : null;
  }

  /** Fuel consumed under the budget in force (may exceed it by the last charge, until clamped). */
  private used(): number {
    return this.fuel === null ? 0 : this.meter.base + this.meter.slice - Number(this.fuel.value as bigint);
  }

  private spent(): number {
    return Math.min(this.meter.budget, this.used());
  }

  /** The instrumenter's `fuel_exhausted` hook: a slice of fuel is spent. */
  private checkpoint(): void {
    const d = this.dispatcher;
    if (d.ending !== null) throw d.ending;
    const total = this.used();
    // The counter stays negative: a guest that catches this comes back here at its next checkpoint.
    if (this.fuel === null || total > this.meter.budget) throw (d.ending = new FuelExhausted(this.name, this.meter.budget));
    const s = this.stats;
    const g = this.governor;
    if (g !== null) {
      const wait = g.due();
      if (wait >= 0) {
        // Counted before the pause starts, so a partition killed while paused reports it.
        s[Stat.CPU_PAUSES]!++;
        s[Stat.CPU_PAUSED_MS]! += wait;
        this.placement.pause(performance.now() + wait, () => {
          g.resumed();
          this.syncCpu();
        });
      } else {
        this.syncCpu();
      }
    }
    s[Stat.CPU_TIME_MS] = this.base.cpuMs + this.busyClock();
    if (this.reportsWork) s[Stat.WORK_FUEL] = this.base.work + this.meter.spentBefore + total;
    this.meter.base = total;
    this.meter.slice = Math.min(this.sliceFuel, this.meter.budget - total);
    this.fuel.value = BigInt(this.meter.slice);
    // Last: the counter is refilled, so a guest preempted here resumes with its next slice.
    this.placement.checkpoint();
  }

  /** Counters are the partition's, cumulative over a reactor's restarts: this run's on top of `base`. */
  private syncCpu(): void {
    const g = this.governor!;
    this.stats[Stat.CPU_PAUSED_MS] = this.base.pausedMs + g.pausedMs;
    this.stats[Stat.CPU_PAUSES] = this.base.pauses + g.pauses;
  }

  /** Gives the next call a fresh budget (reactors): what the last one spent is kept in the total. */
  private refuel(callBudget: number): void {
    if (this.fuel === null) return;
    this.meter.spentBefore += this.spent();
    this.meter.budget = callBudget;
    this.meter.base = 0;
    this.meter.slice = Math.min(this.sliceFuel, callBudget);
    this.fuel.value = BigInt(this.meter.slice);
  }

  /**
   * Time the context ran guest code (start-up, _start, reactor calls), less the time the CPU cap
   * paused it. Wall time: Node 20 has no per-thread CPU clock.
   */
  private busyClock(): number {
    // A blocking pause passes on the clock and is taken off here; a shared partition's clock is
    // stopped while it is off the thread, its pauses included.
    const paused = this.placement.blocksThread ? (this.governor?.pausedMs ?? 0) : 0;
    return this.busyMs + (this.busySince === null ? 0 : Number(hrtimeNs()) / 1e6 - this.busySince) - paused;
  }

  /** Stops counting running time (waiting for a call, or another partition's slice in a shared worker). */
  pauseClock(): void {
    const since = this.busySince;
    // Already paused: the counter holds what the pause wrote (nothing it is made of moves while
    // the clock stands: the busy time, the base, a blocking pause's total).
    if (since === null) return;
    const now = Number(hrtimeNs()) / 1e6;
    const busy = (this.busyMs += now - since);
    this.idleSince = now;
    this.busySince = null;
    // busyClock() with the clock stopped, inline.
    const paused = this.placement.blocksThread ? (this.governor?.pausedMs ?? 0) : 0;
    this.stats[CPU_TIME_MS] = this.base.cpuMs + (busy - paused);
  }

  /** Starts counting running time again. */
  resumeClock(): void {
    this.busySince ??= Number(hrtimeNs()) / 1e6;
    this.governor?.resume();
  }

  /**
   * Runs the context until it ends, waits or is preempted. Never throws: whatever ends the guest
   * becomes its outcome, and the end-of-run cleanup runs exactly once.
   */
  resume(): Step {
    try {
      return this.advance();
    } catch (error) {
      return this.end(classify(this.dispatcher.ending ?? error));
    }
  }

  /**
   * runDedicated's loop: runs the context on this thread, which it blocks while it waits. A
   * method, so the idle reactor's steps (the most frequent, once per call) take the fields
   * directly: a reactor called now and then runs this loop in V8's interpreter, where every
   * call and property load costs (docs/PERFORMANCE.md, "Session 12: row 3").
   */
  runBlocking(spin: SharedArrayBuffer | null): WorkerOutcome {
    const budget = new SpinBudget(spin ?? SpinBudget.allocate(0));
    const calls = this.calls;
    const idleStep = this.idleStep;
    const idleWait = this.idleWait;
    const spinMicros = this.init.spinMicros;
    const gaps = this.callGaps;
    // One closure for every poll (not one per wait): true once a call was written since `seq`.
    let seq = 0;
    const called = (): boolean => calls.writeSeq !== seq;
    for (;;) {
      // resume(), inline.
      let step: Step;
      try {
        step = this.advance();
      } catch (error) {
        step = this.end(classify(this.dispatcher.ending ?? error));
      }
      if (step === idleStep) {
        // The clock still runs after the reactor's initialisation (a call's end stopped it).
        if (this.busySince !== null) this.pauseClock();
        // Poll a moment for the next call when calls have been coming that fast (the context
        // times its calls' gaps), and a core is free; else sleep on the ring (the idle wait has
        // no deadline).
        seq = idleWait.seq;
        if (!(spinMicros > 0 && gaps.within(spinMicros) && spinFor(called, spinMicros, budget))) calls.waitWritten(seq);
        continue;
      }
      if (step.kind === 'ended') return step.outcome;
      if (step.kind === 'yield') continue;
      const w = step.wait;
      if (w.what === 'readable') {
        if (this.phase === IDLE) this.pauseClock();
        threadBlocker.readable(w.ring, w.seq, w.deadline);
      } else if (w.what === 'writable') threadBlocker.writable(w.ring, w.seq, w.deadline);
      else threadBlocker.sleep(w.deadline);
    }
  }

  /**
   * The reactor's two steps of every call, IDLE and CALL; every other phase in advanceRare. Apart,
   * so this function is small: V8 gives a function its feedback vector (and queues it for its
   * baseline compiler) only after it has run about eight times its own bytecode, and a reactor
   * called now and then runs all of it in the interpreter until then (docs/PERFORMANCE.md,
   * "Session 12: row 3"). With the other phases in it, `advance` needed 12-20 calls for that.
   */
  private advance(): Step {
    for (;;) {
      const phase = this.phase;
      if (phase === IDLE) {
        // The counter before the look: a call written in between still counts as news.
        const calls = this.calls;
        const seq = calls.writeSeq;
        const request = this.reader!.readOne(CALL_KIND, this.maxCall);
        if (request !== null) {
          this.beginCall(request.bytes);
          continue;
        }
        // The root closed the call ring: the reactor ends normally.
        if (calls.closed && calls.peekLength() < 0) return this.end(this.dispatcher.ending ? classify(this.dispatcher.ending) : { kind: 'exit', code: 0 });
        this.idleWait.seq = seq;
        return this.idleStep;
      }
      if (phase === CALL) {
        const current = this.current!;
        const placement = this.placement;
        // A dedicated worker calls the guest directly (one call frame less per call).
        const value = placement.blocksThread ? current.fn() : placement.invoke(current.fn);
        if (value === SUSPENDED) return this.suspended();
        this.current = null;
        const dispatcher = this.dispatcher;
        // A guest that caught its own exit and returned still exits with the code it asked for.
        if (dispatcher.ending !== null) return this.end(classify(dispatcher.ending));
        // The call's end, inline (every call of a reactor ends here, in V8's interpreter or
        // baseline tier when it is called now and then: docs/PERFORMANCE.md, "Session 13: row
        // 3"). endCall brings the memory counters up to date before the root
        // hears of the call's end (a call without buffers does not read the memory's size: see
        // Dispatcher); the clock stops before the result is written, so metrics() read after
        // the call has its time.
        const output = dispatcher.endCall();
        this.pauseClock();
        // The common case: nothing queued before it and room in the ring now. The result goes
        // in as one record, its status the record's 4-byte prefix (little-endian, as the root
        // reads it), and the reactor is idle at once. A dedicated worker never queues anything
        // in its outbox but a result that did not fit (RESULT, flushed before the next call).
        const events = this.events;
        if ((placement.sink === null || this.outbox.empty) && 4 + output.length <= events.maxRecord && events.tryWritePrefixed(RESULT_KIND, Number(value) | 0, output)) {
          output.fill(0);
          this.phase = IDLE;
          // A dedicated worker whose call was the last record in the open ring when it was
          // read waits at once, on the counter as it was before that look (SharedRing.drained):
          // a call written since or the ring's close moved it, and the wait returns at once to
          // look; else it sleeps. No second look at the ring between the result and the wait:
          // that work came after the root had the result, on a 2-core machine beside the next
          // call's wake-up (docs/PERFORMANCE.md, "Session 13: row 3"). A shared worker looks
          // again now: its scheduler would take a turn to find a call sent ahead.
          const calls = this.calls;
          if (calls.drained && placement.blocksThread) {
            this.idleWait.seq = calls.takenSeq;
            return this.idleStep;
          }
          continue;
        }
        this.queueResult(Number(value) | 0, output);
        continue;
      }
      const step = this.advanceRare(phase);
      if (step !== null) return step;
    }
  }

  /** What a guest suspended in the middle waits for (shared placement), as a step. */
  private suspended(): Step {
    const wait = this.placement.pending();
    return wait === null ? YIELD : { kind: 'wait', wait };
  }

  /** One step of a phase other than IDLE and CALL (see advance); null: go on with the next phase. */
  private advanceRare(phase: Phase): Step | null {
    switch (phase) {
      case MAIN:
      case INIT: {
        const current = this.current!;
        const placement = this.placement;
        const value = placement.blocksThread ? current.fn() : placement.invoke(current.fn);
        if (value === SUSPENDED) return this.suspended();
        this.current = null;
        const dispatcher = this.dispatcher;
        // A guest that caught its own exit and returned still exits with the code it asked for.
        if (dispatcher.ending !== null) return this.end(classify(dispatcher.ending));
        if (phase === MAIN) return this.end({ kind: 'exit', code: 0 });
        dispatcher.updateMemoryStats();
        this.post({ type: 'ready' });
        this.phase = IDLE;
        return null;
      }
      case RESULT:
      case CLOSING: {
        const seq = this.events.readSeq;
        if (this.outbox.flush()) {
          this.phase = phase === CLOSING ? ENDED : IDLE;
          return null;
        }
        if (this.events.closed) {
          this.outbox.discard();
          if (phase === CLOSING) {
            this.phase = ENDED;
            return null;
          }
          throw new Error('the root stopped reading results');
        }
        return { kind: 'wait', wait: { what: 'writable', ring: this.events, seq, deadline: Infinity } };
      }
      case BOOT:
        this.boot();
        return null;
      default:
        // ENDED (advance never passes IDLE or CALL here).
        return { kind: 'ended', outcome: this.outcome! };
    }
  }

  /** Instantiates the guest and runs its start function; then _start (command) or _initialize (reactor). */
  private boot(): void {
    const { init, dispatcher, stats } = this;
    if (init.wasi !== null) {
      const devices = this.devices;
      this.wasi = createWasi(init.wasi, {
        memory: this.memory,
        console: devices.console,
        clock: devices.clock,
        deterministicClock: init.devices.clock?.deterministic != null,
        entropy: devices.entropy,
        exit: (code) => dispatcher.exit(code),
        checkEnding: () => dispatcher.checkEnding(),
        onCall: () => {
          if (!dispatcher.redoing) stats[Stat.WASI_CALLS]!++;
        },
        onFault: (name) => dispatcher.reportFault(`wasi.${name}`, 'a pointer or length lies outside guest memory'),
        admit: (bytes) => dispatcher.admitCall(bytes),
        blocker: this.placement.blocker,
      });
    }
    const importObject: WebAssembly.Imports = { [HV_MODULE]: this.hv };
    if (this.wasi !== null) {
      const wrapped: Record<string, WebAssembly.ImportValue> = {};
      const redo = (on: boolean): void => dispatcher.setRedo(on);
      for (const [name, fn] of Object.entries(this.wasi.imports)) wrapped[name] = this.placement.wrapImport(`${this.wasi.module}.${name}`, fn, redo);
      importObject[this.wasi.module] = wrapped;
    }
    this.post({ type: 'running' });
    this.resumeClock();
    // The wasm start function (if any) runs inside this constructor, under the root's watchdog.
    const instance = new WebAssembly.Instance(init.module, importObject);
    this.instance = instance;
    const counter = instance.exports[FUEL_GLOBAL];
    if (counter instanceof WebAssembly.Global) this.fuel = counter;
    const mem = instance.exports.memory;
    if (!(mem instanceof WebAssembly.Memory)) {
      // The loader's policy makes this unreachable; kept as a second line of defence.
      throw new Error('guest does not export memory');
    }
    this.placement.bind(instance, mem);
    // A metered module's start function, moved out of instantiation by the instrumenter so the
    // counter is reachable; it runs before memory is bound, as a real start function would.
    const hoistedStart = instance.exports[START_EXPORT];
    const entry = init.kind === 'reactor' ? instance.exports._initialize : instance.exports._start;
    if (init.kind === 'command' && typeof entry !== 'function') throw new Error('guest does not export _start');
    const steps: (() => unknown)[] = [];
    if (typeof hoistedStart === 'function') steps.push(hoistedStart as () => unknown);
    steps.push(() => {
      this.memory.bind(mem);
      dispatcher.updateMemoryStats();
    });
    if (typeof entry === 'function') steps.push(entry as () => unknown);
    // One entry for the placement to invoke (and resume): the start function, the binding of
    // memory, then _start or _initialize. Each step runs once: a resumed invocation re-enters
    // the step that was suspended, never an earlier one.
    let next = 0;
    this.current = {
      name: 'start',
      fn: () => {
        let value: unknown;
        while (next < steps.length) {
          value = steps[next]!();
          if (this.placement.unwinding()) return value;
          next++;
        }
        return value;
      },
    };
    this.phase = init.kind === 'reactor' ? INIT : MAIN;
  }

  private beginCall(bytes: Uint8Array): void {
    const init = this.init;
    // Message: f64 fuel budget (0: the partition's own), u16 name length, name, input.
    if (init.fuel !== null) {
      if (this.callView.buffer !== bytes.buffer) this.callView = new DataView(bytes.buffer);
      const callFuel = this.callView.getFloat64(bytes.byteOffset, true);
      this.refuel(callFuel > 0 ? callFuel : init.fuel);
    }
    const start = CALL_HEADER + (bytes[8]! | (bytes[9]! << 8));
    // The export the call names: the last one's, when the name's bytes are the same (compared
    // in place, here: a reactor called now and then runs this in V8's interpreter, where each
    // function called costs, docs/PERFORMANCE.md, "Session 12: row 3"); else looked up.
    let target = this.lastTarget;
    if (target !== null) {
      const key = target.key;
      if (key.length !== start - CALL_HEADER) target = null;
      else
        for (let i = 0; i < key.length; i++)
          if (key[i] !== bytes[CALL_HEADER + i]) {
            target = null;
            break;
          }
    }
    target ??= this.callTarget(bytes, CALL_HEADER, start);
    // The message is the reader's buffer, which it reuses for the next call: the input stays in
    // it (no second copy) and is zeroed by endCall; the header is zeroed now.
    this.dispatcher.beginCall(bytes.subarray(start), init.maxOutputBytes);
    bytes.fill(0, 0, start);
    // resumeClock, inline; and the time since the last call ended: the reactor's wait for this one.
    const idleSince = this.idleSince;
    let since = this.busySince;
    if (since === null) since = this.busySince = Number(hrtimeNs()) / 1e6;
    this.governor?.resume();
    if (idleSince >= 0) this.callGaps.add((since - idleSince) * 1000);
    this.idleSince = -1;
    this.current = target;
    this.phase = CALL;
  }

  /**
   * The export a call names, looked up, as the entry `current` takes; kept, so a reactor called
   * on one export decodes and looks up its name once, not per call (beginCall compares it).
   */
  private callTarget(message: Uint8Array, from: number, to: number): { key: Uint8Array; fn: () => unknown; name: string } {
    const name = message.slice(from, to);
    const decoded = decoder.decode(name);
    const fn = this.instance!.exports[decoded];
    // The root checked the export against the module; a mismatch here is a runtime bug.
    if (typeof fn !== 'function') throw new Error(`export ${decoded} is not a function`);
    const target = { key: name, name: decoded, fn: fn as () => unknown };
    this.lastTarget = target;
    return target;
  }

  /** A result that did not go straight into the event ring (see advance): through the outbox, chunked when larger than the ring. */
  private queueResult(ret: number, output: Uint8Array): void {
    this.resultView.setInt32(0, ret, true);
    // Chunked when larger than the ring: a result of any size up to maxOutputBytes gets through.
    this.outbox.pushPair(EventKind.RESULT, this.resultHeader, output, output);
    this.phase = RESULT;
  }

  /** Ends the run with `outcome` and cleans up (once: flush devices, close WASI, scrub memory). */
  private end(outcome: WorkerOutcome): Step {
    if (this.outcome === null) {
      this.outcome = outcome;
      this.phase = CLOSING;
      this.cleanup();
    }
    // What the run wrote (its last lines, flushed by the console's close) reaches the ring
    // before the run reports its end: the root stops reading at `done`.
    return this.advance();
  }

  /**
   * End-of-run cleanup, whatever the guest did: every step runs even if one before it threw
   * (none recurses over guest-shaped data), so the disk is flushed and memory scrubbed. A
   * failing step is reported after all ran, in place of the guest's outcome (ERR_INTERNAL).
   */
  private cleanup(): void {
    const s = this.stats;
    const failures: unknown[] = [];
    const step = (fn: () => void): void => {
      try {
        fn();
      } catch (error) {
        failures.push(error);
      }
    };
    step(() => this.pauseClock());
    step(() => this.dispatcher.updateMemoryStats());
    // A call the run ended in the middle of: its input and output so far (the reader's buffer
    // holds the input) are zeroed like everything else the guest held.
    step(() => this.dispatcher.endCall().fill(0));
    step(() => this.dispatcher.scrub());
    step(() => this.reader?.discard());
    step(() => {
      if (this.fuel === null) return;
      // The counter only decreases, and may end below zero by the last charge: clamp to the budget.
      const total = this.meter.spentBefore + this.spent();
      if (this.reportsWork) s[Stat.WORK_FUEL] = this.base.work + total;
      if (this.init.fuel !== null) s[Stat.FUEL_CONSUMED] = total;
    });
    step(() => this.wasi?.close());
    for (const d of this.devices.all) step(() => d.close?.());
    // Scrub: nothing the guest held outlives the run in this thread's heap.
    step(() => this.memory.scrub());
    step(() => this.placement.scrub());
    this.instance = null;
    if (failures.length > 0) {
      const first = failures[0];
      this.outcome = { kind: 'error', error: 'ERR_INTERNAL', message: `cleanup after the guest's run failed: ${first instanceof Error ? first.message : String(first)}` };
    }
  }

  /** Ends the context from outside (shared placement: the root stopped it); cleanup runs, nothing more is sent. */
  kill(outcome: WorkerOutcome): WorkerOutcome {
    if (this.outcome === null) {
      this.outcome = outcome;
      this.cleanup();
    }
    this.outbox.discard();
    this.phase = ENDED;
    return this.outcome;
  }
}

/**
 * Runs one context to its end on this thread: the dedicated worker's driver. Waits block the
 * thread (it is the partition's own); an idle reactor polls its call ring for `spinMicros`
 * before it sleeps, so a busy reactor's calls stay off the futex wake-up path, within the
 * process's spin budget `spin` (the worker's boot data; null: never spin).
 */
export function runDedicated(init: WorkerInit, post: (message: WorkerMessage) => void, spin: SharedArrayBuffer | null = null): WorkerOutcome {
  return new PartitionContext(init, blockingPlacement, post).runBlocking(spin);
}
