import { setImmediate as nextTurn } from 'node:timers/promises';
import { ChannelError, MessageReader, MessageSender, type Message } from '../channel/message.ts';
import { HV_MAX_TRANSFER } from '../abi/codes.ts';
import { DROP_RECORD_BYTES } from '../devices/console.ts';
import { SharedRing } from '../channel/ring.ts';
import { MAX_LINE_BYTES, type ChannelSizes } from '../limits/sizes.ts';
import { isErrorCode } from '../errors.ts';
import { PollOutruns, RecentWait, firstReplyChoice, processSpinBudget, spinFor } from '../channel/spin.ts';
import { Watchdog } from './watchdogs.ts';
import type { RunHost, RunPlacement } from '../scheduler/placement.ts';
import { CallKind, EventKind, MAX_VIOLATION_BYTES, type ViolationRecord, type WorkerInit, type WorkerMessage, type WorkerOutcome } from '../channel/protocol.ts';

export interface RunEvents {
  /**
   * A console record (EventKind.STDOUT, STDERR or DROPPED). Returning false stops the draining
   * until `resumeOutput()`: the reader is behind, so the guest waits for it (backpressure).
   */
  output(kind: number, bytes: Uint8Array): boolean;
  violation(violation: ViolationRecord): void;
  /** A reactor finished initializing and takes calls. */
  ready(): void;
  /**
   * A reactor call returned `ret`. `record` is the result's record as read: its 4-byte status
   * (already zeroed), then the call's output (`record[4..]`). It is valid during this callback
   * only (the run reads the next result into the same buffer): copy what is kept, and zero it.
   */
  result(ret: number, record: Uint8Array): void;
  /** The worker is gone; everything it wrote has been delivered. Called once. */
  end(outcome: WorkerOutcome): void;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** Most bytes of consecutive output records the root joins into one chunk. */
const OUTPUT_BATCH_BYTES = 256 * 1024;
/** Records this large are delivered as they are; smaller ones are joined. */
const OUTPUT_JOIN_BELOW = 8192;

/** How long the root's poll waits for a worker that sleeps on its call ring to wake up (see WorkerRun.answered). */
const WAKE_GRACE_MS = 0.02;

/** Reactor calls sent and not yet answered, in this process (every Hypervisor). */
let callsInFlight = 0;

function isOutcome(o: unknown): o is WorkerOutcome {
  const v = o as WorkerOutcome | null;
  if (v?.kind === 'exit') return Number.isInteger(v.code);
  return v?.kind === 'error' && typeof v.error === 'string' && isErrorCode(v.error) && typeof v.message === 'string';
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 200) ?? String(value);
  } catch {
    return typeof value;
  }
}

/**
 * One worker's lifetime: the thread, its rings and its watchdog. A partition has one run at a
 * time; a reactor that is restarted gets a new run, with new rings, so nothing of the poisoned
 * instance (queued requests, half-read records) reaches the next one.
 */
