/**
 * The fd kinds of host/wasi/fd.ts beyond what the partition suites show: the default-deny answers
 * of the base Fd (what a new kind gets for anything it does not override), the console's refusals
 * as the guest sees them (reader gone: EPIPE; rate limit: EAGAIN; no input ready: EAGAIN), how
 * stdin blocks or not (O_NONBLOCK) and how long poll_oneoff lets the console wait, the readiness
 * a file and fixed stdin report, and a file fd whose backend fails (a host file whose fd is gone):
 * its position never moves on an error.
 */
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GuestMemory } from '../../host/abi/guest-memory.ts';
import { WASI_QUOTA_DEFAULTS, type ResolvedWasi } from '../../host/wasi/config.ts';
import { Errno, Fdflags, Filetype, Oflags, Rights, Whence } from '../../host/wasi/errno.ts';
import { BytesInFd, ConsoleInFd, ConsoleOutFd, DirFd, Fd, FileFd, type ConsolePort } from '../../host/wasi/fd.ts';
import { QuotaAccount } from '../../host/wasi/fs.ts';
import { HostFile } from '../../host/wasi/hostfs.ts';
import { createWasi } from '../../host/wasi/setup.ts';
import { Vfs } from '../../host/wasi/vfs.ts';
import { wiring } from './harness.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'wasmvisor-wasi-fds-'));
const opened: number[] = [];
afterAll(() => {
  for (const fd of opened) closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
});

const enc = new TextEncoder();
const dec = new TextDecoder();
const ALL = BigInt((1 << 30) - 1);

/** A console whose answers the test sets: what writeStream returns, and what input is ready. */
function scripted() {
  const c = {
    writes: [] as { stream: string; text: string; mayWait: boolean | undefined }[],
    reads: [] as { block: boolean; timeoutMs: number | undefined }[],
    waits: [] as number[],
    /** writeStream's answer: a count, -1 (reader gone) or -2 (refused); null writes everything. */
    answer: null as number | null,
    input: new Uint8Array(0),
    /** readStream / readableBytes answer -2 (nothing ready) while this is set. */
    starved: false,
    /** Called by waitInput: lets input arrive while poll_oneoff waits. */
    onWait: () => {},
  };
  const port: ConsolePort = {
    writeStream: (stream, bytes, n, mayWait) => {
      c.writes.push({ stream, text: dec.decode(bytes.subarray(0, n)), mayWait });
      return c.answer ?? n;
    },
    readStream: (out, block, timeoutMs) => {
      c.reads.push({ block, timeoutMs });
      if (c.starved) return -2;
      const n = Math.min(out.length, c.input.length);
      out.set(c.input.subarray(0, n));
      c.input = c.input.subarray(n);
      return n;
    },
    readableBytes: () => (c.starved ? -2 : c.input.length),
    waitInput: (timeoutMs) => {
      c.waits.push(timeoutMs);
      c.onWait();
    },
  };
  return { c, port };
}

