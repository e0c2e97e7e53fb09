/**
 * Exclusive locks on files of the data directory, between processes (and between Hypervisors of
 * one process): an image while a partition has it attached, the keystore while an update reads
 * and rewrites it.
 *
 * A lock is a file `<path>` holding who took it (pid, host, boot id, the process's start time, and
 * why), written to a temporary file (O_CREAT | O_EXCL | O_NOFOLLOW) and hard-linked into place:
 * atomic on every local file system, never through a planted symlink, and never visible without
 * its record. Node has no flock(), so a lock left by a process that died is
 * recognised instead of released by the kernel: it is stale when it was taken on this host and
 * either in an earlier boot or by a process that no longer exists (a pid reused by another
 * process is told apart by its start time, on Linux). A lock taken on another host (a shared
 * volume) is never broken automatically; the error names its holder.
 *
 * Breaking a stale lock is itself done under a second lock (`<path>.break`), and only after
 * reading the stale holder again under it: two processes finding the same stale lock cannot
 * both take over, and a fresh lock is never removed as stale. A breaker that dies inside that
 * short section leaves `<path>.break`, which is removed once it is older than BREAK_STALE_MS.
 */
import { randomBytes } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { link, open, stat, unlink } from 'node:fs/promises';
import os from 'node:os';

/** Who holds a lock, as written in the lock file. */
export interface LockHolder {
  pid: number;
  host: string;
  /** The kernel's boot id (Linux) or the boot time; tells a lock from before a reboot. */
  boot: string;
  /** The holder's start time (Linux: /proc/<pid>/stat field 22), '' where unknown. */
  start: string;
  /** ISO time the lock was taken. */
  since: string;
  /** What the lock is for, e.g. "partition web". */
  purpose: string;
  /** Random: tells this lock from a later one of the same process. */
  token: string;
}

/** A lock is held by a live process (or one on another host): refused. */
export class LockedError extends Error {
  constructor(
    readonly file: string,
    readonly holder: LockHolder | null,
  ) {
    super(`${file} is locked by ${describeHolder(holder)}`);
    this.name = 'LockedError';
  }
}

/** "process 1234 on host h (partition web, since 2025-…)", for error messages. */
export function describeHolder(holder: LockHolder | null): string {
  if (holder === null) return 'a process that left no readable lock record';
  const self = holder.pid === process.pid && holder.host === os.hostname() ? ', this process' : '';
  return `process ${holder.pid} on host ${holder.host}${self} (${holder.purpose}, since ${holder.since})`;
}

/** A lock file whose record cannot be read (not written by this code) is stale once it is older than this. */
const UNREADABLE_STALE_MS = 10_000;
/** A `.break` lock older than this belongs to a breaker that died. */
const BREAK_STALE_MS = 10_000;
// Stryker disable next-line LogicalOperator: equivalent: O_CREAT | O_EXCL already refuses a symlink in the name's place (EEXIST, even a dangling one); O_NOFOLLOW says so twice
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

export class FileLock {
  private released = false;

  private constructor(
    readonly file: string,
    readonly holder: LockHolder,
  ) {}

  /**
   * Takes the lock at `file`, breaking it if stale. Waits up to `waitMs` (polling) while a live
   * process holds it, then throws LockedError naming the holder.
   */
  static async acquire(file: string, purpose: string, waitMs = 0): Promise<FileLock> {
    const deadline = Date.now() + waitMs;
    // Stryker disable next-line UpdateOperator: equivalent: the attempt count only sets the poll interval (below)
    for (let attempt = 0; ; attempt++) {
      const holder = ownRecord(purpose);
      if (await tryCreate(file, holder)) return new FileLock(file, holder);
      const found = await readHolder(file);
      if (found.kind === 'gone') continue;
      if (await isStale(file, found)) {
        await breakStale(file, found.raw);
        continue;
      }
      const holding = found.kind === 'held' ? found.holder : null;
      // Stryker disable next-line EqualityOperator: equivalent: at the deadline's own millisecond, one more poll of at most 50 ms
      if (Date.now() >= deadline) throw new LockedError(file, holding);
      // Stryker disable next-line MethodExpression,ArithmeticOperator: equivalent: the poll interval (5 ms doubling to 50) is timing only; no outcome depends on it
      await sleep(Math.min(5 * 2 ** Math.min(attempt, 4), 50));
    }
  }

  /** Removes the lock file if it is still this lock. Idempotent. */
  async release(): Promise<void> {
    // Stryker disable next-line ConditionalExpression: equivalent: a second release finds the file gone or another's lock (another token), and leaves it
    if (this.released) return;
    // Stryker disable next-line BooleanLiteral: equivalent, as above
    this.released = true;
    const found = await readHolder(this.file);
    if (found.kind === 'held' && found.holder.token === this.holder.token) await unlink(this.file).catch(() => undefined);
  }
}

