#!/usr/bin/env node
/**
 * The `wasmvisor` command: run a guest in a partition, inspect a module, or boot the demo.
 * Error lines start with the stable error code; exit statuses are listed in exitStatus().
 */
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { DEFAULT_LIMITS, Hypervisor } from '../hypervisor.ts';
import { GuestCallError, InvalidArgumentError, WasmvisorError, type ErrorCode } from '../errors.ts';
import type { DevicesSpec } from '../devices/config.ts';
import type { PartitionExit } from '../partition/partition.ts';
import { formatInspection } from './inspect.ts';
import { MAX_CALL_BYTES, type Placement } from '../limits/sizes.ts';
import { runDemo } from './demo.ts';
import { VERSION } from './version.ts';
import { SERVE_USAGE, serveCommand } from './serve.ts';
import { TOKEN_USAGE, tokenCommand } from './token.ts';
import { CERT_USAGE, certCommand } from './cert.ts';
import { REMOTE_USAGE, remoteCommand } from './remote.ts';
import type { PreopenSpec, WasiSpec } from '../wasi/config.ts';
import { WASI_MODULE } from '../wasi/errno.ts';

const USAGE = `Usage:
  wasmvisor run <guest.wasm> [options] [-- guest args]
  wasmvisor call <guest.wasm> <export> [--input <file>] [options]
  wasmvisor inspect <guest.wasm> [--memory <pages>] [--wasi] [--json]
  wasmvisor delete <name> [--data-dir <dir>]
  wasmvisor demo
${SERVE_USAGE}
${TOKEN_USAGE}
${CERT_USAGE}
${REMOTE_USAGE}
  wasmvisor --help | --version

run options:
  --memory <pages>          linear memory limit in 64 KiB pages (default 256)
  --timeout <ms>            wall-clock budget; 0 for none (default 30000)
  --devices <list>          devices to grant, comma-separated, or "none" (default console,clock,entropy)
  --clock-resolution <ms>   clock resolution (default 1)
  --deterministic           fixed clocks and a fixed entropy seed (for teaching and tests)
  --seed <string>           seed the entropy device (implies a reproducible stream)
  --sha256 <hex>            refuse the module unless its SHA-256 is this (ERR_INTEGRITY)
  --stats                   print the partition's metrics to stderr when it ends
  --disk <MiB>              grant a persistent, encrypted block device of this size (1..4096)
  --name <name>             the partition's name: its disk is kept under this name (default guest)
  --data-dir <dir>          where disks and their keystore live (default ./.wasmvisor)
  --dir <host>[::<guest>]   WASI: a virtual preopen at <guest> (default: <host>) seeded with a copy
                            of the host folder; the host folder is never written (repeatable)
  --env <KEY=VALUE>         WASI: an environment variable (repeatable)
  --fuel <n>                fuel budget: the guest ends with ERR_LIMIT_CPU once it has done
                            n units of work (deterministic; see docs/ABI.md); default none
  --cpu-percent <p>         CPU cap: at most p% (1..100) of one core per 100 ms period; over
                            it the guest is paused, not killed; default none
  --placement <where>       dedicated (a worker thread of its own, the default) or shared (a
                            worker thread that time-slices partitions; see README, Placement)

WASI preview1 is enabled when the module imports wasi_snapshot_preview1 or --dir/--env is given;
argv[0] is the module's file name. The guest's stdout and stderr are the command's.

delete scrubs and removes the disk image and key of the named partition (no error if none).

call runs a reactor guest, calls one export with the input (--input file, or stdin) and writes
its output to stdout. It takes --memory, --devices, --sha256, --placement and --timeout (the call's budget).

Exit status: the guest's own exit code when it exits (call: 0, or the export's non-zero status,
with ERR_GUEST_CALL on stderr); otherwise 2 bad usage, 124 ERR_LIMIT_CPU,
125 refused before running (module, imports, features, limits, integrity), 134 ERR_GUEST_TRAP,
137 ERR_KILLED, 74 ERR_STORAGE, 70 ERR_INTERNAL, 77 ERR_UNAUTHENTICATED or ERR_ACCESS_DENIED,
69 ERR_CONNECTION, 1 anything else. See docs/MANAGEMENT.md for serve and the remote commands.`;

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
    case 'ERR_UNAUTHENTICATED':
    case 'ERR_ACCESS_DENIED':
      return 77;
    case 'ERR_CONNECTION':
      return 69;
    default:
      return 1;
  }
}

function fail(error: unknown): number {
  if (error instanceof WasmvisorError) {
    process.stderr.write(`${error.code}: ${error.message}\n`);
    return exitStatus(error.code);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`ERR_INTERNAL: ${message}\n`);
  return 70;
}