function wire(config: Partial<ResolvedWasi>, port: ConsolePort | null) {
  const buffer = new ArrayBuffer(65536);
  const memory = new GuestMemory();
  memory.bind({ buffer });
  const wasi = createWasi(
    { args: [], env: [], preopens: [], stdin: { kind: 'console' }, quotas: WASI_QUOTA_DEFAULTS, ...config },
    wiring(memory, { console: port, clock: { read: () => 1n, resolutionNs: 1 } }),
  );
  const bytes = new Uint8Array(buffer);
  const dv = new DataView(buffer);
  const fns = wasi.imports as unknown as Record<string, (...a: (number | bigint)[]) => number>;
  const call = (name: string, ...args: (number | bigint)[]): number => fns[name]!(...args);
  /** fd_write of the given spans (one iovec each): [errno, nwritten]. */
  const write = (fd: number, ...texts: string[]): [number, number] => {
    let at = 4096;
    texts.forEach((t, i) => {
      const b = enc.encode(t);
      bytes.set(b, at);
      dv.setUint32(3000 + i * 8, at, true);
      dv.setUint32(3004 + i * 8, b.length, true);
      at += b.length;
    });
    dv.setUint32(3500, 0xdead, true);
    const e = call('fd_write', fd, 3000, texts.length, 3500);
    return [e, dv.getUint32(3500, true)];
  };
  const read = (fd: number, cap = 64): [number, string] => {
    dv.setUint32(3000, 8192, true);
    dv.setUint32(3004, cap, true);
    dv.setUint32(3500, 0xdead, true);
    const e = call('fd_read', fd, 3000, 1, 3500);
    return [e, e === 0 ? dec.decode(bytes.subarray(8192, 8192 + dv.getUint32(3500, true))) : ''];
  };
  /**
   * poll_oneoff over `subs` (fd_read on an fd, or a relative monotonic clock in ns): the events
   * as [userdata, errno, type, nbytes].
   */
  const poll = (subs: ({ fd: number } | { clockNs: bigint })[]): [number, [bigint, number, number, bigint][]] => {
    bytes.fill(0, 1000, 1000 + subs.length * 48);
    subs.forEach((s, i) => {
      const at = 1000 + i * 48;
      dv.setBigUint64(at, BigInt(i + 1), true);
      if ('fd' in s) {
        bytes[at + 8] = 1;
        dv.setUint32(at + 16, s.fd, true);
      } else {
        bytes[at + 8] = 0;
        dv.setUint32(at + 16, 1, true);
        dv.setBigUint64(at + 24, s.clockNs, true);
      }
    });
    const e = call('poll_oneoff', 1000, 2000, subs.length, 3600);
    const events: [bigint, number, number, bigint][] = [];
    if (e === 0) {
      for (let i = 0; i < dv.getUint32(3600, true); i++) {
        const at = 2000 + i * 32;
        events.push([dv.getBigUint64(at, true), dv.getUint16(at + 8, true), bytes[at + 10]!, dv.getBigUint64(at + 16, true)]);
      }
    }
    return [e, events];
  };
  return { wasi, call, write, read, poll, bytes, dv };
}

describe('the base Fd denies everything it does not know', () => {
  it('each operation answers its documented errno; stat reports only the file type', () => {
    const fd = new Fd(Filetype.UNKNOWN, 7, 3);
    expect([fd.rightsBase, fd.rightsInheriting, fd.fdflags]).toEqual([7, 3, 0]);
    const buf = new Uint8Array(4);
    expect(fd.read(buf)).toBe(-Errno.BADF);
    expect(fd.write(buf, 4)).toBe(-Errno.BADF);
    expect(fd.pread(buf, 0)).toBe(-Errno.SPIPE);
    expect(fd.pwrite(buf, 4, 0)).toBe(-Errno.SPIPE);
    expect(fd.seek(0n, Whence.SET)).toBe(-Errno.SPIPE);
    expect(fd.tell()).toBe(-Errno.SPIPE);
    expect(fd.setSize(0n)).toBe(-Errno.INVAL);
    expect(fd.readable()).toBe(-Errno.BADF);
    expect(fd.setTimes({ atim: 'now', mtim: null })).toBe(-Errno.BADF);
    expect(fd.sync()).toBe(0);
    expect(new Fd(Filetype.CHARACTER_DEVICE, 0, 0).stat()).toEqual({ dev: 0n, ino: 0n, filetype: Filetype.CHARACTER_DEVICE, nlink: 0n, size: 0n, atim: 0n, mtim: 0n, ctim: 0n });
  });

  it('the console and fixed-stdin kinds inherit the refusals of a stream: no position, no size, no times', () => {
    const { port } = scripted();
    for (const fd of [new ConsoleOutFd(port, 'stdout', 0), new ConsoleInFd(port, 0), new BytesInFd(new Uint8Array(1), 0)]) {
      expect(fd.pread(new Uint8Array(1), 0)).toBe(-Errno.SPIPE);
      expect(fd.pwrite(new Uint8Array(1), 1, 0)).toBe(-Errno.SPIPE);
      expect(fd.seek(0n, Whence.CUR)).toBe(-Errno.SPIPE);
      expect(fd.tell()).toBe(-Errno.SPIPE);
      expect(fd.setSize(1n)).toBe(-Errno.INVAL);
      expect(fd.stat()).toMatchObject({ filetype: Filetype.CHARACTER_DEVICE, size: 0n });
    }
    expect(new ConsoleOutFd(port, 'stdout', 0).readable()).toBe(-Errno.BADF); // output is never read
    expect(new ConsoleOutFd(port, 'stderr', 0).read(new Uint8Array(1))).toBe(-Errno.BADF);
    expect(new BytesInFd(new Uint8Array(1), 0).write(new Uint8Array(1), 1)).toBe(-Errno.BADF);
  });

  it('a directory fd is not read, written, pread or pwritten (EISDIR), whatever its rights', () => {
    const root = new Vfs(new QuotaAccount(WASI_QUOTA_DEFAULTS), () => 0n).mount('/v', false)!;
    const d = new DirFd(root, (1 << 30) - 1, 0, '/v');
    expect([d.read(), d.write(), d.pread(), d.pwrite()]).toEqual([-Errno.ISDIR, -Errno.ISDIR, -Errno.ISDIR, -Errno.ISDIR]);
    expect(d.filetype).toBe(Filetype.DIRECTORY);
    expect(d.preopenPath).toBe('/v');
    expect(new DirFd(root, 0, 0).preopenPath).toBe(null);
  });

  it('stdout’s filestat is a character device with nothing else to say', () => {
    const { port } = scripted();
    const w = wire({}, port);
    w.bytes.fill(0xee, 3200, 3264);
    expect(w.call('fd_filestat_get', 1, 3200)).toBe(0);
    expect([...w.bytes.subarray(3200, 3264)]).toEqual([...new Uint8Array(64)].map((_, i) => (i === 16 ? Filetype.CHARACTER_DEVICE : 0)));
  });
});

