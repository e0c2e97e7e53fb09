/** `wasmvisor run`: run a guest (an hv command, a WASI program, or a manifest's) in a partition. */
import { createInterface } from 'node:readline';
import { ModuleInvalidError } from '../errors.ts';
import { Hypervisor } from '../hypervisor.ts';
import { errorReport, exitReport, fail, formatStats, report, type JsonReport } from './common.ts';
import { parseOrHelp, type CommandSpec, type OptionTable } from './options.ts';
import { buildSpec, hypervisorOptions, partitionOptions, readSource, reportViolations } from './partition-options.ts';

export const runCommand = {
  name: 'run',
  summary: 'run a guest: an hv command, a WASI program, or a manifest (app.json)',
  usage: ['wasmvisor run [options] <guest.wasm | app.json> [guest args...]', 'wasmvisor run [options] <guest.wasm | app.json> [options] -- [guest args...]'],
  options: partitionOptions('run'),
  positionals: { names: ['guest.wasm | app.json'], min: 1 },
  rest: 'guest args',
  notes: `Options come before the guest's first argument: everything from the first argument after the
module on is passed to the guest (as Wasmtime does), and so is everything after --.
A value is taken as given, even when it starts with '-'.

The guest's console is the command's stdout and stderr; stdin is its console input. WASI preview1
is enabled when the module imports wasi_snapshot_preview1, or with --wasi, --dir or --env; argv[0]
is the module's file name. A manifest (a .json file, schema in wasmvisor/schema/manifest.json)
gives the whole spec; flags given here override it.

Exit status: the guest's exit code & 0xff when it exits (what a POSIX shell sees: a guest exiting
with 256 or 0x80000000 gives 0 — --json carries the full code); otherwise 2 bad usage
(ERR_INVALID_ARGUMENT), 124 ERR_LIMIT_CPU, 125 refused before running (module, imports, features,
limits, integrity), 134 ERR_GUEST_TRAP, 137 ERR_KILLED, 74 ERR_STORAGE, 70 ERR_INTERNAL,
1 anything else. An error line starts with its code.

--json ends stderr with one line, a JSON object: {"command":"run","state","code","exitStatus",
"error":{"code","message"}|null,"runTimeMs","metrics"}; stdout stays the guest's.`,
} satisfies CommandSpec<OptionTable>;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(runCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals, rest } = parsed;
  const json = values.json === true;
  let result: JsonReport;
  let status: number;
  try {
    const source = await readSource(positionals[0]!);
    const spec = buildSpec(values, source, 'run', rest);
    const hv = new Hypervisor(hypervisorOptions(values));
    try {
      const partition = await hv.createPartition(spec).catch((error: unknown) => {
        // A reactor has no _start to run: say what to do with it instead.
        const shape = source.shape;
        if (error instanceof ModuleInvalidError && shape?.kind === 'reactor' && error.message.includes('_start')) {
          throw new ModuleInvalidError(`${error.message}; this module is a reactor (exports ${shape.callable.join(', ') || '_initialize'}): use wasmvisor call ${positionals[0]} <export>`);
        }
        throw error;
      });
      partition.on('console', (line, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(line + '\n'));
      reportViolations(partition);
      await partition.start();
      const hasConsole = spec.devices?.console !== undefined && spec.devices.console !== false;
      const input = hasConsole ? pumpStdin(partition.writeLineWhenReady.bind(partition), () => partition.endInput()) : null;
      const exit = await partition.exited;
      input?.close();
      // The error line (if any) comes first, so stderr still starts with the code.
      status = report(exit);
      if (values.stats) process.stderr.write(formatStats(exit, spec.isolation === 'process' ? 'process' : (spec.placement ?? 'dedicated')));
      result = exitReport('run', exit);
    } finally {
      await hv.close();
    }
  } catch (error) {
    status = fail(error);
    result = errorReport('run', error);
  }
  if (json) process.stderr.write(JSON.stringify(result) + '\n');
  return status;
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

