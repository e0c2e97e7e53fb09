/**
 * The WASI table's own checks (host/wasi/wasi.ts), each at its edge: an output pointer past the end
 * of memory is EFAULT before anything happens (no byte read or written, no position moved, nothing
 * created); devices not granted (clock, entropy) are ENOTCAPABLE; which clock of the device each
 * WASI clock reads; random_get across more than one chunk; the hypercall rate limit refusing every
 * call (EAGAIN, nothing done); fst_flags that contradict themselves (EINVAL, nothing set).
 */
import { describe, expect, it } from 'vitest';
import { Errno, Fstflags, Oflags, Rights, Whence } from '../../host/wasi/errno.ts';
import { harness, type Harness } from './harness.ts';

const PREOPEN = 3;
const ALL = BigInt((1 << 30) - 1);
const END = 65536;

/** Opens f (creating it) read-write: its fd. */
function openF(h: Harness, name = 'f', oflags: number = Oflags.CREAT): number {
  const len = h.put(1024, name);
  expect(h.call('path_open', PREOPEN, 1, 1024, len, oflags, ALL, ALL, 0, 2048)).toBe(0);
  return h.dv.getUint32(2048, true);
}
/** One iovec at 3000 for [ptr, ptr + len). */
function iov(h: Harness, ptr: number, len: number): void {
  h.dv.setUint32(3000, ptr, true);
  h.dv.setUint32(3004, len, true);
}
/** The filestat of name: [size, atim, mtim]. */
function stat(h: Harness, name: string): [bigint, bigint, bigint] {
  const len = h.put(1024, name);
  expect(h.call('path_filestat_get', PREOPEN, 0, 1024, len, 3200)).toBe(0);
  return [h.dv.getBigUint64(3200 + 32, true), h.dv.getBigUint64(3200 + 40, true), h.dv.getBigUint64(3200 + 48, true)];
}

