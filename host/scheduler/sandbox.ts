import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { processScript } from '../paths.ts';

/**
 * How a partition process is started (`isolation: 'process'`): the walls around the child that
 * do not depend on the hypervisor's own checks.
 *
 * - Node's permission model (`--experimental-permission`): the child may start no child process,
 *   no worker thread, load no addon, and read or write no file by path but inside the host
 *   folders its WASI preopens grant (`ro`: read; `rw`: read and write; `copy` folders are copied
 *   into the worker's memory by the root and need nothing). Every descriptor it uses is opened by
 *   the root and inherited at a fixed number (ChildFd): its code (closed by the bootstrap once
 *   read), its channel, a block image, the host files its console writes directly
 *   (devices.console.outputFd), and each host folder, which it reaches only as
 *   `/proc/self/fd/<n>` (host/wasi/hostfs.ts) — so the grant names that descriptor, not a path
 *   that could be swapped.
 * - An unprivileged identity when the root runs as root: `nobody` (uid/gid from /etc/passwd,
 *   else 65534), or the embedder's choice; supplementary groups dropped (libuv does so when it
 *   sets the ids). Not root, the child runs as the root's own user: the model still holds.
 * - OS resource limits, set by `/bin/sh`'s `ulimit` before it execs Node (where /bin/sh exists):
 *   open files, no core dumps (a core would hold guest memory), address space, and optionally
 *   CPU seconds. Node's own `--max-old-space-size` bounds its heap.
 * - An empty environment and `/` as the working directory: nothing of the root's environment
 *   (keys, tokens) reaches the child.
 */

/** Settings of partition processes (HypervisorOptions.process). */
export interface SandboxOptions {
  /**
   * Run as this user when the root is root: uid and gid. Default: the `nobody` account. Ignored
   * (the child keeps the root's identity) when the root is not root.
   */
  user: { uid: number; gid: number } | null;
  /** Open files (RLIMIT_NOFILE). */
  maxOpenFiles: number;
  /** Address space, MiB (RLIMIT_AS): a Wasm memory reserves about 10 GiB of it (guard regions). */
  addressSpaceMb: number;
  /** CPU seconds (RLIMIT_CPU), or null for none (a reactor lives long; fuel and watchdogs bound a guest's time). */
  cpuSeconds: number | null;
  /** The JS heap (old generation), MiB. */
  heapMb: number;
}

/** Descriptors of the child (the bootstrap and the process code rely on them). */
export const CHANNEL_FD = 3;
export const CODE_FD = 4;
export const BLOCK_FD = 5;
/** The console's direct outputs (devices.console.outputFd), stdout and stderr. */
export const OUTPUT_FDS = { stdout: 6, stderr: 7 } as const;
/** The first host folder of the WASI preopens; the others follow. */
export const FOLDER_FD_BASE = 8;
/**
 * Most host folders (WASI `ro` / `rw` preopens) a partition process takes: their descriptors sit
 * below its open-file limit with room for the files its guest opens in them.
 */
export const MAX_PROCESS_FOLDERS = 16;

/** What the root opened for a partition process, each given to it at its ChildFd. */
export interface ChildFds {
  block: number | null;
  outputs: { stdout: number | null; stderr: number | null };
  /** Host folders, in preopen order, and whether the guest may write in each. */
  folders: { fd: number; write: boolean }[];
}

export const DEFAULT_SANDBOX: Omit<SandboxOptions, 'user'> = {
  maxOpenFiles: 64,
  addressSpaceMb: 32 * 1024,
  cpuSeconds: null,
  heapMb: 64,
};

/**
 * The most memory a partition process itself may take beyond its guest's linear memory, for
 * admission control: its heap limit, V8's young generation and code, and Node's own footprint
 * (bench/process.mjs measures a process partition's RSS under it).
 */
export function processMemoryBytes(o: Pick<SandboxOptions, 'heapMb'>): number {
  return (o.heapMb + 48) * 1024 * 1024;
}

/**
 * The child's first code, given on the command line: it reads the process bundle from fd 4 (a
 * CommonJS bundle, host/worker/process-entry.ts) and runs it. Reading an inherited descriptor
 * is not a path read: the permission model allows it while it denies every path.
 */
const BOOTSTRAP = `'use strict';
const fs = require('node:fs');
const code = fs.readFileSync(${CODE_FD}, 'utf8');
fs.closeSync(${CODE_FD});
const module_ = { exports: {} };
require('node:vm').runInThisContext('(function (exports, require, module) {' + code + '\\n})', { filename: 'wasmvisor-process.cjs' })(module_.exports, require, module_);
`;

let nobody: { uid: number; gid: number } | null = null;

