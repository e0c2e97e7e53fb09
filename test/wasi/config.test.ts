/**
 * resolveWasi, called directly: what the root makes of a (schema-checked) WASI spec before the
 * partition starts. The partition suites reach it only with specs that work; here each rule that
 * joins fields is checked at its edge and one past it, with the message it gives: defaults, env
 * keys, stdin, the preopen modes, the entry and fd quotas, and the copy of a host folder against
 * the byte and entry quotas (symlinks copied as links, special files skipped). Host folders opened
 * in 'ro' / 'rw' mode are closed by releaseWasi, idempotently.
 */
import { execFileSync } from 'node:child_process';
import { fstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../host/errors.ts';
import { Hypervisor } from '../../host/index.ts';
import { releaseWasi, resolveWasi, wasiMemory, WASI_QUOTA_DEFAULTS, type ResolvedWasi } from '../../host/wasi/config.ts';
import { VFS_ENTRY_HEAP_BYTES } from '../../host/wasi/vfs.ts';
import { guest } from '../helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'wasmvisor-wasi-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A host folder: a/ (with b.txt, 3 bytes), c.txt (5 bytes), link -> c.txt. */
function folder(name: string): string {
  const root = path.join(dir, name);
  mkdirSync(path.join(root, 'a'), { recursive: true });
  writeFileSync(path.join(root, 'a', 'b.txt'), 'abc');
  writeFileSync(path.join(root, 'c.txt'), 'hello');
  symlinkSync('c.txt', path.join(root, 'link'));
  return root;
}

async function refusal(run: Promise<unknown>): Promise<string> {
  const error = await run.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InvalidArgumentError);
  return (error as Error).message;
}

