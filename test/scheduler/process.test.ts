/**
 * Process-isolated partitions (issue #17, part 1): the sandbox a partition process runs in, and
 * its channel seen from a compromised child. A stand-in child (fixtures/forged-child.cjs), started
 * exactly as the real one, probes its walls and sends forged frames; the real child is killed in
 * the middle of a call. Each time the root stays healthy: the partition ends (or restarts) with a
 * typed error, a neighbour keeps answering, and nothing reaches the event loop uncaught.
 */
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor, type Partition, type Violation } from '../../host/index.ts';
import type { AuditEntry } from '../../host/security/audit.ts';
import { MAX_VIOLATION_KEYS } from '../../host/security/monitor.ts';
import { AttestationCheckError, GUEST_REPORT_BYTES, verifyGuestReport } from '../../host/security/attestation.ts';
import { fromHex, toHex } from '../../host/security/wire.ts';
import { captureEscapes, collect, guest } from '../helpers.ts';
import { alive, useProcessCode } from './process-seam.ts';
import { wat } from '../loader/wat.ts';

const STREAM = fileURLToPath(new URL('../../guests/c/stream.wasm', import.meta.url));

const forgedChild = new URL('./fixtures/forged-child.cjs', import.meta.url);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasProc = process.platform === 'linux' && existsSync('/proc/self/status');

const escaped = captureEscapes();

let hv: Hypervisor | null = null;
afterEach(async () => {
  await hv?.close();
  hv = null;
  expect(escaped).toEqual([]);
});

function make(child?: URL): Hypervisor {
  hv = new Hypervisor({ dataDir: mkdtempSync(path.join(os.tmpdir(), 'wv-proc-')), warmWorkers: 0 });
  if (child) useProcessCode(hv, child);
  return hv;
}

/** A reactor in a worker thread of the same hypervisor: the neighbour that must not notice. */
async function neighbour(h: Hypervisor): Promise<Partition> {
  const p = await h.createPartition({ name: 'neighbour', module: guest('limits'), kind: 'reactor', isolation: 'thread' });
  await p.start();
  return p;
}

describe('the sandbox of a partition process', () => {
  it.skipIf(!hasProc)('runs under the permission model, unprivileged when the root is root, with its limits and no environment', async () => {
    const h = make();
    const p = await h.createPartition({ name: 'walled', module: guest('limits'), kind: 'reactor', isolation: 'process' });
    await p.start();
    expect(p.placement).toBe('process');
    const pid = p.workerId!;
    expect(pid).not.toBe(process.pid);
    expect(h.scheduler().processes.map((s) => s.pid)).toEqual([pid]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status)!.slice(1).map(Number);
    const gid = /^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status)!.slice(1).map(Number);
    if (isRoot) {
      expect(new Set(uid)).toEqual(new Set([65534]));
      expect(uid[0]).not.toBe(0);
      expect(gid.every((g) => g !== 0)).toBe(true);
      expect(/^Groups:\s*$/m.test(status)).toBe(true);
    } else {
      expect(uid[0]).toBe(process.getuid!());
    }
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    expect(limits).toMatch(/Max open files\s+64\s+64/);
    expect(limits).toMatch(/Max core file size\s+0\s+0/);
    expect(limits).toMatch(new RegExp(`Max address space\\s+${32 * 1024 * 1024 * 1024}\\s+${32 * 1024 * 1024 * 1024}`));
    expect(readFileSync(`/proc/${pid}/environ`).length).toBe(0);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(argv).toContain('--experimental-permission');
    expect(argv.some((a) => a.startsWith('--allow-'))).toBe(false);
    // And it works: a call through the mirrored rings.
    expect((await p.call('digest', new Uint8Array(10))).length).toBe(8);
    await p.destroy();
    expect(alive(pid)).toBe(false);
  }, 60_000);

  it('denies a compromised child every file, child process, worker and addon; it has no environment', async () => {
    const h = make(forgedChild);
    const p = await h.createPartition({ name: 'probe', module: guest('hello'), kind: 'command', isolation: 'process', args: ['probe'], devices: { console: true } });
    const out = collect(p);
    await p.start();
    const exit = await p.exited;
    expect([exit.reason, exit.code]).toEqual(['exit', 0]);
    const seen = JSON.parse(out.stdout[0]!) as Record<string, unknown>;
    expect(seen).toMatchObject({
      read: 'ERR_ACCESS_DENIED',
      list: 'ERR_ACCESS_DENIED',
      write: 'ERR_ACCESS_DENIED',
      spawn: 'ERR_ACCESS_DENIED',
      worker: 'ERR_ACCESS_DENIED',
      addon: 'ERR_DLOPEN_DISABLED',
      env: 0,
      cwd: '/',
    });
    if (isRoot) expect([seen.uid, seen.gid]).toEqual([65534, 65534]);
  });
});

