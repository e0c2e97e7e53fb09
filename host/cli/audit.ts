/**
 * `wasmvisor audit verify [dir] [--data-dir <dir>] [--key-dir <dir>]`
 *   checks the audit log (default `<data-dir>/audit`, keys in `<data-dir>/keys`): every record's
 *   chain link, MAC (with audit.key), the checkpoints' signatures (with host.pub) and the anchor
 *   (audit.head). Exit 0 when it verifies; otherwise ERR_INTEGRITY naming the first bad record.
 * `wasmvisor audit show [dir] [--partition <name>] [--action <a>] [--outcome <o>] [--since <time>] [--until <time>] [--json]`
 *   prints the records that match (without verifying them: use verify for that).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.ts';
import { auditFailure, readAuditRecords, verifyAuditLog, type AuditOutcome, type AuditRecord } from '../security/audit.ts';
import { AUDIT_HEAD_FILE, AUDIT_KEY_FILE, HOST_PUBLIC_KEY_FILE } from '../security/host-keys.ts';
import { parsePublicKey } from '../security/keys.ts';
import { parse, printable } from './options.ts';

export const AUDIT_USAGE = `  wasmvisor audit verify [dir] [--data-dir <dir>] [--key-dir <dir>]
  wasmvisor audit show [dir] [--partition <name>] [--action <action>] [--outcome success|denied|failure] [--since <time>] [--until <time>] [--json]`;

export async function audit(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'verify') return verifyCommand(rest);
  if (sub === 'show') return showCommand(rest);
  throw new InvalidArgumentError(`audit takes verify or show, got ${JSON.stringify(sub ?? '')}`);
}

function logDir(positional: string | undefined, dataDir: string | undefined): string {
  const dir = path.resolve(positional ?? path.join(dataDir ?? '.wasmvisor', 'audit'));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InvalidArgumentError(`there is no audit log directory at ${dir}`);
  return dir;
}

function readOptional(file: string): Buffer | null {
  try {
    return readFileSync(file);
  } catch {
    return null;
  }
}

async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { 'data-dir': { type: 'string' }, 'key-dir': { type: 'string' } });
  if (positionals.length > 1) throw new InvalidArgumentError('audit verify takes at most one directory');
  const dir = logDir(positionals[0], values['data-dir']);
  const keyDir = path.resolve(values['key-dir'] ?? (values['data-dir'] !== undefined ? path.join(values['data-dir'], 'keys') : path.join(dir, '..', 'keys')));
  const macKey = readOptional(path.join(keyDir, AUDIT_KEY_FILE));
  const pub = readOptional(path.join(keyDir, HOST_PUBLIC_KEY_FILE));
  const head = readOptional(path.join(keyDir, AUDIT_HEAD_FILE));
  const v = verifyAuditLog(dir, {
    macKey: macKey === null ? null : new Uint8Array(macKey),
    publicKey: pub === null ? null : parsePublicKey(new Uint8Array(pub), path.join(keyDir, HOST_PUBLIC_KEY_FILE)),
    head: head === null ? null : head.toString('utf8'),
  });
  if (!v.ok) throw auditFailure(v);
  const checks = [v.macsChecked ? 'MACs' : null, 'chain', v.signaturesChecked ? `${v.checkpoints} checkpoint signatures` : null, v.anchorChecked ? 'anchor' : null].filter(Boolean).join(', ');
  process.stdout.write(`audit log verified: ${v.records} records in ${v.files} file${v.files === 1 ? '' : 's'} (${checks})\n`);
  process.stdout.write(`  last record: seq ${v.lastSeq}; last checkpoint: ${v.lastCheckpointSeq === null ? 'none' : `seq ${v.lastCheckpointSeq}`} (${v.uncheckpointed} records after it)\n`);
  for (const note of v.notes) process.stdout.write(`  note: ${note}\n`);
  return 0;
}

function time(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const t = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (Number.isNaN(t)) throw new InvalidArgumentError(`--${name} must be an ISO time (2026-01-02T03:04:05Z) or ms since the epoch, got ${JSON.stringify(value)}`);
  return t;
}


function format(r: AuditRecord): string {
  const code = r.code ? ` ${r.code}` : '';
  return `#${r.seq} ${r.time} ${printable(r.actor)} ${r.action} ${printable(r.target) || '-'} ${r.outcome}${printable(code)}: ${printable(r.reason)}`;
}

async function showCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    'data-dir': { type: 'string' },
    partition: { type: 'string' },
    action: { type: 'string' },
    outcome: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length > 1) throw new InvalidArgumentError('audit show takes at most one directory');
  const outcome = values.outcome;
  if (outcome !== undefined && outcome !== 'success' && outcome !== 'denied' && outcome !== 'failure') {
    throw new InvalidArgumentError(`--outcome must be success, denied or failure, got ${JSON.stringify(outcome)}`);
  }
  const since = time(values.since, 'since');
  const until = time(values.until, 'until');
  const { records, skipped } = readAuditRecords(logDir(positionals[0], values['data-dir']), {
    ...(values.partition !== undefined ? { partition: values.partition } : {}),
    ...(values.action !== undefined ? { action: values.action } : {}),
    ...(outcome !== undefined ? { outcome: outcome as AuditOutcome } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
  });
  const out = records.map((r) => (values.json ? JSON.stringify(r) : format(r))).join('\n');
  process.stdout.write(out.length > 0 ? `${out}\n` : '');
  if (skipped > 0) process.stderr.write(`wasmvisor: ${skipped} line${skipped === 1 ? '' : 's'} that are not audit records were skipped (run audit verify)\n`);
  return 0;
}
