/**
 * `wasmvisor audit verify [dir] [--data-dir <dir>] [--key-dir <dir>]`
 *   checks the audit log (default `<data-dir>/audit`, keys in `<data-dir>/keys`): every record's
 *   chain link, MAC (with audit.key), the checkpoints' signatures (with host.pub) and the anchor
 *   (audit.head). Exit 0 when it verifies; otherwise ERR_INTEGRITY naming the first bad record.
 *   A log without a record is refused (ERR_INTEGRITY) unless `--allow-empty` says one is expected.
 * `wasmvisor audit show [dir] [--partition <name>] [--action <a>] [--outcome <o>] [--since <time>] [--until <time>] [--json]`
 *   prints the records that match (without verifying them: use verify for that).
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { IntegrityError, InvalidArgumentError } from '../errors.ts';
import { isMissingFile, readRegularFileSync } from '../files.ts';
import { auditFailure, parseQueryTime, readAuditRecords, verifyAuditLog, type AuditOutcome, type AuditRecord } from '../security/audit.ts';
import { AUDIT_HEAD_FILE, AUDIT_KEY_FILE, HOST_PUBLIC_KEY_FILE } from '../security/host-keys.ts';
import { MAX_KEY_FILE_BYTES, parsePublicKey } from '../security/keys.ts';
import { jsonOnFailure, printable } from './common.ts';
import { badValue, choice, existingDirectory, flag, nonEmpty, seeHelp, parseOrHelp, folder, value, type CommandSpec, type OptionTable } from './options.ts';

const OUTCOMES: readonly AuditOutcome[] = ['success', 'denied', 'failure'];

const outcomeOption = choice(OUTCOMES);

/** `--since` / `--until`: an ISO time or ms since the epoch. */
function timeOption(raw: string, name: string): number {
  const t = /^\d{1,15}$/.test(raw) ? Number(raw) : parseQueryTime(raw);
  if (Number.isNaN(t)) throw badValue(name, 'an ISO time (2026-01-02T03:04:05Z) or ms since the epoch', raw);
  return t;
}

const dataDirOption = value('<dir>', 'the data directory whose audit/ is the log (and keys/ its keys)', folder, { default: './.wasmvisor' });

export const auditVerifyCommand = {
  name: 'audit verify',
  summary: "check an audit log: every record's MAC and chain link, the checkpoints' signatures, the anchor",
  usage: ['wasmvisor audit verify [dir] [--data-dir <dir>] [--key-dir <dir>] [--allow-empty]'],
  options: {
    'data-dir': dataDirOption,
    'key-dir': value('<dir>', 'where audit.key, host.pub and audit.head are', folder, { default: '<data-dir>/keys, or <dir>/../keys' }),
    'allow-empty': flag('a log with no record is expected (a host that has recorded nothing yet): verify it rather than refuse it'),
  },
  positionals: { names: ['dir'], min: 0 },
  notes: `The log is <dir> (default <data-dir>/audit). Without audit.key the MACs are not checked, without
host.pub the checkpoint signatures, without audit.head the anchor (a truncated tail); each is said.
A --key-dir given must be a directory (ERR_INVALID_ARGUMENT); --data-dir beside both <dir> and
--key-dir, which name everything it would, is refused (ERR_INVALID_ARGUMENT) rather than ignored.
A log with no record (no file, or files without a record) is refused: a log whose records were
all deleted reads the same, and only the anchor (audit.head) can tell them apart. With the anchor
it fails the anchor check; without it, give --allow-empty when an empty log is what you expect.
Exit status: 0 when it verifies; otherwise 125 with ERR_INTEGRITY naming the first bad record, or
saying the log holds no record; 2 (ERR_INVALID_ARGUMENT) for no log directory or a bad option.`,
} satisfies CommandSpec<OptionTable>;

export const auditShowCommand = {
  name: 'audit show',
  summary: 'print the records of an audit log that match the filters (without verifying them)',
  usage: ['wasmvisor audit show [dir] [--data-dir <dir>] [--partition <name>] [--action <action>] [--outcome success|denied|failure] [--since <time>] [--until <time>] [--json]'],
  options: {
    'data-dir': dataDirOption,
    partition: value('<name>', 'only records about this partition', nonEmpty),
    action: value('<action>', 'only this action (e.g. partition.create, api.request)', nonEmpty),
    outcome: value('<outcome>', 'only success, denied or failure', outcomeOption),
    since: value('<time>', 'only records at or after this time (ISO, or ms since the epoch)', timeOption),
    until: value('<time>', 'only records at or before this time', timeOption),
    json: flag('one JSON record per line, as written; a failure prints {"command","error":{"code","message"},"exitStatus"} instead'),
  },
  positionals: { names: ['dir'], min: 0 },
  notes: `Use wasmvisor audit verify to check the records; show only reads them.
--data-dir beside <dir>, which names the log it would, is refused (ERR_INVALID_ARGUMENT) rather than ignored.`,
} satisfies CommandSpec<OptionTable>;

/**
 * `--data-dir` names the log (`<data-dir>/audit`) and the keys (`<data-dir>/keys`) a command
 * does not name otherwise: given when `<dir>` (and, for verify, `--key-dir`) name both, it would
 * be ignored, and the user believe the log or the keys came from it. Refused instead, as run
 * refuses a --data-dir it keeps nothing in.
 */
