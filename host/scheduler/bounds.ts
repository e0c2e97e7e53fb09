/**
 * Bounds of shared partition processes (isolation 'process' with placement 'shared'): one source
 * for the options' schema (host/schema/hypervisor.ts), the scheduler and the child's sandbox.
 */

/** Address space V8 reserves for one WebAssembly.Memory on 64-bit Linux (8 GiB and its guard regions), MiB. */
export const WASM_MEMORY_RESERVATION_MB = 10 * 1024;

/**
 * Most partitions one shared partition process hosts (`process.partitionsPerProcess`). V8 reserves
 * 10 GiB of address space per Wasm memory and a 64-bit Linux process has 128 TiB: about 13,000
 * memories per process (test/scheduler/memory-edge.test.ts). The bound keeps a shared process
 * below that edge with room for its own mappings; the child's address-space limit is sized to it
 * (process.ts, sharedSandbox). It is also below the child scheduler's doorbell slots (DOORBELL_SLOTS).
 */
export const MAX_PARTITIONS_PER_PROCESS = 12_000;

/** Default partitions per shared partition process. */
export const DEFAULT_PARTITIONS_PER_PROCESS = 1000;

/** Most shared partition processes (`process.sharedProcesses`). */
export const MAX_SHARED_PROCESSES = 256;
