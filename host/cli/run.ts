/** `wasmvisor run`: run a guest (an hv command, a WASI program, or a manifest's) in a partition. */
import { fstatSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { isatty } from 'node:tty';
import { InvalidArgumentError, ModuleInvalidError } from '../errors.ts';
import { Hypervisor } from '../hypervisor.ts';
import type { Partition } from '../partition/partition.ts';
import type { PartitionSpec } from '../schema/index.ts';
import { nonceOption, writeReport } from './attest.ts';
import { MAX_NONCE_BYTES } from '../security/attestation.ts';
import { droppedWarning, errorReport, exitReport, fail, formatStats, onInterrupt, report, specPlacement, type JsonReport } from './common.ts';
import { asksJson, parseOrHelp, filePath, value, type CommandSpec, type OptionTable } from './options.ts';
import { stderr } from './stderr.ts';
import { buildSpec, checkDataDirUsed, hypervisorOptions, partitionOptions, readSource, reportViolations, signatureNeedsPolicy } from './partition-options.ts';

export const runCommand = {
  name: 'run',
  summary: 'run a guest: an hv command, a WASI program, or a manifest (app.json)',
  usage: ['wasmvisor run [options] <guest.wasm | app.json> [guest args...]', 'wasmvisor run [options] <guest.wasm | app.json> [options] -- [guest args...]'],
  options: {
    ...partitionOptions('run'),
    attest: value('<file>', 'write a signed attestation report (JSON) once the partition is created; verify it with wasmvisor attest verify', filePath),
    nonce: value('<hex>', `the verifier's nonce for --attest (1 to ${MAX_NONCE_BYTES} bytes, in hex)`, nonceOption),
  },
  positionals: { names: ['guest.wasm | app.json'], min: 1 },
  rest: 'guest args',
  notes: `Options come before the guest's first argument: everything from the first argument after the
module on is passed to the guest (as Wasmtime does), and so is everything after --.
A value is taken as given, even when it starts with '-'. An option that takes one value is
given at most once (twice is ERR_INVALID_ARGUMENT); --dir, --env and --wasi-quota add up.

The guest's console is the command's stdout and stderr, byte for byte (but for the stderr lines
the verdict rule below marks); stdin is its console input,
byte for byte. A guest that writes faster than stdout is read waits for it (nothing is lost); when
stdout is closed (| head) the guest's writes fail with EPIPE and the command ends quietly with the
guest's status. When stdout is a file or /dev/null the guest writes there itself. With
--output-rate, refused output is counted and a warning line says how much. WASI preview1
is enabled when the module imports wasi_snapshot_preview1, or with --wasi, --dir, --env or
--wasi-quota; argv[0]
is the module's file name. A manifest (a .json file, schema in wasmvisor/schema/manifest.json)
gives the whole spec; flags given here override it.

Exit status: the guest's exit code & 0xff when it exits (what a POSIX shell sees: a guest exiting
with 256 or 0x80000000 gives 0 — --json carries the full code); otherwise 2 bad usage
(ERR_INVALID_ARGUMENT), 124 ERR_LIMIT_CPU, 125 refused before running (module, imports, features,
limits, module bounds, integrity, policy), 134 ERR_GUEST_TRAP, 137 ERR_KILLED, 74 ERR_STORAGE,
70 ERR_INTERNAL, 1 anything else; 130 (SIGINT, Ctrl-C) or 143 (SIGTERM) when interrupted: the
partition is stopped first and the run ends as a stopped one (a second signal ends it at once).

Verdict: when the run fails for a reason of the host's (not the guest's exit), the last line of
stderr is its verdict, "ERR_<CODE>: <message>", escaped to one line (control characters shown
as \\n, \\x1b, ...); --stats comes before it. Only the verdict starts with ERR_: a guest stderr
line that starts with ERR_ or wasmvisor (any case, also after a carriage return) is printed as
"[guest] <line>", escaped (a line is held until its newline, up to 64 KiB); host notes start with
"wasmvisor: ". The guest's stdout is its own, byte for byte.

--json ends stderr with one line, a JSON object (after the verdict line, if any):
{"command":"run","state","code","exitStatus","error":{"code","message"}|null,"runTimeMs","metrics"};
stdout stays the guest's.`,
} satisfies CommandSpec<OptionTable>;

export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOrHelp<typeof runCommand.options>>;
  try {
    parsed = parseOrHelp(runCommand, argv);
  } catch (error) {
    // A command line that does not parse is refused like any other run (state not-run): with
    // --json among its options, the report still ends stderr.
    if (!asksJson(runCommand, argv)) throw error;
    const status = fail(error);
    stderr.block(JSON.stringify(errorReport('run', error)) + '\n');
    return status;
  }
  if (parsed === null) return 0;
  const { values, positionals, rest } = parsed;
  const json = values.json === true;
  let result: JsonReport;
  let status: number;
  try {
    // The command line's own checks before the module (or manifest) is read.
    if (values.nonce !== undefined && values.attest === undefined) throw new InvalidArgumentError('--nonce goes with --attest <file>');
    signatureNeedsPolicy(values);
    const source = await readSource(positionals[0]!, values.name, 'run');
    const spec = buildSpec(values, source, 'run', rest);
    checkDataDirUsed(values, spec, 'run', values.attest !== undefined);
    // A manifest may say kind: 'reactor'. Such a partition starts and then waits for calls that
    // run never makes: its exit never came, nothing kept the process alive, and Node ended it with
    // status 13 and no verdict or --json report. Refused instead, pointing at call.
    if (spec.kind === 'reactor') {
      throw new InvalidArgumentError(`manifest ${positionals[0]!} describes a reactor (kind: 'reactor'): run runs a command (its _start); call an export with wasmvisor call ${positionals[0]!} <export>`);
    }
    const direct = giveFilesDirectly(spec);
    const hv = new Hypervisor(hypervisorOptions(values));
    // Ctrl-C or SIGTERM: the partition is stopped (while it loads: the hypervisor is closed) and
    // the run ends as a stopped one, with 130 or 143.
    let partition: Partition | null = null;
    const interrupt = onInterrupt(() => (partition !== null ? partition.stop() : hv.close()));
    try {
      partition = await hv.createPartition(spec).catch((error: unknown) => {
        // A reactor has no _start to run: say what to do with it instead.
        const shape = source.shape;
        if (error instanceof ModuleInvalidError && shape?.kind === 'reactor' && error.message.includes('_start')) {
          throw new ModuleInvalidError(`${error.message}; this module is a reactor (exports ${shape.callable.join(', ') || '_initialize'}): use wasmvisor call ${positionals[0]} <export>`);
        }
        throw error;
      });
      if (values.attest !== undefined) await writeReport(hv, values.attest, values.nonce);
      const hasConsole = spec.devices?.console !== undefined && spec.devices.console !== false;
      const output = hasConsole ? pipeOutput(partition, direct) : null;
      reportViolations(partition);
      await partition.start();
      const input = hasConsole ? pipeInput(partition) : null;
      const exit = await partition.exited;
      input?.close();
      // Every byte the guest wrote is handed to our stdout/stderr before anything of ours follows it.
      await output;
      stderr.block(droppedWarning(exit));
      // The stats first: the verdict (if any) is the last line of stderr (or the one before --json's).
      if (values.stats) stderr.block(formatStats(exit, specPlacement(spec)));
      status = report(exit);
      result = exitReport('run', exit);
    } catch (error) {
      status = fail(error);
      result = errorReport('run', error);
    } finally {
      await hv.close();
      interrupt.dispose();
    }
    if (interrupt.status !== null) result = { ...result, exitStatus: (status = interrupt.status) };
  } catch (error) {
    status = fail(error);
    result = errorReport('run', error);
  }
  if (json) stderr.block(JSON.stringify(result) + '\n');
  return status;
}