describe('an output pointer past the end of memory is EFAULT before anything happens', () => {
  it('fd_read, fd_pread: nothing is consumed; fd_write, fd_pwrite: nothing is written', () => {
    const h = harness({ entries: [{ path: 'f', kind: 'file', data: new TextEncoder().encode('data') }] });
    const f = openF(h, 'f', 0);
    iov(h, 8192, 16);
    for (const bad of [END - 3, END, -1]) {
      expect(h.call('fd_read', f, 3000, 1, bad)).toBe(Errno.FAULT);
      expect(h.call('fd_pread', f, 3000, 1, 0n, bad)).toBe(Errno.FAULT);
      expect(h.call('fd_write', f, 3000, 1, bad)).toBe(Errno.FAULT);
      expect(h.call('fd_pwrite', f, 3000, 1, 0n, bad)).toBe(Errno.FAULT);
    }
    expect(h.call('fd_read', f, 3000, 1, END - 4)).toBe(0); // the last 4 bytes: fine
    expect(h.dv.getUint32(END - 4, true)).toBe(4);
    expect(h.get(8192, 4)).toBe('data'); // from position 0: the refused reads took nothing
    expect(stat(h, 'f')[0]).toBe(4n);
    expect(h.faults).toEqual(Array(12).fill(0).map((_, i) => ['fd_read', 'fd_pread', 'fd_write', 'fd_pwrite'][i % 4]));
  });

  it('fd_seek and fd_tell: the position does not move', () => {
    const h = harness({ entries: [{ path: 'f', kind: 'file', data: new Uint8Array(10) }] });
    const f = openF(h, 'f', 0);
    expect(h.call('fd_seek', f, 5n, Whence.SET, END - 7)).toBe(Errno.FAULT);
    expect(h.call('fd_tell', f, END - 7)).toBe(Errno.FAULT);
    expect(h.call('fd_tell', f, END - 8)).toBe(0);
    expect(h.dv.getBigUint64(END - 8, true)).toBe(0n);
    expect(h.call('fd_seek', f, 5n, Whence.SET, END - 8)).toBe(0);
    expect(h.dv.getBigUint64(END - 8, true)).toBe(5n);
  });

  it('fd_fdstat_get, fd_filestat_get, path_filestat_get, fd_prestat_get, fd_prestat_dir_name: each needs its whole record', () => {
    const h = harness({ entries: [{ path: 'f', kind: 'file', data: new Uint8Array(1) }] });
    const len = h.put(1024, 'f');
    expect(h.call('fd_fdstat_get', PREOPEN, END - 23)).toBe(Errno.FAULT);
    expect(h.call('fd_fdstat_get', PREOPEN, END - 24)).toBe(0);
    expect(h.call('fd_filestat_get', PREOPEN, END - 63)).toBe(Errno.FAULT);
    expect(h.call('fd_filestat_get', PREOPEN, END - 64)).toBe(0);
    expect(h.call('path_filestat_get', PREOPEN, 0, 1024, len, END - 63)).toBe(Errno.FAULT);
    expect(h.call('path_filestat_get', PREOPEN, 0, 1024, len, END - 64)).toBe(0);
    expect(h.call('fd_prestat_get', PREOPEN, END - 7)).toBe(Errno.FAULT);
    expect(h.call('fd_prestat_get', PREOPEN, END - 8)).toBe(0);
    expect(h.call('fd_prestat_dir_name', PREOPEN, END - 7, 100)).toBe(Errno.FAULT); // '/sandbox' is 8 bytes
    expect(h.call('fd_prestat_dir_name', PREOPEN, END - 8, 100)).toBe(0);
    expect(h.get(END - 8, 8)).toBe('/sandbox');
  });

  it('path_open: nothing is created; path_readlink, fd_readdir: both the buffer and the count are checked', () => {
    const h = harness({ entries: [{ path: 'l', kind: 'symlink', target: 'abc' }] });
    const len = h.put(1024, 'new');
    expect(h.call('path_open', PREOPEN, 0, 1024, len, Oflags.CREAT, ALL, ALL, 0, END - 3)).toBe(Errno.FAULT);
    expect(h.call('path_open', PREOPEN, 0, 1024, len, 0, ALL, ALL, 0, 2048)).toBe(Errno.NOENT);
    const ll = h.put(1024, 'l');
    expect(h.call('path_readlink', PREOPEN, 1024, ll, END - 2, 3, 3100)).toBe(Errno.FAULT);
    expect(h.call('path_readlink', PREOPEN, 1024, ll, 5000, 3, END - 3)).toBe(Errno.FAULT);
    expect(h.call('path_readlink', PREOPEN, 1024, ll, END - 3, 3, END - 7)).toBe(0);
    expect(h.get(END - 3, 3)).toBe('abc');
    expect(h.call('fd_readdir', PREOPEN, END - 99, 100, 0n, 3100)).toBe(Errno.FAULT);
    expect(h.call('fd_readdir', PREOPEN, 5000, 100, 0n, END - 3)).toBe(Errno.FAULT);
    expect(h.call('fd_readdir', PREOPEN, END - 100, 100, 0n, END - 104)).toBe(0);
  });

  it('args, environ, clocks, random_get and poll_oneoff check every pointer they write or read', () => {
    const h = harness();
    // args: 'prog', 'a1' (2 pointers, 8 bytes); environ: 'K=V' (1 pointer, 4 bytes).
    for (const [sizes, get, count, bytes] of [
      ['args_sizes_get', 'args_get', 2, 8],
      ['environ_sizes_get', 'environ_get', 1, 4],
    ] as const) {
      expect(h.call(sizes, END - 3, 100)).toBe(Errno.FAULT);
      expect(h.call(sizes, 100, END - 3)).toBe(Errno.FAULT);
      expect(h.call(sizes, END - 8, END - 4)).toBe(0);
      expect(h.call(get, END - count * 4 + 1, 200)).toBe(Errno.FAULT);
      expect(h.call(get, 100, END - bytes + 1)).toBe(Errno.FAULT);
      expect(h.call(get, END - count * 4, END - count * 4 - bytes)).toBe(0);
      expect(h.dv.getUint32(END - count * 4, true)).toBe(END - count * 4 - bytes); // the first pointer: the first string
    }
    expect(h.get(END - 4 - 4, 3)).toBe('K=V');
    expect(h.call('clock_res_get', 0, END - 7)).toBe(Errno.FAULT);
    expect(h.call('clock_time_get', 0, 0n, END - 7)).toBe(Errno.FAULT);
    expect(h.call('random_get', END - 4, 5)).toBe(Errno.FAULT);
    expect(h.call('random_get', END - 4, 4)).toBe(0);
    // poll_oneoff: subscriptions in, events out, the count.
    h.bytes.fill(0, 1000, 1048);
    h.dv.setBigUint64(1024, 0n, true); // a relative clock of 0 ns: due at once
    expect(h.call('poll_oneoff', END - 47, 2000, 1, 3000)).toBe(Errno.FAULT);
    expect(h.call('poll_oneoff', 1000, END - 31, 1, 3000)).toBe(Errno.FAULT);
    expect(h.call('poll_oneoff', 1000, 2000, 1, END - 3)).toBe(Errno.FAULT);
    expect(h.call('poll_oneoff', 1000, END - 32, 1, END - 36)).toBe(0);
    expect(h.dv.getUint32(END - 36, true)).toBe(1);
  });
});

