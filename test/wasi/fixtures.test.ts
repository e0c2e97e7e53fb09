import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WASI } from 'node:wasi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hypervisor, type PartitionExit, type WasiSpec } from '../../host/index.ts';
import { collect, guest, hypervisor } from '../helpers.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const c = (name: string): string => path.join(root, 'guests/c', `${name}.wasm`);

let work: string;
let seed: string;
/** Every file under dir with its SHA-256 (symlinks by target): to prove a host folder did not change. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, name.name);
      const r = `${rel}${name.name}`;
      if (name.isDirectory()) (out[r + '/'] = 'dir'), walk(p, r + '/');
      else if (name.isSymbolicLink()) out[r] = 'link';
      else out[r] = createHash('sha256').update(readFileSync(p)).digest('hex') + ':' + statSync(p).mtimeMs;
    }
  };
  walk(dir, '');
  return out;
}

beforeAll(() => {
  guest('hello'); // fails clearly when the build has not run (dist/worker.js)
  work = mkdtempSync(path.join(tmpdir(), 'wasmvisor-wasi-'));
  seed = path.join(work, 'seed');
  mkdirSync(path.join(seed, 'docs'), { recursive: true });
  writeFileSync(path.join(seed, 'note.txt'), 'seeded file\nsecond line\n');
  writeFileSync(path.join(seed, 'docs/readme.md'), '# readme\n');
  symlinkSync('/etc/passwd', path.join(seed, 'host-link'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Run {
  exit: PartitionExit;
  stdout: string;
  stderr: string;
}

async function ours(module: string, args: string[], wasi: Omit<WasiSpec, 'args'> = {}): Promise<Run> {
  const hv = hypervisor();
  try {
    const p = await hv.createPartition({
      name: 'c',
      module,
      devices: { console: { linesPerSecond: 100_000 }, clock: true, entropy: true },
      limits: { timeoutMs: 10_000 },
      wasi: { args: [path.basename(module), ...args], stdin: 'none', ...wasi },
    });
    const out = collect(p);
    await p.start();
    const exit = await p.exited;
    const text = (lines: string[]): string => lines.map((l) => l + '\n').join('');
    return { exit, stdout: text(out.stdout), stderr: text(out.stderr) };
  } finally {
    await hv.close();
  }
}

/** The same program under node:wasi with a real (throw-away) copy of the seed folder. */
async function nodeWasi(module: string, args: string[], preopens: Record<string, string>): Promise<{ code: number; stdout: string }> {
  const outFile = path.join(work, `stdout-${Math.random().toString(16).slice(2)}`);
  const fd = openSync(outFile, 'w');
  try {
    const wasi = new WASI({ version: 'preview1', args: [path.basename(module), ...args], env: {}, preopens, stdout: fd, stderr: fd, returnOnExit: true });
    const { instance } = await WebAssembly.instantiate(readFileSync(module), wasi.getImportObject() as WebAssembly.Imports);
    const code = wasi.start(instance);
    return { code, stdout: readFileSync(outFile, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

describe('C guests on WASI', () => {
  it('hello: args, environment, stdout and stderr kept apart, exit code', async () => {
    const r = await ours(c('hello'), ['one', 'two'], { env: { GREETING: 'howdy' } });
    expect(r.stdout).toBe('howdy from wasi\narg 1: one\narg 2: two\n');
    expect(r.stderr).toBe('this goes to stderr\n');
    expect(r.exit).toMatchObject({ state: 'exited', code: 2, reason: 'exit' });
    expect(r.exit.metrics.wasiCalls).toBeGreaterThan(0);
  });

  it('cat: reads a seeded file; a missing one is ENOENT on stderr and exit 1', async () => {
    const r = await ours(c('cat'), ['/data/note.txt', '/data/missing'], { preopens: [{ guestPath: '/data', hostPath: seed, readonly: true }] });
    expect(r.stdout).toBe('seeded file\nsecond line\n');
    expect(r.stderr).toBe('cat: /data/missing: errno 44\n');
    expect(r.exit.code).toBe(1);
  });

  it('cat: stdin from the spec', async () => {
    const r = await ours(c('cat'), [], { stdin: 'piped\nin\n' });
    expect(r.stdout).toBe('piped\nin\n');
    expect(r.exit.code).toBe(0);
  });

  it('misc: clocks, sleep through poll_oneoff, entropy, console stdin line by line, exit(7)', async () => {
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'misc', module: c('misc'), devices: { console: true, clock: true, entropy: true }, wasi: {} });
    const out = collect(p);
    await p.start();
    p.writeLine('first');
    p.writeLine('second line');
    p.endInput();
    const exit = await p.exited;
    await hv.close();
    expect(out.stdout).toEqual(['slept at least 20ms: yes', 'wall clock after 2020: yes', 'getentropy: ok', 'read 5: first', 'read 11: second line', 'eof']);
    expect(exit.code).toBe(7);
  });

  it('fs (copy mode): the file-system exercise passes, and the seed folder on the host is untouched', async () => {
    const before = snapshot(seed);
    const r = await ours(c('fs'), ['/sandbox'], { preopens: [{ guestPath: '/sandbox', hostPath: seed, mode: 'copy' }] });
    expect(r.exit.code).toBe(0);
    expect(r.stdout).toContain('rename b -> c                ok');
    expect(r.stdout).toContain('rmdir work (not empty)       Directory not empty');
    expect(r.stdout).toContain('ls /sandbox: docs host-link note.txt\n');
    expect(snapshot(seed)).toEqual(before);
  });

  /** escape.c's verdicts: absolute symlinks cannot even be created (EPERM), so opening `abs` is ENOENT. */
  const ESCAPE_VERDICTS = {
    dotdot: 'errno 76',
    'dotdot-deep': 'errno 76',
    absolute: 'errno 76',
    'symlink-up': 'errno 76',
    'symlink-abs': 'errno 44',
    'symlink-abs-nofollow': 'errno 44',
    'symlink-nested': 'errno 76',
    'symlink-loop': 'errno 32',
    'dotdot-only': 'errno 76',
    'libc ../../etc/passwd': 'errno 76',
    'libc /etc/passwd': 'errno 76',
    'libc root/../..': 'errno 76',
    'libc symlink-up': 'errno 76',
    'libc mkdir ../escaped': 'errno 76',
    'raw mkdir ../escaped': 'errno 76',
    'raw rename to ../x': 'errno 76',
    'raw symlink+create': 'errno 76',
    contained: '',
  };

  it('escape (rw mode, a real host folder): every attempt fails; the guest\'s own links stay inside; nothing outside changes', async () => {
    const box = path.join(work, 'rw-escape');
    cpSync(seed, box, { recursive: true, verbatimSymlinks: true });
    const outsideOf = (snap: Record<string, string>) => Object.fromEntries(Object.entries(snap).filter(([k]) => !k.startsWith('rw-escape/')));
    const outside = outsideOf(snapshot(work));
    const r = await ours(c('escape'), ['/sandbox'], { preopens: [{ guestPath: '/sandbox', hostPath: box, mode: 'rw' }] });
    const lines = Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.slice(0, 24).trim(), l.slice(25).trim()]));
    expect(lines).toEqual(ESCAPE_VERDICTS);
    expect(r.exit.code).toBe(0);
    expect(outsideOf(snapshot(work))).toEqual(outside);
    expect(existsSync(path.join(work, 'escaped'))).toBe(false);
    expect(existsSync(path.join(work, 'x'))).toBe(false);
    // What the guest did create is inside the folder, and its symlinks are relative.
    expect(readlinkSync(path.join(box, 'up'))).toBe('../..');
    expect(existsSync(path.join(box, 'abs'))).toBe(false);
  });

  it('escape (copy mode): every attempt to leave the preopen fails with the right errno; the host is untouched', async () => {
    const before = snapshot(seed);
    const parent = snapshot(work);
    const r = await ours(c('escape'), ['/sandbox'], { preopens: [{ guestPath: '/sandbox', hostPath: seed, mode: 'copy' }] });
    const lines = Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.slice(0, 24).trim(), l.slice(25).trim()]));
    expect(lines).toEqual(ESCAPE_VERDICTS);
    expect(r.exit.code).toBe(0);
    expect(snapshot(seed)).toEqual(before);
    expect(snapshot(work)).toEqual(parent);
    expect(existsSync(path.join(work, 'escaped'))).toBe(false);
  });

  it('a seeded host symlink cannot be followed out of the preopen', async () => {
    const r = await ours(c('cat'), ['/data/host-link'], { preopens: [{ guestPath: '/data', hostPath: seed }] });
    expect(r.stderr).toBe('cat: /data/host-link: errno 76\n');
    expect(r.exit.code).toBe(1);
  });

  it('WASI limits: the byte quota refuses a seed that does not fit (ERR_INVALID_ARGUMENT)', async () => {
    const hv = hypervisor();
    await expect(hv.createPartition({ name: 'q', module: c('cat'), wasi: { preopens: [{ guestPath: '/d', hostPath: seed, mode: 'copy' }], quotas: { maxBytes: 10 } } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/--wasi-quota/) });
    // In place (ro, the default), the same folder costs nothing up front.
    const p = await hv.createPartition({ name: 'q', module: c('cat'), wasi: { preopens: [{ guestPath: '/d', hostPath: seed }], quotas: { maxBytes: 10 } } });
    await p.destroy();
    await hv.close();
  });
});