describe('the channel, from a compromised child', () => {
  const forged: [scenario: string, reason: RegExp][] = [
    ['unknown-type', /a frame of type 99, which a child may not send/],
    ['oversized', /a frame of 1073741824 bytes \(at most \d+\)/],
    ['garbage', /a frame of \d+ bytes \(at most \d+\)/],
    ['foreign-ring', /a record for ring 1, which the child does not produce/],
    ['over-ack', /an acknowledgement of 4096 bytes of ring 1, more than was forwarded/],
    ['bad-outcome', /an error outcome with an unknown code \("ERR_NOPE"\)/],
    ['nan-counter', /counter 0 is NaN/],
    ['other-slot', /for slot 7 \(this process hosts slot 1 only\)/],
    ['twice-running', /a second running message/],
    ['huge-record', /a record of 262144 bytes for ring 0 that the root's copy cannot take/],
  ];

  it.each(forged)('%s: the child is killed, the partition ends with ERR_KILLED and a violation, the root stays healthy', async (scenario, reason) => {
    const h = make(forgedChild);
    const other = await neighbour(h);
    const p = await h.createPartition({ name: `forged-${scenario}`, module: guest('hello'), kind: 'command', isolation: 'process', args: [scenario], devices: { console: true } });
    const violations: Violation[] = [];
    p.on('violation', (v) => violations.push(v));
    await p.start();
    const exit = await p.exited;
    expect([exit.state, exit.reason]).toEqual(['killed', 'ERR_KILLED']);
    expect(exit.error!.message).toMatch(/process was killed: it sent/);
    expect(exit.error!.message).toMatch(reason);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ partition: `forged-${scenario}`, call: 'process-channel', status: 'REFUSED' });
    expect(violations[0]!.reason).toMatch(reason);
    // The run is over only once the child has exited; no process is left.
    expect(h.scheduler().processes).toEqual([]);
    expect((await other.call('digest', new Uint8Array(10))).length).toBe(8);
  });

  it('a child that dies on its own ends its partition with ERR_KILLED and the exit status', async () => {
    const h = make(forgedChild);
    const p = await h.createPartition({ name: 'vanish', module: guest('hello'), kind: 'command', isolation: 'process', args: ['vanish'] });
    const violations: Violation[] = [];
    p.on('violation', (v) => violations.push(v));
    await p.start();
    const exit = await p.exited;
    expect(exit.reason).toBe('ERR_KILLED');
    expect(exit.error!.message).toMatch(/process \d+ ended unexpectedly \(exit code 3\)/);
    expect(violations).toEqual([]);
  });

  it('violation records with keys the child chooses: the root counts every one, yet keeps at most MAX_VIOLATION_KEYS distinct keys a second', async () => {
    const notes: AuditEntry[] = [];
    const sink = { note: (e: AuditEntry) => void notes.push(e), record: (e: AuditEntry) => (notes.push(e), Promise.resolve()) };
    hv = new Hypervisor({ dataDir: mkdtempSync(path.join(os.tmpdir(), 'wv-proc-')), warmWorkers: 0, audit: sink });
    useProcessCode(hv, forgedChild);
    const n = MAX_VIOLATION_KEYS + 200;
    const p = await hv.createPartition({ name: 'keys', module: guest('hello'), kind: 'command', isolation: 'process', args: ['violations', String(n)] });
    const violations: Violation[] = [];
    p.on('violation', (v) => violations.push(v));
    await p.start();
    expect((await p.exited).state).toBe('exited');
    expect(violations).toHaveLength(n);
    // One aggregate a second (a loaded host may split the burst over two): each counts all its
    // violations, names its first MAX_VIOLATION_KEYS keys (once each), and puts the rest in one bucket.
    const aggregates = notes.filter((e) => e.action === 'partition.violation' && e.target === 'keys').map((e) => e.details as Record<string, number>);
    expect(aggregates.length).toBeGreaterThan(0);
    expect(aggregates.reduce((sum, d) => sum + d.count!, 0)).toBe(n);
    for (const d of aggregates) expect(d['(other)'] ?? 0).toBe(Math.max(0, d.count! - MAX_VIOLATION_KEYS));
    expect(aggregates[0]!['(other)']).toBeGreaterThan(0);
  });
});