function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`--${name} must be a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`--${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

/** Runs an argument parser, turning its complaint into ERR_INVALID_ARGUMENT (one line: the first). */
function usage<T>(parser: () => T): T {
  try {
    return parser();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new InvalidArgumentError(message.split('\n')[0]!);
  }
}

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

function sha256Option(value: string | undefined): string | undefined {
  if (value !== undefined && !SHA256_HEX.test(value)) throw new InvalidArgumentError(`--sha256 must be 64 hex digits, got ${JSON.stringify(value)}`);
  return value;
}

const DEVICE_NAMES = ['console', 'clock', 'entropy'] as const;
type DeviceName = (typeof DEVICE_NAMES)[number];

/** `--devices a,b` (or "none"), checked against the devices the CLI can grant. */
function deviceList(value: string | undefined, fallback: string): Set<DeviceName> {
  const grant = new Set<DeviceName>();
  const list = value ?? fallback;
  if (list === 'none') return grant;
  for (const d of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(DEVICE_NAMES as readonly string[]).includes(d)) throw new InvalidArgumentError(`--devices: unknown device ${JSON.stringify(d)} (known: ${DEVICE_NAMES.join(', ')})`);
    grant.add(d as DeviceName);
  }
  return grant;
}

async function run(argv: string[]): Promise<number> {
  const split = argv.indexOf('--');
  const own = split < 0 ? argv : argv.slice(0, split);
  const guestArgs = split < 0 ? [] : argv.slice(split + 1);
  const { values, positionals } = usage(() =>
    parseArgs({
      args: own,
      allowPositionals: true,
      strict: true,
      options: {
        memory: { type: 'string' },
        timeout: { type: 'string' },
        devices: { type: 'string' },
        'clock-resolution': { type: 'string' },
        deterministic: { type: 'boolean' },
        seed: { type: 'string' },
        sha256: { type: 'string' },
        stats: { type: 'boolean' },
        disk: { type: 'string' },
        name: { type: 'string' },
        'data-dir': { type: 'string' },
        dir: { type: 'string', multiple: true },
        env: { type: 'string', multiple: true },
        fuel: { type: 'string' },
        'cpu-percent': { type: 'string' },
        placement: { type: 'string' },
      },
    }),
  );
  if (positionals.length !== 1) throw new InvalidArgumentError(`run takes one guest module, got ${positionals.length}; see wasmvisor --help`);
  const file = positionals[0]!;
  const memoryPages = intOption(values.memory, 'memory', 1, 65536);
  const timeout = intOption(values.timeout, 'timeout', 0, 2 ** 31);
  const fuel = intOption(values.fuel, 'fuel', 1, Number.MAX_SAFE_INTEGER);
  const cpuPercent = intOption(values['cpu-percent'], 'cpu-percent', 1, 100);
  const grant = deviceList(values.devices, DEVICE_NAMES.join(','));
  const resolution = values['clock-resolution'];
  const resolutionMs = resolution === undefined ? undefined : Number(resolution);
  if (resolutionMs !== undefined && !(resolutionMs > 0)) throw new InvalidArgumentError(`--clock-resolution must be a positive number of ms, got ${JSON.stringify(resolution)}`);
  const deterministic = values.deterministic === true;
  const seed = values.seed ?? (deterministic ? 'wasmvisor' : undefined);
  const devices: DevicesSpec = {};
  if (grant.has('console')) devices.console = true;
  if (grant.has('clock')) devices.clock = { ...(resolutionMs !== undefined ? { resolutionMs } : {}), ...(deterministic ? { deterministic: true } : {}) };
  if (grant.has('entropy')) devices.entropy = seed !== undefined ? { seed } : true;
  const diskMiB = intOption(values.disk, 'disk', 1, 4096);
  if (diskMiB !== undefined) devices.block = { sizeMiB: diskMiB };

  // One partition: no warm workers to start ahead of it.
  const hv = new Hypervisor({ warmWorkers: 0, ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}) });
  const dirs = values.dir ?? [];
  const envs = values.env ?? [];
  let wasi: WasiSpec | undefined;
  if (dirs.length > 0 || envs.length > 0 || (await importsWasi(hv, file))) {
    wasi = { args: [path.basename(file), ...guestArgs], env: envs.map(envOption), preopens: dirs.map(dirOption) };
  }
  const placement = placementOption(values.placement);
  const partition = await hv.createPartition({
    name: values.name ?? 'guest',
    module: file,
    args: guestArgs,
    ...(placement !== undefined ? { placement } : {}),
    ...(wasi !== undefined ? { wasi } : {}),
    ...(sha256Option(values.sha256) !== undefined ? { sha256: values.sha256! } : {}),
    limits: {
      ...(memoryPages !== undefined ? { memoryPages } : {}),
      ...(timeout !== undefined ? { timeoutMs: timeout === 0 ? Infinity : timeout } : {}),
      ...(fuel !== undefined ? { fuel } : {}),
      ...(cpuPercent !== undefined ? { cpu: { maxPercent: cpuPercent } } : {}),
    },
    devices,
  });
  partition.on('console', (line, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(line + '\n'));
  partition.on('violation', (v) => process.stderr.write(`wasmvisor: violation: ${v.call} ${v.status}: ${v.reason}\n`));
  await partition.start();
  const ranOn = partition.placement ?? placement ?? 'dedicated';
  const input = grant.has('console') ? pumpStdin(partition.writeLineWhenReady.bind(partition), () => partition.endInput()) : null;
  const exit = await partition.exited;
  input?.close();
  await hv.close();
  // The error line (if any) comes first, so stderr still starts with the code.
  const status = report(exit);
  if (values.stats) process.stderr.write(formatStats(exit, ranOn));
  return status;
}

