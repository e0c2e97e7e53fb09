/**
 * The dashboard's live data: what every watched hypervisor's partitions are doing, sampled a few
 * times a second, plus the events between samples (violations, state changes, frames on the
 * switch, audit records, lab narration), fanned out to subscribers (the SSE stream).
 *
 * What it never carries: guest memory contents. A sample holds counters, limits, states and
 * names; frames are metadata (addresses, size, outcome), never payloads; console lines are not
 * streamed at all (a lab's transcript shows the lines of its own guests, which is what the lab
 * deliberately prints). Everything is bounded: partitions and flows per sample, events kept for
 * late subscribers, violations per second.
 */
import type { Hypervisor } from '../hypervisor.ts';
import type { Partition, PartitionState } from '../partition/partition.ts';
import { formatAddress } from '../devices/net.ts';
import { CONSOLE_DEFAULTS } from '../devices/config.ts';
import type { FrameObservation } from '../net/switch.ts';
import { TokenBucket } from '../limits/token-bucket.ts';
import type { AuditEntry } from '../mgmt/audit.ts';
import type { Grants, Watcher } from './context.ts';
import type { AuditLine, LabEvent, LabResult } from './lab.ts';

/** How often partitions are sampled, ms. */
export const SAMPLE_MS = 500;
/** Partitions in one sample; more are counted (`hiddenPartitions`). */
export const MAX_PARTITIONS = 64;
/** Distinct flows (segment, source, destination, outcome) in one sample; more are counted. */
export const MAX_FLOWS = 128;
/** Samples kept for a new subscriber's plots. */
export const HISTORY_SAMPLES = 120;
/** Audit records and lab events kept for a new subscriber (about 20 lab runs' worth). */
export const BACKLOG_EVENTS = 2000;
/** A partition that is gone stays on the page this long, ms. */
export const RETAIN_MS = 60_000;
/** The CPU share is measured over this window (the cap's checkpoints make shorter ones jumpy), ms. */
export const CPU_WINDOW_MS = 2000;
/** Violation events per second streamed; more are counted in the samples only. */
export const VIOLATIONS_PER_SECOND = 50;

export interface PartitionView {
  /** Unique on the page: `<scope>/<name>`. */
  key: string;
  scope: string;
  name: string;
  state: PartitionState;
  kind: 'command' | 'reactor';
  measurement: string;
  devices: string[];
  memory: { pages: number; peakPages: number; capPages: number };
  /** Share of one core over the last sample (0..1), or null when the partition is not metered (no cap, no fuel). */
  cpu: { share: number | null; capPercent: number | null; timeMs: number; pausedMs: number; pauses: number };
  fuel: { budget: number; consumed: number } | null;
  workFuel: number;
  io: {
    console: { linesPerSec: number; refusedPerSec: number; droppedPerSec: number; limitPerSec: number; limitKind: 'writes' | 'lines' };
    block: { bytesPerSec: number; limitBytesPerSec: number } | null;
    net: { txFramesPerSec: number; rxFramesPerSec: number; droppedPerSec: number; limitFramesPerSec: number } | null;
  };
  hypercalls: { total: number; perSec: number; byCall: Record<string, number> };
  violations: number;
  faults: number;
  net: { address: string; segment: string; host: boolean } | null;
}

export interface FlowView {
  segment: string;
  src: string;
  dst: string;
  /** Partition names where known (`scope/name`), else null (a host endpoint, or no such address). */
  srcKey: string | null;
  dstKey: string | null;
  outcome: FrameObservation['outcome'];
  frames: number;
  bytes: number;
}

export interface Sample {
  time: number;
  partitions: PartitionView[];
  hiddenPartitions: number;
  flows: FlowView[];
  hiddenFlows: number;
}

