/** `wasmvisor call`: start a reactor guest, call one export with an input, print its output. */
import { stderr } from './stderr.ts';
import { createReadStream } from 'node:fs';
import { DEFAULT_LIMITS, Hypervisor } from '../hypervisor.ts';
import { GuestCallError, InvalidArgumentError } from '../errors.ts';
import type { Partition } from '../partition/partition.ts';
import { MAX_CALL_BYTES } from '../schema/limits.ts';
import { errorReport, fail, formatStats, onInterrupt, readAll, specPlacement, type JsonReport } from './common.ts';
import { asksJson, parseOrHelp, filePath, text, value, type CommandSpec, type OptionTable } from './options.ts';
import { buildSpec, checkDataDirUsed, hypervisorOptions, partitionOptions, readSource, reportViolations, signatureNeedsPolicy } from './partition-options.ts';
import { quoted } from '../escape.ts';

export const callCommand = {
  name: 'call',
  summary: 'start a reactor guest, call one export with an input, print its output',
  usage: ['wasmvisor call [options] <guest.wasm | app.json> <export>'],
  options: {
    input: value('<data>', 'the call input, as text (UTF-8)', text),
    'input-file': value('<file>', "read the call input from a file ('-' for stdin)", filePath),
    ...partitionOptions('call'),
  },
  positionals: { names: ['guest.wasm | app.json', 'export'], min: 2 },
  notes: `Without --input or --input-file the input is stdin. The guest's console goes to stderr.
An export is a function () -> i32 that reads its input and writes its output through the hv
interface (docs/ABI.md, "Reactor calls"); WASI is enabled as for run.

Exit status: 0 when the export returns 0; its status & 0xff (or 1 when that is 0) when it returns
non-zero (ERR_GUEST_CALL, its output still on stdout); otherwise as for run (2 bad usage,
124 ERR_LIMIT_CPU, 125 refused, 134 ERR_GUEST_TRAP, 130 or 143 interrupted by SIGINT or
SIGTERM, ...).

--json prints one JSON document on stdout instead of the raw output: {"command":"call","export",
"state","status","output","outputEncoding":"utf8"|"base64","code","exitStatus","error","runTimeMs",
"metrics"}; status is the export's full return value.`,
} satisfies CommandSpec<OptionTable>;

/** The call's result for --json: the common report plus the export, its status and output. */
interface CallReport extends JsonReport {
  export: string;
  status: number | null;
  output: string | null;
  outputEncoding: 'utf8' | 'base64' | null;
}