/**
 * A WASI command that sleeps `ms` (poll_oneoff on the monotonic clock, relative), then writes
 * `bytes` to stdout and exits 0 at once: its end comes in the same turn of its
 * process as its last output, after the process's counters fell due (they are sent every 100 ms),
 * with more to send than a socket takes at once.
 */
function sleepThenWrite(ms: number, bytes: number): Uint8Array {
  return wat(`(module
    (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") ${2 + Math.ceil(bytes / 65536)})
    (func (export "_start") (local $at i32) (local $left i32)
      ;; one subscription at 0: userdata 0, tag 0 (clock), clock id 1 (monotonic) at 16,
      ;; timeout at 24 (ns), precision 0, flags 0 (relative); the event at 64, nevents at 128
      (i32.store (i32.const 16) (i32.const 1))
      (i64.store (i32.const 24) (i64.const ${ms * 1_000_000}))
      (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
      ;; then the bytes from 65536 in fd_writes of one iovec (at 256; written count at 272),
      ;; as many as it takes (a write may be short); a failed write exits 1
      (local.set $at (i32.const 65536))
      (local.set $left (i32.const ${bytes}))
      (loop $more
        (i32.store (i32.const 256) (local.get $at))
        (i32.store (i32.const 260) (local.get $left))
        (if (call $write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 272)) (then (call $exit (i32.const 1))))
        (local.set $at (i32.add (local.get $at) (i32.load (i32.const 272))))
        (local.set $left (i32.sub (local.get $left) (i32.load (i32.const 272))))
        (br_if $more (i32.gt_s (local.get $left) (i32.const 0))))
      (call $exit (i32.const 0))))`);
}

describe('the end of a dedicated partition process', () => {
  it('a partition that ends after the process counters fell due still delivers its end and all its output: nothing is written after the channel ends', async () => {
    // Before the fix, the process's counters were sent after its partition's end had ended the
    // channel: the write failed, the child exited at once, and what the socket still held (the
    // last output, the end) was lost: ERR_KILLED, "ended unexpectedly (exit code 0)".
    const h = make();
    const bytes = 512 * 1024;
    const module = sleepThenWrite(250, bytes);
    for (let i = 0; i < 4; i++) {
      const p = await h.createPartition({ name: `late-${i}`, module, isolation: 'process', devices: { console: true }, wasi: { stdin: 'none' } });
      let got = 0;
      p.stdout.on('data', (c: Buffer) => (got += c.length));
      await p.start();
      const exit = await p.exited;
      expect({ state: exit.state, code: exit.code, message: exit.error?.message }).toEqual({ state: 'exited', code: 0, message: undefined });
      expect(got).toBe(bytes);
    }
  }, 90_000);
});