export class WorkerRun {
  private readonly events: SharedRing;
  private readonly calls: SharedRing;
  private readonly reader: MessageReader;
  /** Call headers by export name (see callHeader), and the two parts of a call's record. */
  private readonly callHeaders = new Map<string, { bytes: Uint8Array; view: DataView }>();
  private readonly callParts: Uint8Array[] = [EMPTY, EMPTY];
  /** The call being written into the call ring while it waits for room (a large input), or null. */
  private sending: MessageSender | null = null;
  /** True from launch until the run ended: kill() has something to end. */
  private launched = false;
  /** The run's one watchdog (host/partition/watchdogs.ts: one timer for all of them). */
  private readonly watchdog = new Watchdog(() => this.guard(() => this.kill(this.armedOutcome!())));
  /** The budget in force and its outcome, built only if it fires (re-armed once when the guest starts, see `arm`). */
  private armedMs = 0;
  private armedOutcome: (() => WorkerOutcome) | null = null;
  private guestStarted = false;
  private outcome: WorkerOutcome | null = null;
  private killOutcome: WorkerOutcome | null = null;
  /** The kill in flight is the root's verdict on the run's traffic (`fail`): it stands even if the guest's own end crosses it. */
  private faulted = false;
  private workerError: unknown = null;
  private ended = false;
  private drainFailed = false;
  /** The executor reported the run's end itself (`done`): every record it wrote is whole. */
  private doneReported = false;
  /**
   * Calls of this run between send and result (counted in `callsInFlight`): the one running and,
   * at most one, a call sent ahead behind it (`sendAhead`).
   */
  private pending = 0;
  /** When the call at the head was sent, or became the head (its predecessor's result was read). */
  private callSentAt = 0;
  /**
   * Where the call at the head, and the one sent ahead behind it, begin in the call ring (its
   * free-running write position before each was written): `callUntaken` compares the worker's
   * read position with it.
   */
  private headCallAt = 0;
  private aheadCallAt = 0;
  /**
   * How long this run's recent calls took to answer, µs: the root polls only when that is short;
   * for its first call, as the process's recent first calls say (SpinChoice).
   */
  private readonly replies = new RecentWait(firstReplyChoice());
  /** How this run's recent polls went: whether polling for a late answer still pays (pollPays). */
  private readonly outruns = new PollOutruns();
  /** The fastest recent answer, µs (see answeredWithin); Infinity until the first. */
  private quickest = Infinity;
  /** The poll in progress (see `answered`): the event ring's write counter when it began, and when it first saw the worker asleep (-1: not yet; Infinity: it gave up). */
  private pollSeq = 0;
  private asleepSince = -1;
  /** The output's reader is behind: the pump waits for resumeOutput(). */
  private paused = false;
  private resumeWaiter: (() => void) | null = null;
  /**
   * Where consecutive small output records are joined: made at the first join (a run that
   * prints nothing small never pays for it), scrubbed up to `batchUsed` when the run ends.
   */
  private batch: Uint8Array | null = null;
  private batchUsed = 0;

  constructor(
    private readonly init: Omit<WorkerInit, 'events' | 'calls'>,
    channels: ChannelSizes,
    private readonly host: RunHost,
    private readonly on: RunEvents,
  ) {
    this.events = new SharedRing(SharedRing.allocate(channels.events));
    this.calls = new SharedRing(SharedRing.allocate(channels.calls));
    // A shared worker sleeps on one doorbell, a partition process on its channel: each hears which ring moved.
    if (host.placement !== 'dedicated') this.events.onMove = this.calls.onMove = () => host.wake();
    // Output records: a chunk of one write (a dedicated worker's are at most a ring record, a
    // shared worker's outbox sends a write's piece of up to HV_MAX_TRANSFER, or a line call's line).
    const maxOutput = Math.max(HV_MAX_TRANSFER, (init.devices.console?.maxLineBytes ?? MAX_LINE_BYTES) + 1);
    const maxResult = 4 + init.maxOutputBytes;
    // What the worker may send, per kind: anything else is a protocol violation (see drain).
    this.reader = new MessageReader(this.events, (kind) => {
      if (kind === EventKind.STDOUT || kind === EventKind.STDERR) return maxOutput;
      if (kind === EventKind.DROPPED) return DROP_RECORD_BYTES;
      if (kind === EventKind.VIOLATION) return MAX_VIOLATION_BYTES;
      if (kind === EventKind.RESULT) return maxResult;
      return -1;
    });
  }

  /** Launches the run on its host. Resolves once it runs guest code (or has already ended). */
  start(): Promise<void> {
    let running!: () => void;
    const started = new Promise<void>((resolve) => (running = resolve));
    try {
      this.host.launch({ ...this.init, events: this.events.sab, calls: this.calls.sab } satisfies WorkerInit, {
        message: (message) => this.guard(() => this.onMessage(message, running)),
        violation: (violation) => this.guard(() => this.on.violation(violation)),
        error: (error) => (this.workerError = error),
        exit: (code, outcome) =>
          this.guard(() => {
            running();
            if (outcome !== undefined) this.outcome ??= outcome;
            this.finish(code);
          }),
      });
    } catch (error) {
      // No executor, no run: the partition still ends through the one exit path.
      const message = error instanceof Error ? error.message : String(error);
      this.outcome = { kind: 'error', error: 'ERR_INTERNAL', message: `partition ${this.init.name} could not start its worker: ${message}` };
      this.finish(0);
      return Promise.resolve();
    }
    this.launched = true;
    void this.pump();
    return started;
  }

