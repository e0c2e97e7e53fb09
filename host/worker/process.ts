/**
 * The inside of a partition process (`isolation: 'process'`; bundled as dist/process.js). It runs
 * in its own OS process, started by host/scheduler/sandbox.ts under Node's permission model (no
 * file system but its WASI host folders, no child processes, no workers, no addons), as an
 * unprivileged user when the host is root, with OS resource limits. Its code arrives on an
 * inherited descriptor and every module it runs over its channel (fd 3, as bytes, compiled here);
 * a block image, direct console outputs and host folders are descriptors the root opened
 * (sandbox.ts ChildFd), which the partition's init names.
 *
 * It hosts one partition (`dedicated`, then it exits) or many (`shared`), with the scheduler of a
 * shared worker (host/worker/shared.ts): every partition is suspendable (Asyncify), so a guest
 * that waits for something is suspended and the process returns to its event loop, which reads
 * the root's frames. Blocking calls therefore work as in a shared worker: the wait is a
 * suspension, and what ends it (a call, console input, room in a ring, a deadline) arrives as a
 * frame that the event loop puts into the partition's ring and rings its doorbell for.
 *
 * The rings are local copies of the root's (host/channel/mirror.ts): the context, devices and
 * WASI run unchanged. After each slice the process forwards what the partition wrote, and
 * acknowledges what it consumed; its counters travel as snapshots.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import v8 from 'node:v8';
import { MessageChannel } from 'node:worker_threads';
import { Doorbell } from '../channel/doorbell.ts';
import {
  FrameReader,
  FrameType,
  NET_WORKER_STAT_SLOTS,
  RingId,
  decodeRootFrame,
  encodeAck,
  encodeClose,
  encodeLifecycle,
  encodeRecord,
  encodeStats,
  type ProcessBoot,
  type ProcessInit,
  type RootFrame,
} from '../channel/frames.ts';
import { RingForwarder, RingReceiver } from '../channel/mirror.ts';
import { STDIO_SLOTS, type SharedEvent, type WorkerInit, type WorkerOutcome } from '../channel/protocol.ts';
import { SharedRing } from '../channel/ring.ts';
import { SpinBudget } from '../channel/spin.ts';
import { STAT_SLOTS, WORKER_STAT_SLOTS, allocateStats } from '../channel/stats.ts';
import type { NetInit } from '../devices/net.ts';
import { NET_STAT_SLOTS, NicPort, type PortInit } from '../net/port.ts';
import { SharedScheduler } from './shared.ts';

/** How often the process reports its scheduler's counters, at most (ms). */
const WORKER_STATS_EVERY_MS = 100;

/** Counters are snapshots: when the root is slow to read, a newer one replaces them, so they are skipped past this much unsent output. */
const STATS_BACKLOG_BYTES = 1 << 20;

/**
 * Compiled modules a shared process keeps, by the SHA-256 of their bytes: its partitions are often
 * many of one module, and each compile would cost the time and code memory of a new one.
 */
const MODULE_CACHE_ENTRIES = 16;

/** A root frame this process could not follow: the root broke the protocol (a bug), so the process ends. */
class RootProtocolError extends Error {}

interface Slot {
  slot: number;
  events: RingForwarder;
  calls: RingReceiver;
  input: RingReceiver;
  stats: Float64Array;
  /** The console's output state (WorkerInit.stdio), as the root's STDIO frames set it. */
  stdio: Int32Array;
  /** The counters as last sent. */
  sent: Float64Array;
  /** The NIC's copies: frames to send, frames delivered, and its counters (the worker's half as last sent). */
  net: { tx: RingForwarder; rx: RingReceiver; init: NetInit; stats: Float64Array; sent: Float64Array } | null;
  /** Set while the module compiles: a kill that arrives meanwhile ends it before it starts. */
  killed: WorkerOutcome | null;
  started: boolean;
}

