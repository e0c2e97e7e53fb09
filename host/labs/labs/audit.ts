import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LabContext } from '../context.ts';
import type { LabDefinition } from '../lab.ts';
import { auditFailure, listAuditFiles, readAuditRecords, verifyAuditLog, type AuditEntry } from '../../security/audit.ts';
import { AUDIT_HEAD_FILE, AUDIT_KEY_FILE, keysDir } from '../../security/host-keys.ts';
import { openAuditLog } from '../../security/monitor.ts';
import type { PublicKey } from '../../security/keys.ts';

/** `wasmvisor audit verify` on the lab host's log: with its MAC key, the host's public key and the anchor. */
function verify(dir: string, keys: string, publicKey: PublicKey) {
  return verifyAuditLog(dir, {
    macKey: new Uint8Array(readFileSync(path.join(keys, AUDIT_KEY_FILE))),
    publicKey,
    // The anchor is written with the first checkpoint (once a second); without it the rest is checked.
    head: existsSync(path.join(keys, AUDIT_HEAD_FILE)) ? readFileSync(path.join(keys, AUDIT_HEAD_FILE), 'utf8') : null,
  });
}

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
  async run(ctx: LabContext) {
    const dataDir = path.join(ctx.workDir, 'host');
    const opened = openAuditLog({ dataDir, actor: `lab:${ctx.labId}` });
    ctx.defer(() => opened.log.close());
    // The host's log on disk, and the lab's record (the page's audit stream) beside it.
    const shown = ctx.auditSink();
    const hv = ctx.hypervisor({
      dataDir,
      audit: {
        note(e: AuditEntry) {
          opened.log.note(e);
          shown.note(e);
        },
        async record(e: AuditEntry) {
          const r = await opened.log.record(e);
          shown.note(e);
          return r;
        },
      },
    });
    ctx.step('attack-device calls devices it was never granted; the host refuses and records it');
    const p = await ctx.create(hv, { name: 'intruder', module: ctx.guest('attack-device'), devices: { console: true } });
    await ctx.run(p);
    await ctx.destroy(hv, p);
    await opened.log.flush();

    const keys = keysDir(dataDir);
    const file = path.join(opened.dir, listAuditFiles(opened.dir)[0]!.name);
    const before = verify(opened.dir, keys, opened.hostKey.publicKey);
    ctx.evidence('wasmvisor audit verify', before.ok ? `${before.records} records verified (MACs, hash chain, ${before.checkpoints} checkpoint signatures${before.anchorChecked ? ', anchor' : ''})` : `failed: ${before.first?.problem}`);
    if (!before.ok) ctx.problem('the untouched log did not verify');

    const lines = readFileSync(file, 'utf8').split('\n');
    const records = readAuditRecords(opened.dir).records;
    const hidden = records.find((r) => r.action === 'partition.violation' && r.target === 'intruder');
    const index = hidden ? lines.findIndex((l) => l.includes(`"seq":${hidden.seq},`)) : -1;
    if (hidden === undefined || index < 0) {
      ctx.problem('the log has no violation record of the intruder');
      return;
    }
    ctx.step(`The intruder edits line ${index + 1} of ${path.basename(file)} on the host's disk: its violation becomes a success`);
    ctx.evidence('before', lines[index]!.slice(0, 160));
    lines[index] = lines[index]!.replace('"outcome":"denied"', '"outcome":"success"');
    writeFileSync(file, lines.join('\n'));
    const after = verify(opened.dir, keys, opened.hostKey.publicKey);
    if (after.ok) {
      ctx.problem('the edited log verified');
      return;
    }
    const failure = auditFailure(after);
    ctx.code(failure.code, failure.message, 'wasmvisor audit verify');
    if (after.first!.line !== index + 1) ctx.problem(`verify named line ${after.first!.line}, not the edited line ${index + 1}`);
    else ctx.evidence('verify names', `line ${index + 1} (seq ${after.first!.seq}): ${after.first!.problem}`);
  },
  defenceOff: {
    title: 'The same edit in a plain log file',
    text: 'A log without hash chain, MACs or signed checkpoints: the same records as plain JSON lines, as many applications keep them, in the lab\'s temporary directory. The intruder makes the same edit; all a reader can check is that every line still parses.',
    async run(ctx) {
      const file = path.join(ctx.workDir, 'plain-audit.jsonl');
      const time = new Date().toISOString();
      const lines = [
        { seq: 1, time, actor: 'host', action: 'partition.create', target: 'intruder', outcome: 'success' },
        { seq: 2, time, actor: 'host', action: 'partition.violation', target: 'intruder', outcome: 'denied', reason: 'ENTROPY_GET HV_STATUS_ACCESS_DENIED' },
        { seq: 3, time, actor: 'host', action: 'partition.exit', target: 'intruder', outcome: 'success' },
      ].map((r) => JSON.stringify(r));
      writeFileSync(file, lines.join('\n') + '\n');
      ctx.step('The intruder edits line 2 of the plain log: its violation becomes a success');
      writeFileSync(file, readFileSync(file, 'utf8').replace('"outcome":"denied"', '"outcome":"success"'));
      const read = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; outcome: string });
      const denied = read.filter((r) => r.outcome === 'denied').length;
      ctx.evidence('reading the log', `${read.length} lines, every one well-formed; ${denied} denied actions`);
      if (denied === 0) ctx.breach('the violation is gone from the record, and nothing in the file shows that it was ever there');
      else ctx.problem('the edit did not take');
    },
  },
};