/** `--placement dedicated|shared`. */
function placementOption(value: string | undefined): Placement | undefined {
  if (value === undefined) return undefined;
  if (value !== 'dedicated' && value !== 'shared') throw new InvalidArgumentError(`--placement must be dedicated or shared, got ${JSON.stringify(value)}`);
  return value;
}

/** `--dir <host>[::<guest>]`, as Wasmtime spells it. */
function dirOption(value: string): PreopenSpec {
  const at = value.indexOf('::');
  const hostPath = at < 0 ? value : value.slice(0, at);
  const guestPath = at < 0 ? value : value.slice(at + 2);
  if (hostPath === '' || guestPath === '') throw new InvalidArgumentError(`--dir ${JSON.stringify(value)}: expected <host-folder>[::<guest-path>]`);
  return { hostPath, guestPath };
}

function envOption(value: string): string {
  if (!/^[^=]+=/.test(value)) throw new InvalidArgumentError(`--env ${JSON.stringify(value)}: expected KEY=VALUE`);
  return value;
}

/** Does the module import WASI? (Unreadable or invalid modules: no; createPartition reports why.) */
async function importsWasi(hv: Hypervisor, file: string): Promise<boolean> {
  try {
    const inspection = await hv.inspect(file, {}, { wasi: true });
    return inspection.imports.some((i) => i.module === WASI_MODULE);
  } catch {
    return false;
  }
}

/** Feeds stdin's lines to the guest with backpressure; `close` stops reading. */
function pumpStdin(write: (line: string) => Promise<boolean>, end: () => void): { close(): void } {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  let closed = false;
  void (async () => {
    try {
      for await (const line of rl) {
        if (closed) break;
        let accepted: boolean;
        try {
          accepted = await write(line);
        } catch (error) {
          process.stderr.write(`wasmvisor: console input line dropped: ${error instanceof Error ? error.message : String(error)}\n`);
          continue;
        }
        if (!accepted) break;
      }
    } catch {
      // stdin closed under us: the guest sees end of input.
    }
    end();
  })();
  return {
    close() {
      closed = true;
      rl.close();
      process.stdin.destroy();
    },
  };
}

/** The `--stats` block: the partition's metrics when it ended, and where it ran. */
export function formatStats(exit: PartitionExit, placement: Placement = 'dedicated'): string {
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
    [
      'scheduler',
      placement === 'shared'
        ? `shared worker: ${m.sched.slices} slices, ${m.sched.preemptions} preemptions, ${m.sched.waits} waits, ${m.sched.waitMs.toFixed(1)} ms waiting for a slice`
        : 'dedicated worker',
    ],
  ];
  return `wasmvisor stats\n${rows.map(([k, v]) => `  ${k.padEnd(12)}${v}`).join('\n')}\n`;
}