describe('devices not granted, and which device clock a WASI clock reads', () => {
  it('without a clock: clock_res_get and clock_time_get are ENOTCAPABLE, a clock subscription’s event says so', () => {
    const h = harness({ clock: null });
    h.bytes.fill(0x77, 600, 608);
    expect(h.call('clock_res_get', 1, 600)).toBe(Errno.NOTCAPABLE);
    expect(h.call('clock_time_get', 1, 0n, 600)).toBe(Errno.NOTCAPABLE);
    expect(h.dv.getBigUint64(600, true)).toBe(0x7777777777777777n);
    expect(h.call('clock_res_get', 4, 600)).toBe(Errno.INVAL); // an unknown clock is EINVAL first
    h.bytes.fill(0, 1000, 1048);
    h.dv.setBigUint64(1000, 9n, true);
    h.dv.setUint32(1016, 1, true);
    expect(h.call('poll_oneoff', 1000, 2000, 1, 3000)).toBe(0);
    expect([h.dv.getBigUint64(2000, true), h.dv.getUint16(2008, true), h.bytes[2010]]).toEqual([9n, Errno.NOTCAPABLE, 0]);
  });

  it('REALTIME reads the device’s wall clock; MONOTONIC and both CPU clocks its monotonic one; the resolution is the device’s', () => {
    const asked: number[] = [];
    const h = harness({ clock: { read: (id) => (asked.push(id), id === 1 ? 1_700_000_000_000_000_000n : 42n), resolutionNs: 250 } });
    asked.length = 0; // the preopen's root was stamped with the wall clock
    const time = (id: number): bigint => {
      expect(h.call('clock_time_get', id, 0n, 600)).toBe(0);
      return h.dv.getBigUint64(600, true);
    };
    expect([time(0), time(1), time(2), time(3)]).toEqual([1_700_000_000_000_000_000n, 42n, 42n, 42n]);
    expect(asked).toEqual([1, 0, 0, 0]);
    for (const id of [0, 1, 2, 3]) {
      expect(h.call('clock_res_get', id, 600)).toBe(0);
      expect(h.dv.getBigUint64(600, true)).toBe(250n);
    }
    expect(h.call('clock_res_get', 4, 600)).toBe(Errno.INVAL);
    expect(h.call('clock_time_get', 4, 0n, 600)).toBe(Errno.INVAL);
    expect(h.call('clock_time_get', -1, 0n, 600)).toBe(Errno.INVAL);
  });

  it('an absolute clock subscription already past is due at once, on the clock it names', () => {
    const h = harness({ clock: { read: (id) => (id === 1 ? 5_000_000_000n : 1_000n), resolutionNs: 1 } });
    h.bytes.fill(0, 1000, 1048);
    h.dv.setBigUint64(1000, 3n, true);
    h.dv.setUint32(1016, 0, true); // REALTIME, now 5 s
    h.dv.setBigUint64(1024, 4_000_000_000n, true); // at 4 s: past
    h.dv.setUint16(1040, 1, true); // ABSTIME
    const t = performance.now();
    expect(h.call('poll_oneoff', 1000, 2000, 1, 3000)).toBe(0);
    expect(performance.now() - t).toBeLessThan(10_000); // not the 4 s a relative reading would wait
    expect(h.dv.getBigUint64(2000, true)).toBe(3n);
  });

  it('without entropy random_get is ENOTCAPABLE; with it, a request over 64 KiB is filled in chunks, exactly to its end', () => {
    expect(harness({ entropy: null }).call('random_get', 100, 4)).toBe(Errno.NOTCAPABLE);
    const chunks: number[] = [];
    let next = 1;
    const h = harness({ pages: 3, entropy: { fill: (out, n) => (chunks.push(n), out.fill(next++, 0, n)) } });
    h.bytes.fill(0xee);
    expect(h.call('random_get', 100, 65536 + 10)).toBe(0);
    expect(chunks).toEqual([65536, 10]);
    expect(h.bytes[99]).toBe(0xee);
    expect(h.bytes[100]).toBe(1);
    expect(h.bytes[100 + 65535]).toBe(1);
    expect(h.bytes[100 + 65536]).toBe(2);
    expect(h.bytes[100 + 65545]).toBe(2);
    expect(h.bytes[100 + 65546]).toBe(0xee);
    chunks.length = 0;
    expect(h.call('random_get', 100, 0)).toBe(0);
    expect(chunks).toEqual([]);
    expect(h.call('random_get', 100, 65536)).toBe(0);
    expect(chunks).toEqual([65536]);
  });
});

