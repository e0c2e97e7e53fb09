import type { ChildProcess } from 'node:child_process';
import { closeSync, constants, fstatSync, fsyncSync, openSync } from 'node:fs';
import type { Socket } from 'node:net';
import v8 from 'node:v8';
import {
  FrameReader,
  MAX_CHILD_FRAME,
  NET_WORKER_STAT_SLOTS,
  RingId,
  decodeChildFrame,
  encodeAck,
  encodeAdd,
  encodeKill,
  encodeBoot,
  encodeRecord,
  encodeClose,
  encodeStdio,
  type ChildFrame,
  type ProcessBoot,
  type NetSettings,
  type ProcessInit,
} from '../channel/frames.ts';
import { RingForwarder, RingReceiver } from '../channel/mirror.ts';
import { STDIO_SLOTS, type ViolationRecord, type WorkerInit, type WorkerMessage, type WorkerOutcome } from '../channel/protocol.ts';
import { SharedRing } from '../channel/ring.ts';
import { WORKER_STAT_SLOTS, WorkerStat } from '../channel/stats.ts';
import { CONTROL_SLOT } from '../channel/doorbell.ts';
import type { NetInit } from '../devices/net.ts';
import type { ErrorCode } from '../errors.ts';
import type { RunHost, RunHostEvents } from './placement.ts';
import { BLOCK_FD, FOLDER_FD_BASE, OUTPUT_FDS, startSandboxed, type ChildFds, type SandboxOptions } from './sandbox.ts';
import { killGraceMs } from './shared.ts';
import { WASM_MEMORY_RESERVATION_MB } from './bounds.ts';
import type { ResolvedWasi } from '../wasi/config.ts';
import type { ResolvedDevices } from '../devices/resolved.ts';

/** Longest a partition's end waits for the switch to take the frames it sent last, ms. */
const DONE_HOLD_MS = 1000;

/** How much of a dead child's stderr is kept to explain its death (bytes, the last ones). */
const STDERR_TAIL_BYTES = 4096;

/** The slot of a dedicated partition process's one partition. */
const DEDICATED_SLOT = CONTROL_SLOT + 1;

/** What `hv.scheduler()` shows of a partition process: the counters of its scheduler. */
export interface ProcessStats {
  pid: number;
  /** True for a shared partition process (placement 'shared'), hosting up to `partitionsPerProcess`. */
  shared: boolean;
  /** Partitions it hosts now. */
  partitions: number;
  slices: number;
  preemptions: number;
  idleWaits: number;
}

/** How one partition process is started. */
export interface ProcessChildOptions {
  sandbox: SandboxOptions;
  /** The scheduler's time slice, ms: the child returns to its event loop at least this often. */
  sliceMs: number;
  /** A shared process hosts up to `capacity` partitions and outlives them; a dedicated one hosts one and ends with it. */
  shared: boolean;
  capacity: number;
  /** The bundle the child runs (tests give a stand-in child); default the shipped one. */
  code?: URL;
  /** Called once the process is over for the root (the scheduler forgets it). */
  onGone?(p: ProcessChild): void;
}

/** How the root ended a process, worded for each partition it hosted. */
interface ProcessVerdict {
  error: ErrorCode;
  message(name: string): string;
}

/**
 * The sandbox of a shared partition process: room in its address space for the memories of all
 * the partitions it may host, the heap of a shared worker (their host state is JS heap), and no
 * CPU-seconds limit, which would end every partition in it for one's spin (each partition is
 * bounded by its own fuel, CPU cap and watchdogs, as in a shared worker).
 */
export function sharedSandbox(sandbox: SandboxOptions, capacity: number, heapMb: number): SandboxOptions {
  return { ...sandbox, addressSpaceMb: sandbox.addressSpaceMb + capacity * WASM_MEMORY_RESERVATION_MB, heapMb, cpuSeconds: null };
}

