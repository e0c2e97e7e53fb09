/** `wasmvisor call`: start a reactor guest, call one export with an input, print its output. */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DEFAULT_LIMITS, Hypervisor } from '../hypervisor.ts';
import { GuestCallError, InvalidArgumentError } from '../errors.ts';
import type { DevicesSpec } from '../devices/config.ts';
import { deviceList, intOption, readAll, sha256Option, usage } from './common.ts';

export async function call(argv: string[]): Promise<number> {
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
  const hv = new Hypervisor();
  try {
    const partition = await hv.createPartition({
      name: 'plugin',
      module: file,
      kind: 'reactor',
      restart: 'never',
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