/**
 * Is fd a file or a non-terminal character device (/dev/null)? Then the guest writes to it from
 * its own worker (devices.console.outputFd): nothing waits on a reader there, and the bytes skip
 * the trip through us. Pipes and terminals go through the root, with backpressure and EPIPE.
 */
function writesDirectly(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFile() || (st.isCharacterDevice() && !isatty(fd));
  } catch {
    return false;
  }
}

/** Are fds a and b the same regular file (where the order of their bytes shows)? */
function sameFile(a: number, b: number): boolean {
  try {
    const x = fstatSync(a);
    const y = fstatSync(b);
    return x.isFile() && x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** Gives the console our stdout/stderr to write itself where they are files; says which. */
function giveFilesDirectly(spec: PartitionSpec): { stdout: boolean; stderr: boolean } {
  const c = spec.devices?.console;
  if (c === undefined || c === false || (c !== true && c.outputFd !== undefined)) return { stdout: false, stderr: false };
  // A shared partition process takes no descriptors (they are given at a process's spawn): its bytes come through us.
  if (specPlacement(spec) === 'shared-process') return { stdout: false, stderr: false };
  // Never stderr: the guest's stderr lines pass the verdict rule's guard (stderr.ts) on their way.
  // Nor stdout when it is the same file as stderr (2>&1): both then go through us, in order.
  const direct = { stdout: writesDirectly(1) && !sameFile(1, 2), stderr: false };
  if (direct.stdout || direct.stderr) {
    spec.devices = { ...spec.devices, console: { ...(c === true ? {} : c), outputFd: { ...(direct.stdout ? { stdout: 1 } : {}), ...(direct.stderr ? { stderr: 2 } : {}) } } };
  }
  return direct;
}

/**
 * Copies the guest's stdout and stderr to ours, byte for byte, with backpressure (a slow reader
 * slows the guest). A reader that goes away (`| head`, EPIPE) is passed on to the guest as EPIPE,
 * quietly, like a Unix filter. Resolves once every byte has been handed to our streams.
 */
function pipeOutput(partition: Partition, direct: { stdout: boolean; stderr: boolean }): Promise<void> {
  const one = (from: Readable, to: NodeJS.WriteStream): Promise<void> =>
    new Promise<void>((resolve) => {
      // Stays attached: a write error on our own stream (EPIPE) must never become an exception.
      to.on('error', () => {
        from.unpipe(to);
        from.destroy();
        resolve();
      });
      from.once('end', resolve);
      from.once('close', resolve);
      from.pipe(to, { end: false });
    });
  return Promise.all([
    direct.stdout ? null : one(partition.stdout, process.stdout),
    direct.stderr ? null : one(partition.stderr.pipe(stderr.guestStream()), process.stderr),
  ]).then(() => undefined);
}

/** Feeds our stdin to the guest, byte for byte, with backpressure; `close` stops reading. */
function pipeInput(partition: Partition): { close(): void } {
  const stdin = partition.stdin;
  // The guest stopped reading (it ended): the rest of our input is not wanted.
  stdin.on('error', () => process.stdin.unpipe(stdin));
  process.stdin.on('error', () => stdin.end());
  process.stdin.pipe(stdin);
  return {
    close() {
      process.stdin.unpipe(stdin);
      process.stdin.destroy();
    },
  };
}
