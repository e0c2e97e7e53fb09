/**
 * The daemon's config directory: everything `wasmvisor serve` keeps between runs.
 *
 *   serve.lock              the running daemon's pid (a second serve on the directory is refused)
 *   partitions/<name>.json  declared partitions (schemas.ts DeclaredPartition)
 *   modules/<sha256>.wasm   their modules, content-addressed
 *   tokens/<id>.json        API tokens (tokens.ts; digests only)
 *   rbac.json               custom roles, role and deny assignments (optional)
 *   policy.json             the admission policy: host/security's policy file (optional)
 *   tls/                    certificates: ca.crt, ca.key, server.crt, server.key (tls.ts)
 *   data/                   the Hypervisor's dataDir: disk images and their keystore
 *
 * Files are written to a temporary name and renamed, mode 0600 in directories of mode 0700.
 * Files read back are validated with their schema; a bad one is named in the error.
 */
import crypto from 'node:crypto';
import { closeSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { readdir, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TSchema, Static } from '@sinclair/typebox';
import { check, refuseDuplicateKeys } from '../schema/check.ts';
import { InvalidArgumentError, InvalidStateError, StorageError } from '../errors.ts';
import { isMissingFile, makeDirsSync, readRegularFile, readRegularFileSync } from '../files.ts';
import { PolicySchema, type PolicyDocument } from '../schema/policy.ts';
import { DeclaredPartition, MAX_MODULE_BYTES, NAME_PATTERN, RbacFile } from './schemas.ts';
import { quoted } from '../escape.ts';

const NAME = new RegExp(NAME_PATTERN);

/** Removes folders `ConfigDir.ensure` made (and what was put in them since). */
export function removeDirs(made: readonly string[]): void {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
}
const SHA = /^[0-9a-f]{64}$/;
/**
 * Largest JSON file read back from the directory. Far above what the daemon writes (a declaration
 * holds a spec from a create body of at most ~23 MiB, pretty-printed), yet a bound: a file that
 * is not the daemon's (a device behind a symlink, a FIFO, a directory) is refused by name.
 */
export const MAX_CONFIG_FILE_BYTES = 256 << 20;
const storageError = (message: string, cause?: unknown) => new StorageError(message, { cause });

/** The text of a JSON configuration file, parsed and checked: ERR_INVALID_ARGUMENT naming `where` and the problem. */
export function parseConfigJson<T extends TSchema>(text: string, schema: T, where: string): Static<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`${where} is not JSON: ${(error as Error).message}`);
  }
  // rbac.json and policy.json are edited by hand: a key given twice would be read one way by
  // their reviewer and another by JSON.parse (the last wins).
  refuseDuplicateKeys(text, where);
  return check(schema, value, where);
}

export class ConfigDir {
  readonly root: string;
  private lockFd: number | null = null;

  constructor(root: string) {
    // '' resolves to the working directory: an unset "$CONFIG" would make a host (data, tls,
    // tokens, ...) of whatever folder the command ran in.
    if (typeof root !== 'string' || root === '') throw new InvalidArgumentError(`--config: expected a host config directory, got ${quoted(String(root))}`);
    this.root = path.resolve(root);
  }