describe('a Rust (std) guest on WASI', () => {
  const wc = path.join(root, 'guests/rust/wc.wasm');
  it('wc: args, env, stdin, read_dir, std::fs round trip; /etc/passwd stays out of reach', async () => {
    const r = await ours(wc, ['/data/note.txt', '/data/missing'], {
      env: { LIST_DIR: '/data', SCRATCH: '/data' },
      preopens: [{ guestPath: '/data', hostPath: seed, mode: 'copy' }],
    });
    expect(r.stdout).toBe('2 4 24 /data/note.txt\nls /data: docs host-link note.txt\nfs: written by rust 16 renamed-away=true\n/etc/passwd: Uncategorized\n');
    expect(r.stderr).toBe('wc: /data/missing: errno 44\n');
    expect(r.exit.code).toBe(3);
    const piped = await ours(wc, [], { stdin: 'one two\nthree\n' });
    expect(piped.stdout).toBe('2 3 14 -\n');
  });

  it('wc: same stdout and exit code as node:wasi', async () => {
    const copy = path.join(work, 'copy-wc');
    cpSync(seed, copy, { recursive: true, verbatimSymlinks: true });
    const args = ['/sandbox/note.txt', '/sandbox/docs/readme.md'];
    const theirs = await nodeWasi(wc, args, { '/sandbox': copy });
    const mine = await ours(wc, args, { preopens: [{ guestPath: '/sandbox', hostPath: seed }] });
    expect(mine.stdout).toBe(theirs.stdout);
    expect(mine.exit.code).toBe(theirs.code);
  });
});