describe('the hypercall rate limit', () => {
  it('refused: every call but proc_exit answers EAGAIN and does nothing; fd_write and fd_pwrite ask for their bytes', () => {
    let allow = true;
    const asked: number[] = [];
    const h = harness({ admit: (n) => (asked.push(n), allow) });
    const f = openF(h);
    h.put(4096, 'hello');
    iov(h, 4096, 5);
    expect(h.call('fd_write', f, 3000, 1, 3008)).toBe(0);
    expect(asked.at(-1)).toBe(5);
    expect(h.call('fd_pwrite', f, 3000, 1, 0n, 3008)).toBe(0);
    expect(asked.slice(-1)).toEqual([5]); // passed once, with its bytes (not also with 0)
    allow = false;
    asked.length = 0;
    h.dv.setUint32(3008, 0xdead, true);
    expect(h.call('fd_write', f, 3000, 1, 3008)).toBe(Errno.AGAIN);
    expect(h.call('fd_pwrite', f, 3000, 1, 10n, 3008)).toBe(Errno.AGAIN);
    expect(h.dv.getUint32(3008, true)).toBe(0xdead);
    expect(asked).toEqual([5, 5]);
    const len = h.put(1024, 'g');
    expect(h.call('path_open', PREOPEN, 0, 1024, len, Oflags.CREAT, ALL, ALL, 0, 2048)).toBe(Errno.AGAIN);
    expect(h.call('path_create_directory', PREOPEN, 1024, len)).toBe(Errno.AGAIN);
    expect(h.call('fd_close', f)).toBe(Errno.AGAIN);
    expect(h.call('random_get', 100, 4)).toBe(Errno.AGAIN);
    expect(h.call('sched_yield')).toBe(Errno.AGAIN);
    expect(asked.slice(2)).toEqual([0, 0, 0, 0, 0]);
    allow = true;
    expect(stat(h, 'f')[0]).toBe(5n); // nothing more was written
    h.put(1024, 'g');
    expect(h.call('path_open', PREOPEN, 0, 1024, len, 0, ALL, ALL, 0, 2048)).toBe(Errno.NOENT); // nothing was created
    expect(h.call('fd_tell', f, 3300)).toBe(0); // still open
    allow = false;
    expect(() => h.call('proc_exit', 0)).toThrow(); // exit always passes
  });
});

