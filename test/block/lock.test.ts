/**
 * The cross-process lock of an attached image (host/storage/lock.ts), in one process: who holds
 * it and how that is told, when a lock is stale (dead holder, another boot, a record nobody can
 * read that is old) and when it is not (a live holder, another host, a fresh unreadable record),
 * waiting for a holder to let go, and releasing only one's own lock.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileLock, LockedError, alive, bootId, describeHolder, lockHolder, processStart, type LockHolder } from '../../host/storage/lock.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'wv-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The pid of a process that has exited (and, on Linux, was not reused since: checked by its start). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid!;
}

function record(over: Partial<LockHolder>): LockHolder {
  return { pid: process.pid, host: os.hostname(), boot: bootId(), start: processStart(process.pid), since: '2026-01-01T00:00:00.000Z', purpose: 'partition other', token: 'feedfacefeedface', ...over };
}

// First in the file: bootId() reads the kernel's boot id once (then it is cached), so the test that
// checks what it read must be the first to ask.
describe('boot id', () => {
  it('is the kernel’s, without its newline', () => {
    expect(bootId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });
});

describe('FileLock', () => {
  it('records who holds it; a second taker is refused with a message naming the holder', async () => {
    const file = path.join(dir, 'a.img.lock');
    const lock = await FileLock.acquire(file, 'partition web');
    const holder = await lockHolder(file);
    expect(holder).toEqual(lock.holder);
    expect(holder).toMatchObject({ pid: process.pid, host: os.hostname(), boot: bootId(), start: processStart(process.pid), purpose: 'partition web' });
    expect(holder!.token).toMatch(/^[0-9a-f]{16}$/);
    expect(Date.parse(holder!.since)).not.toBeNaN();
    const refused = await FileLock.acquire(file, 'partition other').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LockedError);
    expect((refused as LockedError).holder).toEqual(lock.holder);
    expect((refused as LockedError).message).toBe(`${file} is locked by process ${process.pid} on host ${os.hostname()}, this process (partition web, since ${holder!.since})`);
    await lock.release();
    await lock.release(); // idempotent
    expect(existsSync(file)).toBe(false);
    expect(await lockHolder(file)).toBeNull();
  });

  it('refuses with a LockedError (its name says so in a stack trace or a log)', async () => {
    const file = path.join(dir, 'b.img.lock');
    const lock = await FileLock.acquire(file, 'partition web');
    const refused = await FileLock.acquire(file, 'partition other').catch((e: unknown) => e);
    expect((refused as Error).name).toBe('LockedError');
    await lock.release();
  });

  it('release of a lock whose file was removed, or replaced by something unreadable, returns quietly and leaves what is there', async () => {
    const file = path.join(dir, 'c.img.lock');
    const gone = await FileLock.acquire(file, 'partition web');
    rmSync(file);
    await expect(gone.release()).resolves.toBeUndefined();
    const replaced = await FileLock.acquire(file, 'partition web');
    writeFileSync(file, 'not a lock record');
    await expect(replaced.release()).resolves.toBeUndefined();
    expect(readFileSync(file, 'utf8')).toBe('not a lock record');
  });

  it('a record with a field missing or of the wrong type is unreadable: a fresh one is respected, naming no holder', async () => {
    const file = path.join(dir, 'f.img.lock');
    const { pid, host, boot, token } = record({});
    for (const bad of [{ host, boot, token }, { pid: String(pid), host, boot, token }, { pid, host: 7, boot, token }, { pid, host, boot: 7, token }, { pid, host, boot }]) {
      writeFileSync(file, JSON.stringify(bad));
      const refused = await FileLock.acquire(file, 'partition web').catch((e: unknown) => e);
      expect(refused, JSON.stringify(bad)).toBeInstanceOf(LockedError);
      expect((refused as LockedError).holder, JSON.stringify(bad)).toBeNull();
      expect(await lockHolder(file)).toBeNull();
    }
  });

  it('never reads a lock through a symlink in its place', async () => {
    const target = path.join(dir, 'elsewhere');
    writeFileSync(target, JSON.stringify(record({ purpose: 'planted' })));
    const file = path.join(dir, 'd.img.lock');
    symlinkSync(target, file);
    await expect(lockHolder(file)).rejects.toMatchObject({ code: 'ELOOP' });
  });

  it('describes a holder in another process or on another host without ", this process"', () => {
    expect(describeHolder(null)).toBe('a process that left no readable lock record');
    expect(describeHolder(record({ pid: process.pid + 1, since: 'S', purpose: 'p' }))).toBe(`process ${process.pid + 1} on host ${os.hostname()} (p, since S)`);
    expect(describeHolder(record({ host: 'elsewhere', since: 'S', purpose: 'p' }))).toBe(`process ${process.pid} on host elsewhere (p, since S)`);
  });

  it('breaks the lock of a holder that died, or of one from before a reboot, or of a reused pid', async () => {
    for (const stale of [record({ pid: deadPid() }), record({ boot: 'another-boot' }), record({ start: 'not-my-start-time' })]) {
      const file = path.join(dir, `${stale.token}-${stale.pid}-${stale.boot}-${stale.start}.lock`);
      writeFileSync(file, JSON.stringify(stale));
      expect(await lockHolder(file), JSON.stringify(stale)).toBeNull();
      const lock = await FileLock.acquire(file, 'partition web');
      expect(JSON.parse(readFileSync(file, 'utf8')).token).toBe(lock.holder.token);
      expect(existsSync(`${file}.break`)).toBe(false);
      await lock.release();
    }
  });

  it("never breaks a live holder's lock, nor one taken on another host (its processes cannot be seen)", async () => {
    for (const held of [record({}), record({ host: 'elsewhere', pid: deadPid() })]) {
      const file = path.join(dir, `${held.host}.lock`);
      writeFileSync(file, JSON.stringify(held));
      expect(await lockHolder(file)).toEqual(held);
      await expect(FileLock.acquire(file, 'x')).rejects.toThrow(LockedError);
      // Releasing a lock that is not this lock's leaves it.
      const other = await FileLock.acquire(path.join(dir, 'mine.lock'), 'x');
      await other.release();
      expect(existsSync(file)).toBe(true);
    }
  });

  it('an unreadable record is a lock being written while fresh, and stale once older than 10 s', async () => {
    const file = path.join(dir, 'garbage.lock');
    writeFileSync(file, '{"pid": ');
    expect(await lockHolder(file)).toBeNull();
    const refused = await FileLock.acquire(file, 'x').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LockedError);
    expect((refused as LockedError).holder).toBeNull();
    expect((refused as LockedError).message).toBe(`${file} is locked by a process that left no readable lock record`);
    const old = (Date.now() - 11_000) / 1000;
    utimesSync(file, old, old);
    const lock = await FileLock.acquire(file, 'x');
    await lock.release();
  });

  it('a record missing a field is unreadable; optional fields get defaults', async () => {
    const file = path.join(dir, 'partial.lock');
    const { token: _token, ...noToken } = record({});
    writeFileSync(file, JSON.stringify(noToken));
    await expect(FileLock.acquire(file, 'x')).rejects.toThrow('no readable lock record');
    const { start: _s, since: _t, purpose: _p, ...minimal } = record({});
    writeFileSync(file, JSON.stringify(minimal));
    expect(await lockHolder(file)).toEqual({ ...minimal, start: '', since: '?', purpose: '?' });
  });

  it('waits for a live holder to let go, up to waitMs', async () => {
    const file = path.join(dir, 'wait.lock');
    const first = await FileLock.acquire(file, 'first');
    setTimeout(() => void first.release(), 50);
    const second = await FileLock.acquire(file, 'second', 20_000);
    expect((await lockHolder(file))?.purpose).toBe('second');
    await second.release();
  });
});

describe('process identity', () => {
  it('a process is alive with its own start time, not with another one; a dead one is not', () => {
    const start = processStart(process.pid);
    expect(start).toMatch(/^\d+$/); // Linux: clock ticks since boot
    expect(processStart(process.pid)).toBe(start);
    expect(alive(process.pid, start)).toBe(true);
    expect(alive(process.pid, '')).toBe(true);
    expect(alive(process.pid, String(Number(start) + 1))).toBe(false);
    const dead = deadPid();
    expect(alive(dead, '')).toBe(false);
    expect(processStart(dead)).toBe('');
  });

  it('a start time is field 22 of /proc/<pid>/stat, counted after the command name', () => {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const field22 = /\) \S+(?: \S+){18} (\d+)/.exec(stat.slice(stat.lastIndexOf(')')))![1];
    expect(processStart(process.pid)).toBe(field22);
  });

  it('the boot id is the kernel’s', () => {
    expect(bootId()).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(bootId()).toBe(bootId());
  });
});