export class PartitionProcess {
  private readonly doorbell = new Doorbell(Doorbell.allocate());
  private readonly wstats = new Float64Array(new SharedArrayBuffer(WORKER_STAT_SLOTS * 8));
  private readonly slots = new Map<number, Slot>();
  private readonly dirty = new Set<number>();
  private readonly reader = new FrameReader(0xffffffff);
  private sched: SharedScheduler | null = null;
  private boot: ProcessBoot | null = null;
  private wake: (() => void) | null = null;
  private lastWorkerStats = 0;
  private hosted = 0;
  /** Compiled modules by the SHA-256 of their bytes (most recently used last). */
  private readonly modules = new Map<string, Promise<WebAssembly.Module>>();
  private ending = false;

  constructor(private readonly socket: net.Socket) {}

  start(): void {
    this.socket.on('data', (data: Buffer) => {
      const refusal = this.reader.push(data, (body) => this.frame(body));
      if (refusal) throw new RootProtocolError(refusal.reason);
    });
    // The root's end closed: the root is gone or ended this process. Nothing here outlives it.
    this.socket.on('close', () => process.exit(0));
    this.socket.on('error', () => process.exit(0));
  }

  /** Nothing follows the end of a dedicated process's channel (a write after it would fail the socket and lose what it still holds). */
  private send(frame: Uint8Array): void {
    if (!this.ending) this.socket.write(frame);
  }

  private frame(body: Uint8Array): boolean {
    const f = decodeRootFrame(body);
    if (f.type === 'refused') throw new RootProtocolError(f.reason);
    this.apply(f);
    this.kick();
    return true;
  }

  private apply(f: RootFrame): void {
    if (f.type === 'boot') {
      if (this.boot !== null) throw new RootProtocolError('a second boot frame');
      this.boot = JSON.parse(f.json) as ProcessBoot;
      this.sched = new SharedScheduler({
        doorbell: this.doorbell.sab,
        // Partitions are added and killed by direct calls between turns; the port stays unused.
        control: new MessageChannel().port2,
        stats: this.wstats.buffer as SharedArrayBuffer,
        sliceMs: this.boot.sliceMs,
        spinMicros: 0,
        spin: SpinBudget.allocate(0),
        post: (event) => this.post(event),
        yieldToHost: true,
        onSlice: (slot) => this.dirty.add(slot),
      });
      void this.drive();
      return;
    }
    if (this.sched === null) throw new RootProtocolError(`a frame of type ${f.type} before boot`);
    if (f.type === 'add') {
      this.add(f.slot, v8.deserialize(f.payload) as ProcessInit);
      return;
    }
    const s = this.slots.get(f.slot);
    // A frame for a partition that has just ended here crossed its `done`: nothing to do.
    if (s === undefined) return;
    if (f.type === 'kill') {
      if (!s.started) s.killed ??= f.outcome;
      else this.sched.control({ type: 'kill', slot: f.slot, outcome: f.outcome });
      return;
    }
    if (f.type === 'stdio') {
      setStdio(s.stdio, f.flags);
      this.doorbell.ring(f.slot);
      return;
    }
    const receiver = f.ring === RingId.CALLS ? s.calls : f.ring === RingId.INPUT ? s.input : f.ring === RingId.NET_RX ? (s.net?.rx ?? null) : null;
    if (f.type === 'record') {
      if (receiver === null || !receiver.record(f.kind, f.bytes)) throw new RootProtocolError(`a record the copy of ring ${f.ring} cannot take`);
    } else if (f.type === 'close') {
      receiver?.close();
    } else if (f.type === 'ack') {
      const forwarder = f.ring === RingId.EVENTS ? s.events : f.ring === RingId.NET_TX ? (s.net?.tx ?? null) : null;
      if (forwarder === null || !forwarder.ack(f.bytes)) throw new RootProtocolError(`an acknowledgement of ${f.bytes} bytes of ring ${f.ring}`);
    }
    this.doorbell.ring(f.slot);
  }