export type TelemetryEvent =
  | { type: 'sample'; sample: Sample }
  | { type: 'violation'; time: number; key: string; partition: string; call: string; status: string; reason: string }
  | { type: 'state'; time: number; key: string; state: PartitionState; previous: PartitionState }
  | { type: 'audit'; record: AuditLine }
  | { type: 'lab-start'; time: number; run: string; lab: string; mode: 'defence' | 'defence-off' }
  | { type: 'lab-event'; run: string; lab: string; event: LabEvent }
  | { type: 'lab-end'; time: number; run: string; lab: string; result: Omit<LabResult, 'events'> };

interface Tracked {
  partition: Partition;
  scope: string;
  grants: Grants | undefined;
  last: { time: number; cpuMs: number; lines: number; refused: number; dropped: number; blockBytes: number; tx: number; rx: number; netDrops: number; calls: number } | null;
  /** (time, cpu ms) over the last CPU_WINDOW_MS, oldest first. */
  cpuWindow: { time: number; cpuMs: number }[];
  view: PartitionView | null;
  goneAt: number | null;
}

interface Watched {
  hv: Hypervisor;
  scope: string;
  grantsOf: (name: string) => Grants | undefined;
  stop: () => void;
}

function devicesOf(g: Grants | undefined, p: Partition): string[] {
  const d = g?.devices;
  if (d === undefined) return p.netGrant ? ['net'] : [];
  return (Object.entries(d) as [string, unknown][]).filter(([, v]) => v !== undefined && v !== false).map(([k]) => k);
}

function consoleLimit(g: Grants | undefined): { limitPerSec: number; limitKind: 'writes' | 'lines' } {
  const c = g?.devices?.console;
  const spec = typeof c === 'object' ? c : {};
  const ops = spec.rateLimit?.opsPerSecond;
  return ops !== undefined ? { limitPerSec: ops, limitKind: 'writes' } : { limitPerSec: spec.linesPerSecond ?? CONSOLE_DEFAULTS.linesPerSecond, limitKind: 'lines' };
}

export class Telemetry implements Watcher {
  private readonly watched = new Set<Watched>();
  private readonly tracked = new Map<Partition, Tracked>();
  private readonly subscribers = new Set<(event: TelemetryEvent) => void>();
  private readonly history: Sample[] = [];
  private readonly backlog: TelemetryEvent[] = [];
  private flows = new Map<string, FlowView>();
  private hiddenFlows = 0;
  private readonly violationBucket = new TokenBucket({ capacity: VIOLATIONS_PER_SECOND, refillTimeMs: 1000 });
  private timer: NodeJS.Timeout | null = null;
  private auditSeq = 0;
  private closed = false;

  constructor(private readonly sampleMs = SAMPLE_MS) {}

  /** Starts showing `hv`'s partitions (those it has now and later) under `scope`. */
  watch(hv: Hypervisor, scope: string, grantsOf: (name: string) => Grants | undefined): () => void {
    const onState = (p: Partition, state: PartitionState, previous: PartitionState) => {
      const t = this.track(p, w);
      if (state === 'destroyed') t.goneAt = Date.now();
      this.publish({ type: 'state', time: Date.now(), key: `${scope}/${p.name}`, state, previous }, false);
    };
    const onViolation = (v: { partition: string; call: string; status: string; reason: string }) => {
      if (this.violationBucket.reduce(1) !== 'ok') return;
      this.publish({ type: 'violation', time: Date.now(), key: `${scope}/${v.partition}`, partition: v.partition, call: v.call, status: v.status, reason: v.reason.slice(0, 300) }, false);
    };
    const unobserve = hv.observeNetwork((f) => this.frame(f));
    const w: Watched = {
      hv,
      scope,
      grantsOf,
      stop: () => {
        hv.off('state', onState);
        hv.off('violation', onViolation);
        unobserve();
      },
    };
    hv.on('state', onState);
    hv.on('violation', onViolation);
    this.watched.add(w);
    for (const p of hv.partitions()) this.track(p, w);
    this.ensureTimer();
    return () => {
      if (!this.watched.delete(w)) return;
      w.stop();
      // Its partitions stay on the page a while, as they last were.
      const now = Date.now();
      for (const t of this.tracked.values()) if (t.scope === scope) t.goneAt ??= now;
    };
  }

