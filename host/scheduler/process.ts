import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import v8 from 'node:v8';
import {
  FrameReader,
  MAX_CHILD_FRAME,
  RingId,
  decodeChildFrame,
  encodeAck,
  encodeAdd,
  encodeBoot,
  encodeRecord,
  encodeClose,
  type ChildFrame,
  type ProcessBoot,
  type ProcessInit,
} from '../channel/frames.ts';
import { RingForwarder, RingReceiver } from '../channel/mirror.ts';
import type { ViolationRecord, WorkerInit, WorkerMessage, WorkerOutcome } from '../channel/protocol.ts';
import { SharedRing } from '../channel/ring.ts';
import { STAT_SLOTS, WORKER_STAT_SLOTS } from '../channel/stats.ts';
import type { ErrorCode } from '../errors.ts';
import type { RunHost, RunHostEvents } from './placement.ts';
import { BLOCK_FD, startSandboxed, type SandboxOptions } from './sandbox.ts';

/** The one slot a dedicated partition process hosts. */
const SLOT = 1;

/** How much of a dead child's stderr is kept to explain its death (bytes, the last ones). */
const STDERR_TAIL_BYTES = 4096;

/** Options of one partition process. */
export interface ProcessHostOptions {
  sandbox: SandboxOptions;
  /** The scheduler's time slice, ms: the child returns to its event loop at least this often. */
  sliceMs: number;
  /** The bundle the child runs (tests give a stand-in child); default the shipped one. */
  code?: URL;
  /** Called once the run is over for the host (the scheduler forgets it). */
  onEnd?(host: ProcessHost): void;
}

/** What `hv.scheduler()` shows of a partition process: the counters of its scheduler. */
export interface ProcessStats {
  pid: number;
  slices: number;
  preemptions: number;
  idleWaits: number;
}

/**
 * A run in a partition process of its own (`isolation: 'process'`; the child's side is
 * host/worker/process.ts). The root keeps the run's rings as for a worker; this host mirrors
 * them over the child's channel (host/channel/frames.ts, mirror.ts): it forwards what the root
 * writes on the call and input rings, puts what the child sends into the event ring, and
 * acknowledges what the root consumed.
 *
 * The child is not trusted. Each frame is decoded by `decodeChildFrame` (bounded, total) and then
 * checked against this run's state: its one slot, the rings the child produces, acknowledgements
 * of no more than was forwarded and on record boundaries, records that fit the root's copy,
 * lifecycle messages in their order (running, then ready for a reactor, then done, once each),
 * nothing after done. Any refusal is a violation: the child is killed at once (SIGKILL), the
 * partition hears a violation record, and the run ends with ERR_KILLED naming the reason. No frame
 * reaches the root's event loop as an exception (every handler is guarded by the run).
 */
export class ProcessHost implements RunHost {
  readonly placement = 'process';
  private child: ChildProcess | null = null;
  private channel: Socket | null = null;
  private events: RunHostEvents | null = null;
  private name = '';
  private reactor = false;
  private readonly reader = new FrameReader(MAX_CHILD_FRAME);
  private calls: RingForwarder | null = null;
  private input: RingForwarder | null = null;
  private eventRing: SharedRing | null = null;
  private eventsIn: RingReceiver | null = null;
  private stats: Float64Array | null = null;
  private readonly processStats = new Float64Array(WORKER_STAT_SLOTS);
  /** Lifecycle so far: 0 none, 1 running, 2 ready, 3 done. */
  private stage = 0;
  /** Set once the host stops listening (violation, kill, done): the reason the run ends, if the host decides it. */
  private verdict: { kind: 'error'; error: ErrorCode; message: string } | null = null;
  private stopped = false;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private channelClosed = false;
  private reported = false;
  private stderrTail = '';

  /** The root ended the run (kill, or its partition is done): the child's death is no news. */
  private ended = false;

  /** `moduleBytes`: the module as run (instrumented); compiled again in the child (a compiled module does not cross processes). */
  constructor(
    private readonly options: ProcessHostOptions,
    private readonly moduleBytes: Uint8Array,
  ) {}

  get workerId(): number | null {
    return this.events === null ? null : (this.child?.pid ?? null);
  }

  /** The child's scheduler counters, as last reported. */
  snapshot(): ProcessStats | null {
    const pid = this.child?.pid;
    if (pid === undefined || this.events === null) return null;
    const s = this.processStats;
    return { pid, slices: s[2]!, preemptions: s[3]!, idleWaits: s[4]! };
  }