  /** Sets up a partition's rings at once (its frames may follow), compiles its module, then hands it to the scheduler. */
  private add(slot: number, p: ProcessInit): void {
    if (this.slots.has(slot)) throw new RootProtocolError(`slot ${slot} is taken`);
    const events = new SharedRing(SharedRing.allocate(p.rings.events));
    const calls = new SharedRing(SharedRing.allocate(p.rings.calls));
    const input = new SharedRing(SharedRing.allocate(p.rings.input));
    const statsSab = allocateStats();
    const stats = new Float64Array(statsSab);
    stats.set(p.stats.subarray(0, STAT_SLOTS));
    const stdio = new Int32Array(new SharedArrayBuffer(STDIO_SLOTS * 4));
    setStdio(stdio, p.stdio);
    const s: Slot = {
      slot,
      events: new RingForwarder(
        events,
        (kind, bytes) => this.send(encodeRecord(slot, RingId.EVENTS, kind, bytes)),
        () => this.send(encodeClose(slot, RingId.EVENTS)),
      ),
      calls: new RingReceiver(calls),
      input: new RingReceiver(input),
      stats,
      stdio,
      sent: stats.slice(),
      net: p.net === null ? null : this.nic(slot, p.net),
      killed: null,
      started: false,
    };
    this.slots.set(slot, s);
    this.hosted++;
    this.compile(p.moduleBytes).then(
      (module) => {
        p.moduleBytes.fill(0);
        if (this.slots.get(slot) !== s) return;
        s.started = true;
        if (s.killed !== null) {
          this.post({ slot, message: { type: 'done', outcome: s.killed } });
          return;
        }
        const init: WorkerInit = { ...p.init, module, stats: statsSab, events: events.sab, calls: calls.sab, input: input.sab, stdio: s.stdio.buffer as SharedArrayBuffer, block: p.block, net: s.net?.init ?? null };
        this.sched!.control({ type: 'add', slot, init });
        this.kick();
      },
      (error: unknown) => {
        s.started = true;
        const message = error instanceof Error ? error.message : String(error);
        this.post({ slot, message: { type: 'done', outcome: { kind: 'error', error: 'ERR_INTERNAL', message: `the partition process could not compile the module: ${message}` } } });
      },
    );
  }

  /** The module of `bytes`, compiled once per distinct module while it stays in the cache. */
  private compile(bytes: Uint8Array): Promise<WebAssembly.Module> {
    const key = createHash('sha256').update(bytes).digest('hex');
    let module = this.modules.get(key);
    if (module !== undefined) this.modules.delete(key);
    else module = WebAssembly.compile(bytes.slice() as Uint8Array<ArrayBuffer>);
    this.modules.set(key, module);
    // A module that failed to compile is not kept; the oldest goes past the bound.
    module.catch(() => this.modules.delete(key));
    if (this.modules.size > MODULE_CACHE_ENTRIES) this.modules.delete(this.modules.keys().next().value!);
    return module;
  }

  /** The copies of a NIC's rings, port and counters (the root's switch has the originals). */
  private nic(slot: number, n: NonNullable<ProcessInit['net']>): NonNullable<Slot['net']> {
    const tx = new SharedRing(SharedRing.allocate(n.tx));
    const rx = new SharedRing(SharedRing.allocate(n.rx));
    const statsSab = new SharedArrayBuffer(NET_STAT_SLOTS * 8);
    const port: PortInit = { ...n.init.port, rx: rx.sab, ctl: NicPort.allocateCtl(), stats: statsSab };
    return {
      tx: new RingForwarder(
        tx,
        (kind, bytes) => this.send(encodeRecord(slot, RingId.NET_TX, kind, bytes)),
        () => this.send(encodeClose(slot, RingId.NET_TX)),
      ),
      rx: new RingReceiver(rx),
      // Never direct: its peers' ports are in the root's memory, not here.
      init: { ...n.init, tx: tx.sab, port, peers: [], direct: false },
      stats: new Float64Array(statsSab, 0, NET_WORKER_STAT_SLOTS),
      sent: new Float64Array(NET_WORKER_STAT_SLOTS),
    };
  }

  /** A partition's lifecycle message: what it wrote goes first, then the message. */
  private post(event: SharedEvent): void {
    const s = this.slots.get(event.slot);
    if (s === undefined) return;
    if (event.message.type === 'done') {
      this.flush(s, true);
      this.slots.delete(event.slot);
      this.dirty.delete(event.slot);
      scrubCopies(s);
    }
    this.send(encodeLifecycle(event.slot, event.message));
    if (event.message.type === 'done' && this.boot?.dedicated && this.slots.size === 0) this.end();
  }