/**
 * One partition process as the root sees it: the child (host/worker/process.ts), started by
 * sandbox.ts, and its channel. A dedicated process hosts one partition and ends with it; a shared
 * one hosts up to `capacity` (each in a slot of its own: its instance, memory, devices, counters
 * and rings) and lives until the hypervisor closes or the child dies.
 *
 * The child is not trusted. Each frame is decoded by `decodeChildFrame` (bounded, total) and then
 * routed by its slot to the run there (ProcessHost), which checks it against that run's state. A
 * frame for a slot the process does not host, or one a run refuses, is a violation: the child is
 * killed at once (SIGKILL), each partition it hosted hears a violation record, and each run ends
 * with ERR_KILLED naming the reason. A compromised shared child can forge frames for any of the
 * slots it hosts: what it reaches is its co-tenants (docs/THREAT-MODEL.md), never another
 * process's partitions nor the root, which is why sharing a process is opt-in.
 */
export class ProcessChild {
  readonly child: ChildProcess;
  private readonly channel: Socket;
  private readonly reader = new FrameReader(MAX_CHILD_FRAME);
  private readonly runs = new Map<number, ProcessHost>();
  private readonly free: number[] = [];
  private nextSlot = DEDICATED_SLOT;
  /** Slots whose runs keep the app's process alive. */
  private readonly keepers = new Set<number>();
  private readonly processStats = new Float64Array(WORKER_STAT_SLOTS);
  private stopped = false;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private channelClosed = false;
  private reported = false;
  private stderrTail = '';
  /** Set when the root decides how the process ends (violation, close, a run that would not leave). */
  verdict: ProcessVerdict | null = null;