/** The `nobody` account's ids (65534 when /etc/passwd does not name it). */
export function nobodyUser(): { uid: number; gid: number } {
  if (nobody !== null) return nobody;
  nobody = { uid: 65534, gid: 65534 };
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('nobody:'));
    const [, , uid, gid] = line?.split(':') ?? [];
    if (uid !== undefined && gid !== undefined && /^\d+$/.test(uid) && /^\d+$/.test(gid)) nobody = { uid: Number(uid), gid: Number(gid) };
  } catch {
    // No /etc/passwd: the conventional ids.
  }
  return nobody;
}

/** The identity a partition process gets: null keeps the root's (the root is not root, or the platform has no uids). */
export function childIdentity(options: SandboxOptions): { uid: number; gid: number } | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  return options.user ?? nobodyUser();
}

const SH = '/bin/sh';

/** CPU seconds past the soft limit (SIGXCPU) before the hard one (SIGKILL). */
export const CPU_GRACE_SECONDS = 5;

/** The shell's `ulimit` commands for the limits, or null where there is no POSIX shell. */
function limitCommands(o: SandboxOptions): string | null {
  if (process.platform === 'win32' || !existsSync(SH)) return null;
  const cmds = [`ulimit -n ${o.maxOpenFiles}`, 'ulimit -c 0', `ulimit -v ${o.addressSpaceMb * 1024}`];
  // CPU seconds: the soft limit sends SIGXCPU (the partition ends with ERR_LIMIT_CPU); the hard
  // one, a grace later, SIGKILL for a child that ignored it. Equal limits would kill at once with
  // SIGKILL, which says nothing of why. Soft first: a soft limit above the hard one is refused.
  if (o.cpuSeconds !== null) cmds.push(`ulimit -S -t ${o.cpuSeconds}`, `ulimit -H -t ${o.cpuSeconds + CPU_GRACE_SECONDS}`);
  // The shell exports the variables it sets itself (PWD): the child's environment stays empty.
  cmds.push('unset PWD OLDPWD');
  return cmds.join(' && ');
}

/**
 * The Node flags of a partition process: the permission model, with a grant for each host folder
 * (`folders`, in ChildFds order) by its descriptor's /proc path, writes only where `write`.
 */
export function childNodeFlags(o: SandboxOptions, folders: readonly { write: boolean }[] = []): string[] {
  const grants = folders.flatMap((f, i) => {
    const where = `/proc/self/fd/${FOLDER_FD_BASE + i}`;
    return f.write ? [`--allow-fs-read=${where}`, `--allow-fs-write=${where}`] : [`--allow-fs-read=${where}`];
  });
  return ['--experimental-permission', ...grants, '--no-warnings', `--max-old-space-size=${o.heapMb}`, '--max-semi-space-size=4'];
}

export interface Sandboxed {
  child: ChildProcess;
  /** The root's end of the channel (the child's fd 3). */
  channel: Socket;
}

/**
 * Starts a partition process with the root's descriptors `fds`, each at its ChildFd (the caller
 * keeps and closes its own). `code`: the process bundle to run (tests start a stand-in child;
 * default the shipped one). Throws when the process cannot be spawned (the caller ends the run
 * with the reason).
 */
export function startSandboxed(options: SandboxOptions, fds: ChildFds, code: URL = processScript): Sandboxed {
  if (fds.folders.length > MAX_PROCESS_FOLDERS) throw new RangeError(`a partition process takes at most ${MAX_PROCESS_FOLDERS} host folders (${fds.folders.length} given)`);
  const codeFd = openSync(code, 'r');
  try {
    const argv = [...childNodeFlags(options, fds.folders), '-e', BOOTSTRAP];
    const limits = limitCommands(options);
    const [file, args] = limits === null ? [process.execPath, argv] : [SH, ['-c', `${limits} && exec "$0" "$@"`, process.execPath, ...argv]];
    const identity = childIdentity(options);
    const child = spawn(file, args, {
      // Absent ones are /dev/null, so each keeps its number.
      stdio: ['ignore', 'ignore', 'pipe', 'pipe', codeFd, fds.block ?? 'ignore', fds.outputs.stdout ?? 'ignore', fds.outputs.stderr ?? 'ignore', ...fds.folders.map((f) => f.fd)],
      env: {},
      cwd: '/',
      ...(identity !== null ? { uid: identity.uid, gid: identity.gid } : {}),
      windowsHide: true,
    });
    const channel = child.stdio[CHANNEL_FD] as Socket | null;
    if (channel === null || channel === undefined) {
      child.kill('SIGKILL');
      throw new Error('the partition process has no channel');
    }
    return { child, channel };
  } finally {
    // The child has its own copy of the descriptor (or never started).
    closeSync(codeFd);
  }
}
