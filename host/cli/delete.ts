/** `wasmvisor delete`: scrub and remove a partition's disk and its key. */
import { parseArgs } from 'node:util';
import { Hypervisor } from '../hypervisor.ts';
import { InvalidArgumentError } from '../errors.ts';
import { usage } from './common.ts';

export async function remove(argv: string[]): Promise<number> {
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

