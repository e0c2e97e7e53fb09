import { HvCall, type HvCallName } from '../abi/codes.ts';
import type { NetMetrics } from '../devices/net.ts';

/**
 * Per-partition counters in a SharedArrayBuffer: the worker writes, the root reads. They
 * survive the worker (a partition killed by the watchdog still reports what it did) and cost
 * one store each, with no message traffic. Single writer; the root's reads are snapshots.
 * Float64 slots: exact integers up to 2^53, so no counter wraps in practice.
 */
export const Stat = {
  // Slot 0 is unused: the number of hypercalls is the sum of the per-call slots (one store per
  // call on the dispatcher's hot path instead of two).
  MEMORY_BYTES: 1,
  PEAK_MEMORY_BYTES: 2,
  CONSOLE_LINES_OUT: 3,
  CONSOLE_LINES_DROPPED: 4,
  CONSOLE_BYTES_TRUNCATED: 5,
  CONSOLE_LINES_IN: 6,
  VIOLATIONS: 7,
  VIOLATIONS_SUPPRESSED: 8,
  FAULTS: 9,
  ENTROPY_BYTES: 10,
  BLOCK_READ_BYTES: 11,
  BLOCK_WRITE_BYTES: 12,
  BLOCK_DISCARD_BYTES: 13,
  BLOCK_FLUSHES: 14,
  BLOCK_THROTTLED_MS: 15,
  BLOCK_INTEGRITY_FAILURES: 16,
  BLOCK_TORN_RECOVERED: 17,
  BLOCK_IO_ERRORS: 18,
  WASI_CALLS: 19,
  /** The fuel budget; 0 when the partition is not metered. */
  FUEL_BUDGET: 20,
  /** Fuel consumed (budget − remaining, at most the budget), written when the run ends. */
  FUEL_CONSUMED: 21,
  /** Time the worker ran guest code, less the time the CPU cap paused it (ms, wall time). */
  CPU_TIME_MS: 22,
  /** Time the CPU cap kept the partition paused (ms). */
  CPU_PAUSED_MS: 23,
  CPU_PAUSES: 24,
  /** Console writes refused (reject mode) or delayed (block mode) by the console's rate limit. */
  CONSOLE_THROTTLED: 25,
  CONSOLE_THROTTLED_MS: 26,
  /** Hypercalls refused or delayed by the partition's hypercall rate limit. */
  HYPERCALLS_THROTTLED: 27,
  HYPERCALLS_THROTTLED_MS: 28,
  /** Block requests delayed (or refused) by the block device's rate limits. */
  BLOCK_THROTTLED: 29,
  /** Fuel consumed by a metered partition (fuel budget or CPU cap), in total; updated at each CPU-cap checkpoint and at the end. */
  WORK_FUEL: 30,
  /** Console output bytes (both streams) handed to the root, in order, byte for byte. */
  CONSOLE_BYTES_OUT: 31,
  /** Console output bytes refused by the console's rate limit in reject mode (never reported as written). */
  CONSOLE_BYTES_DROPPED: 32,
  /** Console writes that waited for the root to drain a full output ring (backpressure), and the time waited. */
  CONSOLE_OUTPUT_WAITS: 33,
  CONSOLE_OUTPUT_WAIT_MS: 34,
  /** Console input bytes the guest consumed (lines count with their newline). */
  CONSOLE_BYTES_IN: 35,
  /** 1 once a block write or fsync failed: the disk refuses writes until the partition is created again. */
  BLOCK_FAILED: 36,
  /** Shared placement: time slices the partition ran, times it was preempted, times it waited for something, and time it waited for a slice (ms). */
  SCHED_SLICES: 37,
  SCHED_PREEMPTIONS: 38,
  SCHED_WAITS: 39,
  SCHED_WAIT_MS: 40,
  /**
   * The part of CONSOLE_BYTES_DROPPED, CONSOLE_LINES_DROPPED and CONSOLE_BYTES_TRUNCATED that was
   * stderr's (the rest is stdout's): at the end of a run the root reports, per stream, the drops
   * the worker counted and did not report (a terminated worker never sends its last report).
   */
  CONSOLE_STDERR_BYTES_DROPPED: 41,
  CONSOLE_STDERR_LINES_DROPPED: 42,
  CONSOLE_STDERR_BYTES_TRUNCATED: 43,
} as const;