describe('resolveWasi', () => {
  it('fills the defaults: the given args, no env, console stdin, no preopens, the default quotas', async () => {
    const w = await resolveWasi({}, ['prog', 'x']);
    expect(w).toEqual({ args: ['prog', 'x'], env: [], preopens: [], stdin: { kind: 'console' }, quotas: WASI_QUOTA_DEFAULTS });
    expect(WASI_QUOTA_DEFAULTS).toEqual({ maxBytes: 16 * 1024 * 1024, maxInodes: 4096, maxFds: 128, maxPathBytes: 4096 });
    const q = await resolveWasi({ args: ['own'], quotas: { maxBytes: 10, maxInodes: 11, maxFds: 12, maxPathBytes: 13 } }, ['prog']);
    expect(q.args).toEqual(['own']);
    expect(q.quotas).toEqual({ maxBytes: 10, maxInodes: 11, maxFds: 12, maxPathBytes: 13 });
  });

  it('takes env as KEY=VALUE strings or an object; an empty key, a key with = or NUL, a string without =, or a NUL in a value is refused, naming the entry', async () => {
    expect((await resolveWasi({ env: ['A=1', 'B='] }, [])).env).toEqual(['A=1', 'B=']);
    expect((await resolveWasi({ env: { A: '1', B: '' } }, [])).env).toEqual(['A=1', 'B=']);
    const badKey = (k: string) => `wasi.env: the key ${JSON.stringify(k)} is not a variable name (at least one character, no '=' or NUL)`;
    const badEntry = (e: string) => `wasi.env: ${JSON.stringify(e)} is not KEY=VALUE (a key of at least one character without '=' or NUL, a value without NUL)`;
    expect(await refusal(resolveWasi({ env: { 'A\0': '1' } }, []))).toBe(badKey('A\0'));
    expect(await refusal(resolveWasi({ env: { '': 'x' } }, []))).toBe(badKey(''));
    // Joined, {"A=B": "1"} would be A=B=1: the guest would see A with the value B=1.
    expect(await refusal(resolveWasi({ env: { 'A=B': '1' } }, []))).toBe(badKey('A=B'));
    expect(await refusal(resolveWasi({ env: { '=': '1' } }, []))).toBe(badKey('='));
    expect(await refusal(resolveWasi({ env: { A: 'x\0' } }, []))).toBe(`wasi.env: the value of "A" holds a NUL character`);
    expect(await refusal(resolveWasi({ env: ['novalue'] }, []))).toBe(badEntry('novalue'));
    expect(await refusal(resolveWasi({ env: ['=1'] }, []))).toBe(badEntry('=1'));
    expect(await refusal(resolveWasi({ env: ['A=\0'] }, []))).toBe(badEntry('A=\0'));
    // The entry is named by its first 64 characters, and the cut says how much was left out.
    expect(await refusal(resolveWasi({ env: ['K'.repeat(100)] }, []))).toBe(badEntry('K'.repeat(64)).replace('" is not', '"… (36 more characters) is not'));
    // Keys of more than one character, a value holding '=', and a NUL anywhere in a key, not only at its end.
    expect((await resolveWasi({ env: { HOME: '/h', LANG: 'C=x' } }, [])).env).toEqual(['HOME=/h', 'LANG=C=x']);
    expect((await resolveWasi({ env: ['LANG=C=x'] }, [])).env).toEqual(['LANG=C=x']);
    expect(await refusal(resolveWasi({ env: { 'A\0B': '1' } }, []))).toBe(badKey('A\0B'));
  });

  it('a partition spec whose wasi.env object has a key holding = is refused before anything runs', async () => {
    const hv = new Hypervisor();
    try {
      await expect(hv.createPartition({ name: 'env-eq', module: guest('hello'), wasi: { env: { 'A=B': '1' } } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('"A=B"') });
    } finally {
      await hv.close();
    }
  });

  it('stdin: console, none, text as UTF-8, or bytes copied from the caller', async () => {
    expect((await resolveWasi({ stdin: 'none' }, [])).stdin).toEqual({ kind: 'none' });
    expect((await resolveWasi({ stdin: 'console' }, [])).stdin).toEqual({ kind: 'console' });
    expect((await resolveWasi({ stdin: 'é' }, [])).stdin).toEqual({ kind: 'bytes', bytes: new Uint8Array([0xc3, 0xa9]) });
    const given = new Uint8Array([1, 2, 3]);
    const w = await resolveWasi({ stdin: given }, []);
    given[0] = 9;
    expect(w.stdin).toEqual({ kind: 'bytes', bytes: new Uint8Array([1, 2, 3]) });
  });

  it('a virtual preopen is empty and writable unless readonly; a mode other than copy needs a hostPath', async () => {
    const w = await resolveWasi({ preopens: [{ guestPath: '/a' }, { guestPath: '/b', readonly: true }, { guestPath: '/c', mode: 'copy' }] }, []);
    expect(w.preopens).toEqual([
      { guestPath: '/a', kind: 'virtual', readonly: false, entries: [] },
      { guestPath: '/b', kind: 'virtual', readonly: true, entries: [] },
      { guestPath: '/c', kind: 'virtual', readonly: false, entries: [] },
    ]);
    expect(await refusal(resolveWasi({ preopens: [{ guestPath: '/a', mode: 'rw' }] }, []))).toBe(`wasi preopen /a: mode 'rw' needs a hostPath`);
    expect(await refusal(resolveWasi({ preopens: [{ guestPath: '/a', mode: 'ro' }] }, []))).toBe(`wasi preopen /a: mode 'ro' needs a hostPath`);
  });

  it('preopens take one entry each: exactly maxInodes of them pass, one more is refused', async () => {
    const preopens = (n: number) => Array.from({ length: n }, (_, i) => ({ guestPath: `/p${i}` }));
    expect((await resolveWasi({ preopens: preopens(3), quotas: { maxInodes: 3 } }, [])).preopens).toHaveLength(3);
    expect(await refusal(resolveWasi({ preopens: preopens(4), quotas: { maxInodes: 3 } }, []))).toBe('wasi preopens need more than 3 entries');
  });

  it('stdio and the preopens must fit maxFds: 3 + preopens at the quota pass, one more is refused', async () => {
    const preopens = (n: number) => Array.from({ length: n }, (_, i) => ({ guestPath: `/p${i}` }));
    expect((await resolveWasi({ preopens: preopens(2), quotas: { maxFds: 5 } }, [])).preopens).toHaveLength(2);
    expect(await refusal(resolveWasi({ preopens: preopens(3), quotas: { maxFds: 5 } }, []))).toBe('wasi needs 6 fds for stdio and preopens; maxFds is 5');
  });

  it('a hostPath without a mode is read-only; readonly: false without a mode, or rw with readonly: true, is refused', async () => {
    const root = folder('modes');
    expect(await refusal(resolveWasi({ preopens: [{ guestPath: '/h', hostPath: root, readonly: false }] }, []))).toBe(
      `wasi preopen /h: readonly: false needs a mode: 'copy' (a private, writable copy) or 'rw' (writes reach ${root})`,
    );
    expect(await refusal(resolveWasi({ preopens: [{ guestPath: '/h', hostPath: root, mode: 'rw', readonly: true }] }, []))).toBe(
      `wasi preopen /h: mode 'rw' and readonly: true contradict each other`,
    );
    // readonly: false with a mode is what that mode means: no refusal.
    const copy = await resolveWasi({ preopens: [{ guestPath: '/c', hostPath: root, mode: 'copy', readonly: false }] }, []);
    expect(copy.preopens[0]).toMatchObject({ kind: 'virtual', readonly: false });
    const rw = await resolveWasi({ preopens: [{ guestPath: '/w', hostPath: root, mode: 'rw', readonly: false }] }, []);
    expect(rw.preopens[0]).toMatchObject({ kind: 'host', mode: 'rw' });
    releaseWasi(rw);
    const w = await resolveWasi({ preopens: [{ guestPath: '/ro', hostPath: root }, { guestPath: '/rw', hostPath: root, mode: 'rw' }] }, []);
    expect(w.preopens.map((p) => (p.kind === 'host' ? [p.guestPath, p.kind, p.mode] : null))).toEqual([
      ['/ro', 'host', 'ro'],
      ['/rw', 'host', 'rw'],
    ]);
    const fds = w.preopens.map((p) => (p.kind === 'host' ? p.fd : -1));
    for (const fd of fds) expect(fstatSync(fd).isDirectory()).toBe(true);
    releaseWasi(w);
    expect(w.preopens.map((p) => (p.kind === 'host' ? p.fd : 0))).toEqual([-1, -1]);
    for (const fd of fds) expect(() => fstatSync(fd)).toThrow();
    releaseWasi(w); // idempotent
    releaseWasi(null);
    // A virtual preopen has no fd to close: it is left as it was.
    const v = await resolveWasi({ preopens: [{ guestPath: '/v' }] }, []);
    releaseWasi(v);
    expect(v.preopens).toEqual([{ guestPath: '/v', kind: 'virtual', readonly: false, entries: [] }]);
  });

  it('a host folder that is missing or a file is refused for every mode, naming it', async () => {
    const file = path.join(dir, 'plain.txt');
    writeFileSync(file, 'x');
    const missing = path.join(dir, 'missing');
    for (const mode of ['ro', 'rw', 'copy'] as const) {
      for (const hostPath of [file, missing]) {
        expect(await refusal(resolveWasi({ preopens: [{ guestPath: '/h', hostPath, mode }] }, []))).toBe(`wasi preopen /h: host folder ${hostPath} is not a directory`);
      }
    }
  });

  it('a refused spec closes the host folders it had opened already', async () => {
    const root = folder('release');
    const before = openFds();
    await refusal(resolveWasi({ preopens: [{ guestPath: '/ok', hostPath: root }, { guestPath: '/bad', hostPath: path.join(dir, 'missing') }] }, []));
    await refusal(resolveWasi({ preopens: [{ guestPath: '/ok', hostPath: root }], quotas: { maxFds: 3 } }, []));
    expect(openFds()).toBe(before);
  });

  it('copies a host folder parents first, in name order: files with their bytes, symlinks as links', async () => {
    const root = folder('copy');
    const w = await resolveWasi({ preopens: [{ guestPath: '/c', hostPath: root, mode: 'copy' }] }, []);
    const p = w.preopens[0]!;
    expect(p).toMatchObject({ guestPath: '/c', kind: 'virtual', readonly: false });
    const entries = p.kind === 'virtual' ? p.entries : [];
    expect(entries.map((e) => ({ ...e, ...('data' in e && e.data ? { data: new TextDecoder().decode(e.data) } : {}) }))).toEqual([
      { path: 'a', kind: 'dir' },
      { path: 'c.txt', kind: 'file', data: 'hello' },
      { path: 'link', kind: 'symlink', target: 'c.txt' },
      { path: 'a/b.txt', kind: 'file', data: 'abc' },
    ]);
    const ro = await resolveWasi({ preopens: [{ guestPath: '/c', hostPath: root, mode: 'copy', readonly: true }] }, []);
    expect(ro.preopens[0]).toMatchObject({ kind: 'virtual', readonly: true });
  });

  it('a copy counts its entries (the preopen included) and its bytes (names, data, link targets) at the quota and one past', async () => {
    const root = folder('quota');
    // Entries: the preopen, a, c.txt, link, a/b.txt = 5. Bytes: names 1 + 5 + 4 + 5 = 15, data 5 + 3 = 8, target 5: 28.
    const spec = (maxInodes: number, maxBytes: number) => ({ preopens: [{ guestPath: '/q', hostPath: root, mode: 'copy' as const }], quotas: { maxInodes, maxBytes } });
    expect((await resolveWasi(spec(5, 28), [])).preopens).toHaveLength(1);
    const overEntries = await refusal(resolveWasi(spec(4, 28), []));
    expect(overEntries).toBe(
      `copying a/b.txt from ${path.join(root, 'a', 'b.txt')} exceeds the WASI quota (28 bytes, 4 entries): raise wasi.quotas (CLI: --wasi-quota bytes=…,inodes=…), or give the folder in place (mode 'ro' or 'rw')`,
    );
    expect(await refusal(resolveWasi(spec(5, 27), []))).toMatch(/^copying a\/b\.txt from .* exceeds the WASI quota \(27 bytes, 5 entries\)/);
    expect(await refusal(resolveWasi(spec(0, 28), []))).toBe('wasi preopens need more than 0 entries');
    // An empty folder takes one entry, the preopen's own: a quota of 1 holds it.
    const empty = path.join(dir, 'empty');
    mkdirSync(empty);
    expect((await resolveWasi({ preopens: [{ guestPath: '/e', hostPath: empty, mode: 'copy' }], quotas: { maxInodes: 1 } }, [])).preopens).toHaveLength(1);
  });

  it('a copy skips what is neither a directory, a file nor a symlink (a FIFO)', async () => {
    const root = path.join(dir, 'special');
    mkdirSync(root);
    writeFileSync(path.join(root, 'f'), 'x');
    execFileSync('mkfifo', [path.join(root, 'pipe')]);
    const w = await resolveWasi({ preopens: [{ guestPath: '/s', hostPath: root, mode: 'copy' }] }, []);
    const p = w.preopens[0]!;
    expect(p.kind === 'virtual' ? p.entries.map((e) => e.path) : null).toEqual(['f']);
  });

  it('a copy of a folder the host cannot read whole is ERR_INVALID_ARGUMENT naming the path, not the OS error bare', async () => {
    // Deeper than a path may be (PATH_MAX 4096): made level by level from inside, read by full path.
    const root = path.join(dir, 'deep');
    mkdirSync(root);
    const level = 'd'.repeat(200);
    try {
      execFileSync('bash', ['-c', `cd "$1" && for i in $(seq 22); do mkdir ${level} && cd ${level}; done && echo x > f`, 'deep', root]);
      const error = await resolveWasi({ preopens: [{ guestPath: '/deep', hostPath: root, mode: 'copy' }] }, []).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toMatch(/^wasi preopen \/deep: cannot copy \S+\/d{200}: ENAMETOOLONG/);
    } finally {
      // rm walks it from inside; a path this long cannot be removed by name.
      execFileSync('rm', ['-rf', root]);
    }
  });

  it('each kind of byte counts: a name, a file’s data, a link’s target', async () => {
    const one = (name: string, make: (p: string) => void) => {
      const root = path.join(dir, `one-${name}`);
      mkdirSync(root);
      make(path.join(root, name));
      return root;
    };
    const spec = (root: string, maxBytes: number) => resolveWasi({ preopens: [{ guestPath: '/o', hostPath: root, mode: 'copy' }], quotas: { maxBytes } }, []);
    const d = one('dd', (p) => mkdirSync(p)); // 2 bytes of name
    expect((await spec(d, 2)).preopens).toHaveLength(1);
    expect(await refusal(spec(d, 1))).toContain('exceeds the WASI quota (1 bytes');
    const f = one('f', (p) => writeFileSync(p, 'xyz')); // 1 + 3
    expect((await spec(f, 4)).preopens).toHaveLength(1);
    expect(await refusal(spec(f, 3))).toContain('exceeds the WASI quota (3 bytes');
    const l = one('l', (p) => symlinkSync('target', p)); // 1 + 6
    expect((await spec(l, 7)).preopens).toHaveLength(1);
    expect(await refusal(spec(l, 6))).toContain('exceeds the WASI quota (6 bytes');
  });
});

describe('wasiMemory', () => {
  const resolved = (kinds: ('virtual' | 'host')[]): ResolvedWasi => ({
    args: [],
    env: [],
    stdin: { kind: 'none' },
    quotas: { ...WASI_QUOTA_DEFAULTS, maxBytes: 1001, maxInodes: 7 },
    preopens: kinds.map((kind, i) => (kind === 'virtual' ? { guestPath: `/${i}`, kind, readonly: false, entries: [] } : { guestPath: `/${i}`, kind, mode: 'ro', fd: -1 })),
  });

  it('is 1.5 x the byte quota (rounded up) and an entry heap per inode when a preopen is in memory, else nothing', () => {
    expect(wasiMemory(null)).toEqual({ bufferBytes: 0, heapBytes: 0 });
    expect(wasiMemory(resolved([]))).toEqual({ bufferBytes: 0, heapBytes: 0 });
    expect(wasiMemory(resolved(['host']))).toEqual({ bufferBytes: 0, heapBytes: 0 });
    expect(wasiMemory(resolved(['host', 'virtual']))).toEqual({ bufferBytes: 1502, heapBytes: 7 * VFS_ENTRY_HEAP_BYTES });
  });
});

/** How many fds this process has open (Linux). */
function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}