describe('a partition process killed in the middle of a call', () => {
  it('fails the call with ERR_KILLED; the reactor restarts in a new process and answers; the neighbour never noticed', async () => {
    const h = make();
    const other = await neighbour(h);
    const p = await h.createPartition({
      name: 'victim',
      module: guest('limits'),
      kind: 'reactor',
      isolation: 'process',
      restart: { mode: 'on-failure', backoffMs: 10 },
      limits: { callTimeoutMs: 60_000 },
    });
    await p.start();
    const pid = p.workerId!;
    const restarted = new Promise((resolve) => p.once('restart', resolve));
    const slices = p.metrics().sched.slices;
    const call = p.call('spin');
    const failed = expect(call).rejects.toMatchObject({ code: 'ERR_KILLED', message: expect.stringMatching(/ended unexpectedly \(signal SIGKILL\)/) });
    // The guest is spinning in the child once its slices are counted (each ends at a checkpoint).
    const started = performance.now();
    while (p.metrics().sched.slices < slices + 2 && performance.now() - started < 30_000) await new Promise((r) => setTimeout(r, 20));
    expect(p.metrics().sched.slices).toBeGreaterThanOrEqual(slices + 2);
    process.kill(pid, 'SIGKILL');
    await failed;
    expect((await other.call('digest', new Uint8Array(10))).length).toBe(8);
    await restarted;
    expect((await p.call('digest', new Uint8Array(10))).length).toBe(8);
    expect(p.workerId).not.toBe(pid);
    expect(alive(pid)).toBe(false);
  });
});

/** A folder a partition process's user can use (when the root is root, the child is `nobody`: it needs the mode bits). */
function sharedFolder(mode: number, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wv-proc-dir-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  chmodSync(dir, mode);
  return dir;
}

