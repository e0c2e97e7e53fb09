#!/usr/bin/env node
/**
 * The `wasmvisor` command: run a guest in a partition, inspect a module, or boot the demo.
 * Error lines start with the stable error code; exit statuses are listed in exitStatus().
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Hypervisor } from '../hypervisor.ts';
import { InvalidArgumentError, WasmvisorError, type ErrorCode } from '../errors.ts';
import type { DevicesSpec } from '../devices/config.ts';
import type { PartitionExit } from '../partition/partition.ts';
import { formatInspection } from './inspect.ts';
import { runDemo } from './demo.ts';
import { VERSION } from './version.ts';

const USAGE = `Usage:
  wasmvisor run <guest.wasm> [options] [-- guest args]
  wasmvisor inspect <guest.wasm> [--memory <pages>] [--json]
  wasmvisor demo
  wasmvisor --help | --version

run options:
  --memory <pages>          linear memory limit in 64 KiB pages (default 256)
  --timeout <ms>            wall-clock budget; 0 for none (default 30000)
  --devices <list>          devices to grant, comma-separated, or "none" (default console,clock,entropy)
  --clock-resolution <ms>   clock resolution (default 1)
  --deterministic           fixed clocks and a fixed entropy seed (for teaching and tests)
  --seed <string>           seed the entropy device (implies a reproducible stream)
  --sha256 <hex>            refuse the module unless its SHA-256 is this (ERR_INTEGRITY)
  --fuel <n>                fuel budget: the guest ends with ERR_LIMIT_CPU once it has done
                            n units of work (deterministic; see docs/ABI.md); default none

Exit status: the guest's own exit code when it exits; otherwise 2 bad usage, 124 ERR_LIMIT_CPU,
125 refused before running (module, imports, features, limits, integrity), 134 ERR_GUEST_TRAP,
137 ERR_KILLED, 70 ERR_INTERNAL, 1 anything else.`;

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

/** Runs an argument parser, turning its complaint into ERR_INVALID_ARGUMENT. */
function usage<T>(parser: () => T): T {
  try {
    return parser();
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

const DEVICE_NAMES = ['console', 'clock', 'entropy'] as const;

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
        fuel: { type: 'string' },
      },
    }),
  );
  if (positionals.length !== 1) throw new InvalidArgumentError(`run takes one guest module, got ${positionals.length}; see wasmvisor --help`);
  const file = positionals[0]!;
  const memoryPages = intOption(values.memory, 'memory', 1, 65536);
  const timeout = intOption(values.timeout, 'timeout', 0, 2 ** 31);
  const fuel = intOption(values.fuel, 'fuel', 1, Number.MAX_SAFE_INTEGER);
  const grant = new Set<string>();
  const list = values.devices ?? DEVICE_NAMES.join(',');
  if (list !== 'none') {
    for (const d of list.split(',').map((s) => s.trim()).filter(Boolean)) {
      if (!(DEVICE_NAMES as readonly string[]).includes(d)) throw new InvalidArgumentError(`--devices: unknown device ${JSON.stringify(d)} (known: ${DEVICE_NAMES.join(', ')})`);
      grant.add(d);
    }
  }
  const resolution = values['clock-resolution'];
  const resolutionMs = resolution === undefined ? undefined : Number(resolution);
  if (resolutionMs !== undefined && !(resolutionMs > 0)) throw new InvalidArgumentError(`--clock-resolution must be a positive number of ms, got ${JSON.stringify(resolution)}`);
  const deterministic = values.deterministic === true;
  const seed = values.seed ?? (deterministic ? 'wasmvisor' : undefined);
  const devices: DevicesSpec = {};
  if (grant.has('console')) devices.console = true;
  if (grant.has('clock')) devices.clock = { ...(resolutionMs !== undefined ? { resolutionMs } : {}), ...(deterministic ? { deterministic: true } : {}) };
  if (grant.has('entropy')) devices.entropy = seed !== undefined ? { seed } : true;

  const hv = new Hypervisor();
  const partition = await hv.createPartition({
    name: 'guest',
    module: file,
    args: guestArgs,
    ...(values.sha256 !== undefined ? { sha256: values.sha256 } : {}),
    limits: {
      ...(memoryPages !== undefined ? { memoryPages } : {}),
      ...(timeout !== undefined ? { timeoutMs: timeout === 0 ? Infinity : timeout } : {}),
      ...(fuel !== undefined ? { fuel } : {}),
    },
    devices,
  });
  partition.on('console', (line, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(line + '\n'));
  partition.on('violation', (v) => process.stderr.write(`wasmvisor: violation: ${v.call} ${v.status}: ${v.reason}\n`));
  await partition.start();
  const input = grant.has('console') ? pumpStdin(partition.writeLineWhenReady.bind(partition), () => partition.endInput()) : null;
  const exit = await partition.exited;
  input?.close();
  await hv.close();
  return report(exit);
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

function report(exit: PartitionExit): number {
  if (exit.reason === 'exit') return (exit.code ?? 0) & 0xff;
  return fail(exit.error);
}

async function inspect(argv: string[]): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({ args: argv, allowPositionals: true, strict: true, options: { memory: { type: 'string' }, json: { type: 'boolean' } } }),
  );
  if (positionals.length !== 1) throw new InvalidArgumentError(`inspect takes one module, got ${positionals.length}; see wasmvisor --help`);
  const memoryPages = intOption(values.memory, 'memory', 1, 65536);
  const hv = new Hypervisor();
  const inspection = await hv.inspect(positionals[0]!, memoryPages !== undefined ? { memoryPages } : {});
  process.stdout.write(values.json ? JSON.stringify(inspection, null, 2) + '\n' : formatInspection(positionals[0]!, inspection));
  if (!inspection.verdict.admitted) {
    process.stderr.write(`${inspection.verdict.code}: ${inspection.verdict.message}\n`);
    return exitStatus(inspection.verdict.code);
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await run(rest);
      case 'inspect':
        return await inspect(rest);
      case 'demo':
        return await runDemo();
      case '--version':
      case '-v':
        process.stdout.write(`wasmvisor ${VERSION}\n`);
        return 0;
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(USAGE + '\n');
        return command === undefined ? 2 : 0;
      default:
        throw new InvalidArgumentError(`unknown command ${JSON.stringify(command)}; see wasmvisor --help`);
    }
  } catch (error) {
    return fail(error);
  }
}

process.exitCode = await main(process.argv.slice(2));
