/**
 * What the benches that read memory share: run again with `--expose-gc` when started without it
 * (RSS per partition needs a GC before each reading), the repository root, and numeric options.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository's root folder, with a trailing slash. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * When `gc` is not exposed, runs the calling script again with `--expose-gc` and the same
 * arguments, then exits with its status; returns only in a process that has `gc`.
 */
export function requireExposedGc(scriptUrl) {
  if (typeof globalThis.gc === 'function') return;
  const r = spawnSync(process.execPath, ['--expose-gc', '--no-warnings', fileURLToPath(scriptUrl), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

/** `--name N` from the command line as a number; `fallback` when absent. A value that is not a number is refused. */
export function numberOption(name, fallback) {
  const args = process.argv.slice(2);
  const at = args.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(args[at + 1]);
  if (args[at + 1] === undefined || !Number.isFinite(value)) {
    console.error(`--${name} wants a number, got ${JSON.stringify(args[at + 1] ?? null)}`);
    process.exit(2);
  }
  return value;
}