/** Counters of a shared worker (Float64 slots; the worker writes, the root reads). */
export const WorkerStat = {
  /** Partitions hosted. */
  CONTEXTS: 0,
  /** Partitions ready to run and waiting for the thread. */
  RUN_QUEUE: 1,
  SLICES: 2,
  PREEMPTIONS: 3,
  /** Times the thread found nothing to run and slept. */
  IDLE_WAITS: 4,
} as const;
export const WORKER_STAT_SLOTS = 8;
export type StatName = keyof typeof Stat;

const callNames = Object.keys(HvCall) as HvCallName[];
// Room for more named counters below the per-call slots.
const CALL_BASE = 48;
/** Slot for per-call counters: one per ABI call, then one for unknown codes. */
const callSlot = new Map<number, number>(callNames.map((name, i) => [HvCall[name], CALL_BASE + i]));
const OTHER_CALL_SLOT = CALL_BASE + callNames.length;
const SLOTS = OTHER_CALL_SLOT + 1;
/** Float64 slots of a partition's counters. */
export const STAT_SLOTS = SLOTS;

export function allocateStats(): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOTS * 8);
}

/** Slot counting calls with this code. */
export function callStatSlot(code: number): number {
  return callSlot.get(code) ?? OTHER_CALL_SLOT;
}

/** A plain-object view of the counters, for the API, the CLI and the demo summary. */
export interface PartitionMetrics {
  hypercalls: number;
  hypercallsByCall: Record<string, number>;
  memoryBytes: number;
  memoryPages: number;
  peakMemoryBytes: number;
  /**
   * Console counters. Lines: the line calls (`CONSOLE_WRITE*`, `CONSOLE_READ`). Bytes: every output
   * byte delivered (`bytesOut`, both streams, all calls), bytes refused by `devices.console.rateLimit`
   * in reject mode (`bytesDropped`: the write returned RATE_LIMITED / EAGAIN), input bytes the guest
   * consumed (`bytesIn`), and how often and how long output writes waited for the reader
   * (`outputWaits`, `outputWaitedMs`: backpressure).
   */
  console: {
    linesOut: number;
    linesIn: number;
    linesDropped: number;
    bytesTruncated: number;
    bytesOut: number;
    bytesIn: number;
    bytesDropped: number;
    outputWaits: number;
    outputWaitedMs: number;
  };
  violations: number;
  violationsSuppressed: number;
  /** Hypercalls refused for a bad address, length or argument. */
  faults: number;
  entropyBytes: number;
  block: {
    readBytes: number;
    writeBytes: number;
    discardBytes: number;
    flushes: number;
    /** Time requests waited for the device's rate limits. */
    throttledMs: number;
    /** Reads that found a sector that does not authenticate (tampered, or not this partition's). */
    integrityFailures: number;
    /** Sectors whose newest version was torn (or rolled back) and that read as their previous version. */
    tornRecovered: number;
    ioErrors: number;
    /**
     * A write or fsync failed (a full host disk, an I/O error): from then on every write, discard
     * and flush returns HV_STATUS_IO_ERROR, also after a reactor restart, until the partition is
     * destroyed and created again (which reopens the image). Reads still work.
     */
    failed: boolean;
  };
  /** WASI preview1 calls (not counted in `hypercalls`). */
  wasiCalls: number;
  /**
   * Fuel, for a partition with a fuel limit (else null). `consumed` is budget − remaining,
   * equal to the budget when it ran out; it is recorded when the run ends in the worker, so a
   * run killed from outside (watchdog, stop) reports 0.
   */
  fuel: { budget: number; consumed: number } | null;
  /**
   * Time the worker ran guest code (start-up, `_start`, reactor calls; not an idle reactor's
   * wait), less the time the CPU cap paused it; and that paused time. Wall-clock ms: Node 20
   * has no per-thread CPU clock. Updated at each CPU-cap checkpoint and when the run ends.
   * `fuel`: the work done, in fuel units, by a metered partition (one with a fuel budget or a CPU
   * cap; 0 otherwise), live for a capped one: an independent measure of how much CPU it got.
   */
  cpu: { timeMs: number; pausedMs: number; pauses: number; fuel: number };
  /** What rate limits held back: calls refused (reject mode) or delayed (block mode), and the time waited. */
  throttled: {
    console: { calls: number; waitedMs: number };
    hypercalls: { calls: number; waitedMs: number };
    block: { calls: number; waitedMs: number };
  };
  /** The NIC's counters (its own block; filled in by the Partition), or null when net is not granted. */
  net: NetMetrics | null;
  /**
   * Scheduling in a shared worker (all 0 in a dedicated one): time slices run, preemptions (the
   * slice was spent while others waited), waits (suspended until input, room or a time), and
   * the time spent ready but waiting for the thread, ms.
   */
  sched: { slices: number; preemptions: number; waits: number; waitMs: number };
}