async function readInput(values: { input?: string; 'input-file'?: string }): Promise<Uint8Array> {
  if (values.input !== undefined) return new TextEncoder().encode(values.input);
  const file = values['input-file'];
  let input: Uint8Array | null;
  try {
    // Read as a stream, bounded: a pipe or a FIFO as it comes, /dev/zero or `yes |` never whole.
    input = await readAll(file === undefined || file === '-' ? process.stdin : createReadStream(file), MAX_CALL_BYTES);
  } catch (error) {
    throw new InvalidArgumentError(`--input-file: cannot read ${file === undefined || file === '-' ? 'stdin' : quoted(file)}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (input === null) throw new InvalidArgumentError(`the call input is more than ${MAX_CALL_BYTES} bytes; a call takes at most ${MAX_CALL_BYTES}`);
  return input;
}

function encodeOutput(output: Uint8Array): { output: string; outputEncoding: 'utf8' | 'base64' } {
  try {
    return { output: new TextDecoder('utf-8', { fatal: true }).decode(output), outputEncoding: 'utf8' };
  } catch {
    return { output: Buffer.from(output.buffer, output.byteOffset, output.byteLength).toString('base64'), outputEncoding: 'base64' };
  }
}

export async function call(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOrHelp<typeof callCommand.options>>;
  try {
    parsed = parseOrHelp(callCommand, argv);
  } catch (error) {
    // A command line that does not parse is refused like any other call (state not-run): with
    // --json among its options, the document still goes to stdout (the export: null if not given).
    if (!asksJson(callCommand, argv)) throw error;
    const status = fail(error);
    process.stdout.write(JSON.stringify({ ...errorReport('call', error), export: null, status: null, output: null, outputEncoding: null }) + '\n');
    return status;
  }
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const exportName = positionals[1]!;
  const json = values.json === true;
  const base = { export: exportName, status: null, output: null, outputEncoding: null };
  let result: CallReport;
  let status: number;
  try {
    // The command line is checked whole before anything is read; then the module (and its
    // manifest, which the rest of the spec's checks need); the input last, as stdin may be a
    // terminal that waits: a mistake is never named only after the input was typed or piped.
    if (values.input !== undefined && values['input-file'] !== undefined) throw new InvalidArgumentError('--input and --input-file: give one of them, not both');
    signatureNeedsPolicy(values);
    const source = await readSource(positionals[0]!, values.name, 'call');
    const spec = buildSpec(values, source, 'call', []);
    checkDataDirUsed(values, spec, 'call', false);
    const input = await readInput(values);
    spec.limits = { ...spec.limits, maxInputBytes: Math.max(input.length, spec.limits?.maxInputBytes ?? DEFAULT_LIMITS.maxInputBytes) };
    const hv = new Hypervisor(hypervisorOptions(values));
    let partition: Partition | null = null;
    // Ctrl-C or SIGTERM: the partition is stopped (the call fails with ERR_KILLED) and the command
    // ends as for a stopped call, with 130 or 143.
    const interrupt = onInterrupt(() => (partition !== null ? partition.stop() : hv.close()));
    try {
      partition = await hv.createPartition(spec);
      // The reactor's console output (both streams; stdout is the call's output) on our stderr,
      // byte for byte but for the lines the verdict rule marks (stderr.ts).
      partition.on('output', (chunk, stream) => stderr.guestBytes(chunk, stream));
      reportViolations(partition);
      await partition.start();
      const ran = (status: number, extra: Partial<CallReport>): CallReport => ({ ...ranReport(partition!, status), ...base, ...extra });
      /** The verdict, printed after --stats so that it stays the last line of stderr. */
      let verdict: (() => void) | null = null;
      try {
        const output = await partition.call(exportName, input);
        if (!json) await new Promise<void>((resolve, reject) => process.stdout.write(output, (e) => (e ? reject(e) : resolve())));
        status = 0;
        result = ran(0, { status: 0, ...encodeOutput(output) });
      } catch (error) {
        if (error instanceof GuestCallError) {
          if (!json) process.stdout.write(error.output);
          verdict = () => stderr.verdict(error.code, error.message);
          status = error.status & 0xff || 1;
          result = ran(status, { status: error.status, ...encodeOutput(error.output), error: { code: error.code, message: error.message } });
        } else {
          // The call trapped, timed out or was refused: the guest ran, the report says how it ended.
          verdict = () => fail(error);
          status = errorReport('call', error).exitStatus;
          result = ran(status, { error: errorReport('call', error).error });
        }
      }
      stderr.guestEnd();
      if (values.stats) stderr.block(formatStats(await partition.stop(), specPlacement(spec)));
      verdict?.();
    } catch (error) {
      status = fail(error);
      result = { ...errorReport('call', error), ...base };
    } finally {
      await hv.close();
      interrupt.dispose();
    }
    if (interrupt.status !== null) result = { ...result, exitStatus: (status = interrupt.status) };
  } catch (error) {
    status = fail(error);
    result = { ...errorReport('call', error), ...base };
  }
  if (json) process.stdout.write(JSON.stringify(result) + '\n');
  return status;
}

/** The common report fields of a call that ran: the partition's state now (a reactor has no exit code). */
function ranReport(partition: Partition, exit: number): JsonReport {
  const { state, runTimeMs, restarts: _restarts, queuedCalls: _queued, ...metrics } = partition.metrics();
  return { command: 'call', state: state === 'created' || state === 'destroyed' ? 'not-run' : state, code: null, exitStatus: exit, error: null, runTimeMs, metrics };
}
