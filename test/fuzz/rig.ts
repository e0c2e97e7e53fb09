/**
 * A reusable in-thread partition for the fuzzers: the production PartitionContext
 * (host/worker/context.ts) over a WorkerInit built the way the root builds one (resolved
 * devices, a real block image from Storage, a real NIC on a real VirtualSwitch, real rings and
 * counters), so the dispatcher, the devices and WASI are constructed by the same code a worker
 * runs (wireDevices, createWasi), not by the harness. The guest is a reactor whose `run` export
 * loops over call descriptors in its own memory and makes each call through its import, so every
 * call crosses the real Wasm → host boundary.
 *
 * What the harness changes is the placement (the production extension point for how a context
 * waits and reaches its guest):
 * - `wrapImport` puts the harness's check around every import: it sees each call's arguments,
 *   runs it, checks the invariants and then writes the next descriptor (or stop) before it
 *   returns to the guest. One instantiation thus serves thousands of calls.
 * - its blocker never waits: every deadline is "now", so a call that would block times out at
 *   once (a fuzzer cannot sleep for a guest's timeouts). A call that asks the blocker to wait
 *   more than MAX_WAITS times is a hang, reported as a finding.
 */
import { GuestAbort, GuestExit } from '../../host/abi/dispatcher.ts';
import type { Blocker } from '../../host/channel/blocker.ts';
import { CallKind, InputKind, type WorkerInit, type WorkerOutcome } from '../../host/channel/protocol.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { blockingPlacement, PartitionContext, type Placement } from '../../host/worker/context.ts';
import { Prng } from './prng.ts';

/** Waits one call may ask for before the harness calls it a hang (every wait returns at once). */
const MAX_WAITS = 10_000;

/** How the harness wraps an import: `fn` is the production import; the result replaces it. */
export type ImportHook = (name: string, fn: (...args: never[]) => unknown) => (...args: never[]) => unknown;

/** A wait whose deadline lies further ahead than this (ms) is cut short instead (see NoWaitBlocker). */
export const LONG_WAIT_MS = 1;

/**
 * The fuzz placement's blocker. Waits through `deadline(ms)` never wait (every such deadline is
 * "now": the call times out at once). A wait for a deadline the host computed itself (a poll's
 * clock subscription) is slept when it is at most LONG_WAIT_MS away; further away, the call is
 * cut: the blocker throws WaitCut through the guest and the partition is made afresh, as the
 * watchdog would end a partition that waits too long. Counts the waits of the current call.
 */
export class NoWaitBlocker implements Blocker {
  /** Waits of the current call. */
  waits = 0;
  /** Set once a call waited more than MAX_WAITS times (sticky: the harness reports it). */
  hung = false;
  /** Set once a wait was cut (the partition must be made afresh). */
  cut = false;
  deadline(): number {
    return performance.now();
  }
  readable(_ring: SharedRing, _seq: number, deadline: number): void {
    this.wait(deadline);
  }
  writable(_ring: SharedRing, _seq: number, deadline: number): void {
    this.wait(deadline);
  }
  sleep(deadline: number): void {
    this.wait(deadline);
  }
  private wait(deadline: number): void {
    const ahead = deadline - performance.now();
    if (ahead > LONG_WAIT_MS) {
      this.cut = true;
      throw new WaitCut();
    }
    if (ahead > 0) Atomics.wait(napper, 0, 0, ahead);
    if (++this.waits <= MAX_WAITS) return;
    this.hung = true;
    throw new HarnessFinding(`a call waited more than ${MAX_WAITS} times with every deadline already passed (a host loop that does not end)`);
  }
}
const napper = new Int32Array(new SharedArrayBuffer(4));

/** Thrown through the guest when a call would wait long (NoWaitBlocker): not a finding. */
export class WaitCut extends Error {
  constructor() {
    super('the fuzz harness cut a long wait short');
  }
}

/** A broken invariant found inside an import (rethrown by the rig after the batch unwinds). */
export class HarnessFinding extends Error {}

/** Whether `error` is one of the ways a guest's own run ends (not a host fault). */
export const isGuestEnding = (error: unknown): boolean => error instanceof GuestExit || error instanceof GuestAbort;

/** The reactor message that calls `run` (f64 fuel 0: the partition's own; u16 name length; name; the input). */
function runMessage(input?: Uint8Array): Uint8Array {
  const name = new TextEncoder().encode('run');
  const bytes = new Uint8Array(10 + name.length + (input?.length ?? 0));
  bytes[8] = name.length;
  bytes.set(name, 10);
  if (input !== undefined) bytes.set(input, 10 + name.length);
  return bytes;
}
const RUN = runMessage();

/** One live partition driven in-thread. */
export class Rig {
  readonly context: PartitionContext;
  readonly stats: Float64Array;
  readonly blocker = new NoWaitBlocker();
  /** The guest's memory, once booted. */
  memory: WebAssembly.Memory | null = null;
  /** The first finding raised inside an import, if any. */
  finding: unknown = null;
  /** How the run ended, once it has. */
  outcome: WorkerOutcome | null = null;
  private readonly events: SharedRing;
  private readonly calls: SharedRing;