  /** Streams events to `fn`, starting with the recent history; returns the way to stop. */
  subscribe(fn: (event: TelemetryEvent) => void): () => void {
    for (const sample of this.history) fn({ type: 'sample', sample });
    for (const event of this.backlog) fn(event);
    this.subscribers.add(fn);
    this.ensureTimer();
    return () => this.subscribers.delete(fn);
  }

  /** An audit record, numbered as the page shows it (the log behind it keeps its own numbering). */
  audit(entry: AuditEntry): AuditLine {
    const record: AuditLine = { seq: ++this.auditSeq, time: new Date().toISOString(), ...entry };
    this.publish({ type: 'audit', record }, true);
    return record;
  }

  /** Lab runs: start, each event, end (kept for late subscribers too). */
  labStart(run: string, lab: string, mode: 'defence' | 'defence-off'): void {
    this.publish({ type: 'lab-start', time: Date.now(), run, lab, mode }, true);
  }

  labEvent(run: string, lab: string, event: LabEvent): void {
    this.publish({ type: 'lab-event', run, lab, event }, true);
  }

  labEnd(run: string, lab: string, result: LabResult): void {
    const { events: _events, ...rest } = result;
    this.publish({ type: 'lab-end', time: Date.now(), run, lab, result: rest }, true);
  }

  /** Stops sampling and drops every subscriber. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const w of this.watched) w.stop();
    this.watched.clear();
    this.subscribers.clear();
  }

  /** One sample now (the timer calls this; tests may too). */
  sample(): Sample {
    const now = Date.now();
    for (const w of this.watched) for (const p of w.hv.partitions()) this.track(p, w);
    const views: PartitionView[] = [];
    let hidden = 0;
    for (const [p, t] of this.tracked) {
      if (t.goneAt !== null && now - t.goneAt > RETAIN_MS) {
        this.tracked.delete(p);
        continue;
      }
      if (t.goneAt === null || t.view === null) t.view = this.view(t, now);
      else t.view = { ...t.view, state: p.state, cpu: { ...t.view.cpu, share: null } };
      if (views.length < MAX_PARTITIONS) views.push(t.view);
      else hidden++;
    }
    const sample: Sample = { time: now, partitions: views, hiddenPartitions: hidden, flows: [...this.flows.values()], hiddenFlows: this.hiddenFlows };
    this.flows = new Map();
    this.hiddenFlows = 0;
    this.history.push(sample);
    if (this.history.length > HISTORY_SAMPLES) this.history.shift();
    return sample;
  }

  private ensureTimer(): void {
    if (this.timer !== null || this.closed) return;
    this.timer = setInterval(() => {
      if (this.subscribers.size === 0 && this.watched.size === 0) return;
      const sample = this.sample();
      this.publish({ type: 'sample', sample }, false);
    }, this.sampleMs);
    this.timer.unref();
  }

  private publish(event: TelemetryEvent, keep: boolean): void {
    if (keep) {
      this.backlog.push(event);
      if (this.backlog.length > BACKLOG_EVENTS) this.backlog.shift();
    }
    for (const fn of this.subscribers) fn(event);
  }

  private track(p: Partition, w: Watched): Tracked {
    let t = this.tracked.get(p);
    if (t === undefined) {
      t = { partition: p, scope: w.scope, grants: w.grantsOf(p.name), last: null, cpuWindow: [], view: null, goneAt: null };
      this.tracked.set(p, t);
    }
    t.grants ??= w.grantsOf(p.name);
    return t;
  }

  private keyOfAddress(address: number): string | null {
    for (const t of this.tracked.values()) if (t.goneAt === null && t.partition.netAddress === address) return `${t.scope}/${t.partition.name}`;
    return null;
  }

