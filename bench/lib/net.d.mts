/** Types of bench/lib/net.mjs (plain JS, shared by bench/net.mjs and test/bench/net-guard.test.ts). */
export declare const OPEN: {
  sendBytesPerSecond: number;
  sendFramesPerSecond: number;
  recvBytesPerSecond: number;
  recvFramesPerSecond: number;
  rxQueueBytes: number;
};

export interface PartitionsRun {
  /** First frame to last, at the receiver. */
  ms: number;
  received: number;
  lost: number;
  queueDrops: number;
  /** Frames the sender delivered straight into the receiver's port. */
  direct: number;
  /** CPU ms of the sender's and the receiver's worker and of the root over the run (Linux /proc), or null. */
  cpu: { tx: number; rx: number; root: number } | null;
}

export interface ChannelRun {
  ms: number;
  received: number;
  lost: number;
}

export declare function partitionsThroughput(Hypervisor: unknown, guests: URL, frames: number, size: number): Promise<PartitionsRun>;
export declare function channelThroughput(frames: number, size: number): Promise<ChannelRun>;
/**
 * Round trips of `pings` sequential pings from the root to the pong guest, µs, sorted; `timeoutMs`
 * is the pong's wall-clock budget (default 120000). Rejects as soon as the pong ends early.
 */
export declare function partitionRtt(Hypervisor: unknown, guests: URL, pings: number, timeoutMs?: number): Promise<number[]>;