function dataDirUnused(command: string, dataDir: string | undefined, named: string): void {
  if (dataDir !== undefined) throw new InvalidArgumentError(`--data-dir is not used when ${named}: drop it, or name ${named.includes('and') ? 'one of them' : 'the log'} through it${seeHelp(command)}`);
}

function logDir(command: string, positional: string | undefined, dataDir: string | undefined): string {
  const dir = path.resolve(positional ?? path.join(dataDir ?? '.wasmvisor', 'audit'));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new InvalidArgumentError(`${command}: there is no audit log directory at ${dir} (${positional !== undefined ? '<dir>' : `<data-dir>/audit, --data-dir ${dataDir === undefined ? 'defaulting to ./.wasmvisor' : 'given'}`})${seeHelp(command)}`);
  }
  return dir;
}

/**
 * A key-directory file the check uses when present: null when it does not exist. One that is
 * there but cannot be used (a FIFO, a directory, over 64 KiB, unreadable) is ERR_INVALID_ARGUMENT
 * naming it, not silently a check left out.
 */
function readOptional(file: string): Buffer | null {
  try {
    return readRegularFileSync(file, { maxBytes: MAX_KEY_FILE_BYTES, what: 'key directory file' });
  } catch (error) {
    if (isMissingFile(error)) return null;
    throw error;
  }
}

export async function auditVerify(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(auditVerifyCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  if (positionals[0] !== undefined && values['key-dir'] !== undefined) dataDirUnused('audit verify', values['data-dir'], '<dir> and --key-dir are given');
  const dir = logDir('audit verify', positionals[0], values['data-dir']);
  const keyDir = path.resolve(values['key-dir'] ?? (values['data-dir'] !== undefined ? path.join(values['data-dir'], 'keys') : path.join(dir, '..', 'keys')));
  // A key directory that is only the default may be absent (each check left out is said); one the
  // caller named must be there: a misspelt --key-dir would otherwise verify with no MAC, signature
  // or anchor check and still exit 0.
  if (values['key-dir'] !== undefined) existingDirectory('--key-dir', keyDir, 'audit verify');
  const macKey = readOptional(path.join(keyDir, AUDIT_KEY_FILE));
  const pub = readOptional(path.join(keyDir, HOST_PUBLIC_KEY_FILE));
  const head = readOptional(path.join(keyDir, AUDIT_HEAD_FILE));
  const v = verifyAuditLog(dir, {
    macKey: macKey === null ? null : new Uint8Array(macKey),
    publicKey: pub === null ? null : parsePublicKey(new Uint8Array(pub), path.join(keyDir, HOST_PUBLIC_KEY_FILE)),
    head: head === null ? null : head.toString('utf8'),
  });
  if (!v.ok) throw auditFailure(v);
  // A tamper-evident log with no record proves nothing: one whose records were all deleted (and
  // its anchor with them) reads the same. Without the anchor to tell them apart it is refused,
  // unless the caller says an empty log is what they expect.
  if (v.records === 0 && values['allow-empty'] !== true) {
    throw new IntegrityError(
      `audit log ${dir} holds no record (${v.files === 0 ? 'no audit file' : `${v.files} file${v.files === 1 ? '' : 's'} without a record`}; no anchor, ${AUDIT_HEAD_FILE}, used from ${keyDir}): a log whose records were all deleted reads the same; give --allow-empty if an empty log is expected${seeHelp('audit verify')}`,
    );
  }
  const checks = [v.macsChecked ? 'MACs' : null, 'chain', v.signaturesChecked ? `${v.checkpoints} checkpoint signatures` : null, v.anchorChecked ? 'anchor' : null].filter(Boolean).join(', ');
  process.stdout.write(`audit log verified: ${v.records} records in ${v.files} file${v.files === 1 ? '' : 's'} (${checks})\n`);
  process.stdout.write(`  last record: seq ${v.lastSeq}; last checkpoint: ${v.lastCheckpointSeq === null ? 'none' : `seq ${v.lastCheckpointSeq}`} (${v.uncheckpointed} records after it)\n`);
  for (const note of v.notes) process.stdout.write(`  note: ${printable(note)}\n`);
  return 0;
}

function format(r: AuditRecord): string {
  const code = r.code ? ` ${r.code}` : '';
  return `#${r.seq} ${printable(r.time)} ${printable(r.actor)} ${printable(r.action)} ${printable(r.target) || '-'} ${printable(r.outcome)}${printable(code)}: ${printable(r.reason)}`;
}

export function auditShow(argv: string[]): Promise<number> {
  return jsonOnFailure(auditShowCommand, argv, () => showRecords(argv));
}

async function showRecords(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(auditShowCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  if (positionals[0] !== undefined) dataDirUnused('audit show', values['data-dir'], '<dir> is given');
  const { records, skipped } = readAuditRecords(logDir('audit show', positionals[0], values['data-dir']), {
    ...(values.partition !== undefined ? { partition: values.partition } : {}),
    ...(values.action !== undefined ? { action: values.action } : {}),
    ...(values.outcome !== undefined ? { outcome: values.outcome } : {}),
    ...(values.since !== undefined ? { since: values.since } : {}),
    ...(values.until !== undefined ? { until: values.until } : {}),
  });
  const out = records.map((r) => (values.json ? JSON.stringify(r) : format(r))).join('\n');
  process.stdout.write(out.length > 0 ? `${out}\n` : '');
  if (skipped > 0) process.stderr.write(`wasmvisor: ${skipped} line${skipped === 1 ? '' : 's'} that are not audit records were skipped (run audit verify)\n`);
  return 0;
}