/** Reads the holder of a lock without taking it (null when the file is not locked or unreadable). */
export async function lockHolder(file: string): Promise<LockHolder | null> {
  const found = await readHolder(file);
  if (found.kind !== 'held') return null;
  return (await isStale(file, found)) ? null : found.holder;
}

type Found = { kind: 'gone' } | { kind: 'held'; holder: LockHolder; raw: string } | { kind: 'unreadable'; raw: string };

/**
 * Creates the lock file with its record already in it: the record is written to a temporary file
 * first and then hard-linked to the lock's name (atomic, and EEXIST when the lock exists), so a
 * lock is never seen without its holder.
 */
async function tryCreate(file: string, holder: LockHolder): Promise<boolean> {
  const tmp = `${file}.${holder.token}.tmp`;
  const handle = await open(tmp, CREATE_FLAGS, 0o600);
  try {
    try {
      await handle.writeFile(JSON.stringify(holder));
    } finally {
      await handle.close();
    }
    await link(tmp, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function readHolder(file: string): Promise<Found> {
  let raw: string;
  try {
    const handle = await open(file, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    try {
      raw = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'gone' };
    throw error;
  }
  try {
    const h = JSON.parse(raw) as Partial<LockHolder>;
    if (typeof h.pid === 'number' && typeof h.host === 'string' && typeof h.boot === 'string' && typeof h.token === 'string') {
      return {
        kind: 'held',
        raw,
        holder: { pid: h.pid, host: h.host, boot: h.boot, start: String(h.start ?? ''), since: String(h.since ?? '?'), purpose: String(h.purpose ?? '?'), token: h.token },
      };
    }
  } catch {
    // falls through: a lock file being written, or garbage
  }
  return { kind: 'unreadable', raw };
}

async function isStale(file: string, found: Exclude<Found, { kind: 'gone' }>): Promise<boolean> {
  if (found.kind === 'unreadable') {
    // Stryker disable next-line ArrowFunction: equivalent: a file gone meanwhile has age 0 or undefined, and neither is above the limit
    const age = await stat(file).then((s) => Date.now() - s.mtimeMs, () => 0);
    // Stryker disable next-line EqualityOperator: equivalent: the ages differ by the one millisecond at the limit, which no clock the tests can hold tells apart
    return age > UNREADABLE_STALE_MS;
  }
  const h = found.holder;
  if (h.host !== os.hostname()) return false;
  if (!sameBoot(h.boot, bootId())) return true;
  return !alive(h.pid, h.start);
}

async function breakStale(file: string, staleRaw: string): Promise<void> {
  const breaker = `${file}.break`;
  const me = ownRecord('breaking a stale lock');
  if (!(await tryCreate(breaker, me))) {
    const age = await stat(breaker).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > BREAK_STALE_MS) await unlink(breaker).catch(() => undefined);
    else await sleep(5);
    return;
  }
  try {
    // Under the break lock nobody else removes the lock file, and a new one cannot appear while
    // the stale one exists: if it still holds the stale record, removing it removes only that.
    const now = await readHolder(file);
    if (now.kind !== 'gone' && now.raw === staleRaw) await unlink(file).catch(() => undefined);
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}

function ownRecord(purpose: string): LockHolder {
  return {
    pid: process.pid,
    host: os.hostname(),
    boot: bootId(),
    start: processStart(process.pid),
    since: new Date().toISOString(),
    purpose,
    token: randomBytes(8).toString('hex'),
  };
}

let cachedBoot: string | null = null;
/** The kernel's boot id on Linux; elsewhere `t:<boot time in seconds>` (compared with a tolerance). */
export function bootId(): string {
  // Stryker disable next-line ConditionalExpression: equivalent: reading the boot id again gives the same id (the cache saves the read)
  if (cachedBoot !== null) return cachedBoot;
  try {
    cachedBoot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    cachedBoot = `t:${Math.round(Date.now() / 1000 - os.uptime())}`;
  }
  return cachedBoot;
}

/** Boot times computed from the uptime drift by a few seconds; two minutes apart is another boot. */
function sameBoot(a: string, b: string): boolean {
  // Stryker disable next-line StringLiteral,LogicalOperator: equivalent: a boot id and a boot time never match either way (the id's tail is not a number: NaN is never within 120)
  if (a.startsWith('t:') && b.startsWith('t:')) return Math.abs(Number(a.slice(2)) - Number(b.slice(2))) < 120;
  return a === b;
}

/** A process's start time in clock ticks since boot (Linux), or '' where the platform does not say. */
export function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Stryker disable next-line StringLiteral: equivalent on Linux: /proc/<pid>/stat has 50 fields after the command name, never fewer than 20
    return fields[19] ?? '';
  } catch {
    return '';
  }
}

/** Whether process `pid` still runs and is the one that started at `start` (when known). */
export function alive(pid: number, start: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: no such process
  }
  if (start === '') return true;
  const now = processStart(pid);
  return now === '' || now === start;
}

// Stryker disable next-line BlockStatement: equivalent: without the pause the poll runs again at once (timing only)
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