describe('the console as the guest sees it', () => {
  it('the reader gone is EPIPE, a refused write EAGAIN, and nothing is reported written', () => {
    const { c, port } = scripted();
    const w = wire({}, port);
    c.answer = -1;
    expect(w.write(1, 'lost')).toEqual([Errno.PIPE, 0xdead]);
    c.answer = -2;
    expect(w.write(2, 'refused')).toEqual([Errno.AGAIN, 0xdead]);
    c.answer = 3;
    expect(w.write(1, 'short')).toEqual([0, 3]);
    c.answer = null;
    expect(w.write(1, 'all')).toEqual([0, 3]);
    expect(c.writes.map((x) => [x.stream, x.text])).toEqual([
      ['stdout', 'lost'],
      ['stderr', 'refused'],
      ['stdout', 'short'],
      ['stdout', 'all'],
    ]);
  });

  it('only the first iovec of a write may wait; a refusal after the first ends the write short', () => {
    const { c, port } = scripted();
    const w = wire({}, port);
    expect(w.write(1, 'ab', 'cd', 'ef')).toEqual([0, 6]);
    expect(c.writes.map((x) => x.mayWait)).toEqual([true, false, false]);
    c.writes.length = 0;
    let n = 0;
    port.writeStream = (stream, bytes, len, mayWait) => {
      c.writes.push({ stream, text: dec.decode(bytes.subarray(0, len)), mayWait });
      return n++ === 0 ? len : -2;
    };
    expect(w.write(1, 'ab', 'cd')).toEqual([0, 2]);
    // Called directly without the flag (not from fd_write), a console write may wait.
    const out = new ConsoleOutFd(port, 'stdout', 0);
    n = 0;
    expect(out.write(enc.encode('x'), 1)).toBe(1);
    expect(c.writes.at(-1)!.mayWait).toBe(true);
  });

  it('stdin blocks unless O_NONBLOCK is set; with nothing ready a non-blocking read is EAGAIN', () => {
    const { c, port } = scripted();
    const w = wire({}, port);
    c.input = enc.encode('abc');
    expect(w.read(0, 2)).toEqual([0, 'ab']);
    expect(c.reads.at(-1)!.block).toBe(true);
    expect(w.call('fd_fdstat_set_flags', 0, Fdflags.NONBLOCK)).toBe(0);
    expect(w.read(0)).toEqual([0, 'c']);
    expect(c.reads.at(-1)!.block).toBe(false);
    c.starved = true;
    expect(w.read(0)).toEqual([Errno.AGAIN, '']);
    expect(w.dv.getUint32(3500, true)).toBe(0xdead);
    expect(w.call('fd_fdstat_set_flags', 0, Fdflags.APPEND)).toBe(0); // other flags do not make it non-blocking
    c.starved = false;
    c.input = enc.encode('d');
    expect(w.read(0)).toEqual([0, 'd']);
    expect(c.reads.at(-1)!.block).toBe(true);
  });

  it('poll_oneoff on stdin: ready with the bytes queued, at end of input with 0; waits on the console until the earliest clock, or without limit', () => {
    const { c, port } = scripted();
    const w = wire({}, port);
    c.input = enc.encode('12345');
    expect(w.poll([{ fd: 0 }])).toEqual([0, [[1n, 0, 1, 5n]]]);
    c.input = new Uint8Array(0);
    expect(w.poll([{ fd: 0 }])).toEqual([0, [[1n, 0, 1, 0n]]]);
    // Nothing ready: the console is asked to wait, at most until the clock subscription is due.
    c.starved = true;
    c.onWait = () => {
      c.starved = false;
      c.input = enc.encode('xy');
    };
    expect(w.poll([{ fd: 0 }, { clockNs: 60_000_000_000n }])).toEqual([0, [[1n, 0, 1, 2n]]]);
    expect(c.waits).toHaveLength(1);
    expect(c.waits[0]!).toBeGreaterThan(0);
    expect(c.waits[0]!).toBeLessThanOrEqual(60_000);
    // Without a clock subscription the wait has no limit.
    c.starved = true;
    expect(w.poll([{ fd: 0 }])).toEqual([0, [[1n, 0, 1, 2n]]]);
    expect(c.waits[1]).toBe(Infinity);
  });

  it('a console fd’s wait for input never asks for a negative time', () => {
    const { c, port } = scripted();
    new ConsoleInFd(port, 0).waitReadable(performance.now() - 1000);
    expect(c.waits).toEqual([0]);
  });

  it('poll_oneoff on fixed stdin reports the bytes left; on a file, the bytes after its position', () => {
    const w = wire({ stdin: { kind: 'bytes', bytes: enc.encode('abcd') }, preopens: [{ guestPath: '/m', kind: 'virtual', readonly: false, entries: [{ path: 'f', kind: 'file', data: enc.encode('0123456789') }] }] }, null);
    expect(w.poll([{ fd: 0 }])).toEqual([0, [[1n, 0, 1, 4n]]]);
    expect(w.read(0, 1)).toEqual([0, 'a']);
    expect(w.poll([{ fd: 0 }])).toEqual([0, [[1n, 0, 1, 3n]]]);
    w.bytes.set(enc.encode('f'), 1024);
    expect(w.call('path_open', 3, 0, 1024, 1, 0, ALL, ALL, 0, 2048)).toBe(0);
    const f = w.dv.getUint32(2048, true);
    expect(w.poll([{ fd: f }])).toEqual([0, [[1n, 0, 1, 10n]]]);
    expect(w.read(f, 4)).toEqual([0, '0123']);
    expect(w.poll([{ fd: f }])).toEqual([0, [[1n, 0, 1, 6n]]]);
    expect(w.call('fd_seek', f, 20n, Whence.SET, 3300)).toBe(0);
    expect(w.poll([{ fd: f }])).toEqual([0, [[1n, 0, 1, 0n]]]); // past the end: 0, not negative
  });
});