describe('fst_flags', () => {
  it('a time and NOW for the same field, or an unknown bit, is EINVAL and sets nothing; each valid combination sets what it names', () => {
    const h = harness({ entries: [{ path: 'f', kind: 'file', data: new Uint8Array(0) }], clock: { read: () => 999n, resolutionNs: 1 } });
    const f = openF(h, 'f', 0);
    const len = h.put(1024, 'f');
    const viaPath = (a: bigint, m: bigint, fl: number) => h.call('path_filestat_set_times', PREOPEN, 0, 1024, len, a, m, fl);
    const viaFd = (a: bigint, m: bigint, fl: number) => h.call('fd_filestat_set_times', f, a, m, fl);
    for (const set of [viaPath, viaFd]) {
      expect(set(1n, 2n, Fstflags.ATIM | Fstflags.MTIM)).toBe(0);
      expect(stat(h, 'f').slice(1)).toEqual([1n, 2n]);
      for (const bad of [Fstflags.ATIM | Fstflags.ATIM_NOW, Fstflags.MTIM | Fstflags.MTIM_NOW, 16, 0x10 | Fstflags.ATIM, Fstflags.ATIM | Fstflags.ATIM_NOW | Fstflags.MTIM]) {
        expect([bad, set(50n, 60n, bad)]).toEqual([bad, Errno.INVAL]);
        expect(stat(h, 'f').slice(1)).toEqual([1n, 2n]);
      }
      expect(set(7n, 8n, Fstflags.ATIM)).toBe(0);
      expect(stat(h, 'f').slice(1)).toEqual([7n, 2n]);
      expect(set(7n, 9n, Fstflags.MTIM)).toBe(0);
      expect(stat(h, 'f').slice(1)).toEqual([7n, 9n]);
      expect(set(0n, 0n, Fstflags.ATIM_NOW)).toBe(0);
      expect(stat(h, 'f').slice(1)).toEqual([999n, 9n]);
      expect(set(3n, 0n, Fstflags.ATIM | Fstflags.MTIM_NOW)).toBe(0);
      expect(stat(h, 'f').slice(1)).toEqual([3n, 999n]);
      expect(set(-1n, 0n, Fstflags.ATIM)).toBe(0); // an i64 read as the u64 it is
      expect(stat(h, 'f')[1]).toBe(2n ** 64n - 1n);
      expect(set(5n, 5n, 0)).toBe(0); // nothing named: nothing set
      expect(stat(h, 'f').slice(1)).toEqual([2n ** 64n - 1n, 999n]);
    }
    // The preopen's own times, through its fd.
    expect(h.call('fd_filestat_set_times', PREOPEN, 11n, 12n, Fstflags.ATIM | Fstflags.MTIM)).toBe(0);
    expect(stat(h, '.').slice(1)).toEqual([11n, 12n]);
    // Rights: set-times needs its right (a read-only fd has it stripped in a read-only preopen).
    const ro = harness({ readonly: true, entries: [{ path: 'f', kind: 'file', data: new Uint8Array(0) }] });
    const rl = ro.put(1024, 'f');
    expect(ro.call('path_open', PREOPEN, 0, 1024, rl, 0, BigInt(Rights.FD_READ | Rights.FD_FILESTAT_SET_TIMES), ALL, 0, 2048)).toBe(0);
    expect(ro.call('fd_filestat_set_times', ro.dv.getUint32(2048, true), 0n, 0n, Fstflags.MTIM_NOW)).toBe(Errno.NOTCAPABLE);
  });
});

