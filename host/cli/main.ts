#!/usr/bin/env node
/**
 * The `wasmvisor` command: run a guest in a partition, inspect a module, or boot the demo.
 * Error lines start with the stable error code; exit statuses are listed in exitStatus().
 */
import { InvalidArgumentError } from '../errors.ts';
import { call } from './call.ts';
import { fail } from './common.ts';
import { remove } from './delete.ts';
import { runDemo } from './demo.ts';
import { inspect } from './inspect.ts';
import { run } from './run.ts';
import { VERSION } from './version.ts';

const USAGE = `Usage:
  wasmvisor run <guest.wasm> [options] [-- guest args]
  wasmvisor call <guest.wasm> <export> [--input <file>] [options]
  wasmvisor inspect <guest.wasm> [--memory <pages>] [--wasi] [--json]
  wasmvisor delete <name> [--data-dir <dir>]
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

WASI preview1 is enabled when the module imports wasi_snapshot_preview1 or --dir/--env is given;
argv[0] is the module's file name. The guest's stdout and stderr are the command's.

delete scrubs and removes the disk image and key of the named partition (no error if none).

call runs a reactor guest, calls one export with the input (--input file, or stdin) and writes
its output to stdout. It takes --memory, --devices, --sha256 and --timeout (the call's budget).

Exit status: the guest's own exit code when it exits (call: 0, or the export's non-zero status,
with ERR_GUEST_CALL on stderr); otherwise 2 bad usage, 124 ERR_LIMIT_CPU,
125 refused before running (module, imports, features, limits, integrity), 134 ERR_GUEST_TRAP,
137 ERR_KILLED, 74 ERR_STORAGE, 70 ERR_INTERNAL, 1 anything else.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
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