  constructor(readonly init: WorkerInit, hook: ImportHook, private readonly onClose: () => void = () => {}) {
    const placement: Placement = {
      ...blockingPlacement,
      blocker: this.blocker,
      bind: (_instance, memory) => {
        this.memory = memory;
      },
      wrapImport: <F extends (...args: never[]) => unknown>(name: string, fn: F): F => hook(name, fn) as F,
    };
    this.context = new PartitionContext(init, placement, () => {});
    this.stats = this.context.stats;
    this.events = this.context.events;
    this.calls = this.context.calls;
    this.drive(); // boots: instantiates, binds memory, runs _initialize; then idle
    if (this.outcome === null && this.memory === null) throw new Error('the fuzz guest booted without a memory');
  }

  /**
   * Runs the guest's `run` once (it calls until the descriptor says stop), with `input` as the
   * host call's input (INPUT_SIZE, INPUT_READ). False once the partition has ended.
   */
  batch(input?: Uint8Array): boolean {
    if (this.outcome !== null) return false;
    if (!this.calls.tryWrite(CallKind.CALL, input === undefined ? RUN : runMessage(input))) throw new Error('the fuzz rig call ring is full');
    this.drive();
    return this.outcome === null;
  }

  /** Runs the context until it is idle again or has ended; drains its events as the root does. */
  private drive(): void {
    for (;;) {
      const step = this.context.resume();
      this.drain();
      if (step.kind === 'ended') {
        this.outcome = step.outcome;
        this.onClose();
      }
      if (this.finding !== null) {
        const finding = this.finding;
        this.finding = null;
        if (this.outcome === null) {
          this.outcome = this.context.kill({ kind: 'exit', code: 0 });
          this.onClose();
        }
        throw finding;
      }
      if (step.kind === 'ended') {
        // A run that ended through a host fault is a finding (a guest's ending, or a cut wait, is not).
        if (step.outcome.kind === 'error' && step.outcome.error === 'ERR_INTERNAL' && !this.blocker.cut) throw new HarnessFinding(`the partition ended with ${step.outcome.error}: ${step.outcome.message}`);
        return;
      }
      if (step.kind === 'wait' && step.wait.what === 'readable' && step.wait.ring === this.calls) return; // idle
      // Otherwise the context waits for room in its event ring (drained above) or was preempted: go on.
    }
  }

  /** Reads every record the partition wrote (console lines, violations, results). */
  drain(): void {
    while (this.events.tryRead() !== null);
  }

  /** Ends the partition as the root does when it stops a reactor (closes its call ring); cleanup runs. */
  close(): void {
    if (this.outcome !== null) return;
    this.calls.close();
    try {
      this.drive();
    } finally {
      if (this.outcome === null) {
        this.outcome = this.context.kill({ kind: 'exit', code: 0 });
        this.onClose();
      }
    }
  }
}

/** The call ring, console input ring and event ring sizes of a fuzz partition. */
export const rings = {
  calls: () => SharedRing.allocate(4096),
  events: (bytes = 1 << 16) => SharedRing.allocate(bytes),
  /** Console input with one line, then closed (end of input: a blocking read returns). */
  input: (line: string) => {
    const sab = SharedRing.allocate(1 << 10);
    const ring = new SharedRing(sab);
    ring.tryWrite(InputKind.LINE, new TextEncoder().encode(line));
    ring.close();
    return sab;
  },
};

/** Calls a partition serves before the harness makes it afresh (its state then starts over). */
export const REFRESH = 4096;
/** Most calls in one batch (one `run` of one partition) before a side is drawn again. */
const MAX_BATCH = 64;

/** One side of a two-partition target: its live partition, and the calls it made and checked. */
export interface RigSide<Call> {
  rig: Rig | null;
  /** Calls the current partition served. */
  served: number;
  /** Calls made and checked, over all of this side's partitions. */
  made: number;
  /** Makes the side's partition afresh. */
  fresh(): void;
  /** Runs `calls` in one batch of the guest's `run`. */
  run(calls: Call[]): void;
  close(): void;
}

/**
 * Makes `count` calls drawn by `draw` from `seed`, in batches of 1..MAX_BATCH on a side drawn each
 * time; a side is made afresh every REFRESH calls and after its partition ended. `between` runs
 * after every batch (the switch's pumps, say). Returns the calls made and checked.
 */
export async function driveSides<Call>(sides: readonly RigSide<Call>[], seed: number, count: number, draw: (r: Prng) => Call, between?: (batch: number) => Promise<void> | void): Promise<number> {
  const r = new Prng(seed);
  try {
    for (const s of sides) s.fresh();
    let left = count;
    for (let batch = 1; left > 0; batch++) {
      const s = sides[r.int(0, sides.length - 1)]!;
      if (s.served >= REFRESH || s.rig!.outcome !== null) s.fresh();
      const n = Math.min(left, r.int(1, MAX_BATCH));
      const calls: Call[] = [];
      for (let i = 0; i < n; i++) calls.push(draw(r));
      const before = s.made;
      s.run(calls);
      // A batch always makes its first call; at least one is counted, so the loop always ends.
      left -= Math.max(1, s.made - before);
      await between?.(batch);
    }
    return sides.reduce((sum, s) => sum + s.made, 0);
  } finally {
    for (const s of sides) s.close();
  }
}
