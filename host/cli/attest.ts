/**
 * `wasmvisor attest verify <report> --key <host.pub> [--nonce <hex>] [--expect-measurement <sha256>]… [--max-age <ms>]`
 *   checks a host report (JSON, from `run --attest` or `hv.attest()`) or a guest report (the 512
 *   bytes a guest got from ATTEST_REPORT): signature, nonce, log replay and expectations. On a
 *   failure the error line names the check (`attestation nonce check failed: …`, exit 125).
 * `wasmvisor attest key [--data-dir <dir>] [--out <file>]`
 *   exports the host's attestation public key (created on first use), 33 bytes, or hex on stdout.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { InvalidArgumentError, StorageError } from '../errors.ts';
import { Hypervisor } from '../hypervisor.ts';
import { AttestationCheckError, GUEST_REPORT_BYTES, MAX_NONCE_BYTES, MAX_REPORT_BYTES, verifyGuestReport, verifyReport } from '../security/attestation.ts';
import { parsePublicKey, readKeyFile } from '../security/keys.ts';
import { fromHex, toHex } from '../security/wire.ts';
import { parse, printable } from './options.ts';

export const ATTEST_USAGE = `  wasmvisor attest verify <report> --key <host.pub> [--nonce <hex>] [--expect-measurement <sha256>]... [--max-age <ms>]
  wasmvisor attest key [--data-dir <dir>] [--out <file>]`;

export async function attest(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'verify') return verifyCommand(rest);
  if (sub === 'key') return keyCommand(rest);
  throw new InvalidArgumentError(`attest takes verify or key, got ${JSON.stringify(sub ?? '')}`);
}

/** `--nonce <hex>`: at most MAX_NONCE_BYTES bytes. */
export function nonceOption(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const bytes = fromHex(value);
  if (bytes === null || bytes.length > MAX_NONCE_BYTES) throw new InvalidArgumentError(`--nonce must be hex of at most ${MAX_NONCE_BYTES} bytes, got ${JSON.stringify(value.slice(0, 80))}`);
  return value.toLowerCase();
}

async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    key: { type: 'string' },
    nonce: { type: 'string' },
    'expect-measurement': { type: 'string', multiple: true },
    'max-age': { type: 'string' },
  });
  if (positionals.length !== 1) throw new InvalidArgumentError(`attest verify takes one report file, got ${positionals.length}`);
  if (values.key === undefined) throw new InvalidArgumentError('attest verify needs --key <host public key file>');
  const nonce = nonceOption(values.nonce);
  const expected = values['expect-measurement'] ?? [];
  for (const m of expected) if (!/^[0-9a-fA-F]{64}$/.test(m)) throw new InvalidArgumentError(`--expect-measurement must be 64 hex digits, got ${JSON.stringify(m)}`);
  const maxAge = values['max-age'];
  if (maxAge !== undefined && !/^\d+$/.test(maxAge)) throw new InvalidArgumentError(`--max-age must be a whole number of ms, got ${JSON.stringify(maxAge)}`);
  const key = parsePublicKey(await readKeyFile(values.key), values.key);
  const file = positionals[0]!;
  let bytes: Buffer;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new InvalidArgumentError(`${file} is not a regular file`);
    if (info.size > MAX_REPORT_BYTES) throw new AttestationCheckError('format', `${file} is ${info.size} bytes, more than a report can be`);
    bytes = await readFile(file);
  } catch (error) {
    if (error instanceof InvalidArgumentError || error instanceof AttestationCheckError) throw error;
    throw new InvalidArgumentError(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (bytes.length === GUEST_REPORT_BYTES && bytes.subarray(0, 4).toString('latin1') === 'WVGR') {
    if (expected.length > 1) throw new InvalidArgumentError('a guest report is about one partition: give at most one --expect-measurement');
    const r = verifyGuestReport(bytes, key, { ...(nonce !== undefined ? { nonce } : {}), ...(expected[0] !== undefined ? { measurement: expected[0] } : {}) });
    process.stdout.write(
      `guest report verified: certificate, signature${nonce !== undefined ? ', nonce' : ''}${expected.length ? ', expectations' : ''}\n` +
        `  partition    ${printable(r.name)}\n  measurement  ${r.measurement}\n  spec hash    ${r.specHash}\n  signers      ${r.signerHash ?? '(unsigned)'}\n` +
        `  report data  ${toHex(r.reportData)}\n  time         ${new Date(r.timeMs).toISOString()}\n`,
    );
    return 0;
  }
  const r = verifyReport(bytes.toString('utf8'), key, {
    ...(nonce !== undefined ? { nonce } : {}),
    measurements: expected,
    ...(maxAge !== undefined ? { maxAgeMs: Number(maxAge) } : {}),
  });
  const lines = [
    `host report verified: format, key, signature${nonce !== undefined ? ', nonce' : ''}, log (${r.events.length} events), partitions${expected.length ? ', expectations' : ''}${maxAge !== undefined ? ', freshness' : ''}`,
    `  version      ${printable(r.version)}`,
    `  time         ${printable(r.time)}`,
    `  runtime      ${r.registers.runtime}`,
    `  partitions   ${r.registers.partitions}`,
    ...r.partitions.map((p) => printable(`  - ${p.name}: sha256:${p.measurement} ${p.admittedBy}${p.signers.length ? ` by ${p.signers.map((s) => s.publisher).join(', ')}` : ''} (${p.state})`)),
  ];
  if (nonce === undefined) lines.push('  note: no --nonce given, so this report may be a replay of an old one');
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

async function keyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { 'data-dir': { type: 'string' }, out: { type: 'string' } });
  if (positionals.length !== 0) throw new InvalidArgumentError('attest key takes no positional arguments');
  const hv = new Hypervisor(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {});
  try {
    const key = hv.attestationPublicKey();
    if (values.out === undefined) {
      process.stdout.write(`${toHex(key)}\n`);
    } else {
      try {
        await writeFile(values.out, key);
      } catch (error) {
        throw new StorageError(`cannot write ${values.out}: ${(error as Error).message}`, { cause: error });
      }
      process.stdout.write(`wrote ${values.out} (the host's attestation public key, 33 bytes)\n`);
    }
    return 0;
  } finally {
    await hv.close();
  }
}

/** `run --attest <file>`: writes the host report (with the partition just created) as JSON. */
export async function writeReport(hv: Hypervisor, file: string, nonce: string | undefined): Promise<void> {
  const report = await hv.attest({ nonce: nonce ?? '' });
  try {
    await writeFile(file, JSON.stringify(report, null, 2) + '\n');
  } catch (error) {
    throw new StorageError(`cannot write ${file}: ${(error as Error).message}`, { cause: error });
  }
}