  /** A lifecycle message from the executor: checked, never trusted. */
  private onMessage(message: unknown, running: () => void): void {
    const m = message as WorkerMessage | null;
    if (m?.type === 'running') {
      // The guest starts now: a watchdog armed before (the run's budget) starts again, so the
      // thread's start-up (tens of ms, far more on a loaded host) is not charged to the guest.
      // A start that never comes still ends when the first arming fires.
      const outcome = this.armedOutcome;
      if (!this.guestStarted && outcome !== null) this.arm(this.armedMs, outcome);
      this.guestStarted = true;
      running();
    }
    else if (m?.type === 'ready') this.on.ready();
    else if (m?.type === 'done' && isOutcome(m.outcome)) {
      // The run is over: everything it wrote is in the ring (written before this message). A
      // shared worker ends a killed partition itself and echoes the kill's outcome: still a kill.
      const k = this.killOutcome;
      const echo = k !== null && k.kind === 'error' && m.outcome.kind === 'error' && m.outcome.error === k.error && m.outcome.message === k.message;
      // A guest that ends on its own after the root found its traffic corrupt (a NIC unplugged
      // for a corrupt tx ring wakes the guest's recv, which may then exit before the kill lands)
      // still ends as the root decided.
      this.outcome = echo || this.faulted ? k : m.outcome;
      this.doneReported = true;
      this.host.release();
      running();
      this.finish(0);
    } else throw new ChannelError(`unexpected message from the worker: ${describe(message)}`);
  }