describe('WASI imports and the policy', () => {
  it('without `wasi` in the spec, a WASI module is refused with ERR_IMPORT_DENIED', async () => {
    const hv = hypervisor();
    await expect(hv.createPartition({ name: 'no-wasi', module: c('hello') })).rejects.toMatchObject({ code: 'ERR_IMPORT_DENIED', message: expect.stringMatching(/^wasi_snapshot_preview1\..*enables `wasi`/) });
    expect((await hv.inspect(c('hello'))).verdict.admitted).toBe(false);
    expect((await hv.inspect(c('hello'), {}, { wasi: true })).verdict.admitted).toBe(true);
    await hv.close();
  });

  it('with `wasi`, an hv guest still runs (the allow-list grows, the hv interface stays)', async () => {
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'hv', module: guest('hello'), devices: { console: true }, wasi: {} });
    const out = collect(p);
    await p.start();
    expect((await p.exited).code).toBe(0);
    expect(out.stdout.length).toBeGreaterThan(0);
    await hv.close();
  });
});

describe('differential: ours vs node:wasi, for programs that stay inside their preopen', () => {
  for (const [name, args] of [
    ['hello', ['x', 'y', 'z']],
    ['cat', ['/sandbox/note.txt', '/sandbox/docs/readme.md']],
    ['fs', ['/sandbox']],
  ] as const) {
    it(`${name}: same stdout, same exit code`, async () => {
      const copy = path.join(work, `copy-${name}`);
      cpSync(seed, copy, { recursive: true, verbatimSymlinks: true });
      const theirs = await nodeWasi(c(name), [...args], { '/sandbox': copy });
      const mine = await ours(c(name), [...args], { preopens: [{ guestPath: '/sandbox', hostPath: seed, mode: 'copy' }] });
      // node:wasi shares one file for stdout and stderr here; hello's stderr line is compared apart.
      const theirStdout = theirs.stdout.replace('this goes to stderr\n', '');
      expect(mine.stdout).toBe(theirStdout);
      expect(mine.exit.code).toBe(theirs.code);
    });
  }

  it('fs in rw mode: same stdout and exit code as node:wasi, and the host folders end up the same', async () => {
    const theirsDir = path.join(work, 'diff-rw-theirs');
    const mineDir = path.join(work, 'diff-rw-mine');
    cpSync(seed, theirsDir, { recursive: true, verbatimSymlinks: true });
    cpSync(seed, mineDir, { recursive: true, verbatimSymlinks: true });
    const theirs = await nodeWasi(c('fs'), ['/sandbox'], { '/sandbox': theirsDir });
    const mine = await ours(c('fs'), ['/sandbox'], { preopens: [{ guestPath: '/sandbox', hostPath: mineDir, mode: 'rw' }] });
    expect(mine.stdout).toBe(theirs.stdout);
    expect(mine.exit.code).toBe(theirs.code);
    const shape = (d: string) => Object.fromEntries(Object.entries(snapshot(d)).map(([k, v]) => [k, v.split(':')[0]]));
    expect(shape(mineDir)).toEqual(shape(theirsDir));
  });

  it('cat in ro mode reads the host folder in place: same as node:wasi', async () => {
    const theirs = await nodeWasi(c('cat'), ['/sandbox/note.txt', '/sandbox/docs/readme.md'], { '/sandbox': seed });
    const mine = await ours(c('cat'), ['/sandbox/note.txt', '/sandbox/docs/readme.md'], { preopens: [{ guestPath: '/sandbox', hostPath: seed }] });
    expect(mine.stdout).toBe(theirs.stdout);
    expect(mine.exit.code).toBe(theirs.code);
  });
});

