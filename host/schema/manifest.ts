/**
 * Manifest files: a partition spec as a reviewed JSON file (`wasmvisor run app.json`,
 * `hv.createPartition(await loadManifest('app.json'))`), in the spirit of Extism's manifest.
 * The module is a path relative to the manifest, optionally pinned by `sha256`; preopened host
 * folders are relative to it too. Errors name the file and the path inside it.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import { InvalidArgumentError } from '../errors.ts';
import { check, checkPathArgument } from './check.ts';
import { CLOSED, NAME, Name } from './kinds.ts';
import { partitionSpecFields, type PartitionSpec } from './partition.ts';
import { quoted } from '../escape.ts';

/** Largest manifest file read, bytes: a spec is a few hundred bytes; this is a bound, not a goal. */
export const MAX_MANIFEST_BYTES = 1 << 20;

export const ManifestSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String({ description: 'The JSON Schema this file follows (for editors); not used by Wasmvisor.' })),
    ...partitionSpecFields,
    name: Type.Optional(Name("The partition's name. Default: the manifest's file name without .json.")),
    module: Type.String({ minLength: 1, title: 'a path', description: 'Path of the .wasm module, relative to the manifest file.' }),
    signature: Type.Optional(Type.String({ minLength: 1, title: 'a path', description: 'Path of a detached signature file for the module, relative to the manifest file. Needs a policy with publisher keys.' })),
  },
  { ...CLOSED, title: 'Wasmvisor manifest', description: 'A partition spec as a JSON file. Paths (module, signature, wasi preopen hostPath) are relative to the manifest.' },
);
export type Manifest = Static<typeof ManifestSchema>;

/**
 * Reads, parses and checks a manifest file and returns the partition spec it describes, with
 * its relative paths resolved against the manifest's folder. ERR_INVALID_ARGUMENT names the
 * file and what is wrong (`manifest app.json: limits.timeout: unknown key; did you mean timeoutMs?`).
 */
export async function loadManifest(file: string | URL): Promise<PartitionSpec> {
  return readManifest(file);
}

/**
 * loadManifest, with the name the caller gives instead (the command line's `--name`): a manifest
 * without a name then needs no file name that is a valid partition name. Without one, `unnamed`
 * makes the refusal of a file name that is none (the CLI's names its `--name`).
 */
export async function readManifest(file: string | URL, name?: string, unnamed?: (base: string) => Error): Promise<PartitionSpec> {
  const { text, shown, dir } = await readManifestText(file);
  return manifestSpec(text, shown, dir, name, unnamed);
}

/** A manifest's spec as it is written: its name only if it has one (what only reads it, as `wasmvisor inspect`, needs no name). */
export type ManifestFields = Omit<PartitionSpec, 'name'> & { name?: string };

/**
 * readManifest for a caller that creates no partition (`wasmvisor inspect`): the same checks and
 * paths, but a manifest without a name is not refused for its file name (nothing is named).
 */
export async function readManifestFields(file: string | URL): Promise<ManifestFields> {
  const { text, shown, dir } = await readManifestText(file);
  return manifestFields(text, shown, dir);
}

async function readManifestText(file: string | URL): Promise<{ text: string; shown: string; dir: string }> {
  checkPathArgument(file, 'loadManifest: file', { url: true });
  const filePath = file instanceof URL ? file : String(file);
  const shown = file instanceof URL ? file.href : String(file);
  const text = await readBounded(filePath, `manifest ${shown}`);
  return { text, shown, dir: path.dirname(path.resolve(file instanceof URL ? fileURLToPath(file) : file)) };
}

/**
 * A manifest's text as the partition spec it describes: `shown` names the file in errors (and
 * gives the default name), `dir` is the folder its relative paths are resolved against.
 */
export function manifestSpec(text: string, shown: string, dir: string, givenName?: string, unnamed?: (base: string) => Error): PartitionSpec {
  const spec = manifestFields(text, shown, dir);
  let name = spec.name ?? givenName;
  if (name === undefined) {
    const base = path.basename(shown).replace(/\.json$/i, '');
    if (!NAME.test(base)) throw unnamed?.(base) ?? new InvalidArgumentError(`manifest ${shown}: name: is required (the file name ${quoted(base)} is not a valid partition name)`);
    name = base;
  }
  return { ...spec, name };
}

/** A manifest's text checked, with its relative paths resolved against `dir`; its name as written (if any). */
function manifestFields(text: string, shown: string, dir: string): ManifestFields {
  const where = `manifest ${shown}`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`${where}: not valid JSON: ${jsonProblem(error, text)}`);
  }
  const manifest = check(ManifestSchema, value, where);
  const { $schema: _schema, ...spec } = manifest;
  return {
    ...spec,
    module: path.resolve(dir, spec.module),
    ...(spec.signature !== undefined ? { signature: path.resolve(dir, spec.signature) } : {}),
    ...(spec.wasi?.preopens
      ? { wasi: { ...spec.wasi, preopens: spec.wasi.preopens.map((p) => (p.hostPath === undefined ? p : { ...p, hostPath: path.resolve(dir, p.hostPath) })) } }
      : {}),
  };
}

async function readBounded(file: string | URL, where: string): Promise<string> {
  let handle;
  try {
    // O_NONBLOCK: a FIFO given as the manifest opens at once (and is refused below), not waiting for a writer.
    handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error) {
    throw new InvalidArgumentError(`${where}: cannot be read: ${(error as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new InvalidArgumentError(`${where}: not a regular file`);
    if (st.size > MAX_MANIFEST_BYTES) throw new InvalidArgumentError(`${where}: ${st.size} bytes, more than the ${MAX_MANIFEST_BYTES} a manifest may have`);
    const buffer = Buffer.alloc(MAX_MANIFEST_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_MANIFEST_BYTES) throw new InvalidArgumentError(`${where}: more than the ${MAX_MANIFEST_BYTES} bytes a manifest may have`);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buffer.subarray(0, bytesRead));
    } catch {
      throw new InvalidArgumentError(`${where}: not UTF-8 text`);
    }
  } finally {
    await handle.close();
  }
}

/** JSON.parse's complaint, with the line and column of its position when it gives one. */
function jsonProblem(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const at = /position (\d+)/.exec(message);
  if (at === null) return message;
  const pos = Number(at[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  return `${message.replace(/ in JSON at position \d+.*$/, '')} at line ${line}, column ${column}`;
}
