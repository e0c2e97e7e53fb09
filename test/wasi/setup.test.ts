/**
 * createWasi's wiring, called directly with each kind of device set: stdin from bytes, from the
 * console, or at end of file; stdout/stderr without a console device (no rights); the timestamps a
 * guest may see (a host folder's times rounded down to the clock's resolution, 0 without a clock or
 * with a deterministic one; an in-memory file stamped by the clock); a seed that does not fit the
 * entry quota; and close(), which closes every fd, once. test/wasi/harness
 * wires one fixed set of devices; these are the others a partition's spec can give.
 */
import { closeSync, constants, mkdtempSync, openSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { WASI_QUOTA_DEFAULTS, type ResolvedWasi } from '../../host/wasi/config.ts';
import { Errno, Oflags } from '../../host/wasi/errno.ts';
import type { ConsolePort } from '../../host/wasi/fd.ts';
import { createWasi, type WasiWiring } from '../../host/wasi/setup.ts';
import { wiring } from './harness.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'wasmvisor-wasi-setup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const enc = new TextEncoder();
const ALL = BigInt((1 << 30) - 1);

function wire(config: Partial<ResolvedWasi>, devices: Partial<Pick<WasiWiring, 'console' | 'clock' | 'deterministicClock'>> = {}) {
  const buffer = new ArrayBuffer(65536);
  const memory = new GuestMemory();
  memory.bind({ buffer });
  const resolved: ResolvedWasi = { args: [], env: [], preopens: [], stdin: { kind: 'none' }, quotas: WASI_QUOTA_DEFAULTS, ...config };
  const wasi = createWasi(resolved, wiring(memory, { entropy: { fill: (out, n) => out.fill(1, 0, n) }, ...devices }));
  const bytes = new Uint8Array(buffer);
  const dv = new DataView(buffer);
  const fns = wasi.imports as unknown as Record<string, (...a: (number | bigint)[]) => number>;
  const call = (name: string, ...args: (number | bigint)[]) => fns[name]!(...args);
  const read = (fd: number, cap = 64): [number, string] => {
    dv.setUint32(3000, 8192, true);
    dv.setUint32(3004, cap, true);
    const e = call('fd_read', fd, 3000, 1, 3008);
    return [e, new TextDecoder().decode(bytes.subarray(8192, 8192 + dv.getUint32(3008, true)))];
  };
  const write = (fd: number, text: string): number => {
    bytes.set(enc.encode(text), 4096);
    dv.setUint32(3000, 4096, true);
    dv.setUint32(3004, enc.encode(text).length, true);
    return call('fd_write', fd, 3000, 1, 3008);
  };
  /** path_filestat_get from `fd` (not following): [errno, mtim]. */
  const mtime = (fd: number, name: string): [number, bigint] => {
    bytes.set(enc.encode(name), 1024);
    const e = call('path_filestat_get', fd, 0, 1024, enc.encode(name).length, 3200);
    return [e, dv.getBigUint64(3200 + 48, true)];
  };
  const put = (ptr: number, text: string): number => {
    const b = enc.encode(text);
    bytes.set(b, ptr);
    return b.length;
  };
  const u16 = (ptr: number): number => dv.getUint16(ptr, true);
  return { wasi, call, read, write, mtime, put, u16 };
}

/** A console whose input is `input` and whose output is collected. */
function console_(input: string): ConsolePort & { out: string[] } {
  let pending = enc.encode(input);
  const out: string[] = [];
  return {
    out,
    writeStream: (stream, b, n) => (out.push(`${stream}:${new TextDecoder().decode(b.subarray(0, n))}`), n),
    readStream: (buf) => {
      const n = Math.min(buf.length, pending.length);
      buf.set(pending.subarray(0, n));
      pending = pending.subarray(n);
      return n;
    },
    readableBytes: () => pending.length,
    waitInput: () => {},
  };
}

describe('createWasi: stdio from the devices it is given', () => {
  it('stdin from fixed bytes reads them, then end of file', () => {
    const w = wire({ stdin: { kind: 'bytes', bytes: enc.encode('abc') } }, { console: console_('from the console') });
    expect(w.read(0)).toEqual([0, 'abc']);
    expect(w.read(0)).toEqual([0, '']);
  });

  it('stdin from the console reads the console’s input; stdout and stderr write to it, each its own stream', () => {
    const c = console_('typed');
    const w = wire({ stdin: { kind: 'console' } }, { console: c });
    expect(w.read(0)).toEqual([0, 'typed']);
    expect(w.write(1, 'out')).toBe(0);
    expect(w.write(2, 'err')).toBe(0);
    expect(c.out).toEqual(['stdout:out', 'stderr:err']);
  });

  it('without a console device: stdin is at end of file, stdout and stderr exist but refuse writes with EBADF (docs/ABI.md)', () => {
    const w = wire({ stdin: { kind: 'console' } });
    expect(w.read(0)).toEqual([0, '']);
    expect(w.write(1, 'x')).toBe(Errno.BADF);
    expect(w.write(2, 'x')).toBe(Errno.BADF);
    expect(w.call('fd_fdstat_get', 1, 3300)).toBe(0); // the fd is there
    // Each its own fd: flags set on stdout are not stderr's.
    expect(w.call('fd_fdstat_set_flags', 1, 1)).toBe(0);
    expect(w.call('fd_fdstat_get', 2, 3300)).toBe(0);
    expect(w.u16(3302)).toBe(0); // fs_flags
    expect(w.call('fd_fdstat_get', 1, 3300)).toBe(0);
    expect(w.u16(3302)).toBe(1);
  });

  it('stdin "none" is at end of file even with a console that has input', () => {
    const w = wire({ stdin: { kind: 'none' } }, { console: console_('ignored') });
    expect(w.read(0)).toEqual([0, '']);
  });
});

describe('createWasi: the timestamps a guest sees', () => {
  /** A host folder with a file f whose mtime has digits below the second; returns its fd and f's mtime in ns. */
  const folder = (): { fd: number; mtimeNs: bigint } => {
    const root = mkdtempSync(path.join(dir, 'host-'));
    writeFileSync(path.join(root, 'f'), 'x');
    utimesSync(path.join(root, 'f'), 1_700_000_123.456789, 1_700_000_123.456789);
    return { fd: openSync(root, constants.O_RDONLY | constants.O_DIRECTORY), mtimeNs: statSync(path.join(root, 'f'), { bigint: true }).mtimeNs };
  };
  let exact = 0n;
  const stamped = (devices: Parameters<typeof wire>[1]): bigint => {
    const { fd, mtimeNs } = folder();
    exact = mtimeNs;
    try {
      const w = wire({ preopens: [{ guestPath: '/h', kind: 'host', mode: 'ro', fd }] }, devices);
      const [e, t] = w.mtime(3, 'f');
      expect(e).toBe(0);
      return t;
    } finally {
      closeSync(fd);
    }
  };
  const clock = (resolutionNs: number) => ({ read: () => 5n, resolutionNs });

  it('a host file’s times are rounded down to the clock’s resolution', () => {
    expect(stamped({ clock: clock(1_000_000) })).toBe(exact - (exact % 1_000_000n));
    expect(stamped({ clock: clock(1_000_000_000) })).toBe(1_700_000_123_000_000_000n);
    expect(stamped({ clock: clock(0) })).toBe(exact); // a resolution of 0 counts as 1 ns
    expect(exact % 1_000_000_000n).not.toBe(0n); // the file system kept the fraction: the roundings above differ
  });

  it('a host file’s times are 0 without a clock, or with a deterministic one', () => {
    expect(stamped({})).toBe(0n);
    expect(stamped({ clock: clock(1), deterministicClock: true })).toBe(0n);
    expect(stamped({ clock: clock(1), deterministicClock: false })).not.toBe(0n);
  });

  it('an in-memory file is stamped by the clock, and 0 without one', () => {
    for (const [devices, want] of [
      [{ clock: { read: () => 77n, resolutionNs: 1 } }, 77n],
      [{}, 0n],
    ] as const) {
      const w = wire({ preopens: [{ guestPath: '/m', kind: 'virtual', readonly: false, entries: [] }] }, devices);
      const len = w.put(1024, 'new');
      expect(w.call('path_open', 3, 0, 1024, len, Oflags.CREAT, ALL, ALL, 0, 2048)).toBe(0);
      expect(w.mtime(3, 'new')).toEqual([0, want]);
    }
  });
});

describe('createWasi: preopens and close', () => {
  it('a seed larger than the entry quota is refused with its preopen named', () => {
    const entries = [
      { path: 'a', kind: 'dir' as const },
      { path: 'b', kind: 'dir' as const },
    ];
    expect(() => wire({ preopens: [{ guestPath: '/s', kind: 'virtual', readonly: false, entries }], quotas: { ...WASI_QUOTA_DEFAULTS, maxInodes: 2 } })).toThrow(
      /^seeding preopen \/s failed with errno \d+$/,
    );
    expect(() => wire({ preopens: [{ guestPath: '/s', kind: 'virtual', readonly: false, entries: [] }], quotas: { ...WASI_QUOTA_DEFAULTS, maxInodes: 0 } })).toThrow(
      'the entry quota is too small for preopen /s',
    );
    expect(() => wire({ preopens: [{ guestPath: '/s', kind: 'virtual', readonly: false, entries }], quotas: { ...WASI_QUOTA_DEFAULTS, maxInodes: 3 } })).not.toThrow();
  });

  it('close() closes every fd (stdio and preopens), and a second close does nothing', () => {
    const w = wire({ preopens: [{ guestPath: '/m', kind: 'virtual', readonly: false, entries: [{ path: 'f', kind: 'file', data: enc.encode('secret') }] }] }, { console: console_('') });
    const fdsBefore = w.call('fd_fdstat_get', 3, 3300);
    expect(fdsBefore).toBe(0);
    w.wasi.close();
    expect(w.call('fd_fdstat_get', 3, 3300)).toBe(Errno.BADF);
    expect(w.call('fd_fdstat_get', 1, 3300)).toBe(Errno.BADF);
    expect(w.call('fd_fdstat_get', 0, 3300)).toBe(Errno.BADF);
    expect(() => w.wasi.close()).not.toThrow();
  });
});