  constructor(
    readonly options: ProcessChildOptions,
    fds: ChildFds,
  ) {
    const { child, channel } = startSandboxed(options.sandbox, fds, options.code);
    this.child = child;
    this.channel = channel;
    channel.on('data', (data: Buffer) => this.receive(data));
    // It has read what was waiting: what its runs held back goes now (see `backedUp`).
    channel.on('drain', () => {
      for (const run of this.runs.values()) run.wake();
    });
    channel.on('error', () => {
      // A broken channel: the child's exit (or the kill below) ends its runs.
      child.kill('SIGKILL');
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
        this.verdict ??= { error: 'ERR_INTERNAL', message: (name) => `partition ${name}'s process could not start: ${error.message}` };
        this.exited = { code: null, signal: null };
        this.channelClosed = true;
        this.report();
      } else for (const run of this.runs.values()) run.error(error);
    });
    child.once('exit', (code, signal) => {
      this.exited = { code, signal };
      this.report();
    });
    const boot: ProcessBoot = { sliceMs: options.sliceMs, dedicated: !options.shared };
    this.send(encodeBoot(JSON.stringify(boot)));
  }

  get pid(): number | null {
    return this.child.pid ?? null;
  }

  /** Partitions it hosts now. */
  get partitions(): number {
    return this.runs.size;
  }

  /** Takes no more partitions: stopped, or every slot taken. */
  get full(): boolean {
    return this.stopped || this.exited !== null || this.runs.size >= this.options.capacity;
  }

  /**
   * The child has not taken what the root wrote last (the channel's buffer is past its mark): its
   * runs forward nothing more until it has ('drain'). A child that stops reading, or acknowledges
   * records it never read, then leaves the root holding its rings' worth at most, not all it is sent.
   */
  get backedUp(): boolean {
    return this.channel.writableNeedDrain;
  }

  /** Whether the root stopped listening to it (violation, close) or it exited. */
  get dead(): boolean {
    return this.stopped || this.exited !== null;
  }

  snapshot(): ProcessStats | null {
    const pid = this.child.pid;
    if (pid === undefined || this.dead) return null;
    const s = this.processStats;
    return { pid, shared: this.options.shared, partitions: this.runs.size, slices: s[WorkerStat.SLICES]!, preemptions: s[WorkerStat.PREEMPTIONS]!, idleWaits: s[WorkerStat.IDLE_WAITS]! };
  }

  /** Gives `run` a slot; it keeps the app's process alive until it says otherwise. */
  add(run: ProcessHost): number {
    if (this.full) throw new Error(`partition process ${this.pid ?? '?'} takes no more partitions`);
    const slot = this.free.pop() ?? this.nextSlot++;
    this.runs.set(slot, run);
    this.alive(slot, true);
    return slot;
  }

  /** The run in `slot` is over (its `done` was delivered): a dedicated process ends; a shared one frees the slot. */
  release(slot: number): void {
    if (!this.runs.delete(slot)) return;
    this.alive(slot, false);
    if (!this.options.shared) this.stop(null);
    // The child dropped the slot when it sent `done`: a frame for it from now on is a violation.
    else this.free.push(slot);
  }

  /** Whether the run in `slot` keeps the app's process alive (a running command, a reactor with work in flight). */
  alive(slot: number, on: boolean): void {
    if (this.stopped) return;
    const had = this.keepers.size;
    if (on) this.keepers.add(slot);
    else this.keepers.delete(slot);
    if (had === 0 && this.keepers.size > 0) this.refs(true);
    else if (had > 0 && this.keepers.size === 0) this.refs(false);
  }

  private refs(on: boolean): void {
    for (const h of [this.child, this.channel, this.child.stderr as Socket | null]) {
      if (on) h?.ref();
      else h?.unref();
    }
  }

  send(frame: Uint8Array): void {
    if (!this.stopped) this.channel.write(frame);
  }

  /** Ends the child (Hypervisor.close); resolves once it has exited. */
  async close(): Promise<void> {
    if (this.exited !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.stop({ error: 'ERR_KILLED', message: (name) => `partition ${name}'s process was ended: the hypervisor closed` });
    await gone;
  }

  /** Stops listening and kills the child; `verdict`: how its runs end, when the root decides it. */
  stop(verdict: ProcessVerdict | null): void {
    if (verdict !== null) this.verdict ??= verdict;
    if (this.stopped) return;
    this.stopped = true;
    this.reader.reset();
    this.channel.removeAllListeners('data');
    if (this.exited === null) this.child.kill('SIGKILL');
    this.channel.destroy();
    // Referenced until its exit is seen (a SIGKILL takes a moment): whoever awaits the runs' end
    // (destroy, close) must not find an empty event loop meanwhile.
    this.child.ref();
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

  /** Routes one decoded frame to the run in its slot; returns why it was refused, or null. */
  private apply(f: ChildFrame | { type: 'refused'; reason: string }): string | null {
    if (f.type === 'refused') return f.reason;
    if (f.type === 'worker-stats') {
      this.processStats.set(f.values);
      return null;
    }
    const run = this.runs.get(f.slot);
    if (run === undefined) {
      if (!this.options.shared) return `a frame of type ${f.type} for slot ${f.slot} (this process hosts slot ${DEDICATED_SLOT} only)`;
      return `a frame of type ${f.type} for slot ${f.slot}, which this shared process does not host (it hosts ${this.runs.size} partitions)`;
    }
    return run.apply(f);
  }

  /** The child broke the protocol: it is treated as compromised, and every partition in it ends. */
  private violate(reason: string): void {
    if (this.stopped) return;
    const pid = this.child.pid ?? 0;
    const where = this.options.shared ? ` (shared partition process ${pid})` : '';
    this.stop({ error: 'ERR_KILLED', message: (name) => `partition ${name}'s process was killed: it sent ${reason}${where}` });
    for (const run of [...this.runs.values()]) run.violation({ call: 'process-channel', status: 'REFUSED', reason: `partition ${run.name}'s process sent ${reason}` });
  }

  /** The process is over for the root once the child has exited and its channel has closed (everything it sent was read). */
  private report(): void {
    if (this.reported || this.exited === null || !(this.channelClosed || this.stopped)) return;
    this.reported = true;
    this.stopped = true;
    this.options.onGone?.(this);
    this.child.stderr?.destroy();
    const { code, signal } = this.exited;
    const runs = [...this.runs.values()];
    this.runs.clear();
    for (const run of runs) run.lost(code ?? 0, this.verdict, (name) => this.death(name, code, signal));
  }

  /** Why the child ended before a partition in it did. */
  private death(name: string, code: number | null, signal: NodeJS.Signals | null): { error: ErrorCode; message: string } {
    const how = signal !== null ? `signal ${signal}` : `exit code ${code}`;
    const pid = this.child.pid ?? 0;
    const heap = /heap out of memory|Allocation failed/.test(this.stderrTail);
    // A shared process's death is no one partition's doing: each of its partitions is killed.
    if (this.options.shared) {
      const why = heap ? `it exhausted its heap (${how})` : `it ended unexpectedly (${how})${this.lastWords()}`;
      return { error: 'ERR_KILLED', message: `partition ${name}'s shared partition process ${pid} died: ${why}` };
    }
    if (signal === 'SIGXCPU') return { error: 'ERR_LIMIT_CPU', message: `partition ${name}'s process ${pid} exceeded its CPU time limit (${how})` };
    if (heap) return { error: 'ERR_LIMIT_MEMORY', message: `partition ${name}'s process ${pid} exhausted its heap (${how})` };
    return { error: 'ERR_KILLED', message: `partition ${name}'s process ${pid} ended unexpectedly (${how})${this.lastWords()}` };
  }

  /** The child's last line on stderr (it is not trusted: quoted, and cut short). */
  private lastWords(): string {
    const last = this.stderrTail.trim().split('\n').at(-1)?.slice(0, 200);
    return last ? `; its last line on stderr: ${JSON.stringify(last)}` : '';
  }
}

/** How a run gets its process: a new dedicated one with the run's descriptors, or a shared one (no descriptors). */
export type ProcessPlacer = (fds: ChildFds) => ProcessChild;

/**
 * A run in a partition process (`isolation: 'process'`; the child's side is host/worker/process.ts),
 * in a slot of a process of its own or of a shared one. The root keeps the run's rings as for a
 * worker; this host mirrors them over the child's channel (host/channel/frames.ts, mirror.ts): it
 * forwards what the root writes on the call and input rings, puts what the child sends into the
 * event ring, and acknowledges what the root consumed.
 *
 * Each frame its process routes here is checked against this run's state: the rings the child
 * produces, acknowledgements of no more than was forwarded and on record boundaries, records that
 * fit the root's copy, lifecycle messages in their order (running, then ready for a reactor, then
 * done, once each). A refusal is a violation of the whole process (ProcessChild). No frame
 * reaches the root's event loop as an exception (every handler is guarded by the run).
 */
export class ProcessHost implements RunHost {
  readonly placement: 'process' | 'shared-process';
  private proc: ProcessChild | null = null;
  private slot = 0;
  private events: RunHostEvents | null = null;
  name = '';
  private reactor = false;
  private calls: RingForwarder | null = null;
  private input: RingForwarder | null = null;
  private eventRing: SharedRing | null = null;
  private eventsIn: RingReceiver | null = null;
  private stats: Float64Array | null = null;
  /** The console's output state the root writes (WorkerInit.stdio), and what of it the child has heard. */
  private stdio: Int32Array | null = null;
  private stdioSent = 0;
  /** The NIC's rings on the root's switch, mirrored: frames the child sends, frames delivered to it; and its counters. */
  private net: { tx: SharedRing; txIn: RingReceiver; rx: RingForwarder; stats: Float64Array } | null = null;
  /** Lifecycle so far: 0 none, 1 running, 2 ready, 3 done. */
  private stage = 0;
  /** The root ended the run (a kill): the process's death is no news to it. */
  private killed = false;
  private killTimer: NodeJS.Timeout | null = null;
  /** The partition's `done`, held until the switch has taken its last frames (see lifecycle). */
  private heldDone: WorkerMessage | null = null;

  /** `moduleBytes`: the module as run (instrumented); compiled again in the child (a compiled module does not cross processes). */
  constructor(
    private readonly place: ProcessPlacer,
    shared: boolean,
    private readonly moduleBytes: Uint8Array,
    /** The block image's path (reopened for the child with O_DSYNC), or null without block. */
    private readonly imagePath: string | null = null,
  ) {
    this.placement = shared ? 'shared-process' : 'process';
  }

  get workerId(): number | null {
    return this.events === null ? null : (this.proc?.pid ?? null);
  }

  launch(init: WorkerInit, events: RunHostEvents): void {
    this.name = init.name;
    this.reactor = init.kind === 'reactor';
    const imageFd = init.block === null ? null : this.openImage(init.block.fd);
    const outputs = init.devices.console?.outputFd ?? { stdout: null, stderr: null };
    const folders = (init.wasi?.preopens ?? []).flatMap((p) => (p.kind === 'host' ? [{ fd: p.fd, write: p.mode === 'rw' }] : []));
    let proc: ProcessChild;
    try {
      proc = this.place({ block: imageFd, outputs, folders });
    } finally {
      // The child has its own copy of the descriptor.
      if (imageFd !== null) closeSync(imageFd);
    }
    this.proc = proc;
    this.events = events;
    const slot = proc.add(this);
    this.slot = slot;

    const eventRing = new SharedRing(init.events);
    const calls = new SharedRing(init.calls);
    const input = new SharedRing(init.input);
    this.eventRing = eventRing;
    this.eventsIn = new RingReceiver(eventRing);
    this.calls = new RingForwarder(
      calls,
      (kind, bytes) => this.send(encodeRecord(slot, RingId.CALLS, kind, bytes)),
      () => this.send(encodeClose(slot, RingId.CALLS)),
    );
    this.input = new RingForwarder(
      input,
      (kind, bytes) => this.send(encodeRecord(slot, RingId.INPUT, kind, bytes)),
      () => this.send(encodeClose(slot, RingId.INPUT)),
    );
    this.stats = new Float64Array(init.stats);
    this.stdio = new Int32Array(init.stdio);
    this.stdioSent = this.stdioFlags();
    if (init.net !== null) {
      const tx = new SharedRing(init.net.tx);
      const rx = new SharedRing(init.net.port.rx);
      this.net = {
        tx,
        txIn: new RingReceiver(tx),
        rx: new RingForwarder(
          rx,
          (kind, bytes) => this.send(encodeRecord(slot, RingId.NET_RX, kind, bytes)),
          () => this.send(encodeClose(slot, RingId.NET_RX)),
        ),
        stats: new Float64Array(init.net.port.stats, 0, NET_WORKER_STAT_SLOTS),
      };
    }

    const { module: _module, stats: _stats, events: _events, calls: _calls, input: _input, stdio: _stdio, block, net, ...rest } = init;
    const p: ProcessInit = {
      // The root's descriptors by the numbers the child has them at (sandbox.ts's ChildFd).
      init: { ...rest, devices: childDevices(rest.devices), wasi: childWasi(rest.wasi) },
      moduleBytes: this.moduleBytes,
      stats: this.stats.slice(),
      rings: { events: eventRing.capacity, calls: calls.capacity, input: input.capacity },
      stdio: this.stdioSent,
      block: block === null ? null : { ...block, fd: BLOCK_FD, durableWrites: true },
      net: net === null ? null : { init: netSettings(net), tx: this.net!.tx.capacity, rx: this.net!.rx.ring.capacity },
    };
    this.send(encodeAdd(slot, v8.serialize(p)));
    // What the root writes from now on is forwarded as it is written (wake), and what is there already now.
    this.wake();
  }

  /**
   * One of the run's rings moved on the root's side (the rings' onMove: the root wrote a call or a
   * line, or consumed events): forwards new records, acknowledges what the root consumed, and asks
   * to hear of the next move. All on the root's thread, so no move is missed between the two.
   * Nothing while the child has not taken what was written last (`backedUp`): the channel's
   * 'drain' wakes every run of the process again.
   */
  wake(): void {
    if (this.events === null || this.proc === null || this.proc.dead || this.proc.backedUp) return;
    const slot = this.slot;
    for (const f of [this.calls!, this.input!]) {
      f.pump();
      f.ring.wantRecord();
    }
    const n = this.eventsIn!.consumed();
    if (n > 0) this.send(encodeAck(slot, RingId.EVENTS, n));
    // A reader of the console's output went away (ConsoleOutput.close; it wakes the host).
    const flags = this.stdioFlags();
    if (flags !== this.stdioSent) {
      this.stdioSent = flags;
      this.send(encodeStdio(slot, flags));
    }
    this.eventRing!.wantRoom();
    const net = this.net;
    if (net !== null) {
      net.rx.pump();
      net.rx.ring.wantRecord();
      const sent = net.txIn.consumed();
      if (sent > 0) this.send(encodeAck(slot, RingId.NET_TX, sent));
      net.tx.wantRoom();
      // Not from inside the switch's drain (this runs in its read): on a later turn.
      if (this.heldDone !== null && net.tx.used === 0) setImmediate(() => this.deliverDone());
    }
  }

  /** The console's output state as StdioFlag bits (bit `1 << slot` per StdioSlot). */
  private stdioFlags(): number {
    let flags = 0;
    for (let i = 0; i < STDIO_SLOTS; i++) if (Atomics.load(this.stdio!, i) !== 0) flags |= 1 << i;
    return flags;
  }

  keepAlive(on: boolean): void {
    if (this.events !== null) this.proc?.alive(this.slot, on);
  }

  /**
   * Ends the run now (WorkerRun keeps its outcome). A dedicated process is killed; in a shared one
   * the child ends the partition between slices (a KILL frame), and a child that does not report
   * its end within the grace is ended with everything in it.
   */
  kill(outcome: WorkerOutcome): void {
    const proc = this.proc;
    if (proc === null || this.events === null || this.killed) return;
    this.killed = true;
    if (!proc.options.shared) {
      proc.stop(null);
      return;
    }
    // The partition's end is work in flight: the process stays referenced until it reports it.
    proc.alive(this.slot, true);
    this.send(encodeKill(this.slot, outcome));
    const grace = killGraceMs(proc.options.sliceMs);
    const name = this.name;
    this.killTimer = setTimeout(
      () => proc.stop({ error: 'ERR_KILLED', message: (n) => `partition ${n}'s shared partition process ${proc.pid ?? 0} was ended: partition ${name} did not leave it within ${grace} ms of being stopped` }),
      grace,
    );
    this.killTimer.unref();
  }

  /** The run reported `done`: its slot is free (a dedicated process ends). */
  release(): void {
    this.clearKill();
    this.events = null;
    this.proc?.release(this.slot);
  }

  private send(frame: Uint8Array): void {
    this.proc?.send(frame);
  }

  /**
   * The block image for the child: a descriptor of its own with O_DSYNC, since the permission
   * model disables fsync in the child, so each write is durable when it returns. It is opened by
   * path and checked to be the very file the partition's descriptor `fd` has open (same device
   * and inode); what earlier writers left in the page cache is made durable first, as the
   * image's own open does.
   */
  private openImage(fd: number): number {
    if (this.imagePath === null) throw new Error(`partition ${this.name}'s block image has no path to open for its process`);
    fsyncSync(fd);
    const own = openSync(this.imagePath, constants.O_RDWR | constants.O_DSYNC | constants.O_NOFOLLOW);
    const a = fstatSync(fd);
    const b = fstatSync(own);
    if (a.dev !== b.dev || a.ino !== b.ino) {
      closeSync(own);
      throw new Error(`partition ${this.name}'s block image at ${this.imagePath} is no longer the file it opened`);
    }
    return own;
  }

  /** Applies one frame of this run's slot (routed by ProcessChild); returns why it was refused, or null. */
  apply(f: Exclude<ChildFrame, { type: 'worker-stats' }>): string | null {
    if (this.stage === 3) return `a frame of type ${f.type} for slot ${f.slot} after its partition's end`;
    switch (f.type) {
      case 'record': {
        // A ring the child produces (decodeChildFrame checked the ring id): events, or the NIC's tx when it has one.
        const receiver = f.ring === RingId.EVENTS ? this.eventsIn! : (this.net?.txIn ?? null);
        if (receiver === null) return 'a frame for a NIC the partition does not have';
        return receiver.record(f.kind, f.bytes) ? null : `a record of ${f.bytes.length} bytes for ring ${f.ring} that the root's copy cannot take (more than was acknowledged, or the ring is closed)`;
      }
      case 'close': {
        const receiver = f.ring === RingId.EVENTS ? this.eventsIn! : (this.net?.txIn ?? null);
        if (receiver === null) return 'a close of a NIC the partition does not have';
        return receiver.close() ? null : `a second close of ring ${f.ring}`;
      }
      case 'ack': {
        const forwarder = f.ring === RingId.CALLS ? this.calls! : f.ring === RingId.INPUT ? this.input! : (this.net?.rx ?? null);
        if (forwarder === null) return 'an acknowledgement for a NIC the partition does not have';
        // Room freed in the root's copy: the root's writers waiting for it (whenRead) wake.
        return forwarder.ack(f.bytes) ? null : `an acknowledgement of ${f.bytes} bytes of ring ${f.ring}, more than was forwarded or not on a record boundary`;
      }
      case 'stats':
        this.stats!.set(f.values);
        return null;
      case 'net-stats':
        if (this.net === null) return 'NIC counters for a NIC the partition does not have';
        this.net.stats.set(f.values);
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
      // Frames the partition sent last may still sit in the root's copy of its NIC's tx ring,
      // which the switch drains asynchronously: its end (which unplugs the NIC) waits for that.
      if (this.net !== null && this.net.tx.used > 0) {
        this.heldDone = m;
        const timer = setTimeout(() => this.deliverDone(), DONE_HOLD_MS);
        timer.unref();
        return null;
      }
    }
    this.events?.message(m);
    return null;
  }

  /** Delivers a held `done` (the switch drained the NIC's frames, or it waited long enough). */
  private deliverDone(): void {
    const m = this.heldDone;
    if (m === null) return;
    this.heldDone = null;
    this.events?.message(m);
  }

  /** The process broke the protocol (ProcessChild.violate): this partition hears of it; its end follows. */
  violation(record: ViolationRecord): void {
    this.events?.violation?.(record);
  }

  /** The process reported an error (its exit follows). */
  error(error: unknown): void {
    this.events?.error(error);
  }

  /**
   * The process is gone with this run in it: the root's `verdict` says how when the root ended it
   * (a violation, close), else `death` does, unless the run had ended (or was killed) by then.
   */
  lost(code: number, verdict: ProcessVerdict | null, death: (name: string) => { error: ErrorCode; message: string }): void {
    this.clearKill();
    // A held end is still the partition's own end (the switch had its chance at the frames).
    this.deliverDone();
    const events = this.events;
    this.events = null;
    if (events === null) return;
    const v = verdict !== null ? { error: verdict.error, message: verdict.message(this.name) } : this.killed || this.stage === 3 ? null : death(this.name);
    events.exit(code, v === null ? undefined : { kind: 'error', ...v });
  }

  private clearKill(): void {
    if (this.killTimer !== null) clearTimeout(this.killTimer);
    this.killTimer = null;
  }
}

/** The devices as the child has them: a console's direct outputs at the child's own descriptors. */
function childDevices(d: ResolvedDevices): ResolvedDevices {
  const c = d.console;
  if (c === null || c === undefined) return d;
  const { stdout, stderr } = c.outputFd;
  return { ...d, console: { ...c, outputFd: { stdout: stdout === null ? null : OUTPUT_FDS.stdout, stderr: stderr === null ? null : OUTPUT_FDS.stderr } } };
}

/** WASI as the child has it: each host folder at its descriptor there, in order from FOLDER_FD_BASE. */
function childWasi(w: ResolvedWasi | null): ResolvedWasi | null {
  if (w === null) return null;
  let next = FOLDER_FD_BASE;
  return { ...w, preopens: w.preopens.map((p) => (p.kind === 'host' ? { ...p, fd: next++ } : p)) };
}

/** A NIC's settings without its shared buffers (see NetSettings). */
function netSettings(n: NetInit): NetSettings {
  const { tx: _tx, port, peers: _peers, direct: _direct, ...settings } = n;
  const { rx: _rx, ctl: _ctl, stats: _stats, ...portSettings } = port;
  return { ...settings, port: portSettings };
}

/**
 * What of a partition's devices is a descriptor the root opens for its process at spawn (the
 * block image, the console's direct outputs, WASI host folders), named as in the spec: such a
 * partition cannot join a shared partition process, which is already running.
 */
export function processDescriptors(devices: ResolvedDevices, wasi: ResolvedWasi | null): string[] {
  const out: string[] = [];
  if (devices.block) out.push('devices.block (its image)');
  const fd = devices.console?.outputFd;
  if (fd?.stdout != null || fd?.stderr != null) out.push('devices.console.outputFd');
  const folders = wasi?.preopens.filter((p) => p.kind === 'host').length ?? 0;
  if (folders > 0) out.push(`wasi.preopens (${folders} host folder${folders === 1 ? '' : 's'})`);
  return out;
}
