import { HvCall, type HvCallName } from '../abi/codes.ts';

/**
 * Per-partition counters in a SharedArrayBuffer: the worker writes, the root reads. They
 * survive the worker (a partition killed by the watchdog still reports what it did) and cost
 * one store each, with no message traffic. Single writer; the root's reads are snapshots.
 * Float64 slots: exact integers up to 2^53, so no counter wraps in practice.
 */
export const Stat = {
  HYPERCALLS: 0,
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
  /** The fuel budget; 0 when the partition is not metered. */
  FUEL_BUDGET: 11,
  /** Fuel consumed (budget − remaining, at most the budget), written when the run ends. */
  FUEL_CONSUMED: 12,
} as const;
export type StatName = keyof typeof Stat;

const callNames = Object.keys(HvCall) as HvCallName[];
const CALL_BASE = 16;
/** Slot for per-call counters: one per ABI call, then one for unknown codes. */
const callSlot = new Map<number, number>(callNames.map((name, i) => [HvCall[name], CALL_BASE + i]));
const OTHER_CALL_SLOT = CALL_BASE + callNames.length;
const SLOTS = OTHER_CALL_SLOT + 1;

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
  console: { linesOut: number; linesIn: number; linesDropped: number; bytesTruncated: number };
  violations: number;
  violationsSuppressed: number;
  /** Hypercalls refused for a bad address, length or argument. */
  faults: number;
  entropyBytes: number;
  /**
   * Fuel, for a partition with a fuel limit (else null). `consumed` is budget − remaining,
   * equal to the budget when it ran out; it is recorded when the run ends in the worker, so a
   * run killed from outside (watchdog, stop) reports 0.
   */
  fuel: { budget: number; consumed: number } | null;
}

export function readMetrics(sab: SharedArrayBuffer): PartitionMetrics {
  const s = new Float64Array(sab);
  const byCall: Record<string, number> = {};
  for (const name of callNames) {
    const n = s[callSlot.get(HvCall[name])!]!;
    if (n > 0) byCall[name] = n;
  }
  const other = s[OTHER_CALL_SLOT]!;
  if (other > 0) byCall.UNKNOWN = other;
  const memoryBytes = s[Stat.MEMORY_BYTES]!;
  return {
    hypercalls: s[Stat.HYPERCALLS]!,
    hypercallsByCall: byCall,
    memoryBytes,
    memoryPages: memoryBytes / 65536,
    peakMemoryBytes: s[Stat.PEAK_MEMORY_BYTES]!,
    console: {
      linesOut: s[Stat.CONSOLE_LINES_OUT]!,
      linesIn: s[Stat.CONSOLE_LINES_IN]!,
      linesDropped: s[Stat.CONSOLE_LINES_DROPPED]!,
      bytesTruncated: s[Stat.CONSOLE_BYTES_TRUNCATED]!,
    },
    violations: s[Stat.VIOLATIONS]!,
    violationsSuppressed: s[Stat.VIOLATIONS_SUPPRESSED]!,
    faults: s[Stat.FAULTS]!,
    entropyBytes: s[Stat.ENTROPY_BYTES]!,
    fuel: s[Stat.FUEL_BUDGET]! > 0 ? { budget: s[Stat.FUEL_BUDGET]!, consumed: s[Stat.FUEL_CONSUMED]! } : null,
  };
}
