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
import { WORKER_STAT_SLOTS } from '../channel/stats.ts';
import type { NetInit } from '../devices/net.ts';
import type { ErrorCode } from '../errors.ts';
import type { RunHost, RunHostEvents } from './placement.ts';
import { BLOCK_FD, FOLDER_FD_BASE, OUTPUT_FDS, startSandboxed, type SandboxOptions } from './sandbox.ts';
import type { ResolvedWasi } from '../wasi/config.ts';
import type { ResolvedDevices } from '../devices/resolved.ts';

/** The one slot a dedicated partition process hosts. */
const SLOT = 1;

/** Longest a partition's end waits for the switch to take the frames it sent last, ms. */
const DONE_HOLD_MS = 1000;

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
  /** The console's output state the root writes (WorkerInit.stdio), and what of it the child has heard. */
  private stdio: Int32Array | null = null;
  private stdioSent = 0;
  /** The NIC's rings on the root's switch, mirrored: frames the child sends, frames delivered to it; and its counters. */
  private net: { tx: SharedRing; txIn: RingReceiver; rx: RingForwarder; stats: Float64Array } | null = null;
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
  /** The partition's `done`, held until the switch has taken its last frames (see lifecycle). */
  private heldDone: WorkerMessage | null = null;

  /** The root ended the run (kill, or its partition is done): the child's death is no news. */
  private ended = false;

  /** `moduleBytes`: the module as run (instrumented); compiled again in the child (a compiled module does not cross processes). */
  constructor(
    private readonly options: ProcessHostOptions,
    private readonly moduleBytes: Uint8Array,
    /** The block image's path (reopened for the child with O_DSYNC), or null without block. */
    private readonly imagePath: string | null = null,
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
    const imageFd = init.block === null ? null : this.openImage(init.block.fd);
    const outputs = init.devices.console?.outputFd ?? { stdout: null, stderr: null };
    const folders = (init.wasi?.preopens ?? []).flatMap((p) => (p.kind === 'host' ? [{ fd: p.fd, write: p.mode === 'rw' }] : []));
    let started;
    try {
      started = startSandboxed(this.options.sandbox, { block: imageFd, outputs, folders }, this.options.code);
    } finally {
      // The child has its own copy of the descriptor.
      if (imageFd !== null) closeSync(imageFd);
    }
    const { child, channel } = started;
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
          (kind, bytes) => this.send(encodeRecord(SLOT, RingId.NET_RX, kind, bytes)),
          () => this.send(encodeClose(SLOT, RingId.NET_RX)),
        ),
        stats: new Float64Array(init.net.port.stats, 0, NET_WORKER_STAT_SLOTS),
      };
    }

    const boot: ProcessBoot = { sliceMs: this.options.sliceMs, dedicated: true };
    const { module: _module, stats: _stats, events: _events, calls: _calls, input: _input, stdio: _stdio, spin: _spin, block, net, ...rest } = init;
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
    // A reader of the console's output went away (ConsoleOutput.close; it wakes the host).
    const flags = this.stdioFlags();
    if (flags !== this.stdioSent) {
      this.stdioSent = flags;
      this.send(encodeStdio(SLOT, flags));
    }
    this.eventRing!.wantRoom();
    const net = this.net;
    if (net !== null) {
      net.rx.pump();
      net.rx.ring.wantRecord();
      const sent = net.txIn.consumed();
      if (sent > 0) this.send(encodeAck(SLOT, RingId.NET_TX, sent));
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
    // The child stays referenced until its exit is seen (a SIGKILL takes a moment): whoever awaits
    // the run's end (destroy, close) must not find an empty event loop meanwhile.
    this.child?.ref();
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
    // A held end is still the partition's own end (the switch had its chance at the frames).
    this.deliverDone();
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
    // The child's last words (it is not trusted: quoted, and cut short).
    const last = this.stderrTail.trim().split('\n').at(-1)?.slice(0, 200);
    const said = last ? `; its last line on stderr: ${JSON.stringify(last)}` : '';
    return { kind: 'error', error: 'ERR_KILLED', message: `partition ${this.name}'s process ${pid} ended unexpectedly (${how})${said}` };
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