function report(exit: PartitionExit): number {
  if (exit.reason === 'exit') return (exit.code ?? 0) & 0xff;
  return fail(exit.error);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

async function call(argv: string[]): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        input: { type: 'string' },
        memory: { type: 'string' },
        timeout: { type: 'string' },
        devices: { type: 'string' },
        sha256: { type: 'string' },
        placement: { type: 'string' },
      },
    }),
  );
  if (positionals.length !== 2) throw new InvalidArgumentError(`call takes a guest module and an export name, got ${positionals.length} arguments; see wasmvisor --help`);
  const [file, exportName] = positionals as [string, string];
  const memoryPages = intOption(values.memory, 'memory', 1, 65536);
  const timeout = intOption(values.timeout, 'timeout', 0, 2 ** 31);
  const devices: DevicesSpec = {};
  for (const d of deviceList(values.devices, 'none')) devices[d] = true;
  let input: Uint8Array;
  try {
    input = values.input !== undefined ? await readFile(values.input) : await readAll(process.stdin);
  } catch (error) {
    throw new InvalidArgumentError(`cannot read the call input ${values.input ?? 'from stdin'}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (input.length > MAX_CALL_BYTES) {
    throw new InvalidArgumentError(`the call input (${values.input ?? 'stdin'}) has ${input.length} bytes; a call takes at most ${MAX_CALL_BYTES} bytes (64 MiB)`);
  }
  const hv = new Hypervisor({ warmWorkers: 0 });
  try {
    const partition = await hv.createPartition({
      name: 'plugin',
      module: file,
      kind: 'reactor',
      restart: 'never',
      ...(placementOption(values.placement) !== undefined ? { placement: placementOption(values.placement)! } : {}),
      devices,
      ...(sha256Option(values.sha256) !== undefined ? { sha256: values.sha256! } : {}),
      limits: {
        ...(memoryPages !== undefined ? { memoryPages } : {}),
        ...(timeout !== undefined ? { callTimeoutMs: timeout === 0 ? Infinity : timeout } : {}),
        maxInputBytes: Math.max(input.length, DEFAULT_LIMITS.maxInputBytes),
      },
    });
    partition.on('console', (line) => process.stderr.write(line + '\n'));
    partition.on('violation', (v) => process.stderr.write(`wasmvisor: violation: ${v.call} ${v.status}: ${v.reason}\n`));
    await partition.start();
    try {
      const output = await partition.call(exportName, input);
      await new Promise<void>((resolve, reject) => process.stdout.write(output, (e) => (e ? reject(e) : resolve())));
      return 0;
    } catch (error) {
      if (error instanceof GuestCallError) {
        process.stdout.write(error.output);
        process.stderr.write(`${error.code}: ${error.message}\n`);
        return error.status & 0xff || 1;
      }
      throw error;
    }
  } finally {
    await hv.close();
  }
}

async function inspect(argv: string[]): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({ args: argv, allowPositionals: true, strict: true, options: { memory: { type: 'string' }, json: { type: 'boolean' }, wasi: { type: 'boolean' } } }),
  );
  if (positionals.length !== 1) throw new InvalidArgumentError(`inspect takes one module, got ${positionals.length}; see wasmvisor --help`);
  const memoryPages = intOption(values.memory, 'memory', 1, 65536);
  const hv = new Hypervisor();
  const inspection = await hv.inspect(positionals[0]!, memoryPages !== undefined ? { memoryPages } : {}, { wasi: values.wasi === true });
  process.stdout.write(values.json ? JSON.stringify(inspection, null, 2) + '\n' : formatInspection(positionals[0]!, inspection));
  if (!inspection.verdict.admitted) {
    process.stderr.write(`${inspection.verdict.code}: ${inspection.verdict.message}\n`);
    return exitStatus(inspection.verdict.code);
  }
  return 0;
}

async function remove(argv: string[]): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({ args: argv, allowPositionals: true, strict: true, options: { 'data-dir': { type: 'string' } } }),
  );
  if (positionals.length !== 1) throw new InvalidArgumentError(`delete takes one partition name, got ${positionals.length}; see wasmvisor --help`);
  const hv = new Hypervisor(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {});
  const result = await hv.wipeStorage(positionals[0]!);
  process.stdout.write(
    result.removedImage || result.removedKey
      ? `deleted the disk of ${positionals[0]}: ${result.path} scrubbed and removed${result.removedKey ? ', key removed' : ''}\n`
      : `${positionals[0]} has no disk in ${hv.dataDir}; nothing to delete\n`,
  );
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command !== undefined && /^--(host|token-file|fingerprint|ca|cert|key)(=|$)/.test(command)) return await remoteCommand(argv);
    switch (command) {
      case 'run':
        return await run(rest);
      case 'inspect':
        return await inspect(rest);
      case 'call':
        return await call(rest);
      case 'delete':
        return await remove(rest);
      case 'demo':
        return await runDemo();
      case 'serve':
        return await serveCommand(rest);
      case 'token':
        return await tokenCommand(rest);
      case 'cert':
        return await certCommand(rest);
      case '--version':
      case '-v':
        process.stdout.write(`wasmvisor ${VERSION}\n`);
        return 0;
      case undefined:
        process.stderr.write(`ERR_INVALID_ARGUMENT: no command given\n${USAGE}\n`);
        return 2;
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(USAGE + '\n');
        return 0;
      default:
        throw new InvalidArgumentError(`unknown command ${JSON.stringify(command)}; see wasmvisor --help`);
    }
  } catch (error) {
    return fail(error);
  }
}

process.exitCode = await main(process.argv.slice(2));
