/**
 * What every `wasmvisor` subcommand shares: how an error becomes an error line and an exit
 * status, how option values are read, and the `--stats` block.
 */
import { InvalidArgumentError, WasmvisorError, type ErrorCode } from '../errors.ts';
import type { PartitionExit } from '../partition/partition.ts';

/** The process exit status for an error code (documented in README and USAGE). */
export function exitStatus(code: ErrorCode): number {
  switch (code) {
    case 'ERR_INVALID_ARGUMENT':
      return 2;
    case 'ERR_LIMIT_CPU':
      return 124;
    case 'ERR_MODULE_INVALID':
    case 'ERR_IMPORT_DENIED':
    case 'ERR_FEATURE_DENIED':
    case 'ERR_LIMIT_MEMORY':
    case 'ERR_LIMIT_TABLE':
    case 'ERR_INTEGRITY':
      return 125;
    case 'ERR_GUEST_TRAP':
      return 134;
    case 'ERR_KILLED':
      return 137;
    case 'ERR_INTERNAL':
      return 70;
    case 'ERR_STORAGE':
      return 74;
    default:
      return 1;
  }
}

export function fail(error: unknown): number {
  if (error instanceof WasmvisorError) {
    process.stderr.write(`${error.code}: ${error.message}\n`);
    return exitStatus(error.code);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`ERR_INTERNAL: ${message}\n`);
  return 70;
}

export function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`--${name} must be a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`--${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

/** Runs an argument parser, turning its complaint into ERR_INVALID_ARGUMENT (one line: the first). */
export function usage<T>(parser: () => T): T {
  try {
    return parser();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new InvalidArgumentError(message.split('\n')[0]!);
  }
}

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

export function sha256Option(value: string | undefined): string | undefined {
  if (value !== undefined && !SHA256_HEX.test(value)) throw new InvalidArgumentError(`--sha256 must be 64 hex digits, got ${JSON.stringify(value)}`);
  return value;
}

export const DEVICE_NAMES = ['console', 'clock', 'entropy'] as const;
export type DeviceName = (typeof DEVICE_NAMES)[number];

/** `--devices a,b` (or "none"), checked against the devices the CLI can grant. */
export function deviceList(value: string | undefined, fallback: string): Set<DeviceName> {
  const grant = new Set<DeviceName>();
  const list = value ?? fallback;
  if (list === 'none') return grant;
  for (const d of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(DEVICE_NAMES as readonly string[]).includes(d)) throw new InvalidArgumentError(`--devices: unknown device ${JSON.stringify(d)} (known: ${DEVICE_NAMES.join(', ')})`);
    grant.add(d as DeviceName);
  }
  return grant;
}

/** The `--stats` block: the partition's metrics when it ended. */
export function formatStats(exit: PartitionExit): string {
  const m = exit.metrics;
  const kib = (n: number) => `${n / 1024} KiB`;
  const byCall = Object.entries(m.hypercallsByCall)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const rows: [string, string][] = [
    ['state', exit.reason === 'exit' ? `${exit.state} (code ${exit.code})` : `${exit.state} (${exit.reason})`],
    ['run time', `${exit.runTimeMs.toFixed(1)} ms`],
    ['memory', `${kib(m.memoryBytes)} (peak ${kib(m.peakMemoryBytes)})`],
    ['hypercalls', `${m.hypercalls}${byCall ? ` (${byCall})` : ''}`],
    ['console', `${m.console.linesOut} lines out, ${m.console.linesIn} in, ${m.console.linesDropped} dropped, ${m.console.bytesTruncated} bytes truncated`],
    ['violations', `${m.violations} (${m.violationsSuppressed} not reported), faults ${m.faults}`],
    ['entropy', `${m.entropyBytes} bytes`],
    ['cpu', `${m.cpu.timeMs.toFixed(1)} ms running, ${m.cpu.pausedMs.toFixed(1)} ms paused by the cap (${m.cpu.pauses} pauses)`],
    ['fuel', m.fuel ? `${m.fuel.consumed} of ${m.fuel.budget}` : m.cpu.fuel > 0 ? `${m.cpu.fuel} (no budget)` : 'not metered'],
    [
      'throttled',
      (['console', 'hypercalls', 'block'] as const).map((k) => `${k} ${m.throttled[k].calls} (${m.throttled[k].waitedMs.toFixed(1)} ms waited)`).join(', '),
    ],
  ];
  return `wasmvisor stats\n${rows.map(([k, v]) => `  ${k.padEnd(12)}${v}`).join('\n')}\n`;
}

export function report(exit: PartitionExit): number {
  if (exit.reason === 'exit') return (exit.code ?? 0) & 0xff;
  return fail(exit.error);
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

