/**
 * Every lab, in the suggested order (docs/LABS.md). A lab is one file in labs/; adding one is
 * adding it here.
 */
import type { LabDefinition } from './lab.ts';
import { memoryIsolation } from './labs/memory-isolation.ts';
import { narrowInterface } from './labs/narrow-interface.ts';
import { boundsChecks } from './labs/bounds-checks.ts';
import { zeroInitialisation } from './labs/zero-initialisation.ts';
import { cpuExhaustion } from './labs/cpu-exhaustion.ts';
import { memoryExhaustion } from './labs/memory-exhaustion.ts';
import { ioFlooding } from './labs/io-flooding.ts';
import { network } from './labs/network.ts';
import { storage } from './labs/storage.ts';
import { restrictedAccess } from './labs/restricted-access.ts';
import { codeIntegrity } from './labs/code-integrity.ts';
import { attestation } from './labs/attestation.ts';
import { audit } from './labs/audit.ts';

export const LABS: readonly LabDefinition[] = [
  memoryIsolation,
  narrowInterface,
  boundsChecks,
  zeroInitialisation,
  cpuExhaustion,
  memoryExhaustion,
  ioFlooding,
  network,
  storage,
  restrictedAccess,
  codeIntegrity,
  attestation,
  audit,
].sort((a, b) => a.order - b.order);

export function findLab(id: string): LabDefinition | undefined {
  return LABS.find((l) => l.id === id);
}