describe('poll_oneoff at its edges', () => {
  /** Writes subscription i at 1000 + 48 i: userdata i + 1, the tag, then the tag's fields. */
  const sub = (h: Harness, i: number, tag: number, fields: { fd?: number; clock?: number; timeout?: bigint; flags?: number } = {}) => {
    const at = 1000 + i * 48;
    h.bytes.fill(0, at, at + 48);
    h.dv.setBigUint64(at, BigInt(i + 1), true);
    h.bytes[at + 8] = tag;
    if (fields.fd !== undefined) h.dv.setUint32(at + 16, fields.fd, true);
    if (fields.clock !== undefined) h.dv.setUint32(at + 16, fields.clock, true);
    if (fields.timeout !== undefined) h.dv.setBigUint64(at + 24, fields.timeout, true);
    if (fields.flags !== undefined) h.dv.setUint16(at + 40, fields.flags, true);
  };
  /** The events at `out`: [userdata, errno, type, nbytes]. */
  const events = (h: Harness, out: number): [bigint, number, number, bigint][] =>
    Array.from({ length: h.dv.getUint32(90_000, true) }, (_, i) => {
      const at = out + i * 32;
      return [h.dv.getBigUint64(at, true), h.dv.getUint16(at + 8, true), h.bytes[at + 10]!, h.dv.getBigUint64(at + 16, true)];
    });

  it('each subscription answers for itself: an unknown tag EINVAL (type 0), a bad fd EBADF, an fd without the poll right ENOTCAPABLE, an unknown clock EINVAL; stdout is writable', () => {
    const h = harness({ pages: 2, stdin: 'abc' });
    sub(h, 0, 3);
    sub(h, 1, 1, { fd: 99 });
    sub(h, 2, 2, { fd: 1 });
    sub(h, 3, 0, { clock: 4, timeout: 0n });
    sub(h, 4, 1, { fd: 0 });
    sub(h, 5, 2, { fd: 0 }); // stdin has no write right
    expect(h.call('poll_oneoff', 1000, 5000, 6, 90_000)).toBe(0);
    expect(events(h, 5000)).toEqual([
      [1n, Errno.INVAL, 0, 0n],
      [2n, Errno.BADF, 1, 0n],
      [3n, 0, 2, 0n],
      [4n, Errno.INVAL, 0, 0n],
      [5n, 0, 1, 3n],
      [6n, Errno.NOTCAPABLE, 2, 0n],
    ]);
    expect(h.call('fd_fdstat_set_rights', 0, BigInt(Rights.FD_READ), 0n)).toBe(0); // drops POLL_FD_READWRITE
    sub(h, 0, 1, { fd: 0 });
    expect(h.call('poll_oneoff', 1000, 5000, 1, 90_000)).toBe(0);
    expect(events(h, 5000)).toEqual([[1n, Errno.NOTCAPABLE, 1, 0n]]);
  });

  it('takes up to 65536 / 48 = 1365 subscriptions in one call; 1366 is EINVAL', () => {
    const h = harness({ pages: 3 });
    for (let i = 0; i < 1366; i++) {
      const at = 1000 + i * 48;
      h.bytes.fill(0, at, at + 48);
      h.dv.setBigUint64(at, BigInt(i + 1), true);
      h.dv.setUint32(at + 16, 1, true); // a relative monotonic clock of 0: due at once
    }
    expect(h.call('poll_oneoff', 1000, 70_000, 1366, 90_000)).toBe(Errno.INVAL);
    expect(h.call('poll_oneoff', 1000, 70_000 + 32, 1365, 90_000)).toBe(0);
    expect(h.dv.getUint32(90_000, true)).toBe(1365);
    expect(h.dv.getBigUint64(70_000 + 32 + 1364 * 32, true)).toBe(1365n);
  });

  it('an absolute deadline still ahead is waited for, then fires; a relative one of 0 fires at once', () => {
    let now = 1_000_000_000n;
    const h = harness({ pages: 2, clock: { read: () => now, resolutionNs: 1 } });
    sub(h, 0, 0, { clock: 1, timeout: now + 20_000_000n, flags: 1 }); // 20 ms ahead on the clock
    const t = performance.now();
    expect(h.call('poll_oneoff', 1000, 5000, 1, 90_000)).toBe(0);
    expect(performance.now() - t).toBeGreaterThanOrEqual(15); // it waited (the clock's 20 ms, less timer slack)
    expect(events(h, 5000)).toEqual([[1n, 0, 0, 0n]]);
    now += 1n;
    sub(h, 0, 0, { clock: 1, timeout: 0n });
    expect(h.call('poll_oneoff', 1000, 5000, 1, 90_000)).toBe(0);
    expect(events(h, 5000)).toEqual([[1n, 0, 0, 0n]]);
  });
});

