/** `wasmvisor run`: run a guest (an hv command or a WASI program) in a partition. */
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Hypervisor } from '../hypervisor.ts';
import { InvalidArgumentError } from '../errors.ts';
import type { DevicesSpec } from '../devices/config.ts';
import type { PreopenSpec, WasiSpec } from '../wasi/config.ts';
import { WASI_MODULE } from '../wasi/errno.ts';
import { DEVICE_NAMES, deviceList, formatStats, intOption, report, sha256Option, usage } from './common.ts';

export async function run(argv: string[]): Promise<number> {
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

  const hv = new Hypervisor(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {});
  const dirs = values.dir ?? [];
  const envs = values.env ?? [];
  let wasi: WasiSpec | undefined;
  if (dirs.length > 0 || envs.length > 0 || (await importsWasi(hv, file))) {
    wasi = { args: [path.basename(file), ...guestArgs], env: envs.map(envOption), preopens: dirs.map(dirOption) };
  }
  const partition = await hv.createPartition({
    name: values.name ?? 'guest',
    module: file,
    args: guestArgs,
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
  const input = grant.has('console') ? pumpStdin(partition.writeLineWhenReady.bind(partition), () => partition.endInput()) : null;
  const exit = await partition.exited;
  input?.close();
  await hv.close();
  // The error line (if any) comes first, so stderr still starts with the code.
  const status = report(exit);
  if (values.stats) process.stderr.write(formatStats(exit));
  return status;
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

