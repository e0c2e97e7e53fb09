/**
 * A WorkerInit built by hand, as the root would send it, for tests that drive a worker or a
 * scheduler directly: a console and nothing else, fresh rings and counters of its own.
 */
import type { WorkerInit } from '../../host/channel/protocol.ts';
import { SharedRing } from '../../host/channel/ring.ts';
import { allocateStats } from '../../host/channel/stats.ts';
import { CONSOLE_DEFAULTS } from '../../host/devices/resolved.ts';

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