describe('records the table writes, at their offsets and in little-endian order', () => {
  it('fd_fdstat_get: filetype, flags, and the base and inheriting rights as u64 at 8 and 16', () => {
    const h = harness({ entries: [{ path: 'd', kind: 'dir' }] });
    const base = BigInt(Rights.PATH_OPEN | Rights.FD_READDIR);
    const inheriting = BigInt(Rights.FD_READ | Rights.FD_SEEK);
    const len = h.put(1024, 'd');
    expect(h.call('path_open', PREOPEN, 0, 1024, len, Oflags.DIRECTORY, base, inheriting, 0, 2048)).toBe(0);
    const d = h.dv.getUint32(2048, true);
    h.bytes.fill(0xee, 3100, 3100 + 24);
    expect(h.call('fd_fdstat_get', d, 3100)).toBe(0);
    expect(h.bytes[3100]).toBe(3); // DIRECTORY
    expect(h.dv.getUint16(3102, true)).toBe(0);
    expect(h.dv.getBigUint64(3108, true)).toBe(base);
    expect(h.dv.getBigUint64(3116, true)).toBe(inheriting);
  });

  it('fd_prestat_get: the tag (0, a directory) at out and the name length at out + 4, nothing before', () => {
    const h = harness();
    h.bytes.fill(0xee, 96, 112);
    expect(h.call('fd_prestat_get', PREOPEN, 100)).toBe(0);
    expect(h.dv.getUint32(100, true)).toBe(0);
    expect(h.dv.getUint32(104, true)).toBe('/sandbox'.length);
    expect([...h.bytes.subarray(96, 100), ...h.bytes.subarray(108, 112)]).toEqual(Array(8).fill(0xee));
  });

  it('fd_advise: advice 0 to 5 are the six WASI names; 6 and above are EINVAL', () => {
    const h = harness({ entries: [{ path: 'f', kind: 'file', data: new Uint8Array(8) }] });
    const f = openF(h, 'f', 0);
    for (let advice = 0; advice <= 5; advice++) expect(h.call('fd_advise', f, 0n, 8n, advice)).toBe(0);
    for (const advice of [6, 255, -1]) expect(h.call('fd_advise', f, 0n, 8n, advice)).toBe(Errno.INVAL);
  });
});

describe('a path the guest names', () => {
  it('is refused as EILSEQ when its bytes are not UTF-8, and nothing is created', () => {
    const h = harness();
    for (const bad of [[0x66, 0xff], [0xc3], [0xed, 0xa0, 0x80]]) {
      h.bytes.set(bad, 1024);
      expect(h.call('path_open', PREOPEN, 0, 1024, bad.length, Oflags.CREAT, ALL, ALL, 0, 2048)).toBe(Errno.ILSEQ);
      expect(h.call('path_create_directory', PREOPEN, 1024, bad.length)).toBe(Errno.ILSEQ);
    }
    h.bytes.set([0xc3, 0xa9], 1024); // é, as UTF-8: a name like any other
    expect(h.call('path_create_directory', PREOPEN, 1024, 2)).toBe(0);
    expect(h.call('path_filestat_get', PREOPEN, 0, 1024, 2, 3200)).toBe(0);
  });

  it('may be exactly maxPathBytes long; one byte more is ENAMETOOLONG', () => {
    const h = harness({ quotas: { maxFds: 16, maxBytes: 1 << 20, maxInodes: 64, maxPathBytes: 32 } });
    const at32 = h.put(1024, 'a'.repeat(32));
    expect(h.call('path_filestat_get', PREOPEN, 0, 1024, at32, 3200)).toBe(Errno.NOENT);
    const at33 = h.put(1024, 'a'.repeat(33));
    expect(h.call('path_filestat_get', PREOPEN, 0, 1024, at33, 3200)).toBe(Errno.NAMETOOLONG);
  });
});

