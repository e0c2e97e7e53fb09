/**
 * How a path is walked inside a preopen (host/wasi/fs.ts, walk), seen through path_filestat_get:
 * empty and `.` components, trailing slashes (the result must be a directory), `..` back to where
 * the walk started, the empty path, and the longest name (255 bytes) and one byte more. POSIX (and
 * Wasmtime) resolve each so; a mistake here opens the wrong file, or a file where a directory was
 * required.
 */
import { describe, expect, it } from 'vitest';
import { Errno, Filetype } from '../../host/wasi/errno.ts';
import { harness } from './harness.ts';

const PREOPEN = 3;
const FOLLOW = 1;
const long = 'n'.repeat(255);

function tree() {
  return harness({
    entries: [
      { path: 'd', kind: 'dir' },
      { path: 'd/f', kind: 'file', data: new TextEncoder().encode('xyz') },
      { path: 'top', kind: 'file', data: new TextEncoder().encode('ab') },
      { path: 'ln', kind: 'symlink', target: 'd' },
      { path: long, kind: 'file', data: new Uint8Array(4) },
    ],
  });
}

/** path_filestat_get from the preopen: [errno, filetype, size, inode] (zeros on failure). */
function stat(h: ReturnType<typeof tree>, path: string, flags = FOLLOW): [number, number, number, number] {
  const len = h.put(1024, path);
  h.bytes.fill(0, 3200, 3264);
  const e = h.call('path_filestat_get', PREOPEN, flags, 1024, len, 3200);
  return [e, h.bytes[3200 + 16]!, Number(h.dv.getBigUint64(3200 + 32, true)), Number(h.dv.getBigUint64(3200 + 8, true))];
}
/** [errno, filetype, size] only. */
const kind = (h: ReturnType<typeof tree>, path: string, flags = FOLLOW) => stat(h, path, flags).slice(0, 3);

const FILE = Filetype.REGULAR_FILE;
const DIR = Filetype.DIRECTORY;
const LINK = Filetype.SYMBOLIC_LINK;

describe('walking a path inside a preopen', () => {
  it('names files and directories through empty and . components', () => {
    const h = tree();
    expect(kind(h, 'd/f')).toEqual([0, FILE, 3]);
    expect(kind(h, 'd//f')).toEqual([0, FILE, 3]);
    expect(kind(h, './d/./f')).toEqual([0, FILE, 3]);
    expect(kind(h, 'd/.//./f')).toEqual([0, FILE, 3]);
    expect(kind(h, 'top')).toEqual([0, FILE, 2]);
  });

  it('a path ending in . or .. names a directory of the walk itself', () => {
    const h = tree();
    const root = stat(h, '.');
    const d = stat(h, 'd');
    expect(root[0]).toBe(0);
    expect(root[1]).toBe(DIR);
    expect(d.slice(0, 2)).toEqual([0, DIR]);
    expect(d[3]).not.toBe(root[3]);
    expect(stat(h, 'd/.')[3]).toBe(d[3]);
    expect(stat(h, 'd/')[3]).toBe(d[3]);
    expect(stat(h, 'd//')[3]).toBe(d[3]);
    expect(stat(h, 'd/..')[3]).toBe(root[3]);
    expect(stat(h, 'd/../d')[3]).toBe(d[3]);
    expect(stat(h, './')[3]).toBe(root[3]);
  });

  it('a trailing slash requires a directory: on a file it is ENOTDIR, on a symlink to a directory it follows it', () => {
    const h = tree();
    expect(kind(h, 'top/')[0]).toBe(Errno.NOTDIR);
    expect(kind(h, 'top//')[0]).toBe(Errno.NOTDIR);
    expect(kind(h, 'd/f/')[0]).toBe(Errno.NOTDIR);
    expect(kind(h, 'ln', 0)).toEqual([0, LINK, 1]); // not followed: the link itself (its target's length)
    expect(kind(h, 'ln/', 0).slice(0, 2)).toEqual([0, DIR]); // the slash follows it
    expect(kind(h, 'ln/f', 0)).toEqual([0, FILE, 3]); // an inner link is always followed
  });

  it('a trailing slash on a new name: mkdir "e/" makes e (as POSIX mkdir does)', () => {
    const h = tree();
    for (const path of ['e/', 'g//']) {
      const len = h.put(1024, path);
      expect(h.call('path_create_directory', PREOPEN, 1024, len), path).toBe(0);
      expect(kind(h, path.replace(/\/+$/, '')).slice(0, 2)).toEqual([0, DIR]);
    }
  });

  it('the empty path is ENOENT; a missing middle component ENOENT, a file as one ENOTDIR', () => {
    const h = tree();
    expect(kind(h, '')[0]).toBe(Errno.NOENT);
    expect(kind(h, 'nope/f')[0]).toBe(Errno.NOENT);
    expect(kind(h, 'top/f')[0]).toBe(Errno.NOTDIR);
    expect(kind(h, 'nope')[0]).toBe(Errno.NOENT);
  });

  it('a name of 255 bytes is found; one of 256 is ENAMETOOLONG, as a last or a middle component', () => {
    const h = tree();
    expect(kind(h, long)).toEqual([0, FILE, 4]);
    expect(kind(h, `${long}n`)[0]).toBe(Errno.NAMETOOLONG);
    expect(kind(h, `${long}n/f`)[0]).toBe(Errno.NAMETOOLONG);
    expect(kind(h, `d/${'m'.repeat(255)}`)[0]).toBe(Errno.NOENT);
  });

  it('descends 64 directories in one call; a 65th is ENAMETOOLONG (docs/ABI.md), from any fd', () => {
    const h = tree();
    const chain = (n: number): string => Array.from({ length: n }, () => 'c').join('/');
    // Each mkdir descends one directory fewer than the path has names: the 65th descends 64.
    for (let i = 1; i <= 65; i++) {
      const len = h.put(1024, chain(i));
      expect(h.call('path_create_directory', PREOPEN, 1024, len), `mkdir of ${i} names`).toBe(0);
    }
    expect(kind(h, chain(65)).slice(0, 2)).toEqual([0, DIR]); // 64 descents, then the last name
    expect(kind(h, `${chain(64)}/.`).slice(0, 2)).toEqual([0, DIR]);
    expect(kind(h, `${chain(65)}/x`)[0]).toBe(Errno.NAMETOOLONG); // 65 descents
    expect(kind(h, `${chain(65)}/.`)[0]).toBe(Errno.NAMETOOLONG);
    // `..` gives a descent back: the bound is on directories held at once, not on names.
    expect(kind(h, `${chain(64)}/../${chain(1)}/x`)[0]).toBe(Errno.NOENT);
    // A program continues from an fd it opened on the way.
    const len = h.put(1024, chain(64));
    expect(h.call('path_open', PREOPEN, FOLLOW, 1024, len, 2, 1n << 18n, 0x1fffffffn, 0, 3000)).toBe(0); // PATH_FILESTAT_GET
    const deep = h.dv.getUint32(3000, true);
    const rest = h.put(1024, `${chain(1)}/x`);
    expect(h.call('path_filestat_get', deep, FOLLOW, 1024, rest, 3200)).toBe(Errno.NOENT);
  });
});
