import type { LabDefinition } from '../lab.ts';

export const codeIntegrity: LabDefinition = {
  id: 'code-integrity',
  title: 'Code integrity',
  order: 11,
  minutes: 15,
  goal: 'platform integrity',
  concept: [
    'A hypervisor that runs whatever bytes it is given cannot promise anything about what runs. Wasmvisor measures every module (SHA-256 of its bytes) before anything else happens, and with a policy admits only modules signed by a trusted publisher (Ed25519, in the WebAssembly tool-conventions signature format) or pinned by their measurement. The check comes first in the module pipeline: an unsigned or altered module never reaches the compiler.',
    'Supply-chain attacks replace what you meant to run: a compromised build server, a package registry account taken over, a plugin swapped on disk or in transit. Code signing with a policy of trusted publishers is the defence operating systems, browsers and app stores use; measurement is what lets an attestation later say exactly which code ran.',
    'The lab signs a guest, then loads a copy with one byte changed and an unsigned copy under a policy that requires a signature: both are refused before they run, with the error code and the audit record that name why.',
  ],
  feature: 'signatures',
  guests: ['hello'],
  expect: {
    code: 'ERR_INTEGRITY',
    audit: { action: 'partition.create', outcome: 'denied', code: 'ERR_INTEGRITY' },
  },
};