describe('poll_oneoff', () => {
  /** A clock subscription at `at`: monotonic clock, timeout in ns, flags (1: absolute). */
  function clockSub(h: Harness, at: number, userdata: bigint, timeout: bigint, flags: number): void {
    h.bytes.fill(0, at, at + 48);
    h.dv.setBigUint64(at, userdata, true);
    h.bytes[at + 8] = 0; // EVENTTYPE_CLOCK
    h.dv.setUint32(at + 16, 1, true); // MONOTONIC
    h.dv.setBigUint64(at + 24, timeout, true);
    h.dv.setUint16(at + 40, flags, true);
  }

  it('reads an absolute timeout against the clock device: 1 ms past an hour of uptime fires first, a relative 5 s does not (the margin is for a loaded machine)', () => {
    const hour = 3_600_000_000_000n;
    const h = harness({ clock: { read: () => hour, resolutionNs: 1_000_000 } });
    clockSub(h, 1000, 11n, hour + 1_000_000n, 1);
    clockSub(h, 1048, 22n, 5_000_000_000n, 0);
    expect(h.call('poll_oneoff', 1000, 2000, 2, 3000)).toBe(0);
    expect(h.dv.getUint32(3000, true)).toBe(1);
    expect(h.dv.getBigUint64(2000, true)).toBe(11n);
    // An absolute time already past fires at once, before the relative one.
    clockSub(h, 1000, 33n, hour - 5_000_000_000n, 1);
    expect(h.call('poll_oneoff', 1000, 2000, 2, 3000)).toBe(0);
    expect(h.dv.getBigUint64(2000, true)).toBe(33n);
  });
});

describe('a symlink as the last component of a path is acted on itself, never followed', () => {
  it('by path_create_directory, path_symlink, path_link (as a target), path_remove_directory and path_rename', () => {
    const h = harness({ entries: [{ path: 'dir', kind: 'dir' }, { path: 'f', kind: 'file', data: new Uint8Array([7]) }] });
    const p = (at: number, name: string): [number, number] => [at, h.put(at, name)];
    const exists = (name: string) => h.call('path_filestat_get', PREOPEN, 0, ...p(1200, name), 3200) === 0;
    expect(h.call('path_symlink', ...p(1024, 'nowhere'), PREOPEN, ...p(1100, 'dangling'))).toBe(0);
    expect(h.call('path_symlink', ...p(1024, 'dir'), PREOPEN, ...p(1100, 'todir'))).toBe(0);
    // The name is taken by the link: nothing is made where it points.
    expect(h.call('path_create_directory', PREOPEN, ...p(1024, 'dangling'))).toBe(Errno.EXIST);
    expect(h.call('path_symlink', ...p(1024, 'f'), PREOPEN, ...p(1100, 'dangling'))).toBe(Errno.EXIST);
    expect(h.call('path_link', PREOPEN, 0, ...p(1024, 'f'), PREOPEN, ...p(1100, 'dangling'))).toBe(Errno.EXIST);
    expect(exists('nowhere')).toBe(false);
    // A link to a directory is not a directory to remove.
    expect(h.call('path_remove_directory', PREOPEN, ...p(1024, 'todir'))).toBe(Errno.NOTDIR);
    expect(exists('dir')).toBe(true);
    // Renaming the link moves the link; its target stays.
    expect(h.call('path_rename', PREOPEN, ...p(1024, 'todir'), PREOPEN, ...p(1100, 'moved'))).toBe(0);
    expect(exists('dir')).toBe(true);
    expect(h.call('path_readlink', PREOPEN, ...p(1024, 'moved'), 4000, 64, 4100)).toBe(0);
    expect(h.get(4000, h.dv.getUint32(4100, true))).toBe('dir');
    // Renaming over a link replaces the link, not what it points to.
    expect(h.call('path_rename', PREOPEN, ...p(1024, 'f'), PREOPEN, ...p(1100, 'dangling'))).toBe(0);
    expect(exists('nowhere')).toBe(false);
    expect(h.call('path_filestat_get', PREOPEN, 0, ...p(1200, 'dangling'), 3200)).toBe(0);
    expect(h.dv.getBigUint64(3200 + 32, true)).toBe(1n); // f's one byte
  });
});
