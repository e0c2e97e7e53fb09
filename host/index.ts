/**
 * Wasmvisor: a WebAssembly partition hypervisor for Node.js.
 * The public API: the Hypervisor, its partitions, the typed errors, and the ABI numbers.
 */
export { Hypervisor, DEFAULT_LIMITS } from './hypervisor.ts';
export type { SchedulerStats } from './scheduler/scheduler.ts';
export type { SharedWorkerStats } from './scheduler/shared.ts';
export type { Placement } from './limits/sizes.ts';
export type { HypervisorEvents, HypervisorWarning, PartitionSchedule } from './hypervisor.ts';
export { Partition } from './partition/partition.ts';
export type { PartitionExit, PartitionState, PartitionEvents, Violation, ConsoleStream, DroppedOutput, CallOptions, RestartInfo, RestartMode, DestroyOptions } from './partition/partition.ts';
export { PartitionPool } from './pool.ts';
export type { WipeResult, DiskInfo, StorageEvent } from './storage/storage.ts';
export type { PartitionMetrics } from './channel/stats.ts';
export { NetEndpoint } from './net/switch.ts';
export type { NetFrame, FrameObservation } from './net/switch.ts';
export { FORWARD_LIMITS, PortForward, StreamFrame, STREAM_HEADER_SIZE } from './net/forward.ts';
export type { ForwardPortOptions } from './net/forward.ts';
export { formatAddress } from './devices/net.ts';
export type { NetMetrics } from './devices/net.ts';
export type { Inspection } from './loader/pipeline.ts';
export type {
  HypervisorOptions,
  PartitionSpec,
  PartitionLimits,
  CpuLimit,
  RestartPolicy,
  RateLimitSpec,
  RateLimitMode,
  DevicesSpec,
  ConsoleSpec,
  ClockSpec,
  EntropySpec,
  BlockSpec,
  NetSpec,
  WasiSpec,
  PreopenSpec,
  PreopenMode,
  WasiQuotas,
  Manifest,
  PoolOptions,
} from './schema/index.ts';
export { loadManifest, jsonSchemas, MAX_TIMER_MS } from './schema/index.ts';
/** The TypeBox schemas the runtime checks with (for fastify, editors, generators). */
export * as schemas from './schema/index.ts';
export { DEFAULT_MODULE_LIMITS } from './loader/bounds.ts';
export type { ModuleLimits } from './loader/bounds.ts';
export * from './errors.ts';
export * from './security/index.ts';
export * as abi from './abi/codes.ts';
