/**
 * `wasmvisor attest verify <report> --key <host.pub> [--nonce <hex>] [--expect-measurement <sha256>]… [--max-age <ms>]`
 *   checks a host report (JSON, from `run --attest` or `hv.attest()`) or a guest report (the 512
 *   bytes a guest got from ATTEST_REPORT): signature, nonce, log replay and expectations. On a
 *   failure the error line names the check (`attestation nonce check failed: …`, exit 125).
 * `wasmvisor attest key [--data-dir <dir>] [--out <file>]`
 *   exports the host's attestation public key (created on first use), 33 bytes, or hex on stdout.
 */
import { writeFile } from 'node:fs/promises';
import { readRegularFile } from '../files.ts';
import { InvalidArgumentError, StorageError } from '../errors.ts';
import { Hypervisor } from '../hypervisor.ts';
import { Sha256 } from '../schema/kinds.ts';
import { ATTESTATION_CHECKS, AttestationCheckError, GUEST_REPORT_BYTES, MAX_NONCE_BYTES, MAX_REPORT_BYTES, verifyGuestReport, verifyReport } from '../security/attestation.ts';
import { MAX_KEY_FILE_BYTES, parsePublicKey, readKeyFile } from '../security/keys.ts';
import { fromHex, toHex } from '../security/wire.ts';
import { printable } from './common.ts';
import { badValue, list, needsOption, parseOrHelp, stringIn, folder, filePath, value, type CommandSpec, type OptionTable } from './options.ts';

/**
 * `--nonce <hex>` (`run --attest`, `attest verify`): 1 to MAX_NONCE_BYTES bytes, lower-cased. An
 * empty one (an unset "$NONCE") is refused as every empty value is: to the library '' is no
 * nonce, so `attest verify --nonce ""` said "nonce" among the checks it passed while it had
 * checked none, and `run --nonce ""` wrote a report that any replay matches.
 */
export function nonceOption(raw: string, name: string): string {
  const bytes = fromHex(raw);
  if (bytes === null || bytes.length === 0 || bytes.length > MAX_NONCE_BYTES) throw badValue(name, `hex of 1 to ${MAX_NONCE_BYTES} bytes`, raw);
  return raw.toLowerCase();
}

function wholeMs(raw: string, name: string): number {
  if (!/^\d{1,15}$/.test(raw)) throw badValue(name, 'a whole number of ms', raw);
  return Number(raw);
}

export const attestVerifyCommand = {
  name: 'attest verify',
  summary: 'check a host or guest attestation report: signature, nonce, log replay, expectations',
  usage: ['wasmvisor attest verify <report> --key <host.pub> [--nonce <hex>] [--expect-measurement <sha256>]... [--max-age <ms>]'],
  options: {
    key: value('<file>', `the host's attestation public key (wasmvisor attest key), a file or a pipe of at most ${MAX_KEY_FILE_BYTES} bytes; required`, filePath),
    nonce: value('<hex>', `the nonce the report must carry (1 to ${MAX_NONCE_BYTES} bytes); without it a report may be a replay`, nonceOption),
    'expect-measurement': list('<sha256>', 'a module measurement the report must show running (repeatable; a guest report: at most one)', stringIn(Sha256('A module measurement.'))),
    'max-age': value('<ms>', 'refuse a report (host or guest) older than this, by the time it was made', wholeMs),
  },
  positionals: { names: ['report'], min: 1 },
  notes: `A host report is the JSON of run --attest or hv.attest(); a guest report the 512 bytes a guest
got from ATTEST_REPORT (docs/ABI.md), a file or a pipe (/dev/stdin, <(cmd)).
Exit status: 0 when every check passes; otherwise 125 with ERR_INTEGRITY naming the check that
failed (${ATTESTATION_CHECKS.join(', ')}); 2 (ERR_INVALID_ARGUMENT) for a report that cannot be read.`,
} satisfies CommandSpec<OptionTable>;

export const attestKeyCommand = {
  name: 'attest key',
  summary: "export the host's attestation public key (made on first use)",
  usage: ['wasmvisor attest key [--data-dir <dir>] [--out <file>]'],
  options: {
    'data-dir': value('<dir>', 'the data directory whose keys/host.key is the host key', folder, { default: './.wasmvisor' }),
    out: value('<file>', 'write the 33-byte public key here instead of printing it as hex', filePath),
  },
  positionals: { names: [], min: 0 },
} satisfies CommandSpec<OptionTable>;

export async function attestVerify(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(attestVerifyCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  if (values.key === undefined) throw needsOption('attest verify', '--key <host public key file>', 'attest verify');
  const nonce = values.nonce;
  const expected = values['expect-measurement'] ?? [];
  const maxAge = values['max-age'];
  const key = parsePublicKey(await readKeyFile(values.key, { pipes: true }), values.key);
  const file = positionals[0]!;
  // A file or a pipe (`<(curl …)`), judged on its descriptor: one larger than any report is
  // evidence that does not verify (the format check), one that is not readable a bad argument.
  const bytes = await readRegularFile(file, { maxBytes: MAX_REPORT_BYTES, what: 'report file', pipes: true, tooLarge: (message) => new AttestationCheckError('format', message) });
  if (bytes.length === GUEST_REPORT_BYTES && bytes.subarray(0, 4).toString('latin1') === 'WVGR') {
    if (expected.length > 1) throw new InvalidArgumentError('a guest report is about one partition: give at most one --expect-measurement');
    const r = verifyGuestReport(bytes, key, {
      ...(nonce !== undefined ? { nonce } : {}),
      ...(expected[0] !== undefined ? { measurement: expected[0] } : {}),
      ...(maxAge !== undefined ? { maxAgeMs: maxAge } : {}),
    });
    process.stdout.write(
      `guest report verified: certificate, signature${nonce !== undefined ? ', nonce' : ''}${expected.length ? ', expectations' : ''}${maxAge !== undefined ? ', freshness' : ''}\n` +
        `  partition    ${printable(r.name)}\n  measurement  ${r.measurement}\n  spec hash    ${r.specHash}\n  signers      ${r.signerHash ?? '(unsigned)'}\n` +
        `  report data  ${toHex(r.reportData)}\n  time         ${new Date(r.timeMs).toISOString()}\n`,
    );
    return 0;
  }
  const r = verifyReport(bytes.toString('utf8'), key, {
    ...(nonce !== undefined ? { nonce } : {}),
    measurements: expected,
    ...(maxAge !== undefined ? { maxAgeMs: maxAge } : {}),
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

export async function attestKey(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(attestKeyCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
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