  launch(init: WorkerInit, events: RunHostEvents): void {
    this.events = events;
    this.name = init.name;
    this.reactor = init.kind === 'reactor';
    const { child, channel } = startSandboxed(this.options.sandbox, init.block?.fd ?? null, this.options.code);
    this.child = child;
    this.channel = channel;
    channel.on('data', (data: Buffer) => this.receive(data));
    channel.on('error', () => {
      // A broken channel: the child's exit (or the kill below) ends the run.
      this.child?.kill('SIGKILL');
    });
    channel.on('close', () => {
      this.channelClosed = true;
      this.report();
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-STDERR_TAIL_BYTES);
    });
    child.on('error', (error) => {
      // Not started at all: no exit follows.
      if (child.pid === undefined) {
        this.verdict ??= { kind: 'error', error: 'ERR_INTERNAL', message: `partition ${this.name}'s process could not start: ${error.message}` };
        this.exited = { code: null, signal: null };
        this.channelClosed = true;
        this.report();
      } else this.events?.error(error);
    });
    child.once('exit', (code, signal) => {
      this.exited = { code, signal };
      this.report();
    });

    const eventRing = new SharedRing(init.events);
    const calls = new SharedRing(init.calls);
    const input = new SharedRing(init.input);
    this.eventRing = eventRing;
    this.eventsIn = new RingReceiver(eventRing);
    this.calls = new RingForwarder(
      calls,
      (kind, bytes) => this.send(encodeRecord(SLOT, RingId.CALLS, kind, bytes)),
      () => this.send(encodeClose(SLOT, RingId.CALLS)),
    );
    this.input = new RingForwarder(
      input,
      (kind, bytes) => this.send(encodeRecord(SLOT, RingId.INPUT, kind, bytes)),
      () => this.send(encodeClose(SLOT, RingId.INPUT)),
    );
    this.stats = new Float64Array(init.stats);