  path(...parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  get dataDir(): string {
    return this.path('data');
  }
  get tokensDir(): string {
    return this.path('tokens');
  }
  get tlsDir(): string {
    return this.path('tls');
  }

  /**
   * Creates the directory tree (0700). Returns the folders it made, outermost first (the root or a
   * parent of it, then any missing subfolder of a root that was there), so that a serve that then
   * fails can remove them; if it fails itself, it removes them.
   */
  ensure(): string[] {
    const made: string[] = [];
    try {
      for (const d of ['', 'partitions', 'modules', 'tokens', 'tls', 'data']) {
        const first = makeDirsSync(this.path(d), 0o700);
        if (first !== undefined && (made.length === 0 || !first.startsWith(made[0]! + path.sep))) made.push(first);
      }
      return made;
    } catch (error) {
      removeDirs(made);
      throw new StorageError(`cannot create the config directory ${this.root}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Takes the directory for this process: `serve.lock` is created exclusively with our pid. A
   * lock left by a process that no longer runs (a SIGKILLed daemon) is taken over; a lock held by
   * a live process refuses with ERR_INVALID_STATE naming its pid.
   */
  lock(): void {
    const file = this.path('serve.lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        writeSync(fd, `${process.pid}\n`);
        this.lockFd = fd;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new StorageError(`cannot create ${file}: ${(error as Error).message}`);
      }
      const pid = Number.parseInt(readRegularFileSync(file, { maxBytes: 64, what: 'lock file', error: storageError }).toString('utf8').trim(), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new InvalidStateError(`another wasmvisor serve (pid ${pid}) is using ${this.root}; stop it first`);
      }
      // Stale: its owner is gone.
      try {
        unlinkSync(file);
      } catch {
        // Someone else took it over first; the next attempt finds out.
      }
    }
    throw new InvalidStateError(`cannot take the lock ${file}`);
  }

  /** True while this process holds the lock (between lock() and unlock()). */
  get locked(): boolean {
    return this.lockFd !== null;
  }

  unlock(): void {
    if (this.lockFd === null) return;
    closeSync(this.lockFd);
    this.lockFd = null;
    try {
      unlinkSync(this.path('serve.lock'));
    } catch {
      // Already gone.
    }
  }

  /** Writes `data` as JSON to `file` (relative to the root) atomically, mode 0600. */
  async writeJson(file: string, data: unknown): Promise<void> {
    const target = this.path(file);
    const tmp = `${target}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
      await rename(tmp, target);
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw new StorageError(`cannot write ${target}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Reads and validates a JSON file; `fallback` when it does not exist. */
  async readJson<T extends TSchema>(file: string, schema: T, fallback: Static<T>): Promise<Static<T>> {
    let text: string;
    try {
      text = (await readRegularFile(this.path(file), { maxBytes: MAX_CONFIG_FILE_BYTES, what: 'config file', error: storageError })).toString('utf8');
    } catch (error) {
      if (isMissingFile(error)) return fallback;
      throw error;
    }
    return parseConfigJson(text, schema, this.path(file));
  }

  readRbac(): Promise<RbacFile> {
    return this.readJson('rbac.json', RbacFile, {});
  }

  /** Where the admission policy lives; key files and folders it names are relative to the config directory. */
  get policyFile(): string {
    return this.path('policy.json');
  }

  /** The policy document, or null when there is no policy file. */
  readPolicy(): Promise<PolicyDocument | null> {
    return this.readJson('policy.json', PolicySchema, null as unknown as PolicyDocument);
  }

  /** Writes the policy file atomically, or removes it (null: no policy). */
  async writePolicy(policy: PolicyDocument | null): Promise<void> {
    if (policy !== null) return this.writeJson('policy.json', policy);
    await unlink(this.policyFile).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw new StorageError(`cannot remove ${this.policyFile}: ${error.message}`);
    });
  }

  /** The names of declared partitions (files that do not carry a valid name are ignored). */
  async declaredNames(): Promise<string[]> {
    const files = await readdir(this.path('partitions')).catch(() => [] as string[]);
    return files.filter((f) => f.endsWith('.json') && NAME.test(f.slice(0, -5))).map((f) => f.slice(0, -5)).sort();
  }

  readDeclared(name: string): Promise<DeclaredPartition> {
    checkName(name);
    return this.readJson(`partitions/${name}.json`, DeclaredPartition, undefined as unknown as DeclaredPartition).then((d) => {
      if (d === undefined) throw new InvalidArgumentError(`partition ${name} is not declared`);
      if (d.spec.name !== name) throw new InvalidArgumentError(`${this.path('partitions', `${name}.json`)} declares ${quoted(d.spec.name)}`);
      return d;
    });
  }

  writeDeclared(d: DeclaredPartition): Promise<void> {
    checkName(d.spec.name);
    return this.writeJson(`partitions/${d.spec.name}.json`, d);
  }

  async removeDeclared(name: string): Promise<void> {
    checkName(name);
    await unlink(this.path('partitions', `${name}.json`)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw new StorageError(`cannot remove the declaration of ${name}: ${error.message}`);
    });
  }

  /** Stores module bytes under their SHA-256; returns the digest. */
  async storeModule(bytes: Uint8Array): Promise<string> {
    const sha = crypto.createHash('sha256').update(bytes).digest('hex');
    const target = this.path('modules', `${sha}.wasm`);
    const tmp = `${target}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, bytes, { mode: 0o600, flag: 'wx' });
      await rename(tmp, target);
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw new StorageError(`cannot store module ${sha}: ${(error as Error).message}`, { cause: error });
    }
    return sha;
  }

  /** Module bytes by digest, checked against it (a changed file is ERR_INTEGRITY at load, via the pin). */
  async readModule(sha: string): Promise<Uint8Array> {
    if (!SHA.test(sha)) throw new InvalidArgumentError(`${quoted(sha)} is not a module digest`);
    return readRegularFile(this.path('modules', `${sha}.wasm`), { maxBytes: MAX_MODULE_BYTES, what: 'module file', error: storageError });
  }

  /** Removes modules no declaration refers to. */
  async pruneModules(keep: ReadonlySet<string>): Promise<void> {
    const files = await readdir(this.path('modules')).catch(() => [] as string[]);
    await Promise.all(files.filter((f) => f.endsWith('.wasm') && !keep.has(f.slice(0, -5))).map((f) => unlink(this.path('modules', f)).catch(() => {})));
  }
}

function checkName(name: string): void {
  // Names become file names: the pattern admits no '/' and no leading '.', so never '..'.
  if (!NAME.test(name)) throw new InvalidArgumentError(`partition name ${quoted(name)} is not valid`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