  /** Forwards what a partition wrote, acknowledges what it consumed, and sends its counters when they changed. */
  private flush(s: Slot, final = false): void {
    s.events.pump();
    s.net?.tx.pump();
    const receivers: [number, RingReceiver][] = [
      [RingId.CALLS, s.calls],
      [RingId.INPUT, s.input],
    ];
    if (s.net !== null) receivers.push([RingId.NET_RX, s.net.rx]);
    for (const [ring, receiver] of receivers) {
      const n = receiver.consumed();
      if (n > 0) this.send(encodeAck(s.slot, ring, n));
    }
    if (!final && this.socket.writableLength > STATS_BACKLOG_BYTES) return;
    if (changed(s.stats, s.sent)) this.send(encodeStats(FrameType.STATS, s.slot, s.stats));
    if (s.net !== null && changed(s.net.stats, s.net.sent)) this.send(encodeStats(FrameType.NET_STATS, s.slot, s.net.stats));
  }

  /**
   * A dedicated process ends with its partition: everything written, then its end of the channel
   * closed. It exits when the root closes the other end (the socket's 'close'), not before: a
   * process that exited while the root was still writing to it would make the root's write fail
   * (EPIPE), and the root's socket could then be destroyed before it read the partition's end.
   */
  private end(): void {
    if (this.ending) return;
    this.ending = true;
    this.socket.end();
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /**
   * The process's loop: runs slices for up to one slice's time, forwards what ran, then returns to
   * the event loop (at once while partitions are runnable; else until a frame or the next deadline).
   */
  private async drive(): Promise<void> {
    const sched = this.sched!;
    const sliceMs = this.boot!.sliceMs;
    for (;;) {
      const start = performance.now();
      let busy = false;
      this.socket.cork();
      try {
        while ((busy = sched.step())) {
          if (performance.now() - start >= sliceMs) break;
        }
        for (const slot of this.dirty) {
          const s = this.slots.get(slot);
          if (s !== undefined) this.flush(s);
        }
        this.dirty.clear();
        const now = performance.now();
        if (now - this.lastWorkerStats >= WORKER_STATS_EVERY_MS && this.socket.writableLength <= STATS_BACKLOG_BYTES) {
          this.lastWorkerStats = now;
          this.send(encodeStats(FrameType.WORKER_STATS, 0, this.wstats));
        }
      } finally {
        this.socket.uncork();
      }
      // A dedicated process whose partition is done has ended its channel: it waits for the root to close it.
      if (this.ending) return;
      if (busy) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      const deadline = sched.nextDeadline;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (deadline !== Infinity) {
          const timer = setTimeout(() => this.kick(), Math.max(0, deadline - performance.now()));
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        }
      });
    }
  }

  /** Partitions this process has hosted so far. */
  get count(): number {
    return this.hosted;
  }
}

/**
 * Zeroes a partition's ring copies once it is done here and everything it wrote is on its way to
 * the root: its output, its calls' inputs and its frames do not stay in this process's memory
 * while the others it hosts run on. (The root's originals are zeroed by the run's end there.)
 */
function scrubCopies(s: Slot): void {
  for (const ring of [s.events.ring, s.calls.ring, s.input.ring, s.net?.tx.ring, s.net?.rx.ring]) ring?.scrub(true);
}

/** Sets the console output flags of a STDIO frame (bit `1 << slot` per StdioSlot; a set flag stays set). */
function setStdio(state: Int32Array, flags: number): void {
  for (let i = 0; i < STDIO_SLOTS; i++) if ((flags & (1 << i)) !== 0) Atomics.store(state, i, 1);
}

/** Whether `now` differs from `sent`; if so, `sent` becomes a copy of it. */
function changed(now: Float64Array, sent: Float64Array): boolean {
  for (let i = 0; i < now.length; i++) {
    if (now[i] !== sent[i]) {
      sent.set(now);
      return true;
    }
  }
  return false;
}

/** Entry point: the bootstrap (host/scheduler/sandbox.ts) has read this code from fd 3; the channel continues there. */
export function main(): void {
  const socket = new net.Socket({ fd: 3, readable: true, writable: true });
  new PartitionProcess(socket).start();
}
