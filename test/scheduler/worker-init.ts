/**
 * For tests that drive a worker or a scheduler directly: a WorkerInit built by hand, as the root
 * would send it (a console and nothing else, fresh rings and counters of its own), an in-thread
 * shared scheduler, and a WAT guest loaded for shared placement.
 */
import { MessageChannel } from 'node:worker_threads';
import { HV_HYPERCALL, HV_MODULE } from '../../host/abi/codes.ts';
import { Doorbell } from '../../host/channel/doorbell.ts';
import type { SharedEvent, WorkerInit } from '../../host/channel/protocol.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { SpinBudget } from '../../host/channel/spin.ts';
import { allocateStats, WORKER_STAT_SLOTS } from '../../host/channel/stats.ts';
import { CONSOLE_DEFAULTS } from '../../host/devices/resolved.ts';
import { loadModule, type LoadedModule } from '../../host/loader/pipeline.ts';
import { HYPERCALL_SIG } from '../../host/loader/policy.ts';
import { WASI_MODULE } from '../../host/wasi/errno.ts';
import { WASI_SIGNATURES } from '../../host/wasi/imports.ts';
import { SharedScheduler } from '../../host/worker/shared.ts';
import { wat } from '../loader/wat.ts';

export function workerInit(name: string, module: WebAssembly.Module, overrides: Partial<WorkerInit> = {}): WorkerInit {
  return {
    name,
    module,
    args: [],
    devices: { console: CONSOLE_DEFAULTS, clock: null, entropy: null, block: null, net: null, attestation: null },
    stats: allocateStats(),
    events: SharedRing.allocate(65536),
    input: SharedRing.allocate(64),
    stdio: new SharedArrayBuffer(8),
    calls: SharedRing.allocate(64),
    violationsPerSecond: 10,
    kind: 'command',
    maxInputBytes: 0,
    maxOutputBytes: 0,
    spinMicros: 0,
    wasi: null,
    fuel: null,
    cpu: null,
    hypercallRate: null,
    block: null,
    net: null,
    attestation: null,
    ...overrides,
  };
}

/** A shared worker's scheduler driven in this thread, with the doorbell the test rings as the root would; `close` frees its control port. */
export function inThreadScheduler(sliceMs = 10): { sched: SharedScheduler; doorbell: Doorbell; events: SharedEvent[]; close(): void } {
  const doorbellSab = Doorbell.allocate();
  const channel = new MessageChannel();
  const events: SharedEvent[] = [];
  const sched = new SharedScheduler({
    doorbell: doorbellSab,
    control: channel.port2,
    stats: new SharedArrayBuffer(WORKER_STAT_SLOTS * 8),
    sliceMs,
    spinMicros: 0,
    spin: SpinBudget.allocate(0),
    post: (e) => events.push(e),
  });
  return { sched, doorbell: new Doorbell(doorbellSab), events, close: () => channel.port1.close() };
}

/** The hv and WASI imports a WASI guest may have, as the hypervisor allows them. */
const HV_WASI_IMPORTS = new Map([
  [HV_MODULE, new Map([[HV_HYPERCALL, HYPERCALL_SIG]])],
  [WASI_MODULE, new Map(WASI_SIGNATURES)],
]);

/** A WAT guest loaded as the hypervisor loads one for shared placement: metered and suspendable, hv and WASI imports allowed. */
export async function loadSuspendable(source: string): Promise<LoadedModule> {
  return loadModule(wat(source), { suspendable: true, fuel: true, policy: { imports: HV_WASI_IMPORTS, requiredExports: [{ name: 'memory', kind: 'memory' }] } });
}