export function readMetrics(sab: SharedArrayBuffer): PartitionMetrics {
  const s = new Float64Array(sab);
  const byCall: Record<string, number> = {};
  let hypercalls = 0;
  for (const name of callNames) {
    const n = s[callSlot.get(HvCall[name])!]!;
    hypercalls += n;
    if (n > 0) byCall[name] = n;
  }
  const other = s[OTHER_CALL_SLOT]!;
  hypercalls += other;
  if (other > 0) byCall.UNKNOWN = other;
  const memoryBytes = s[Stat.MEMORY_BYTES]!;
  return {
    hypercalls,
    hypercallsByCall: byCall,
    memoryBytes,
    memoryPages: memoryBytes / 65536,
    peakMemoryBytes: s[Stat.PEAK_MEMORY_BYTES]!,
    console: {
      linesOut: s[Stat.CONSOLE_LINES_OUT]!,
      linesIn: s[Stat.CONSOLE_LINES_IN]!,
      linesDropped: s[Stat.CONSOLE_LINES_DROPPED]!,
      bytesTruncated: s[Stat.CONSOLE_BYTES_TRUNCATED]!,
      bytesOut: s[Stat.CONSOLE_BYTES_OUT]!,
      bytesIn: s[Stat.CONSOLE_BYTES_IN]!,
      bytesDropped: s[Stat.CONSOLE_BYTES_DROPPED]!,
      outputWaits: s[Stat.CONSOLE_OUTPUT_WAITS]!,
      outputWaitedMs: s[Stat.CONSOLE_OUTPUT_WAIT_MS]!,
    },
    violations: s[Stat.VIOLATIONS]!,
    violationsSuppressed: s[Stat.VIOLATIONS_SUPPRESSED]!,
    faults: s[Stat.FAULTS]!,
    entropyBytes: s[Stat.ENTROPY_BYTES]!,
    block: {
      readBytes: s[Stat.BLOCK_READ_BYTES]!,
      writeBytes: s[Stat.BLOCK_WRITE_BYTES]!,
      discardBytes: s[Stat.BLOCK_DISCARD_BYTES]!,
      flushes: s[Stat.BLOCK_FLUSHES]!,
      throttledMs: s[Stat.BLOCK_THROTTLED_MS]!,
      integrityFailures: s[Stat.BLOCK_INTEGRITY_FAILURES]!,
      tornRecovered: s[Stat.BLOCK_TORN_RECOVERED]!,
      ioErrors: s[Stat.BLOCK_IO_ERRORS]!,
      failed: s[Stat.BLOCK_FAILED]! !== 0,
    },
    wasiCalls: s[Stat.WASI_CALLS]!,
    fuel: s[Stat.FUEL_BUDGET]! > 0 ? { budget: s[Stat.FUEL_BUDGET]!, consumed: s[Stat.FUEL_CONSUMED]! } : null,
    cpu: { timeMs: Math.max(0, s[Stat.CPU_TIME_MS]!), pausedMs: s[Stat.CPU_PAUSED_MS]!, pauses: s[Stat.CPU_PAUSES]!, fuel: s[Stat.WORK_FUEL]! },
    throttled: {
      console: { calls: s[Stat.CONSOLE_THROTTLED]!, waitedMs: s[Stat.CONSOLE_THROTTLED_MS]! },
      hypercalls: { calls: s[Stat.HYPERCALLS_THROTTLED]!, waitedMs: s[Stat.HYPERCALLS_THROTTLED_MS]! },
      block: { calls: s[Stat.BLOCK_THROTTLED]!, waitedMs: s[Stat.BLOCK_THROTTLED_MS]! },
    },
    net: null,
    sched: { slices: s[Stat.SCHED_SLICES]!, preemptions: s[Stat.SCHED_PREEMPTIONS]!, waits: s[Stat.SCHED_WAITS]!, waitMs: s[Stat.SCHED_WAIT_MS]! },
  };
}