describe('a file fd over a backend that fails', () => {
  /** A FileFd over a host file whose fd is not open: every backend call fails with EBADF. */
  const broken = (fdflags = 0) => {
    const file = new HostFile({ quota: new QuotaAccount(WASI_QUOTA_DEFAULTS), stamp: (ns) => ns }, { guestPath: '/h', mode: 'rw', readonly: false }, 1 << 20);
    return new FileFd(file, (1 << 30) - 1, fdflags);
  };

  it('a failed read, write or append leaves the position where it was', () => {
    const fd = broken();
    expect(fd.read(new Uint8Array(4))).toBe(-Errno.BADF);
    expect(fd.tell()).toBe(0);
    expect(fd.write(enc.encode('ab'), 2)).toBe(-Errno.BADF);
    expect(fd.tell()).toBe(0);
    const app = broken(Fdflags.APPEND);
    expect(app.seek(3n, Whence.SET)).toBe(3);
    expect(app.write(enc.encode('ab'), 2)).toBe(-Errno.BADF);
    expect(app.tell()).toBe(3);
    expect(app.seek(0n, Whence.END)).toBe(-Errno.BADF);
    expect(app.tell()).toBe(3);
    expect(app.readable()).toBe(-Errno.BADF);
    expect(app.stat()).toBe(-Errno.BADF);
    expect(app.sync()).toBe(-Errno.BADF);
    expect(app.setTimes({ atim: null, mtim: 'now' })).toBe(-Errno.BADF);
  });

  it('setSize refuses a negative size (EINVAL) and one past the largest file (EFBIG) before the backend sees it', () => {
    const fd = broken();
    expect(fd.setSize(-1n)).toBe(-Errno.INVAL);
    expect(fd.setSize(2n ** 53n)).toBe(-Errno.FBIG);
    expect(fd.setSize(2n ** 53n - 1n)).toBe(-Errno.BADF); // in range: the backend answers
  });
});

