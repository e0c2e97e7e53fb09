import type { LabDefinition } from '../lab.ts';

export const audit: LabDefinition = {
  id: 'audit',
  title: 'Audit',
  order: 13,
  minutes: 10,
  goal: 'audit',
  concept: [
    'Defences fail, and when they do someone has to find out what happened. Wasmvisor\'s audit log records management actions, lifecycle events and every violation, append-only: each record carries the hash of the one before it and a MAC, and checkpoints are signed with the host key, so an edited, deleted, reordered or truncated record is detected by `wasmvisor audit verify`, which names the first record that does not check.',
    'An intruder\'s first job after getting in is to erase the traces: clear the log, delete the lines that show the login, edit a timestamp. Tamper-evident logs (hash chains, signed digests, as in CloudTrail\'s log-file integrity or a TPM\'s event log) do not stop the edit, but make sure it cannot go unnoticed.',
    'The lab runs an attack so that the log has something to say, verifies the log, then edits one line of the log file on the host\'s disk and verifies again: the verification fails and names that line.',
  ],
  feature: 'audit-log',
  guests: ['attack-device'],
  expect: {
    code: 'ERR_INTEGRITY',
    audit: { action: 'partition.violation', outcome: 'denied' },
  },
};
