/**
 * Host folders as WASI preopens: `ro` (the default) reads in place and lazily, `rw` writes in
 * place and never outside, `copy` is a private in-memory copy; quotas as flags; a host process
 * that plants symlinks or special files cannot widen what the guest reaches; host fds never
 * leak, even from a worker the watchdog terminated. Through the real CLI and the library.
 */
import { execFile, execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, ftruncateSync, linkSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { guest } from '../helpers.ts';
import { wat } from '../loader/wat.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(root, 'dist/cli.js');
const STREAM = path.join(root, 'guests/c/stream.wasm');
const CAT = path.join(root, 'guests/c/cat.wasm');

let work: string;
beforeAll(() => {
  guest('hello');
  work = mkdtempSync(path.join(tmpdir(), 'wasmvisor-preopens-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function folder(name: string, files: Record<string, string> = {}): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

function run(args: string[], timeout = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'run', ...args], { timeout, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Host fds of this process that point into `dir`. */
function fdsInto(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target === dir || target.startsWith(dir + '/')) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

describe('--dir modes through the CLI', () => {
  it('ro (the default) is lazy: a folder with a 2 GB file costs what the small file read costs; copy would refuse it', async () => {
    const dir = folder('big', { 'note.txt': 'small file\n' });
    const fd = openSync(path.join(dir, 'huge.bin'), 'w');
    ftruncateSync(fd, 2 ** 31); // sparse: 2 GiB that a copy would have to read
    closeSync(fd);
    const r = await run([CAT, '--dir', `${dir}::/data`, '--', '/data/note.txt']);
    expect(r).toEqual({ code: 0, stdout: 'small file\n', stderr: '' });
    // The guest can even read from the middle of the big file without it being copied anywhere.
    const tail = await run([STREAM, '--dir', `${dir}::/data`, '--', 'get', '/data/huge.bin', '4096']);
    expect(tail.code).toBe(0);
    expect(tail.stdout.length).toBe(4096);
    const copy = await run([CAT, '--dir', `${dir}::/data:copy`, '--', '/data/note.txt']);
    expect(copy.code).toBe(2);
    expect(copy.stderr).toMatch(/^ERR_INVALID_ARGUMENT: .*exceeds the WASI quota.*--wasi-quota/m);
  });

  it('ro refuses every change (EROFS), rw writes reach the folder, copy keeps them private', async () => {
    const dir = folder('modes', { 'keep.txt': 'original\n' });
    const ro = await run([STREAM, '--dir', `${dir}::/d`, '--', 'put', '/d/new.bin', '1000']);
    expect(ro).toMatchObject({ code: 4, stderr: 'stream: open /d/new.bin: errno 69\n' });
    const copy = await run([STREAM, '--dir', `${dir}::/d:copy`, '--', 'put', '/d/new.bin', '1000']);
    expect(copy.code).toBe(0);
    expect(existsSync(path.join(dir, 'new.bin'))).toBe(false);
    const rw = await run([STREAM, '--dir', `${dir}::/d:rw`, '--', 'put', '/d/new.bin', '100000']);
    expect(rw).toMatchObject({ code: 0, stderr: '' });
    expect(statSync(path.join(dir, 'new.bin')).size).toBe(100000);
    const back = await run([STREAM, '--dir', `${dir}::/d`, '--', 'get', '/d/new.bin']);
    expect(back.stdout.length).toBe(100000);
    expect(readFileSync(path.join(dir, 'keep.txt'), 'utf8')).toBe('original\n');
  });

  it('--wasi-quota bounds what a guest may add to an rw folder (ENOSPC), and raises the copy cap', async () => {
    const dir = folder('quota');
    const r = await run([STREAM, '--dir', `${dir}::/d:rw`, '--wasi-quota', 'bytes=100K', '--', 'put', '/d/big.bin', '1000000']);
    expect(r).toMatchObject({ code: 3, stderr: 'stream: write: errno 51\n' });
    // The name (7 bytes) and the contents fit in 100 KiB; the write that would pass it was refused whole.
    expect(statSync(path.join(dir, 'big.bin')).size).toBeLessThanOrEqual(100 * 1024 - 7);
    const big = folder('quota-copy', { 'a.bin': 'x'.repeat(20 << 20) });
    expect((await run([CAT, '--dir', `${big}::/d:copy`, '--', '/d/a.bin'])).code).toBe(2);
    const raised = await run([STREAM, '--dir', `${big}::/d:copy`, '--wasi-quota', 'bytes=64M', '--', 'get', '/d/a.bin']);
    expect(raised.code).toBe(0);
    expect(raised.stdout.length).toBe(20 << 20);
  });

  it('bad modes and quotas are ERR_INVALID_ARGUMENT (exit 2); help says ro is the default', async () => {
    for (const args of [
      ['--wasi-quota', 'bytes=lots'],
      ['--wasi-quota', 'files=10'],
      ['--wasi-quota', 'fds=2'],
      ['--wasi-quota', `bytes=${2 ** 41}`],
      ['--dir', '::/x:rw'],
      ['--dir', `${work}/missing::/x`],
    ]) {
      const r = await run([CAT, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: /m);
    }
    const help = await new Promise<string>((resolve) => execFile(process.execPath, [CLI, 'run', '--help'], (_e, out) => resolve(out)));
    expect(help).toMatch(/--dir <host>\[::<guest>\]\[:ro\|:rw\|:copy\]/);
    expect(help).toMatch(/ro\s+\(the default\)/);
    expect(help).toMatch(/--wasi-quota <k=v,\.\.\.>/);
    expect(help).toMatch(/--output-rate <bytes\/s>/);
  });

  it('a bad item of --wasi-quota is quoted within the whole value; T is a unit as help and README say', async () => {
    const r = await run([CAT, '--wasi-quota', 'bytes=1M,', '--', '/nothing']);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toBe('ERR_INVALID_ARGUMENT: --wasi-quota: expected <name>=<number>[K|M|G|T] for names bytes, inodes, fds, path (e.g. bytes=64M,inodes=10000), got "" in "bytes=1M,"\n');
    const help = (await run(['--help'])).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('sizes take K, M, G, T (powers of 1024)');
  });

  it('a quota named twice in --wasi-quota is refused naming it (exit 2), not the last value kept', async () => {
    for (const [quota, twice] of [
      ['bytes=64M,bytes=1M', 'bytes'],
      ['fds=256,inodes=100,FDS=8', 'fds'],
      ['path=4096,path=4096', 'path'],
    ]) {
      const r = await run([CAT, '--wasi-quota', quota!, '--', '/nothing']);
      expect(r.code, quota).toBe(2);
      expect(r.stderr).toContain(`ERR_INVALID_ARGUMENT: --wasi-quota: ${twice} is given twice in "${quota}"`);
      expect(r.stdout).toBe('');
    }
  });

  it('--wasi-quota given again adds its names (the first is not dropped); a name in two of them is refused', async () => {
    const dir = folder('quota-twice', { 'a.bin': 'x'.repeat(2000) });
    // The byte quota of the first occurrence still bounds the copy when the second gives fds.
    const kept = await run([CAT, '--dir', `${dir}::/d:copy`, '--wasi-quota', 'bytes=1K', '--wasi-quota', 'fds=8', '--', '/d/a.bin']);
    expect(kept.code).toBe(2);
    expect(kept.stderr).toMatch(/^ERR_INVALID_ARGUMENT: .*exceeds the WASI quota/m);
    const twice = await run([CAT, '--wasi-quota', 'bytes=1M', '--wasi-quota', 'fds=8,bytes=2M', '--', '/nothing']);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('ERR_INVALID_ARGUMENT: --wasi-quota: bytes is given in two --wasi-quota options (1048576 and 2097152); give each name at most once');
  });
});

/** A WASI reactor: `probe` opens "sub/file" (read) under fd 3 and returns the errno; `probeUp` opens "sub/../../x". */
const PROBE = wat(String.raw`(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "sub/file")
  (data (i32.const 16) "sub/../../x")
  (func $try (param $p i32) (param $n i32) (result i32) (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 1) (local.get $p) (local.get $n) (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 64)))
    (if (i32.eqz (local.get $e)) (then (drop (call $close (i32.load (i32.const 64))))))
    (local.get $e))
  (func (export "probe") (result i32) (call $try (i32.const 0) (i32.const 8)))
  (func (export "probeUp") (result i32) (call $try (i32.const 16) (i32.const 11))))`);

/** A WASI reactor: each export makes one path_link under fd 3 and returns its errno. */
const LINKER = wat(String.raw`(module
  (import "wasi_snapshot_preview1" "path_link" (func $link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "up/secret")
  (data (i32.const 16) "abs/secret")
  (data (i32.const 32) "../rw-links-outside/secret")
  (data (i32.const 64) "f")
  (data (i32.const 72) "h")
  (data (i32.const 80) "../h")
  (data (i32.const 88) "g")
  (data (i32.const 96) "up")
  (func (export "linkUpSymlink") (result i32) (call $link (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 9) (i32.const 3) (i32.const 72) (i32.const 1)))
  (func (export "linkAbsSymlink") (result i32) (call $link (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 10) (i32.const 3) (i32.const 72) (i32.const 1)))
  (func (export "linkDotDot") (result i32) (call $link (i32.const 3) (i32.const 0) (i32.const 32) (i32.const 26) (i32.const 3) (i32.const 72) (i32.const 1)))
  (func (export "linkToOutside") (result i32) (call $link (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 3) (i32.const 80) (i32.const 4)))
  (func (export "linkFollow") (result i32) (call $link (i32.const 3) (i32.const 1) (i32.const 96) (i32.const 2) (i32.const 3) (i32.const 72) (i32.const 1)))
  (func (export "linkInside") (result i32) (call $link (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 3) (i32.const 88) (i32.const 1))))`);

describe('a host folder changed under a running guest', () => {
  it('each resolution is checked afresh: a directory swapped for a symlink out of the folder is not followed', async () => {
    const dir = folder('swap', { 'sub/file': 'inside\n' });
    const outside = folder('outside', { 'file': 'secret\n', 'x': 'secret\n' });
    const hv = new Hypervisor();
    const p = await hv.createPartition({ name: 'probe', kind: 'reactor', module: PROBE, wasi: { preopens: [{ guestPath: '/d', hostPath: dir }] } });
    await p.start();
    const errno = async (fn: string): Promise<number> => p.call(fn).then(() => 0, (e: { status?: number }) => e.status ?? -1);
    expect(await errno('probe')).toBe(0);
    expect(await errno('probeUp')).toBe(76); // `..` above the preopen
    // A host process replaces sub by a symlink: absolute, then relative and climbing out.
    renameSync(path.join(dir, 'sub'), path.join(dir, 'old-sub'));
    symlinkSync(outside, path.join(dir, 'sub'));
    expect(await errno('probe')).toBe(76);
    rmSync(path.join(dir, 'sub'));
    symlinkSync(path.relative(dir, outside), path.join(dir, 'sub'));
    expect(await errno('probe')).toBe(76);
    // Inside the folder, a relative symlink is followed.
    rmSync(path.join(dir, 'sub'));
    symlinkSync('old-sub', path.join(dir, 'sub'));
    expect(await errno('probe')).toBe(0);
    await p.destroy();
    await hv.close();
  });

  it('rw: a guest\'s hard links stay inside: through a symlink, `..` or an absolute symlink out they are refused, and nothing is linked anywhere', async () => {
    const dir = folder('rw-links', { f: 'mine\n' });
    const outside = folder('rw-links-outside', { secret: 'secret\n' });
    symlinkSync('../rw-links-outside', path.join(dir, 'up'));
    symlinkSync(outside, path.join(dir, 'abs'));
    const hv = new Hypervisor();
    const p = await hv.createPartition({ name: 'links', kind: 'reactor', module: LINKER, wasi: { preopens: [{ guestPath: '/d', hostPath: dir, mode: 'rw' }] } });
    await p.start();
    const errno = async (fn: string): Promise<number> => p.call(fn).then(() => 0, (e: { status?: number }) => e.status ?? -1);
    expect(await errno('linkUpSymlink')).toBe(76); // ENOTCAPABLE
    expect(await errno('linkAbsSymlink')).toBe(76);
    expect(await errno('linkDotDot')).toBe(76);
    expect(await errno('linkToOutside')).toBe(76);
    expect(await errno('linkFollow')).toBe(28); // EINVAL: SYMLINK_FOLLOW, as Wasmtime
    expect(await errno('linkInside')).toBe(0);
    await p.destroy();
    await hv.close();
    // The one link made is in the folder, to the folder's file; nothing new anywhere else.
    expect(statSync(path.join(dir, 'g')).ino).toBe(statSync(path.join(dir, 'f')).ino);
    expect(statSync(path.join(outside, 'secret')).nlink).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(['abs', 'f', 'g', 'up']);
    expect(readdirSync(outside)).toEqual(['secret']);
    expect(existsSync(path.join(work, 'h'))).toBe(false);
  });

  it('special files are listed but never opened (EACCES), so a FIFO cannot block the guest', async () => {
    const dir = folder('special', { 'note': 'x' });
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    const r = await run([CAT, '--dir', `${dir}::/d`, '--', '/d/fifo', '/d/note'], 10_000);
    expect(r).toEqual({ code: 1, stdout: 'x', stderr: 'cat: /d/fifo: errno 2\n' });
  });

  it('a file the host hard-linked into the folder is in the folder (documented), and read-only stays read-only', async () => {
    const dir = folder('links', { 'mine': 'inside\n' });
    const outside = folder('links-outside', { 'secret': 'secret\n' });
    linkSync(path.join(outside, 'secret'), path.join(dir, 'planted'));
    const r = await run([CAT, '--dir', `${dir}::/d`, '--', '/d/planted']);
    // Documented (threat model): a file the host hard-linked into the folder is in the folder.
    expect(r.stdout).toBe('secret\n');
    expect(readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('secret\n');
  });
});

/** A WASI command that opens "note" `count` times (keeping every fd), then spins forever. */
const HOARD = wat(String.raw`(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "note")
  (func (export "_start") (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const 100)))
      (drop (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 64)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (loop $spin (br $spin))))`);

describe('host fds', () => {
  it('a worker terminated while it holds host fds leaks none of them', async () => {
    const dir = folder('hoard', { note: 'x' });
    const hv = new Hypervisor();
    const p = await hv.createPartition({ name: 'hoard', module: HOARD, limits: { timeoutMs: 500 }, wasi: { preopens: [{ guestPath: '/d', hostPath: dir }], quotas: { maxFds: 200 } } });
    expect(fdsInto(dir)).toEqual([dir]); // the preopen, opened by the root
    await p.start();
    const exit = await p.exited;
    expect(exit).toMatchObject({ state: 'killed', reason: 'ERR_LIMIT_CPU' });
    expect(fdsInto(dir)).toEqual([dir]);
    await p.destroy();
    expect(fdsInto(dir)).toEqual([]);
    await hv.close();
  });

  it('a refused createPartition leaves no fd open', async () => {
    const dir = folder('refused', { note: 'x' });
    const hv = new Hypervisor();
    await expect(hv.createPartition({ name: 'r', module: HOARD, wasi: { preopens: [{ guestPath: '/a', hostPath: dir }, { guestPath: '/b', hostPath: `${work}/nope` }] } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(hv.createPartition({ name: 'r', module: new Uint8Array([0, 1, 2]), wasi: { preopens: [{ guestPath: '/a', hostPath: dir }] } })).rejects.toMatchObject({ code: 'ERR_MODULE_INVALID' });
    expect(fdsInto(dir)).toEqual([]);
    await hv.close();
  });
});

describe('preopen specs', () => {
  it('mode is validated, and readonly: false without a mode asks for one', async () => {
    const dir = folder('spec');
    const hv = new Hypervisor();
    const bad = [
      { guestPath: '/d', hostPath: dir, mode: 'write' },
      { guestPath: '/d', mode: 'rw' },
      { guestPath: '/d', hostPath: dir, mode: 'rw', readonly: true },
      { guestPath: '/d', hostPath: dir, readonly: false },
    ];
    for (const preopen of bad) {
      await expect(hv.createPartition({ name: 's', module: CAT, wasi: { preopens: [preopen as never] } }), JSON.stringify(preopen)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    }
    expect(fdsInto(dir)).toEqual([]);
    await hv.close();
  });

  it('two preopens at one guest path are refused naming it, before any folder is opened: the second hid the first', async () => {
    const a = folder('twice-a', { f: 'a' });
    const b = folder('twice-b', { g: 'b' });
    const hv = new Hypervisor();
    for (const [first, second] of [['/d', '/d'], ['/d', '/d/'], ['/x/../d', '/d']] as const) {
      await expect(
        hv.createPartition({ name: 't', module: CAT, wasi: { preopens: [{ guestPath: first, hostPath: a }, { guestPath: '/other' }, { guestPath: second, hostPath: b, mode: 'copy' }] } }),
        `${first} ${second}`,
      ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: `wasi preopen ${second}: given twice (preopens 0 and 2): one would hide the other from the guest` });
    }
    expect(fdsInto(a)).toEqual([]);
    // From the command line: --dir twice at one guest path, exit 2 naming it.
    const r = await run(['--dir', `${a}::/d`, '--dir', `${b}::/d`, CAT, '/d/f']);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: 'ERR_INVALID_ARGUMENT: wasi preopen /d: given twice (preopens 0 and 1): one would hide the other from the guest\n' });
    // Different guest paths for one folder are fine.
    const ok = await run(['--dir', `${a}::/d`, '--dir', `${a}::/e`, CAT, '/e/f']);
    expect(ok).toMatchObject({ code: 0, stdout: 'a' });
    await hv.close();
  });
});