  private frame(f: FrameObservation): void {
    const key = `${f.segment}|${f.src}|${f.dst}|${f.outcome}`;
    const flow = this.flows.get(key);
    if (flow !== undefined) {
      flow.frames++;
      flow.bytes += f.bytes;
      return;
    }
    if (this.flows.size >= MAX_FLOWS) {
      this.hiddenFlows++;
      return;
    }
    this.flows.set(key, {
      segment: f.segment,
      src: formatAddress(f.src),
      dst: formatAddress(f.dst),
      srcKey: this.keyOfAddress(f.src),
      dstKey: this.keyOfAddress(f.dst),
      outcome: f.outcome,
      frames: 1,
      bytes: f.bytes,
    });
  }

  private view(t: Tracked, now: number): PartitionView {
    const p = t.partition;
    const m = p.metrics();
    const g = t.grants;
    const lines = m.console.linesOut;
    const refused = m.throttled.console.calls;
    const dropped = m.console.linesDropped;
    const blockBytes = m.block.readBytes + m.block.writeBytes;
    const tx = m.net?.txFrames ?? 0;
    const rx = m.net?.rxFrames ?? 0;
    const netDrops = (m.net?.txNoRoute ?? 0) + (m.net?.rxQueueDrops ?? 0) + (m.net?.rxRateLimited ?? 0);
    const cur = { time: now, cpuMs: m.cpu.timeMs, lines, refused, dropped, blockBytes, tx, rx, netDrops, calls: m.hypercalls };
    const last = t.last;
    t.last = cur;
    const dt = last ? (now - last.time) / 1000 : 0;
    const rate = (a: number, b: number | undefined) => (dt > 0 && b !== undefined ? Math.max(0, (a - b) / dt) : 0);
    const metered = g?.limits?.cpu !== undefined || g?.limits?.fuel !== undefined;
    t.cpuWindow.push({ time: now, cpuMs: m.cpu.timeMs });
    while (t.cpuWindow.length > 2 && now - t.cpuWindow[1]!.time >= CPU_WINDOW_MS) t.cpuWindow.shift();
    const first = t.cpuWindow[0]!;
    const share = metered && now > first.time ? Math.min(1, Math.max(0, (m.cpu.timeMs - first.cpuMs) / (now - first.time))) : null;
    const block = g?.devices?.block;
    const net = p.netGrant;
    const netSpec = g?.devices?.net;
    return {
      key: `${t.scope}/${p.name}`,
      scope: t.scope,
      name: p.name,
      state: p.state,
      kind: p.kind,
      measurement: p.measurement,
      devices: devicesOf(g, p),
      memory: { pages: m.memoryPages, peakPages: m.peakMemoryBytes / 65536, capPages: p.memoryPages },
      cpu: { share: p.state === 'running' ? share : null, capPercent: g?.limits?.cpu?.maxPercent ?? null, timeMs: m.cpu.timeMs, pausedMs: m.cpu.pausedMs, pauses: m.cpu.pauses },
      fuel: m.fuel,
      workFuel: m.cpu.fuel,
      io: {
        console: { linesPerSec: rate(lines, last?.lines), refusedPerSec: rate(refused, last?.refused), droppedPerSec: rate(dropped, last?.dropped), ...consoleLimit(g) },
        block: block ? { bytesPerSec: rate(blockBytes, last?.blockBytes), limitBytesPerSec: block.bytesPerSecond ?? 256 * 1024 * 1024 } : null,
        net: net ? { txFramesPerSec: rate(tx, last?.tx), rxFramesPerSec: rate(rx, last?.rx), droppedPerSec: rate(netDrops, last?.netDrops), limitFramesPerSec: (netSpec ? netSpec.sendFramesPerSecond : undefined) ?? 100_000 } : null,
      },
      hypercalls: { total: m.hypercalls, perSec: rate(m.hypercalls, last?.calls), byCall: m.hypercallsByCall },
      // The dispatcher's violations, and the frames the switch refused (reported as violations too).
      violations: m.violations + m.violationsSuppressed + (m.net?.txNoRoute ?? 0),
      faults: m.faults,
      net: net ? { address: formatAddress(net.address), segment: net.segment, host: net.host } : null,
    };
  }
}
