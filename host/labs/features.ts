/**
 * Which of Wasmvisor's defences this build has, detected from the code itself (never a flag set
 * by hand): a lab whose feature is present must be live, one whose feature is missing shows as
 * "coming" with its concept text. test/labs/catalog.test.ts holds every lab to that.
 */
import { CPU_SLICE_FUEL, Hypervisor } from '../hypervisor.ts';
import { VirtualSwitch } from '../net/switch.ts';
import { Rbac } from '../mgmt/rbac.ts';
import { RateLimiter } from '../limits/rate-limiter.ts';
import { GuestMemory } from '../abi/guest-memory.ts';
import { Storage } from '../storage/storage.ts';

export type FeatureId =
  | 'partitions'
  | 'import-policy'
  | 'bounds-checks'
  | 'zeroing'
  | 'fuel-and-caps'
  | 'memory-caps'
  | 'rate-limits'
  | 'network'
  | 'encrypted-storage'
  | 'signatures'
  | 'attestation'
  | 'rbac'
  | 'audit-log';

/** A method or accessor the Hypervisor class itself defines (inherited EventEmitter names never count). */
function hypervisorHas(name: string): boolean {
  return Object.getOwnPropertyDescriptor(Hypervisor.prototype, name) !== undefined;
}

export interface Feature {
  /** What the feature is, for the "coming" notice. */
  what: string;
  /** Where its code lives (or will). */
  where: string;
  present(): boolean;
}

export const FEATURES: Record<FeatureId, Feature> = {
  partitions: {
    what: 'separate partitions: one Wasm instance and linear memory each, in its own worker',
    where: 'host/hypervisor.ts, host/partition/',
    present: () => hypervisorHas('createPartition'),
  },
  'import-policy': {
    what: 'the import allow-list: hv.hypercall only, checked at load',
    where: 'host/loader/policy.ts',
    present: () => hypervisorHas('inspect'),
  },
  'bounds-checks': {
    what: 'GuestMemory: every (pointer, length) checked, copied once, written all-or-nothing',
    where: 'host/abi/guest-memory.ts',
    present: () => typeof GuestMemory === 'function',
  },
  zeroing: {
    what: 'zeroed output windows, fresh instances after a fault, scrubbed disks',
    where: 'host/abi/dispatcher.ts, host/partition/, host/storage/',
    present: () => hypervisorHas('wipeStorage'),
  },
  'fuel-and-caps': {
    what: 'fuel budgets and CPU caps',
    where: 'host/loader/instrument.ts, host/limits/cpu-governor.ts',
    present: () => CPU_SLICE_FUEL > 0,
  },
  'memory-caps': {
    what: 'page caps and memory admission',
    where: 'host/loader/policy.ts, host/hypervisor.ts',
    present: () => hypervisorHas('memoryUsage'),
  },
  'rate-limits': {
    what: 'token-bucket rate limits on every device',
    where: 'host/limits/',
    present: () => typeof RateLimiter === 'function',
  },
  network: {
    what: 'the virtual switch: segments and stamped sources',
    where: 'host/net/switch.ts',
    present: () => typeof VirtualSwitch === 'function' && hypervisorHas('attachNet'),
  },
  'encrypted-storage': {
    what: 'encrypted, authenticated block storage',
    where: 'host/storage/',
    present: () => typeof Storage === 'function',
  },
  signatures: {
    what: 'signed modules and a policy of trusted publishers (wasmvisor sign / verify)',
    where: 'host/security/ (issue 12)',
    present: () => hypervisorHas('setPolicy'),
  },
  attestation: {
    what: 'measured boot and signed attestation reports (hv.attest)',
    where: 'host/security/ (issue 12)',
    present: () => hypervisorHas('attest'),
  },
  rbac: {
    what: 'the management API: tokens, roles at scopes, deny by default',
    where: 'host/mgmt/',
    present: () => typeof Rbac === 'function',
  },
  'audit-log': {
    what: 'the tamper-evident audit log and `wasmvisor audit verify`',
    where: 'host/security/audit.ts (issue 12)',
    present: () => hypervisorHas('audit'),
  },
};

export function featurePresent(id: FeatureId): boolean {
  return FEATURES[id].present();
}
