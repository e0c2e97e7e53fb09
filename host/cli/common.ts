/**
 * What every `wasmvisor` subcommand shares: how an error becomes an error line and an exit
 * status, how option values are read, and the `--stats` block.
 */
import { escapeText } from '../escape.ts';
import { WasmvisorError, type ErrorCode } from '../errors.ts';
import type { PartitionExit } from '../partition/partition.ts';
import type { RunPlacement } from '../scheduler/placement.ts';
import type { PartitionSpec } from '../schema/partition.ts';
import { stderr } from './stderr.ts';
import { asksJson, type CommandSpec, type OptionTable } from './options.ts';

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
    case 'ERR_LIMIT_MODULE':
    case 'ERR_INTEGRITY':
    case 'ERR_POLICY_DENIED':
      return 125;
    case 'ERR_GUEST_TRAP':
      return 134;
    case 'ERR_KILLED':
      return 137;
    case 'ERR_INTERNAL':
      return 70;
    case 'ERR_STORAGE':
      return 74;
    case 'ERR_UNAUTHENTICATED':
    case 'ERR_ACCESS_DENIED':
      return 77;
    case 'ERR_CONNECTION':
      return 69;
    default:
      return 1;
  }
}

/** Prints the verdict of a failed command (stderr.ts: escaped, on a line of its own) and returns its exit status. */
export function fail(error: unknown): number {
  if (error instanceof WasmvisorError) {
    stderr.verdict(error.code, error.message);
    return exitStatus(error.code);
  }
  const message = error instanceof Error ? error.message : String(error);
  stderr.verdict('ERR_INTERNAL', message);
  return 70;
}

/** Where a spec's partition runs, as the `--stats` block names it. */
export function specPlacement(spec: PartitionSpec): RunPlacement {
  if (spec.isolation === 'process') return spec.placement === 'shared' ? 'shared-process' : 'process';
  return spec.placement ?? 'dedicated';
}

/** The `--stats` block: the partition's metrics when it ended. */
export function formatStats(exit: PartitionExit, placement: RunPlacement = 'dedicated'): string {
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
    ['output', `${m.console.bytesOut} bytes, ${m.console.bytesDropped} refused by the rate limit, ${m.console.outputWaits} waits for the reader (${m.console.outputWaitedMs.toFixed(1)} ms)`],
    ['input', `${m.console.bytesIn} bytes`],
    ['console', `${m.console.linesOut} lines out, ${m.console.linesIn} in, ${m.console.linesDropped} dropped, ${m.console.bytesTruncated} bytes truncated`],
    ['violations', `${m.violations} (${m.violationsSuppressed} not reported), faults ${m.faults}`],
    ['entropy', `${m.entropyBytes} bytes`],
    ['cpu', `${m.cpu.timeMs.toFixed(1)} ms running, ${m.cpu.pausedMs.toFixed(1)} ms paused by the cap (${m.cpu.pauses} pauses)`],
    ['fuel', m.fuel ? `${m.fuel.consumed} of ${m.fuel.budget}` : m.cpu.fuel > 0 ? `${m.cpu.fuel} (no budget)` : 'not metered'],
    [
      'throttled',
      (['console', 'hypercalls', 'block'] as const).map((k) => `${k} ${m.throttled[k].calls} (${m.throttled[k].waitedMs.toFixed(1)} ms waited)`).join(', '),
    ],
    [
      'scheduler',
      placement === 'dedicated'
        ? 'dedicated worker'
        : `${placement === 'shared' ? 'shared worker' : placement === 'shared-process' ? 'shared partition process' : 'partition process'}: ${m.sched.slices} slices, ${m.sched.preemptions} preemptions, ${m.sched.waits} waits, ${m.sched.waitMs.toFixed(1)} ms waiting for a slice`,
    ],
  ];
  return `wasmvisor stats\n${rows.map(([k, v]) => `  ${k.padEnd(12)}${v}`).join('\n')}\n`;
}

/** The end-of-run warning when a rate limit refused guest output (empty when nothing was refused). */
export function droppedWarning(exit: PartitionExit): string {
  const c = exit.metrics.console;
  const parts: string[] = [];
  if (c.bytesDropped > 0) parts.push(`${c.bytesDropped} bytes of output refused by the console rate limit (--output-rate)`);
  if (c.linesDropped > 0) parts.push(`${c.linesDropped} lines dropped by the console's lines-per-second limit`);
  if (c.bytesTruncated > 0) parts.push(`${c.bytesTruncated} bytes cut from lines longer than the console's maxLineBytes`);
  return parts.length === 0 ? '' : `wasmvisor: warning: guest output was dropped: ${parts.join('; ')}\n`;
}

/** The process exit status of a run that ended: the guest's code & 0xff (what a POSIX shell sees), or the error's. */
export function report(exit: PartitionExit): number {
  if (exit.reason === 'exit') return (exit.code ?? 0) & 0xff;
  return fail(exit.error);
}

