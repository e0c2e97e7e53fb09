import type { RateLimitMode, ResolvedRateLimit } from '../limits/rate-limiter.ts';

/**
 * Resolved device settings and the few values the worker needs, without the schema: the worker
 * bundle (dist/worker.js) imports this, never host/schema/, so a worker does not load TypeBox
 * (hundreds of milliseconds of a worker's start on a loaded host). host/devices/config.ts
 * resolves specs into these and re-exports them.
 */

export interface ResolvedConsole {
  maxLineBytes: number;
  linesPerSecond: number;
  burstLines: number;
  inputBufferBytes: number;
  rateLimit: ResolvedRateLimit | null;
  /** Host fds written directly, per stream (see ConsoleSpec.outputFd), or null. */
  outputFd: { stdout: number | null; stderr: number | null };
}
export interface ResolvedClock {
  resolutionNs: number;
  deterministic: { startNs: string; stepNs: string } | null;
}
export interface ResolvedEntropy {
  seed: string | null;
}
export interface ResolvedBlock {
  sizeMiB: number;
  path: string | null;
  bytesPerSecond: number;
  burstBytes: number;
  opsPerSecond: number;
  burstOps: number;
  rateLimitMode: RateLimitMode;
}
export interface ResolvedNet {
  segment: string;
  mtu: number;
  rxQueueBytes: number;
  sendBytesPerSecond: number;
  sendFramesPerSecond: number;
  recvBytesPerSecond: number;
  recvFramesPerSecond: number;
  host: boolean;
}
export interface ResolvedDevices {
  console: ResolvedConsole | null;
  clock: ResolvedClock | null;
  entropy: ResolvedEntropy | null;
  block: ResolvedBlock | null;
  net: ResolvedNet | null;
  /** Granted (true) or not (null); the partition's key and certificate travel separately. */
  attestation: true | null;
}

export const CONSOLE_DEFAULTS: ResolvedConsole = {
  maxLineBytes: 4096,
  linesPerSecond: 1000,
  burstLines: 1000,
  inputBufferBytes: 65536,
  rateLimit: null,
  outputFd: { stdout: null, stderr: null },
};

/** Ring bytes one frame of `payload` bytes takes in a receive queue: record header, frame header, padding. */
export function rxRecordBytes(payload: number): number {
  return 4 + ((8 + payload + 3) & ~3);
}
