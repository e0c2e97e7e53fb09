/**
 * Wasmvisor: a WebAssembly partition hypervisor for Node.js.
 * The public API: the Hypervisor, its partitions, the typed errors, and the ABI numbers.
 */
export { Hypervisor, DEFAULT_LIMITS } from './hypervisor.ts';
export type { HypervisorOptions, HypervisorEvents, PartitionSpec, PartitionLimits, CpuLimit, RestartPolicy, PartitionSchedule } from './hypervisor.ts';
export type { SchedulerStats } from './scheduler/scheduler.ts';
export type { SharedWorkerStats } from './scheduler/shared.ts';
export type { Placement } from './limits/sizes.ts';
export { Partition } from './partition/partition.ts';
export type { PartitionExit, PartitionState, PartitionEvents, Violation, ConsoleStream, CallOptions, RestartInfo, RestartMode, DestroyOptions } from './partition/partition.ts';
export { PartitionPool } from './pool.ts';
export type { WipeResult } from './storage/storage.ts';
export type { PartitionMetrics } from './channel/stats.ts';
export type { RateLimitSpec, RateLimitMode } from './limits/rate-limiter.ts';
export type { DevicesSpec, ConsoleSpec, ClockSpec, EntropySpec, BlockSpec, NetSpec } from './devices/config.ts';
export { NetEndpoint } from './net/switch.ts';
export type { NetFrame } from './net/switch.ts';
export { PortForward, StreamFrame, STREAM_HEADER_SIZE } from './net/forward.ts';
export type { ForwardPortOptions } from './net/forward.ts';
export { formatAddress } from './devices/net.ts';
export type { NetMetrics } from './devices/net.ts';
export type { Inspection } from './loader/pipeline.ts';
export type { WasiSpec, PreopenSpec, WasiQuotas } from './wasi/config.ts';
export * from './errors.ts';
export * as abi from './abi/codes.ts';