  /**
   * Every root-side entry point that handles this run's traffic (worker events, the event pump,
   * timers, the call sender) runs through here: nothing a partition sends can throw into the
   * root's event loop. A failure becomes the run's end, with a typed outcome.
   */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.fail(error);
    }
  }

  /** Ends the run because the root could not handle its traffic (never a guest's fault alone). */
  fail(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const outcome: WorkerOutcome = {
      kind: 'error',
      error: 'ERR_INTERNAL',
      message: `partition ${this.init.name}'s channel failed: ${message}`,
    };
    if (this.launched && !this.ended) {
      this.faulted ||= this.killOutcome === null;
      this.kill(outcome);
    } else if (!this.ended) {
      this.outcome ??= outcome;
      this.finish(0);
    }
  }

  /**
   * Whether this run keeps the app's process alive. An idle reactor does not (the app may be
   * done with it and exit without closing it); a run with work in flight does.
   */
  keepAlive(on: boolean): void {
    if (!this.ended) this.host.keepAlive(on);
  }

  /**
   * Arms (or re-arms) the watchdog: after `ms`, the worker is terminated with `outcome()` (called
   * only then: a budget that is met builds no message). Infinity: no budget.
   */
  arm(ms: number, outcome: () => WorkerOutcome): void {
    // A result read while an ended run's ring is drained promotes a call sent ahead: no budget is
    // armed on a run that is over (its end rejects that call).
    if (this.ended) return;
    if (!Number.isFinite(ms)) {
      this.disarm();
      return;
    }
    this.armedMs = ms;
    this.armedOutcome = outcome;
    this.watchdog.arm(ms);
  }

  disarm(): void {
    this.watchdog.disarm();
    this.armedOutcome = null;
  }

  /** Terminates the worker; the run ends with `outcome` unless the guest had already finished. */
  kill(outcome: WorkerOutcome): void {
    if (this.ended || this.killOutcome !== null) return;
    this.killOutcome = outcome;
    this.host.kill(outcome);
  }

  /** Asks a reactor to stop taking calls; it finishes the current one and exits normally. */
  closeCalls(): void {
    this.calls.close();
  }

  /**
   * Sends a call to the reactor, with its fuel budget (0: the partition's own). Record: f64 fuel
   * (LE), u16 export-name length (LE), the name, then the input, as one message: an input larger
   * than the ring is chunked, written as the worker makes room (the root never blocks). `input`
   * is the call's own copy (the caller's is never touched): it is zeroed here once the whole call
   * is in the ring (a run that ends first leaves that to its end, Partition.onEnd). Sent when no
   * call of this run is in flight (the Partition's queue holds the rest; `sendAhead` writes one
   * more behind the running call).
   */
  sendCall(exportName: string, input: Uint8Array, fuel: number): void {
    if (this.sending !== null) throw new Error('a call is already being sent');
    const header = this.callHeader(exportName);
    header.view.setFloat64(0, fuel, true);
    this.callSentAt = performance.now();
    this.callSent();
    const calls = this.calls;
    this.headCallAt = calls.headPosition;
    // The common case, a call that fits the ring now: one record, written from its two parts
    // (tryWriteParts says whether there is room; a record that can never fit goes chunked).
    if (header.bytes.length + input.length <= calls.maxRecord) {
      const parts = this.callParts;
      parts[0] = header.bytes;
      parts[1] = input;
      const written = calls.tryWriteParts(CallKind.CALL, parts);
      parts[1] = EMPTY;
      if (written) {
        input.fill(0);
        return;
      }
    }
    // A large input (or a full ring): chunked as the worker makes room. The header is the run's
    // own and reused by the next call: the sender gets a copy.
    const sender = new MessageSender(calls, CallKind.CALL, [header.bytes.slice(), input]);
    if (sender.pump()) {
      input.fill(0);
      return;
    }
    this.sending = sender;
    void this.sendRest(sender, input);
  }

  /**
   * Writes a call into the call ring behind the one running, as one record, when it fits now:
   * the worker then starts it as soon as it has written the running call's result, without
   * waiting for the root to read that result and send the next (a round trip, and the wake-up
   * of a worker that went to sleep meanwhile). False, and nothing sent, when the run has ended,
   * no call is running, one is already ahead, or the record does not fit the ring now. The
   * ring's order is the call order: the worker answers the running call before it reads this one.
   */
  sendAhead(exportName: string, input: Uint8Array, fuel: number): boolean {
    if (this.ended || this.pending !== 1 || this.sending !== null) return false;
    const header = this.callHeader(exportName);
    const calls = this.calls;
    if (header.bytes.length + input.length > calls.maxRecord) return false;
    header.view.setFloat64(0, fuel, true);
    const parts = this.callParts;
    parts[0] = header.bytes;
    parts[1] = input;
    const at = calls.headPosition;
    const written = calls.tryWriteParts(CallKind.CALL, parts);
    parts[1] = EMPTY;
    if (written) {
      this.aheadCallAt = at;
      this.callSent();
    }
    return written;
  }

  /**
   * True when the call at the head (the one whose budget runs) is still unread in the call ring:
   * the worker has not taken it, so its guest never started it (a diagnostic for a budget that
   * fires, see Partition.callOverBudget). Reads the ring's read position, consumes nothing. For
   * a partition process, the root's ring keeps a record until the child's copy has been read
   * (host/channel/mirror.ts), so the answer is the child's. False when no call is in flight; a
   * large call the worker has begun to read counts as taken.
   */
  get callUntaken(): boolean {
    if (this.ended || this.pending === 0) return false;
    // Free-running u32 positions: the read position has not passed the call's first byte.
    return ((this.calls.tailPosition - this.headCallAt) | 0) <= 0;
  }

  /** Counts a call sent: the root is busy while it has calls in flight, and holds a place in the spin budget. */
  private callSent(): void {
    if (callsInFlight++ === 0) processSpinBudget().hold();
    this.pending++;
  }

  /** False when a record of the event ring could not be read: what the worker did after it is unknown. */
  get ringIntact(): boolean {
    return !this.drainFailed;
  }

  /** False once the run has ended (its end is being delivered): nothing more is sent to it. */
  get accepting(): boolean {
    return !this.ended;
  }

  /**
   * True when the worker is awake: it runs a call or polls for the next one (a dedicated worker
   * asleep on its call ring counts itself there). A shared worker or a partition process is
   * never counted awake: it sleeps on a doorbell, not on the ring.
   */
  get workerAwake(): boolean {
    return !this.ended && this.host.placement === 'dedicated' && !this.calls.readerWaiting;
  }

  /**
   * True when a recent call of this run was answered within `micros`: `quickest` follows the
   * fastest recent answer (a faster one at once, slower ones by 1/16), so a call's own duration,
   * not the root's or the worker's wake-ups on the way, decides: answers that come through the
   * event loop (tens of µs) do not hide that the calls themselves take a few.
   */
  answeredWithin(micros: number): boolean {
    return this.quickest <= micros;
  }

  /**
   * A call message's header for `exportName` (f64 fuel, u16 name length, the name), made once per
   * export and reused: the fuel is written per call. Bounded by the module's callable exports.
   */
  private callHeader(exportName: string): { bytes: Uint8Array; view: DataView } {
    let header = this.callHeaders.get(exportName);
    if (header === undefined) {
      const name = encoder.encode(exportName);
      const bytes = new Uint8Array(10 + name.length);
      bytes[8] = name.length & 0xff;
      bytes[9] = name.length >>> 8;
      bytes.set(name, 10);
      header = { bytes, view: new DataView(bytes.buffer) };
      this.callHeaders.set(exportName, header);
    }
    return header;
  }

  private async sendRest(sender: MessageSender, input: Uint8Array): Promise<void> {
    try {
      for (;;) {
        const seq = this.calls.readSeq;
        if (sender.pump()) break;
        // A closed ring means the run is ending; its end rejects the call (and zeroes its input).
        if (this.calls.closed || this.ended) return;
        await this.calls.whenRead(seq);
      }
      this.sending = null;
      input.fill(0);
    } catch (error) {
      this.fail(error);
    }
  }

  /**
   * Delivers the next call result: one already in the event ring, else one that arrives while
   * the root polls the ring for up to `micros`. A reactor call that takes a few microseconds is
   * then answered without the cost of an asynchronous wake-up; the bound keeps the root's event
   * loop from being held longer than that. True when a result was delivered: the caller polls
   * again in a microtask, after the reactions of the call it settled.
   *
   * One result per poll, not the whole ring: with a call sent ahead, the worker has often
   * answered both calls by the time the root looks. Delivered together, both callers' next
   * calls were sent together and the worker ran them while the root waited (the root and the
   * worker took turns, two calls at a time). One at a time, the first caller's next call is in
   * the ring before the root delivers the second result, so the worker runs it meanwhile.
   */
  poll(micros: number): boolean {
    if (this.ended || this.paused) return false;
    // Read before the ring is looked at: a result written after this is seen by the spin.
    const seq = this.events.writeSeq;
    if (this.drain(this.events.capacity, true)) return true;
    // Poll only when every call in flight in the process is this run's (the running one and one
    // sent ahead): with others, the root has other replies to take (through its event loop);
    // and only when replies have been coming within the window, or, for a dedicated worker,
    // while its recent polls mostly saw the answer (pollPays).
    if (callsInFlight !== this.pending || this.pending === 0 || micros <= 0) return false;
    // pollPays first: a dedicated run it says yes to does not ask its history (nor, before its
    // first answer, the process's SpinChoice, which would count the poll as a wait it chose to sleep through).
    if (!this.pollPays() && !this.replies.within(micros)) return false;
    this.pollSeq = seq;
    this.asleepSince = -1;
    // A poll that ran out its window, or that the grace ended (the worker had not woken), did
    // not pay: a dedicated run whose polls mostly do not is mostly not polled for (pollPays).
    const answered = spinFor(this.answered, micros, null) && this.asleepSince !== Infinity;
    this.outruns.record(!answered);
    if (!answered) return false;
    return !this.paused && this.drain(this.events.capacity, true);
  }

  /**
   * Whether the root polls for the answer of a dedicated run whose recent answers came after the
   * window (a reactor called now and then): yes, unless most of its recent polls did not see the
   * answer (calls that take longer than the window, or a worker that does not wake within
   * WAKE_GRACE_MS while the root polls), then for one call in a few (PollOutruns).
   *
   * Those answers came late partly because the root slept: its own wake-up is in them, and
   * where the worker ran on the other core that wake-up crosses cores, which costs 16-20 µs on
   * the project's 2-vCPU machine against 7 µs on one core. The poll takes the answer without a
   * wake-up (docs/PERFORMANCE.md, "Session 14: row 3"). It never lasts longer than the window.
   */
  private pollPays(): boolean {
    if (this.host.placement !== 'dedicated') return false;
    return this.outruns.pays();
  }

  /**
   * The poll's test (one closure for every poll): the event ring was written since `pollSeq`.
   * The write counter, not the ring: a plain load, and it cannot be corrupted into a throw.
   *
   * Also ends the poll, with `asleepSince` at Infinity, when the worker still sleeps on its call
   * ring WAKE_GRACE_MS after the poll began (a dedicated worker; the send woke it, and it has not
   * run since): it is waiting for a core, and the root's poll may hold the one it needs. On a
   * machine whose other core is taken (another tenant's load), nearly every such poll ran its
   * whole window and the pool fell behind one reactor; on a free core a worker wakes well
   * within the grace.
   */
  private readonly answered = (): boolean => {
    if (this.events.writeSeq !== this.pollSeq) return true;
    if (!this.calls.readerWaiting) return false;
    const now = performance.now();
    if (this.asleepSince < 0) this.asleepSince = now;
    else if (now - this.asleepSince > WAKE_GRACE_MS) {
      this.asleepSince = Infinity;
      return true;
    }
    return false;
  };

  /** The output's reader has room again: draining resumes (a no-op unless paused). */
  resumeOutput(): void {
    // A partition process hears of a reader that went away (ConsoleOutput.close) from its host.
    if (this.host.placement === 'process') this.host.wake();
    if (!this.paused) return;
    this.paused = false;
    const wake = this.resumeWaiter;
    this.resumeWaiter = null;
    wake?.();
  }

  /**
   * Moves records from the event ring to callbacks until the run has ended: in batches of at
   * most one ring's worth, yielding to the event loop in between (a guest that writes without
   * pause cannot hold the root's thread), and not at all while the output's reader is behind.
   */
  private async pump(): Promise<void> {
    try {
      while (!this.ended) {
        const seq = this.events.writeSeq;
        const more = this.drain(this.events.capacity);
        if (this.ended) break;
        if (this.paused) await new Promise<void>((resolve) => (this.resumeWaiter = resolve));
        else if (more) await nextTurn();
        else await this.events.whenWritten(seq);
      }
    } catch (error) {
      this.fail(error);
    }
  }

  /**
   * Delivers the messages waiting on the event ring. Decoding is the root's job and its failures
   * (a message over its bound, an unknown kind, a corrupt ring, malformed JSON) end the run as
   * ERR_INTERNAL; a listener that throws is the embedder's own bug and is rethrown on its own
   * tick, the way Node reports an exception from a callback it invoked.
   *
   * Returns true when `budget` bytes were delivered (more may wait) or the output's reader is
   * behind (`paused` set: output is the one event that can say so), false when the ring is empty.
   * Infinity: everything, ignoring backpressure (the end of the run: the ring is scrubbed afterwards).
   * `oneResult`: stops after the first call result too, and returns true (see poll).
   */
  private drain(budget = Infinity, oneResult = false): boolean {
    if (this.drainFailed) return false;
    const force = budget === Infinity;
    let delivered = 0;
    for (;;) {
      // A call's result is delivered without a callback made for it (the root takes one per
      // call): `event` stays null and `record` holds it.
      let event: (() => boolean | void) | null = null;
      let record: Uint8Array | null = null;
      let ret = 0;
      try {
        const kind = this.reader.idle ? this.events.peekKind() : -1;
        if (kind === EventKind.STDOUT || kind === EventKind.STDERR) {
          // Whole output records (no chunk of a longer message): many small ones become one chunk.
          const chunk = this.takeOutput(kind);
          delivered += chunk.length;
          event = () => this.on.output(kind, chunk);
        } else {
          // A call's result is copied for the caller and zeroed by onResult before the next read:
          // it is read into the reader's reused buffer (no buffer allocated per call).
          const message = kind === EventKind.RESULT ? this.reader.readReusing() : this.reader.read();
          if (message === null) return false;
          delivered += message.bytes.length + 4;
          if (message.kind === EventKind.RESULT) {
            record = message.bytes;
            ret = this.takeResult(record);
          } else event = this.decode(message);
        }
      } catch (error) {
        this.drainFailed = true;
        this.reader.discard();
        this.fail(error);
        return false;
      }
      try {
        if (record !== null) this.on.result(ret, record);
        else if (event!() === false && !force) this.paused = true;
      } catch (error) {
        process.nextTick(() => {
          throw error;
        });
      }
      if (!force && (this.paused || delivered >= budget || (oneResult && record !== null))) return true;
    }
  }

  /**
   * The next output record, joined with the small records of the same stream that follow it:
   * many small guest writes cost the root one delivery, not one each. The chunk is a fresh copy
   * the embedder may keep, in its own (unpooled, fully written) buffer: one copy per byte.
   */
  private takeOutput(kind: number): Uint8Array {
    const first = this.events.peekLength();
    if (first >= OUTPUT_JOIN_BELOW) {
      const chunk = Buffer.allocUnsafeSlow(first);
      this.events.readInto(chunk);
      return chunk;
    }
    const batch = (this.batch ??= new Uint8Array(OUTPUT_BATCH_BYTES));
    let n = 0;
    while (this.events.peekKind() === kind) {
      const length = this.events.peekLength();
      if (n + length > batch.length || length >= OUTPUT_JOIN_BELOW) break;
      n += this.events.readInto(batch.subarray(n));
    }
    if (n > this.batchUsed) this.batchUsed = n;
    const chunk = Buffer.allocUnsafeSlow(n);
    chunk.set(batch.subarray(0, n));
    return chunk;
  }

  /** Checks a message other than a call's result and returns the callback that delivers it. */
  private decode(m: Message): () => boolean | void {
    const bytes = m.bytes;
    const kind = m.kind;
    if (kind === EventKind.STDOUT || kind === EventKind.STDERR) return () => this.on.output(kind, bytes);
    if (kind === EventKind.DROPPED) {
      if (bytes.length !== DROP_RECORD_BYTES) throw new ChannelError(`a drop report of ${bytes.length} bytes`);
      return () => this.on.output(kind, bytes);
    }
    if (m.kind === EventKind.VIOLATION) {
      const v = JSON.parse(decoder.decode(bytes)) as Partial<ViolationRecord> | null;
      if (typeof v?.call !== 'string' || typeof v.status !== 'string' || typeof v.reason !== 'string') {
        throw new ChannelError('a violation record without call, status and reason');
      }
      const record: ViolationRecord = { call: v.call, status: v.status, reason: v.reason };
      return () => this.on.violation(record);
    }
    throw new ChannelError(`unexpected message kind ${kind}`);
  }

  /**
   * Checks a call's result record and returns its status, zeroed in the record; counts the call
   * answered and how long it took.
   */
  private takeResult(bytes: Uint8Array): number {
    if (bytes.length < 4) throw new ChannelError(`a call result of ${bytes.length} bytes has no status`);
    const ret = bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24);
    bytes.fill(0, 0, 4);
    const now = performance.now();
    this.callDone();
    const micros = (now - this.callSentAt) * 1000;
    this.replies.add(micros);
    this.quickest = micros < this.quickest ? micros : this.quickest + (micros - this.quickest) / 16;
    // A call sent ahead is the head now: it started at the latest when this result was written.
    this.callSentAt = now;
    this.headCallAt = this.aheadCallAt;
    return ret;
  }

  private finish(workerExitCode: number): void {
    if (this.ended) return;
    this.ended = true;
    this.launched = false;
    while (this.pending > 0) this.callDone();
    this.disarm();
    // Whatever the worker wrote before it ended is still in the ring: deliver it before the end.
    this.drain();
    this.reader.discard();
    this.resumeOutput();
    this.events.wakeAll();
    this.calls.close();
    const outcome = this.outcome ?? this.killOutcome ?? this.crashOutcome(workerExitCode);
    // Root-held copies of guest data (console output, call inputs and outputs) go with the run.
    // The worker's writes are all finished when it reported its end (`done`); one that was
    // killed or died may have been stopped mid-record.
    const complete = this.doneReported;
    this.events.scrub(complete);
    this.batch?.fill(0, 0, this.batchUsed);
    this.calls.scrub(true);
    this.on.end(outcome);
  }

  private callDone(): void {
    if (this.pending === 0) return;
    this.pending--;
    if (--callsInFlight === 0) processSpinBudget().leave();
  }

  /** Tells a shared worker that a ring of this run moved (console input, a frame). */
  wake(): void {
    if (!this.ended) this.host.wake();
  }

  /** Which worker runs it (a thread id, or a shared worker's number), or null. */
  get workerId(): number | null {
    return this.host.workerId;
  }

  get placement(): RunPlacement {
    return this.host.placement;
  }

  /** True when the run ended because the host killed it (watchdog, stop). */
  wasKilled(outcome: WorkerOutcome): boolean {
    return outcome === this.killOutcome;
  }

  private crashOutcome(code: number): WorkerOutcome {
    const err = this.workerError as { code?: string; message?: string } | null;
    if (err?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      return { kind: 'error', error: 'ERR_LIMIT_MEMORY', message: `partition ${this.init.name} exhausted its worker heap: ${err.message ?? ''}` };
    }
    const detail = err?.message ? `: ${err.message}` : '';
    return { kind: 'error', error: 'ERR_INTERNAL', message: `partition ${this.init.name}'s worker ended unexpectedly (exit code ${code})${detail}` };
  }
}