describe('wasmvisor run (WASI)', () => {
  const cli = path.join(root, 'dist/cli.js');
  const run = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, [cli, 'run', ...args], { timeout: 15_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });

  it('--dir and --env; the exit code is the program\'s; stdout and stderr stay apart; the host folder is never written', async () => {
    const before = snapshot(seed);
    const r = await run([c('fs'), '--dir', `${seed}::/sandbox:copy`, '--env', 'A=1', '--', '/sandbox']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('rmdir work                   ok');
    expect(snapshot(seed)).toEqual(before);
    // The default mode is ro: the same program sees EROFS (errno 69) and the folder stays as it was.
    const ro = await run([c('fs'), '--dir', `${seed}::/sandbox`, '--', '/sandbox']);
    expect(ro.stdout).toContain('mkdir work                   Read-only file system');
    expect(snapshot(seed)).toEqual(before);
    const h = await run([c('hello'), '--env', 'GREETING=hi', '--', 'a']);
    expect(h).toEqual({ code: 1, stdout: 'hi from wasi\narg 1: a\n', stderr: 'this goes to stderr\n' });
  });

  it('WASI is enabled by the module\'s imports alone; a bad --dir is ERR_INVALID_ARGUMENT', async () => {
    const r = await run([c('hello')]);
    expect(r.code).toBe(0);
    const bad = await run([c('hello'), '--dir', '::/x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^ERR_INVALID_ARGUMENT/);
  });
});