describe('a file fd: positions and the largest host file', () => {
  it('append to an empty file writes; seek to the end of an empty file moves there', () => {
    const w = wire({ preopens: [{ guestPath: '/m', kind: 'virtual', readonly: false, entries: [] }] }, null);
    w.bytes.set(enc.encode('e'), 1024);
    expect(w.call('path_open', 3, 0, 1024, 1, Oflags.CREAT, ALL, ALL, Fdflags.APPEND, 2048)).toBe(0);
    const f = w.dv.getUint32(2048, true);
    expect(w.call('fd_seek', f, 5n, Whence.SET, 3300)).toBe(0);
    expect(w.call('fd_seek', f, 0n, Whence.END, 3300)).toBe(0);
    expect(w.dv.getBigUint64(3300, true)).toBe(0n);
    expect(w.call('fd_tell', f, 3300)).toBe(0);
    expect(w.dv.getBigUint64(3300, true)).toBe(0n);
    expect(w.call('fd_seek', f, 7n, Whence.SET, 3300)).toBe(0);
    expect(w.write(f, 'hi')).toEqual([0, 2]); // at the end (0), not at 7
    expect(w.call('fd_tell', f, 3300)).toBe(0);
    expect(w.dv.getBigUint64(3300, true)).toBe(2n);
    expect(w.call('fd_pread', f, 3000, 0, 0n, 3500)).toBe(0);
    const st = w.call('fd_filestat_get', f, 3200);
    expect(st).toBe(0);
    expect(w.dv.getBigUint64(3200 + 32, true)).toBe(2n);
  });

  it('a host file: a write or a size past 2^53 - 1 is EFBIG before the quota is asked', () => {
    const root = mkdtempSync(path.join(dir, 'big-'));
    writeFileSync(path.join(root, 'f'), 'x');
    const fd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
    opened.push(fd);
    const w = wire({ preopens: [{ guestPath: '/h', kind: 'host', mode: 'rw', fd }] }, null);
    w.bytes.set(enc.encode('f'), 1024);
    expect(w.call('path_open', 3, 0, 1024, 1, 0, ALL, ALL, 0, 2048)).toBe(0);
    const f = w.dv.getUint32(2048, true);
    const MAX = BigInt(Number.MAX_SAFE_INTEGER);
    w.bytes.set(enc.encode('ab'), 4096);
    w.dv.setUint32(3000, 4096, true);
    w.dv.setUint32(3004, 2, true);
    expect(w.call('fd_pwrite', f, 3000, 1, MAX - 1n, 3500)).toBe(Errno.FBIG); // would end at 2^53
    expect(w.call('fd_pwrite', f, 3000, 1, MAX - 2n, 3500)).toBe(Errno.NOSPC); // ends at 2^53 - 1: the quota says no
    expect(w.call('fd_filestat_set_size', f, MAX + 1n)).toBe(Errno.FBIG);
    expect(w.call('fd_filestat_set_size', f, MAX)).toBe(Errno.NOSPC);
    expect(w.wasi.quota.bytes).toBe(0);
    w.wasi.close();
  });
});
