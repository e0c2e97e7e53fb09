/**
 * What kind of program a module is, so that run, call and inspect judge it the same way:
 * a WASI program (it imports wasi_snapshot_preview1) or not, a command (it exports `_start`)
 * or a reactor (it does not, and exports functions to call). Read from the module's sections
 * only — no engine validation here: createPartition and inspect validate once, after this.
 */
import { callableExports } from '../loader/pipeline.ts';
import { readModuleSource, DEFAULT_MAX_MODULE_BYTES } from '../loader/read.ts';
import { readSections } from '../loader/sections.ts';
import { WASI_MODULE } from '../wasi/errno.ts';

export interface ModuleShape {
  importsWasi: boolean;
  kind: 'command' | 'reactor';
  /** Exports a host may call (functions () -> i32, not starting with `_`). */
  callable: string[];
}

/** The shape of the module at `file`, or null when it cannot be read or parsed (createPartition says why). */
export async function moduleShape(file: string): Promise<ModuleShape | null> {
  try {
    const info = readSections(await readModuleSource(file, DEFAULT_MAX_MODULE_BYTES));
    const exportsStart = info.exports.some((e) => e.kind === 'function' && e.name === '_start');
    const callable = callableExports(info);
    const reactor = !exportsStart && (callable.length > 0 || info.exports.some((e) => e.name === '_initialize'));
    return { importsWasi: info.imports.some((i) => i.module === WASI_MODULE), kind: reactor ? 'reactor' : 'command', callable };
  } catch {
    return null;
  }
}