    const boot: ProcessBoot = { sliceMs: this.options.sliceMs, dedicated: true };
    const { module: _module, stats: _stats, events: _events, calls: _calls, input: _input, spin: _spin, block, net: _net, ...rest } = init;
    const p: ProcessInit = {
      init: rest,
      moduleBytes: this.moduleBytes,
      stats: this.stats.slice(),
      rings: { events: eventRing.capacity, calls: calls.capacity, input: input.capacity },
      block: block === null ? null : { ...block, fd: BLOCK_FD },
    };
    this.send(encodeBoot(JSON.stringify(boot)));
    this.send(encodeAdd(SLOT, v8.serialize(p)));
    // What the root writes from now on is forwarded as it is written (wake), and what is there already now.
    this.wake();
  }

  /**
   * One of the run's rings moved on the root's side (the rings' onMove: the root wrote a call or a
   * line, or consumed events): forwards new records, acknowledges what the root consumed, and asks
   * to hear of the next move. All on the root's thread, so no move is missed between the two.
   */
  wake(): void {
    if (this.stopped || this.channel === null) return;
    for (const f of [this.calls!, this.input!]) {
      f.pump();
      f.ring.wantRecord();
    }
    const n = this.eventsIn!.consumed();
    if (n > 0) this.send(encodeAck(SLOT, RingId.EVENTS, n));
    this.eventRing!.wantRoom();
  }

  keepAlive(on: boolean): void {
    if (this.child === null || this.stopped) return;
    const handles = [this.child, this.channel, this.child.stderr as Socket | null];
    for (const h of handles) {
      if (on) h?.ref();
      else h?.unref();
    }
  }

  /** A process is ended, not asked: the run ends with its own kill outcome (WorkerRun keeps it). */
  kill(_outcome: WorkerOutcome): void {
    if (this.child === null) return;
    this.ended = true;
    this.stop(null);
  }

  /** The partition is done: the child ends by itself after its `done`; it may not linger (nor hold the app's process). */
  release(): void {
    this.ended = true;
    this.stop(null);
  }

  private send(frame: Uint8Array): void {
    if (!this.stopped) this.channel?.write(frame);
  }

  /** Ends the child (Hypervisor.close); resolves once it has exited. */
  async close(): Promise<void> {
    const child = this.child;
    if (child === null || this.exited !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.ended = true;
    this.verdict ??= { kind: 'error', error: 'ERR_KILLED', message: `partition ${this.name}'s process was ended: the hypervisor closed` };
    this.stop(null);
    await gone;
  }

  /** Stops listening and kills the child; `verdict`: how the run ends, when the host decides it. */
  private stop(verdict: { kind: 'error'; error: ErrorCode; message: string } | null): void {
    if (verdict !== null) this.verdict ??= verdict;
    if (this.stopped) return;
    this.stopped = true;
    this.reader.reset();
    this.channel?.removeAllListeners('data');
    if (this.exited === null) this.child?.kill('SIGKILL');
    this.channel?.destroy();
    this.child?.unref();
    (this.child?.stderr as Socket | null | undefined)?.unref();
  }

  /** Everything the child sent, as it arrives: cut into frames, each checked before it is applied. */
  private receive(data: Buffer): void {
    if (this.stopped) return;
    const refusal = this.reader.push(data, (body) => {
      const reason = this.apply(decodeChildFrame(body));
      if (reason === null) return !this.stopped;
      this.violate(reason);
      return false;
    });
    if (refusal !== null) this.violate(refusal.reason);
  }

  /** Applies one decoded frame; returns why it was refused, or null. */
  private apply(f: ChildFrame | { type: 'refused'; reason: string }): string | null {
    if (f.type === 'refused') return f.reason;
    if (f.type === 'worker-stats') {
      this.processStats.set(f.values);
      return null;
    }
    if (f.slot !== SLOT) return `a frame of type ${f.type} for slot ${f.slot} (this process hosts slot ${SLOT} only)`;
    if (this.stage === 3) return `a frame of type ${f.type} after the partition's end`;
    switch (f.type) {
      case 'record':
        // Only the event ring is the child's (decodeChildFrame checked the ring id).
        return this.eventsIn!.record(f.kind, f.bytes) ? null : `an event record of ${f.bytes.length} bytes that the root's copy cannot take (more than was acknowledged, or the ring is closed)`;
      case 'close':
        return this.eventsIn!.close() ? null : 'a second close of the event ring';
      case 'ack': {
        const forwarder = f.ring === RingId.CALLS ? this.calls! : this.input!;
        if (!forwarder.ack(f.bytes)) return `an acknowledgement of ${f.bytes} bytes of ring ${f.ring}, more than was forwarded or not on a record boundary`;
        // Room freed in the root's copy: the root's writers waiting for it (whenRead) wake.
        return null;
      }
      case 'stats':
        this.stats!.set(f.values);
        return null;
      case 'lifecycle':
        return this.lifecycle(f.message);
    }
  }

  /** Lifecycle messages in their order: running; ready (a reactor); done. */
  private lifecycle(m: WorkerMessage): string | null {
    if (m.type === 'running') {
      if (this.stage !== 0) return 'a second running message';
      this.stage = 1;
    } else if (m.type === 'ready') {
      if (!this.reactor) return 'a ready message from a command';
      if (this.stage !== 1) return 'a ready message out of order';
      this.stage = 2;
    } else {
      this.stage = 3;
    }
    this.events?.message(m);
    return null;
  }

  /** The child broke the protocol: it is treated as compromised. */
  private violate(reason: string): void {
    if (this.stopped) return;
    const record: ViolationRecord = { call: 'process-channel', status: 'REFUSED', reason: `partition ${this.name}'s process sent ${reason}` };
    this.stop({ kind: 'error', error: 'ERR_KILLED', message: `partition ${this.name}'s process was killed: it sent ${reason}` });
    this.events?.violation?.(record);
  }

  /** The run is over for the host once the child has exited and its channel has closed (everything it sent was read). */
  private report(): void {
    if (this.reported || this.exited === null || !(this.channelClosed || this.stopped)) return;
    this.reported = true;
    this.options.onEnd?.(this);
    const events = this.events;
    this.events = null;
    this.stopped = true;
    this.child?.stderr?.destroy();
    const { code, signal } = this.exited;
    events?.exit(code ?? 0, this.verdict ?? (this.ended || this.stage === 3 ? undefined : this.death(code, signal)));
  }

  /** Why the child ended before its partition did. */
  private death(code: number | null, signal: NodeJS.Signals | null): { kind: 'error'; error: ErrorCode; message: string } {
    const how = signal !== null ? `signal ${signal}` : `exit code ${code}`;
    const pid = this.child?.pid ?? 0;
    if (signal === 'SIGXCPU') return { kind: 'error', error: 'ERR_LIMIT_CPU', message: `partition ${this.name}'s process ${pid} exceeded its CPU time limit (${how})` };
    if (/heap out of memory|Allocation failed/.test(this.stderrTail)) {
      return { kind: 'error', error: 'ERR_LIMIT_MEMORY', message: `partition ${this.name}'s process ${pid} exhausted its heap (${how})` };
    }
    return { kind: 'error', error: 'ERR_KILLED', message: `partition ${this.name}'s process ${pid} ended unexpectedly (${how})` };
  }
}