/**
 * The `--json` report of `run` and `call`. `code` is the guest's full exit code (a signed
 * 32-bit integer; the process status is only its low 8 bits), `exitStatus` what the process
 * exits with, `error` the typed error when the run did not end with an exit.
 */
export interface JsonReport {
  command: 'run' | 'call';
  /** `exited`, `trapped` or `killed` once the guest ran (`running`: a reactor after its call); `not-run` when it was refused or never started. */
  state: 'running' | 'exited' | 'trapped' | 'killed' | 'not-run';
  code: number | null;
  exitStatus: number;
  error: { code: ErrorCode; message: string } | null;
  runTimeMs: number | null;
  metrics: PartitionExit['metrics'] | null;
}

export function exitReport(command: JsonReport['command'], exit: PartitionExit): JsonReport {
  return {
    command,
    state: exit.state,
    code: exit.code,
    exitStatus: exit.reason === 'exit' ? (exit.code ?? 0) & 0xff : exitStatus(exit.reason),
    error: exit.error ? { code: exit.error.code, message: exit.error.message } : null,
    runTimeMs: exit.runTimeMs,
    metrics: exit.metrics,
  };
}

/**
 * The `--json` document of a failed command: the command, the typed error and the exit status,
 * as every `--json` report carries them (run's and call's add their state and metrics). An error
 * that is not a WasmvisorError is ERR_INTERNAL, as its verdict says.
 */
export interface JsonError {
  command: string;
  error: { code: ErrorCode; message: string };
  exitStatus: number;
}

export function jsonError(command: string, error: unknown): JsonError {
  const typed = error instanceof WasmvisorError ? error : null;
  const code: ErrorCode = typed?.code ?? 'ERR_INTERNAL';
  return { command, error: { code, message: typed?.message ?? (error instanceof Error ? error.message : String(error)) }, exitStatus: exitStatus(code) };
}

/**
 * A failure of a command whose `--json` prints one document on stdout (inspect, disks, audit
 * show, token list, the remote ps, audit and token list): the verdict on stderr as without
 * --json, and the error document (jsonError) on stdout, so a script that reads the JSON reads
 * every failure too, a bad command line included. Returns the exit status.
 */
export function failJson(command: string, error: unknown): number {
  const status = fail(error);
  process.stdout.write(JSON.stringify(jsonError(command, error)) + '\n');
  return status;
}

/**
 * Runs a table command whose `--json` prints one document on stdout: a failure of any kind, its
 * command line included, ends with the error document when the command line asks for --json
 * (asksJson: judged leniently, as a line that did not parse must be), otherwise as any failure.
 */
export async function jsonOnFailure(command: CommandSpec<OptionTable>, argv: readonly string[], body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (!asksJson(command, argv)) throw error;
    return failJson(command.name, error);
  }
}

/** The report of a command that failed before (or without) an exit of the guest. */
export function errorReport(command: JsonReport['command'], error: unknown): JsonReport {
  const { error: typed, exitStatus: status } = jsonError(command, error);
  return { command, state: 'not-run', code: null, exitStatus: status, error: typed, runTimeMs: null, metrics: null };
}

export async function readAll(stream: NodeJS.ReadableStream, maxBytes = Number.POSITIVE_INFINITY): Promise<Uint8Array | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    // Past the bound: stop (leaving the loop destroys the stream) rather than hold an endless input.
    if (size > maxBytes) return null;
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}


/**
 * Text from outside (a report's partition names, an audit record's fields) as it may be printed to
 * a terminal: host/escape.ts's rule, the one every command uses for guest- and file-controlled text.
 */
export function printable(text: string): string {
  return escapeText(text);
}

/** The signals a local run stops its partition on, and the status each ends the command with (128 + signal number, as a shell shows a process killed by it). */
const INTERRUPTS = { SIGINT: 130, SIGTERM: 143 } as const;
type Interrupt = keyof typeof INTERRUPTS;

/**
 * Ctrl-C (SIGINT) or SIGTERM during `run` or `call`: the first one stops the partition (`stop`),
 * so the command ends the way any stop does — the console's last bytes, `--stats`, the verdict,
 * the `--json` report, the disk closed and the audit log written — with status 130 or 143. A
 * second signal ends the process at once, with the same status. `dispose` removes the handlers.
 */
export function onInterrupt(stop: () => Promise<unknown>): { readonly signal: Interrupt | null; readonly status: number | null; dispose(): void } {
  let signal: Interrupt | null = null;
  const handlers = new Map<Interrupt, () => void>();
  for (const name of Object.keys(INTERRUPTS) as Interrupt[]) {
    const handler = (): void => {
      if (signal !== null) process.exit(INTERRUPTS[signal]);
      signal = name;
      stderr.note(`${name}: stopping the partition (again to end at once)`);
      stop().catch(() => undefined);
    };
    handlers.set(name, handler);
    process.on(name, handler);
  }
  return {
    get signal() {
      return signal;
    },
    get status() {
      return signal === null ? null : INTERRUPTS[signal];
    },
    dispose() {
      for (const [name, handler] of handlers) process.off(name, handler);
    },
  };
}
