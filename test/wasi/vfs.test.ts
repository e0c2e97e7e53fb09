/**
 * The in-memory backend (host/wasi/vfs.ts) on its own: inode numbers (unique, as a program that
 * compares st_ino to find hard links or loops relies on), a file buffer's size policy (at most
 * capacityFor(size) bytes, on growth and on shrinking; the old buffer zeroed when replaced; shrunk
 * bytes zeroed so a later growth reads zeros), resize's bounds at their edges, the times each
 * change sets, and the directory rules the table does not check first (a removed directory takes
 * no new names; a directory never moves into itself).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WASI_QUOTA_DEFAULTS } from '../../host/wasi/config.ts';
import { Errno, Filetype } from '../../host/wasi/errno.ts';
import { QuotaAccount, isFile } from '../../host/wasi/fs.ts';
import { VDir, VFile, Vfs, capacityFor, seedMount } from '../../host/wasi/vfs.ts';

const OPEN = { create: true, exclusive: false, truncate: false, directory: false, read: true, write: true };

function fresh(maxBytes = WASI_QUOTA_DEFAULTS.maxBytes) {
  let t = 100n;
  const quota = new QuotaAccount({ ...WASI_QUOTA_DEFAULTS, maxBytes });
  const vfs = new Vfs(quota, () => (t += 10n));
  const root = vfs.mount('/v', false)!;
  const file = (name: string): VFile => {
    const f = root.open(name, OPEN);
    if (typeof f === 'number' || !isFile(f)) throw new Error(`open ${name}: ${String(f)}`);
    return f as VFile;
  };
  return { vfs, root, quota, file, now: () => t };
}

describe('inode numbers', () => {
  it('every inode of a partition has its own number, above 0, across mounts; a hard link shares its inode’s', () => {
    const { vfs, root, file } = fresh();
    const other = vfs.mount('/w', false)!;
    expect(root.mkdir('d')).toBe(0);
    file('f');
    expect(root.symlink('f', 's')).toBe(0);
    expect(other.mkdir('e')).toBe(0);
    expect(root.link('f', root, 'f2')).toBe(0);
    // In the order they were made: the two roots, d, f, s, e.
    const inos = [root.stat('.'), other.stat('.'), root.stat('d'), root.stat('f'), root.stat('s'), other.stat('e')].map((s) => (typeof s === 'number' ? -1n : s.ino));
    expect(new Set(inos).size).toBe(inos.length);
    for (const ino of inos) expect(ino).toBeGreaterThan(0n);
    expect(inos).toEqual([...inos].sort((a, b) => (a < b ? -1 : 1))); // handed out in order
    expect((root.stat('f2') as { ino: bigint }).ino).toBe(inos[3]);
    const listed: bigint[] = [];
    root.readdir(0, (_n, ino) => (listed.push(ino), true));
    expect(listed).toEqual([inos[0], inos[0], inos[2], inos[3], inos[3], inos[4]]); // ., .. (the root's own), d, f, f2, s
  });

  it('a directory’s .. is its parent’s inode; a removed directory’s is its own', () => {
    const { root } = fresh();
    expect(root.mkdir('d')).toBe(0);
    const d = root.openDir('d') as VDir;
    expect(d.mkdir('e')).toBe(0);
    const e = d.openDir('e') as VDir;
    const dots = (dir: VDir) => {
      const out: [string, bigint, number][] = [];
      dir.readdir(0, (n, ino, type) => (out.push([n, ino, type]), true));
      return out.slice(0, 2);
    };
    const ino = (dir: VDir, n: string) => (dir.stat(n) as { ino: bigint }).ino;
    expect(dots(e)).toEqual([
      ['.', ino(d, 'e'), Filetype.DIRECTORY],
      ['..', ino(root, 'd'), Filetype.DIRECTORY],
    ]);
    expect(d.rmdir('e')).toBe(0);
    expect(dots(e)[1]![1]).toBe(dots(e)[0]![1]);
  });
});

describe('file buffers', () => {
  it('capacityFor: half again plus 64, capped at 2^31 - 1', () => {
    expect([capacityFor(0), capacityFor(1), capacityFor(100), capacityFor(1001)]).toEqual([64, 65, 214, 1565]);
    expect(capacityFor(0x7fffffff)).toBe(0x7fffffff);
    expect(capacityFor(0x55555555)).toBe(0x7fffffff);
    expect(capacityFor(0x55555500)).toBe(0x55555500 + 0x2aaaaa80 + 64);
  });

  it('growth allocates capacityFor(size) once; growth within it reuses the buffer; shrinking far reallocates to the size', () => {
    const { vfs, file } = fresh();
    const f = file('f').inode;
    expect(vfs.resize(f, 100)).toBe(0);
    expect(f.data.length).toBe(214);
    const buf = f.data;
    expect(vfs.resize(f, 214)).toBe(0);
    expect(f.data).toBe(buf); // fits: the same buffer
    expect(vfs.resize(f, 215)).toBe(0);
    expect(f.data.length).toBe(capacityFor(215));
    expect(buf.every((b) => b === 0)).toBe(true); // the replaced buffer is zeroed
    const big = f.data;
    expect(big.length).toBe(386);
    expect(vfs.resize(f, 300)).toBe(0); // within the buffer
    expect(f.data).toBe(big);
    expect(vfs.resize(f, 215)).toBe(0); // capacityFor(215) = 386: the buffer is not too large yet
    expect(f.data).toBe(big);
    expect(vfs.resize(f, 214)).toBe(0); // capacityFor(214) = 385: now it is, and goes
    expect(f.data.length).toBe(214);
    expect(big.every((b) => b === 0)).toBe(true);
  });

  it('bytes past a shrink read as zeros after the file grows again, whether the buffer was kept or replaced', () => {
    const { vfs, file } = fresh();
    const fh = file('f');
    const f = fh.inode;
    const readAll = (n: number): Uint8Array => {
      const out = new Uint8Array(n);
      expect(fh.pread(out, 0)).toBe(n);
      return out;
    };
    // Kept: the buffer was made for 215 bytes (386), the file grows to 300 in it and shrinks back to 215.
    expect(vfs.resize(f, 215)).toBe(0);
    const buf = f.data;
    expect(fh.pwrite(new Uint8Array(300).fill(9), 300, 0)).toBe(300);
    expect(vfs.resize(f, 215)).toBe(0);
    expect(f.data).toBe(buf);
    expect(vfs.resize(f, 300)).toBe(0);
    expect(f.data).toBe(buf);
    let out = readAll(300);
    expect(out.subarray(0, 215).every((b) => b === 9)).toBe(true);
    expect(out.subarray(215).every((b) => b === 0)).toBe(true);
    // Replaced: from 300 (a 386-byte buffer) to 40.
    expect(vfs.resize(f, 40)).toBe(0);
    expect(f.data).not.toBe(buf);
    expect(vfs.resize(f, 50)).toBe(0);
    out = readAll(50);
    expect(out.subarray(0, 40).every((b) => b === 9)).toBe(true);
    expect(out.subarray(40).every((b) => b === 0)).toBe(true);
  });

  it('the buffer invariant holds over any sequence of sizes: size <= length <= capacityFor(size), contents kept below the smallest size since', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 30 }), (sizes) => {
        const { vfs, file } = fresh();
        const f = file('f').inode;
        // What the file must hold: the bytes kept by every resize, zeros where it grew.
        let model = new Uint8Array(0);
        for (const [i, size] of sizes.entries()) {
          expect(vfs.resize(f, size)).toBe(0);
          const next = new Uint8Array(size);
          next.set(model.subarray(0, Math.min(model.length, size)));
          model = next;
          expect(f.size).toBe(size);
          expect(f.data.length).toBeGreaterThanOrEqual(size);
          expect(f.data.length).toBeLessThanOrEqual(capacityFor(size));
          expect(Buffer.compare(f.data.subarray(0, size), model)).toBe(0);
          expect(f.data.subarray(size).every((b) => b === 0)).toBe(true);
          // Each size's last byte is marked, so a later shrink and growth shows whether it was zeroed.
          if (size > 0) f.data[size - 1] = model[size - 1] = (i % 255) + 1;
        }
      }),
      { numRuns: 200 },
    );
  });

  it('resize bounds: not a safe whole number or negative is EINVAL; 2^31 is EFBIG; 2^31 - 1 meets the quota', () => {
    const { vfs, file, quota } = fresh(100);
    const f = file('f').inode;
    expect(quota.bytes).toBe(1);
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) expect([bad, vfs.resize(f, bad)]).toEqual([bad, Errno.INVAL]);
    expect(vfs.resize(f, 0x80000000)).toBe(Errno.FBIG);
    expect(vfs.resize(f, 0x7fffffff)).toBe(Errno.NOSPC);
    expect(vfs.resize(f, 99)).toBe(0); // 1 + 99: exactly the quota
    expect(quota.bytes).toBe(100);
    expect(vfs.resize(f, 100)).toBe(Errno.NOSPC);
    expect(f.size).toBe(99);
    expect(vfs.resize(f, 9)).toBe(0);
    expect(quota.bytes).toBe(10);
    expect(vfs.resize(f, 9)).toBe(0);
    expect(quota.bytes).toBe(10);
  });
});

describe('what a removed inode gives back', () => {
  it('a file’s bytes come back with its last link and last fd, zeroed; a symlink’s target with its name', () => {
    const { root, quota, file } = fresh();
    const fh = file('f');
    expect(fh.pwrite(new Uint8Array([1, 2, 3]), 3, 0)).toBe(3);
    expect(root.link('f', root, 'g')).toBe(0);
    expect(quota.bytes).toBe(1 + 3 + 1);
    expect(root.unlink('f')).toBe(0);
    expect(quota.bytes).toBe(3 + 1);
    const data = fh.inode.data;
    expect(root.unlink('g')).toBe(0);
    expect(quota.bytes).toBe(3); // still open
    expect(fh.inode.nlink).toBe(0);
    fh.close();
    expect(quota.bytes).toBe(0);
    expect(quota.entries).toBe(1); // the root
    expect(data.every((b) => b === 0)).toBe(true);
    expect(fh.inode.size).toBe(0);
    expect(root.symlink('target', 's')).toBe(0);
    expect(quota.bytes).toBe(7);
    expect(root.unlink('s')).toBe(0);
    expect(quota.bytes).toBe(0);
    expect(quota.entries).toBe(1);
  });

  it('scrub zeroes every file in every mount, nested, a hard-linked one once', () => {
    const { vfs, root, file } = fresh();
    const other = vfs.mount('/w', false)!;
    expect(root.mkdir('d')).toBe(0);
    const d = root.openDir('d') as VDir;
    const a = file('a');
    a.pwrite(new Uint8Array([5, 5]), 2, 0);
    const b = d.open('b', OPEN) as VFile;
    b.pwrite(new Uint8Array([6]), 1, 0);
    const c = other.open('c', OPEN) as VFile;
    c.pwrite(new Uint8Array([7]), 1, 0);
    expect(d.link('b', root, 'b2')).toBe(0);
    // Only below two directories, and beside a symlink (which has nothing to scrub).
    expect(d.mkdir('e')).toBe(0);
    const e = d.openDir('e') as VDir;
    const deep = e.open('deep', OPEN) as VFile;
    deep.pwrite(new Uint8Array([8, 8]), 2, 0);
    expect(e.symlink('deep', 'sl')).toBe(0);
    vfs.scrub();
    for (const f of [a, b, c, deep]) expect([...f.inode.data.subarray(0, 2)]).toEqual([0, 0]);
  });
});

describe('times', () => {
  it('a new name stamps its directory; a read stamps atime; a write mtime and ctime; a rename both directories and the moved inode', () => {
    const { root, file, now } = fresh();
    const f = file('f');
    const st = (dir: VDir, n: string) => dir.stat(n) as { atim: bigint; mtim: bigint; ctim: bigint };
    const created = st(root, 'f');
    expect(created.mtim).toBe(created.atim);
    expect(st(root, '.').mtim).toBe(now()); // linking f
    f.pwrite(new Uint8Array([1]), 1, 0);
    const written = now();
    expect([st(root, 'f').mtim, st(root, 'f').ctim]).toEqual([written, written]);
    f.pread(new Uint8Array(1), 0);
    expect(st(root, 'f').atim).toBe(now());
    expect(st(root, 'f').mtim).toBe(written);
    const read = st(root, 'f').atim;
    expect(f.pread(new Uint8Array(1), 1)).toBe(0); // at the end: nothing read, no stamp
    expect(st(root, 'f').atim).toBe(read);
    expect(root.mkdir('d')).toBe(0);
    const d = root.openDir('d') as VDir;
    expect(root.rename('f', d, 'g')).toBe(0);
    const moved = now();
    expect([st(root, '.').mtim, st(d, '.').mtim, st(d, 'g').ctim]).toEqual([moved, moved, moved]);
    expect(root.link('d', root, 'x')).toBe(-Errno.PERM);
    expect(d.link('g', root, 'h')).toBe(0);
    expect(st(root, 'h').ctim).toBe(now());
    expect(root.setTimes('h', { atim: 5n, mtim: 'now' })).toBe(0);
    expect([st(root, 'h').atim, st(root, 'h').mtim, st(root, 'h').ctim]).toEqual([5n, now(), now()]);
    expect(root.setTimes('none', { atim: 5n, mtim: null })).toBe(-Errno.NOENT);
  });
});

describe('directories', () => {
  it('a removed directory takes no new name (ENOENT), even through an fd still open on it', () => {
    const { root, quota } = fresh();
    expect(root.mkdir('d')).toBe(0);
    const d = root.openDir('d') as VDir;
    expect(root.rmdir('d')).toBe(0);
    const before = { bytes: quota.bytes, entries: quota.entries };
    expect(d.open('f', OPEN)).toBe(-Errno.NOENT);
    expect(d.mkdir('e')).toBe(-Errno.NOENT);
    expect(d.symlink('t', 's')).toBe(-Errno.NOENT);
    expect(root.mkdir('x')).toBe(0);
    expect(root.rename('x', d, 'x')).toBe(-Errno.NOENT);
    expect(root.open('f', OPEN)).toBeInstanceOf(VFile);
    expect(root.link('f', d, 'f')).toBe(-Errno.NOENT);
    expect({ bytes: quota.bytes, entries: quota.entries }).toEqual({ bytes: before.bytes + 2, entries: before.entries + 2 });
  });

  it('a directory never moves into itself or below itself (EINVAL); onto a file ENOTDIR, onto a non-empty directory ENOTEMPTY', () => {
    const { root, file } = fresh();
    expect(root.mkdir('a')).toBe(0);
    const a = root.openDir('a') as VDir;
    expect(a.mkdir('b')).toBe(0);
    const b = a.openDir('b') as VDir;
    expect(root.rename('a', b, 'a')).toBe(-Errno.INVAL);
    expect(root.rename('a', a, 'a')).toBe(-Errno.INVAL);
    file('f');
    expect(root.rename('a', root, 'f')).toBe(-Errno.NOTDIR);
    expect(root.mkdir('c')).toBe(0);
    expect(root.rename('c', root, 'a')).toBe(-Errno.NOTEMPTY);
    expect(root.rename('f', root, 'a')).toBe(-Errno.ISDIR);
    const q = root.vfs.quota;
    const held = { bytes: q.bytes, entries: q.entries };
    expect(root.rename('f', root, 'f')).toBe(0); // the same entry: nothing happens
    expect(root.link('f', root, 'f2')).toBe(0);
    expect(root.rename('f', root, 'f2')).toBe(0); // two names of one inode: nothing happens either (POSIX)
    expect([root.lookup('f'), root.lookup('f2')]).toEqual(['file', 'file']);
    expect((root.stat('f') as { nlink: bigint }).nlink).toBe(2n);
    expect({ bytes: q.bytes, entries: q.entries }).toEqual({ bytes: held.bytes + 2, entries: held.entries + 1 });
    expect(root.rename('a', b, 'x')).toBe(-Errno.INVAL);
    // Moved: b's parent is now c (its .. says so).
    expect(a.rename('b', root.openDir('c') as VDir, 'b')).toBe(0);
    const dots: bigint[] = [];
    b.readdir(1, (_n, ino) => (dots.push(ino), false));
    expect(dots).toEqual([(root.stat('c') as { ino: bigint }).ino]);
    // A directory onto an empty one replaces it.
    expect(root.mkdir('z')).toBe(0);
    expect(root.mkdir('y')).toBe(0);
    expect(root.rename('z', root, 'y')).toBe(0);
    expect(root.lookup('z')).toBe(null);
    expect(root.lookup('y')).toBe('dir');
  });

  it('seeding refuses an entry under a missing or non-directory parent, and stops at the quota', () => {
    const { root } = fresh();
    expect(seedMount(root, [{ path: 'x/y', kind: 'dir' }])).toBe(Errno.NOENT);
    expect(seedMount(root, [{ path: 'f', kind: 'file', data: new Uint8Array([1]) }, { path: 'f/y', kind: 'dir' }])).toBe(Errno.NOENT);
    const small = fresh(5);
    expect(seedMount(small.root, [{ path: 'ab', kind: 'file', data: new Uint8Array(3) }])).toBe(0); // 2 + 3: exactly the quota
    expect(seedMount(small.root, [{ path: 'c', kind: 'dir' }])).toBe(Errno.NOSPC);
    expect(seedMount(small.root, [{ path: 'l', kind: 'symlink', target: '' }])).toBe(Errno.NOSPC);
    const links = fresh(4); // a symlink's target is charged with its name: 'l' and 'abc' fit exactly
    expect(seedMount(links.root, [{ path: 'l', kind: 'symlink', target: 'abcd' }])).toBe(Errno.NOSPC);
    expect(seedMount(links.root, [{ path: 'l', kind: 'symlink', target: 'abc' }])).toBe(0);
    expect(links.quota.bytes).toBe(4);
    const data = new Uint8Array([4, 5]);
    const s = fresh();
    expect(seedMount(s.root, [{ path: 'f', kind: 'file', data }, { path: 'l', kind: 'symlink', target: 'f' }])).toBe(0);
    data[0] = 0; // the seed's bytes are copied, not shared
    const out = new Uint8Array(2);
    expect((s.root.open('f', { ...OPEN, create: false }) as VFile).pread(out, 0)).toBe(2);
    expect([...out]).toEqual([4, 5]);
    expect(s.root.readlink('l')).toBe('f');
    expect(s.root.readlink('f')).toBe(-Errno.INVAL);
    expect(s.root.readlink('none')).toBe(-Errno.NOENT);
    expect((s.root.stat('l') as { size: bigint }).size).toBe(1n);
  });
});

describe('VDir refuses by itself what the table usually refuses first', () => {
  it('each operation on a missing name, the wrong kind, or an existing one answers its errno and changes nothing', () => {
    const { root, quota, file } = fresh();
    file('f');
    expect(root.mkdir('d')).toBe(0);
    const before = { bytes: quota.bytes, entries: quota.entries };
    expect(root.openDir('none')).toBe(-Errno.NOENT);
    expect(root.openDir('f')).toBe(-Errno.NOTDIR);
    expect(root.open('none', { ...OPEN, create: false })).toBe(-Errno.NOENT);
    expect(root.open('none', { ...OPEN, directory: true })).toBe(-Errno.ISDIR);
    expect(root.open('f', { ...OPEN, exclusive: true })).toBe(-Errno.EXIST);
    expect(root.open('f', { ...OPEN, create: false, directory: true })).toBe(-Errno.NOTDIR);
    expect(root.open('d', { ...OPEN, create: false })).toBe(-Errno.ISDIR); // for writing
    expect(root.open('d', { ...OPEN, create: false, write: false })).toBeInstanceOf(VDir);
    expect(root.mkdir('f')).toBe(-Errno.EXIST);
    expect(root.rmdir('none')).toBe(-Errno.NOENT);
    expect(root.rmdir('f')).toBe(-Errno.NOTDIR);
    expect(root.unlink('none')).toBe(-Errno.NOENT);
    expect(root.unlink('d')).toBe(-Errno.ISDIR);
    expect(root.symlink('t', 'f')).toBe(-Errno.EXIST);
    expect(root.stat('none')).toBe(-Errno.NOENT);
    const other = new Vfs(new QuotaAccount(WASI_QUOTA_DEFAULTS)).mount('/o', false)!;
    expect(root.rename('f', other, 'g')).toBe(-Errno.XDEV);
    expect(root.link('f', other, 'g')).toBe(-Errno.XDEV);
    expect(root.rename('none', root, 'g')).toBe(-Errno.NOENT);
    expect(root.link('none', root, 'g')).toBe(-Errno.NOENT);
    expect(root.link('f', root, 'd')).toBe(-Errno.EXIST);
    expect({ bytes: quota.bytes, entries: quota.entries }).toEqual(before);
    expect(file('f').sync()).toBe(0);
  });

  it('a new file over the entry or byte quota is ENOSPC with nothing made', () => {
    const q = new QuotaAccount({ ...WASI_QUOTA_DEFAULTS, maxInodes: 2, maxBytes: 3 });
    const root = new Vfs(q).mount('/v', false)!;
    expect(root.open('abcd', OPEN)).toBe(-Errno.NOSPC); // 4 bytes of name
    expect(root.open('abc', OPEN)).toBeInstanceOf(VFile);
    expect(root.open('x', OPEN)).toBe(-Errno.NOSPC); // entries: the root and abc
    expect(root.lookup('x')).toBe(null);
  });

  it('rename over an existing name gives back the replaced entry and its name; its contents go with its last link', () => {
    const { root, quota, file } = fresh();
    file('from').pwrite(new Uint8Array([1, 2]), 2, 0);
    const victim = file('victim');
    victim.pwrite(new Uint8Array([9, 9, 9]), 3, 0);
    victim.close();
    expect({ bytes: quota.bytes, entries: quota.entries }).toEqual({ bytes: 4 + 2 + 6 + 3, entries: 3 });
    expect(root.rename('from', root, 'victim')).toBe(0);
    // The longer name's bytes stay charged under the name it replaced: 'from' (4) and victim's 3 bytes go.
    expect({ bytes: quota.bytes, entries: quota.entries }).toEqual({ bytes: 6 + 2, entries: 2 });
    expect(root.lookup('from')).toBe(null);
    const out = new Uint8Array(2);
    expect((root.open('victim', { ...OPEN, create: false }) as VFile).pread(out, 0)).toBe(2);
    expect([...out]).toEqual([1, 2]);
  });
});

describe('rename and the byte quota', () => {
  it('a longer new name is charged the difference, at the quota’s edge; a shorter one gives it back', () => {
    const { root, quota, file } = fresh(6);
    file('a');
    expect(quota.bytes).toBe(1);
    expect(root.rename('a', root, 'abcdefg')).toBe(-Errno.NOSPC); // 6 more, 5 left
    expect(root.lookup('a')).toBe('file');
    expect(quota.bytes).toBe(1);
    expect(root.rename('a', root, 'abcdef')).toBe(0); // 5 more: exactly the quota
    expect(quota.bytes).toBe(6);
    expect(root.rename('abcdef', root, 'ab')).toBe(0);
    expect(quota.bytes).toBe(2);
    expect(root.rename('ab', root, 'xy')).toBe(0); // the same length: nothing changes
    expect(quota.bytes).toBe(2);
    expect([root.lookup('ab'), root.lookup('xy')]).toEqual([null, 'file']);
  });
});
