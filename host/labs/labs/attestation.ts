import type { LabDefinition } from '../lab.ts';

export const attestation: LabDefinition = {
  id: 'attestation',
  title: 'Attestation',
  order: 12,
  minutes: 15,
  goal: 'platform integrity',
  concept: [
    'Code integrity protects the host from bad code; attestation lets someone else check what the host is running. Wasmvisor keeps a measured-boot event log: every module, policy and configuration it loads is measured and extended into registers (register = SHA-256(register ‖ digest), as a TPM does). An attestation report carries the registers, the event log and a verifier\'s nonce, signed with the host\'s key; a verifier replays the log, checks the signature and the nonce, and compares the measurements with the ones it expects.',
    'Remote attestation is how a customer can trust a confidential-computing host, how a fleet manager keeps tampered machines out, and how a secrets service decides whether to release a key to a workload. Without it, a compromised host simply reports whatever the verifier wants to hear.',
    'The lab asks the host for a report over a fresh nonce and verifies it, then changes one byte of the report and verifies again: the verification fails and says which check failed.',
  ],
  feature: 'attestation',
  guests: ['hello'],
  expect: {
    code: 'ERR_INTEGRITY',
    audit: { action: 'attestation.request', outcome: 'success' },
  },
};