describe('a partition process has what a worker has', () => {
  it('host folders: the child may list an ro folder and write only an rw one, through its descriptors; nothing else by path', async () => {
    const ro = sharedFolder(0o755, { 'a.txt': 'a' });
    const rw = sharedFolder(0o777);
    const h = make(forgedChild);
    const p = await h.createPartition({
      name: 'folders',
      module: guest('hello'),
      isolation: 'process',
      args: ['probe'],
      devices: { console: true },
      wasi: { preopens: [ { hostPath: ro, guestPath: '/ro', mode: 'ro' }, { hostPath: rw, guestPath: '/rw', mode: 'rw' } ] },
    });
    const out = collect(p);
    await p.start();
    expect((await p.exited).code).toBe(0);
    const seen = JSON.parse(out.stdout[0]!) as { read: string; write: string; folders: { list: string; write: string }[] };
    expect(seen.folders).toEqual([
      { list: 'allowed', write: 'ERR_ACCESS_DENIED' },
      { list: 'allowed', write: 'allowed' },
    ]);
    // Every other path is still refused.
    expect([seen.read, seen.write]).toEqual(['ERR_ACCESS_DENIED', 'ERR_ACCESS_DENIED']);
    expect(readdirSync(ro)).toEqual(['a.txt']);
    expect(readdirSync(rw)).toHaveLength(1);
  });

  it('a guest reads an ro folder in place and is refused writes there (EROFS), writes an rw one in place, and a copy stays private', async () => {
    const h = make();
    const ro = sharedFolder(0o755, { 'keep.txt': 'original\n' });
    const rw = sharedFolder(0o777);
    const run = async (name: string, args: string[], hostPath: string, mode: 'ro' | 'rw' | 'copy') => {
      const p = await h.createPartition({ name, module: STREAM, isolation: 'process', devices: { console: true }, wasi: { args: ['stream', ...args], stdin: 'none', preopens: [{ hostPath, guestPath: '/d', mode }] } });
      let stdout = 0;
      let stderr = '';
      p.stdout.on('data', (c: Buffer) => (stdout += c.length));
      p.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      await p.start();
      const exit = await p.exited;
      await p.destroy();
      return { code: exit.code, stdout, stderr };
    };
    expect(await run('ro-put', ['put', '/d/new.bin', '1000'], ro, 'ro')).toEqual({ code: 4, stdout: 0, stderr: 'stream: open /d/new.bin: errno 69\n' });
    expect(await run('ro-get', ['get', '/d/keep.txt'], ro, 'ro')).toEqual({ code: 0, stdout: 9, stderr: '' });
    expect(await run('copy-put', ['put', '/d/new.bin', '1000'], ro, 'copy')).toMatchObject({ code: 0, stderr: '' });
    expect(existsSync(path.join(ro, 'new.bin'))).toBe(false);
    expect(await run('rw-put', ['put', '/d/new.bin', '100000'], rw, 'rw')).toMatchObject({ code: 0, stderr: '' });
    expect(statSync(path.join(rw, 'new.bin')).size).toBe(100000);
    expect(await run('rw-get', ['get', '/d/new.bin'], rw, 'rw')).toEqual({ code: 0, stdout: 100000, stderr: '' });
    // Five partition processes one after the other: at load 20 on 2 cores they took over 20 s.
  }, 90_000);

  it('the console writes a host file directly from the child (devices.console.outputFd)', async () => {
    const h = make();
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'wv-proc-out-')), 'out.txt');
    const fd = openSync(file, 'w');
    try {
      const p = await h.createPartition({ name: 'direct', module: guest('hello'), isolation: 'process', devices: { console: { outputFd: { stdout: fd } } } });
      const out = collect(p);
      await p.start();
      const exit = await p.exited;
      expect(exit.code).toBe(0);
      // The bytes went to the file, not through the root.
      expect(out.stdout).toEqual([]);
      expect(readFileSync(file, 'utf8')).toMatch(/^Hello from a Wasmvisor partition!\n/);
      expect(exit.metrics.console.bytesOut).toBe(statSync(file).size);
    } finally {
      closeSync(fd);
    }
  });

  it('the attestation device (ABI 1.3, device 6): a guest report made in the child verifies with the host key', async () => {
    const h = make();
    const p = await h.createPartition({ name: 'att', module: guest('attest'), isolation: 'process', args: ['00112233', 'my key hash'], devices: { console: true, attestation: true } });
    const out = collect(p);
    await p.start();
    expect((await p.exited).code).toBe(0);
    const info = fromHex(out.stdout.find((l) => l.startsWith('info '))!.slice(5))!;
    expect(toHex(info.subarray(0, 32))).toBe(p.measurement);
    const bytes = fromHex(out.stdout.find((l) => l.startsWith('report '))!.slice(7))!;
    expect(bytes.length).toBe(GUEST_REPORT_BYTES);
    const r = verifyGuestReport(bytes, h.attestationPublicKey(), { nonce: '00112233', measurement: p.measurement });
    expect(r).toMatchObject({ name: 'att', measurement: p.measurement });
    const forged = Uint8Array.from(bytes);
    forged[100]! ^= 1;
    expect(() => verifyGuestReport(forged, h.attestationPublicKey())).toThrow(AttestationCheckError);
  });

  it.skipIf(!existsSync('/bin/sh'))('a guest spinning past the CPU seconds of its process (RLIMIT_CPU) ends with ERR_LIMIT_CPU; the root goes on', async () => {
    hv = new Hypervisor({ dataDir: mkdtempSync(path.join(os.tmpdir(), 'wv-proc-')), warmWorkers: 0, process: { cpuSeconds: 1 } });
    const h = hv;
    const other = await neighbour(h);
    const p = await h.createPartition({ name: 'spinner', module: guest('attack-spin'), isolation: 'process' });
    // (Its process may have used its second before start() resolves: Node's start and the compile count.)
    await p.start();
    const exit = await p.exited;
    expect(exit.reason).toBe('ERR_LIMIT_CPU');
    expect(exit.error!.message).toMatch(/exceeded its CPU time limit \(signal SIGXCPU\)/);
    expect((await other.call('digest', new Uint8Array(10))).length).toBe(8);
  });
});

describe('host folders of a partition process, at their bound', () => {
  it('takes 16 host folders and refuses 17 with ERR_INVALID_ARGUMENT before anything starts', async () => {
    const h = make();
    const dir = sharedFolder(0o755, { 'a.txt': 'a' });
    const preopens = (n: number) => Array.from({ length: n }, (_, i) => ({ hostPath: dir, guestPath: `/d${i}`, mode: 'ro' as const }));
    const p = await h.createPartition({ name: 'sixteen', module: guest('hello'), isolation: 'process', devices: { console: true }, wasi: { preopens: preopens(16) } });
    await p.start();
    expect((await p.exited).code).toBe(0);
    await expect(h.createPartition({ name: 'seventeen', module: guest('hello'), isolation: 'process', wasi: { preopens: preopens(17) } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringMatching(/at most 16 host folders .*this spec has 17/),
    });
    // A thread partition is not bound by it.
    await expect(h.createPartition({ name: 'threaded', module: guest('hello'), isolation: 'thread', wasi: { preopens: preopens(17) } })).resolves.toBeDefined();
  });
});
