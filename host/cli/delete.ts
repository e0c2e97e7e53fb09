/** `wasmvisor delete`: scrub and remove a partition's disk and its key. */
import { Hypervisor } from '../hypervisor.ts';
import { existingDirectory, parseOrHelp, folder, value, type CommandSpec, type OptionTable } from './options.ts';

export const deleteCommand = {
  name: 'delete',
  summary: "scrub and remove a partition's disk and its key (exit 0 also when there was none)",
  usage: ['wasmvisor delete [options] <name>'],
  options: {
    'data-dir': value('<dir>', 'where disks and their keystore live', folder, { default: './.wasmvisor' }),
  },
  positionals: { names: ['name'], min: 1 },
} satisfies CommandSpec<OptionTable>;

export async function remove(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(deleteCommand, argv);
  if (parsed === null) return 0;
  const { values, positionals } = parsed;
  const name = positionals[0]!;
  if (values['data-dir'] !== undefined) existingDirectory('--data-dir', values['data-dir'], 'delete');
  const hv = new Hypervisor(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {});
  let result: Awaited<ReturnType<Hypervisor['wipeStorage']>>;
  try {
    result = await hv.wipeStorage(name);
  } finally {
    await hv.close();
  }
  process.stdout.write(
    result.removedImage
      ? `deleted the disk of ${name}: ${result.images.join(', ')} scrubbed and removed${result.removedKey ? ', key removed' : ''}\n`
      : result.removedKey
        ? // A key whose image is missing (docs/STORAGE.md, "Keys"): nothing was there to scrub.
          `deleted the disk of ${name}: its image ${result.path} was already missing; key removed\n`
        : `${name} has no disk in ${hv.dataDir}; nothing to delete\n`,
  );
  return 0;
}
