/**
 * Hostile WASI guests against the partition's limits: a 60 000-level directory tree cannot take
 * the exit code or the end-of-run cleanup with it (#10.7); 300 000 hard links meet the entry
 * quota (ENOSPC), never the worker's heap (#10.8); WASI calls pass the partition's hypercall
 * rate limit like hypercalls do (#18.7).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/index.ts';
import { guest } from '../helpers.ts';
import { wat } from '../loader/wat.ts';

const STREAM = fileURLToPath(new URL('../../guests/c/stream.wasm', import.meta.url));
const dataDir = mkdtempSync(path.join(tmpdir(), 'wasmvisor-hostile-wasi-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/**
 * Writes sector 0 of its disk (left unflushed), builds a chain of `depth` nested directories
 * "d/d/d/...", each step from the last one's fd, then proc_exit(7).
 */
const DEEP = (depth: number) =>
  wat(String.raw`(module
  (import "hv" "hypercall" (func $hv (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "d")
  (data (i32.const 1032) "\01")
  (data (i32.const 1040) "written before the tree")
  (func (export "_start") (local $fd i32) (local $i i32) (local $e i32)
    ;; BLOCK_WRITE: sector 0, count 1, flags 0, then 4096 bytes.
    (if (i32.ne (call $hv (i32.const 0x0402) (i32.const 1024) (i32.const 4112) (i32.const 0) (i32.const 0)) (i32.const 4096))
      (then (call $exit (i32.const 99))))
    (local.set $fd (i32.const 3))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const ${depth})))
      (local.set $e (call $mkdir (local.get $fd) (i32.const 0) (i32.const 1)))
      (if (local.get $e) (then (call $exit (i32.add (i32.const 100) (local.get $e)))))
      (local.set $e (call $open (local.get $fd) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 2)
        (i64.const 0x3fffffbf) (i64.const 0x3fffffff) (i32.const 0) (i32.const 16)))
      (if (local.get $e) (then (call $exit (i32.add (i32.const 200) (local.get $e)))))
      (if (i32.ne (local.get $fd) (i32.const 3)) (then (drop (call $close (local.get $fd)))))
      (local.set $fd (i32.load (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $exit (i32.const 7))))`);

/**
 * Creates "f", then hard-links it as "l" + 5 hex digits of i, for i up to `count`, until a link
 * fails. Exits with (links made << 8) | the failing errno (0 when all were made).
 */
const LINKS = (count: number) =>
  wat(String.raw`(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link" (func $link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "f")
  (data (i32.const 32) "l")
  (func $hex (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 10))
      (then (i32.add (local.get $n) (i32.const 48)))
      (else (i32.add (local.get $n) (i32.const 87)))))
  (func (export "_start") (local $i i32) (local $k i32) (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 1) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 16)))
    (if (local.get $e) (then (call $exit (local.get $e))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const ${count})))
      (local.set $k (i32.const 0))
      (loop $digits
        (i32.store8 (i32.add (i32.const 33) (local.get $k))
          (call $hex (i32.and (i32.shr_u (local.get $i) (i32.mul (i32.sub (i32.const 4) (local.get $k)) (i32.const 4))) (i32.const 15))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $digits (i32.lt_u (local.get $k) (i32.const 5))))
      (local.set $e (call $link (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 3) (i32.const 32) (i32.const 6)))
      (br_if $done (local.get $e))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $exit (i32.or (i32.shl (local.get $i) (i32.const 8)) (local.get $e)))))`);

describe('#10.7: a deep WASI tree cannot take the exit or the cleanup with it', () => {
  it('proc_exit(7) after a 60 000-level tree reports exit 7, and the cleanup after the WASI scrub still runs', async () => {
    guest('hello');
    const hv = new Hypervisor({ dataDir });
    const p = await hv.createPartition({
      name: 'deep',
      module: DEEP(60_000),
      // Fuel: its consumption is recorded by the end-of-run cleanup, after the WASI scrub, so a
      // non-zero figure shows the cleanup ran past the tree (it used to die in a recursive scrub).
      limits: { timeoutMs: 120_000, fuel: 1e12 },
      devices: { block: { sizeMiB: 1 } },
      wasi: { preopens: [{ guestPath: '/t' }], quotas: { maxInodes: 100_000 } },
    });
    await p.start();
    const exit = await p.exited;
    await p.destroy({ wipe: true });
    await hv.close();
    expect(exit).toMatchObject({ state: 'exited', code: 7, reason: 'exit' });
    expect(exit.metrics.fuel!.consumed).toBeGreaterThan(0);
    expect(exit.metrics.block.writeBytes).toBe(4096);
  }, 180_000);
});

describe('#10.8: every guest-created name counts against the quota', () => {
  it('300 000 path_links with the default quota: ENOSPC at the entry quota, the worker is fine', async () => {
    const hv = new Hypervisor();
    const p = await hv.createPartition({ name: 'links', module: LINKS(300_000), limits: { timeoutMs: 60_000 }, wasi: { preopens: [{ guestPath: '/t' }] } });
    await p.start();
    const exit = await p.exited;
    await hv.close();
    expect(exit.state).toBe('exited');
    // Entries: the preopen root and "f", then links until the default quota of 4096.
    expect(exit.code! & 0xff).toBe(51); // ENOSPC
    expect(exit.code! >> 8).toBe(4096 - 2);
  }, 120_000);

  it('300 000 path_links under a quota that allows them: all made, within the heap the quota reserved', async () => {
    const hv = new Hypervisor();
    const p = await hv.createPartition({
      name: 'links',
      module: LINKS(300_000),
      limits: { timeoutMs: 120_000 },
      wasi: { preopens: [{ guestPath: '/t' }], quotas: { maxInodes: 300_002, maxBytes: 300_000 * 6 + 1 } },
    });
    await p.start();
    const exit = await p.exited;
    await hv.close();
    expect(exit).toMatchObject({ state: 'exited', code: 300_000 << 8 });
  }, 180_000);

  it('the bytes of names count too: long names meet the byte quota', async () => {
    const hv = new Hypervisor();
    const p = await hv.createPartition({ name: 'links', module: LINKS(1000), wasi: { preopens: [{ guestPath: '/t' }], quotas: { maxBytes: 1 + 100 * 6 } } });
    await p.start();
    const exit = await p.exited;
    await hv.close();
    expect(exit.code! & 0xff).toBe(51);
    expect(exit.code! >> 8).toBe(100);
  });
});

describe('#18.7: WASI calls pass limits.hypercallRate, as hypercalls do', () => {
  it('reject mode: over the rate a WASI call answers EAGAIN having done nothing, and is counted', async () => {
    const hv = new Hypervisor();
    const p = await hv.createPartition({
      name: 'rate',
      module: STREAM,
      // Enough for libc's start-up calls; then 2000 writes meet a bucket of 200 calls at 100/s.
      limits: { hypercallRate: { opsPerSecond: 100, burstOps: 200, mode: 'reject' } },
      devices: { console: true, clock: true },
      wasi: { args: ['stream', 'flood', '2000', '10'], stdin: 'none' },
    });
    let stdout = 0;
    let stderr = '';
    p.on('output', (chunk, stream) => (stream === 'stdout' ? (stdout += chunk.length) : (stderr += Buffer.from(chunk).toString())));
    await p.start();
    const exit = await p.exited;
    await hv.close();
    expect(exit).toMatchObject({ state: 'exited', code: 0 });
    expect(stderr).toMatch(/^refused/);
    const [, refused, refusedBytes, written] = /^refused (\d+) (\d+) written (\d+)\n$/.exec(stderr)!.map(Number) as [number, number, number, number];
    expect(refused).toBeGreaterThan(1000);
    expect(refusedBytes).toBe(refused * 10);
    expect(written).toBe(stdout);
    expect(written + refusedBytes).toBe(20_000);
    expect(exit.metrics.throttled.hypercalls.calls).toBeGreaterThanOrEqual(refused);
    expect(exit.metrics.hypercalls).toBe(0); // WASI calls are counted apart (wasiCalls)
    expect(exit.metrics.wasiCalls).toBeGreaterThan(2000);
  });

  it('block mode: WASI calls wait for the refill; nothing is refused and the wait is counted', async () => {
    const hv = new Hypervisor();
    const p = await hv.createPartition({
      name: 'rate',
      module: STREAM,
      limits: { hypercallRate: { opsPerSecond: 2000, burstOps: 100, mode: 'block' } },
      devices: { console: true },
      wasi: { args: ['stream', 'flood', '600', '10'], stdin: 'none' },
    });
    let stderr = '';
    p.on('output', (chunk, stream) => stream === 'stderr' && (stderr += Buffer.from(chunk).toString()));
    await p.start();
    const exit = await p.exited;
    await hv.close();
    expect(stderr).toBe('refused 0 0 written 6000\n');
    expect(exit.metrics.throttled.hypercalls.calls).toBeGreaterThan(0);
    expect(exit.metrics.throttled.hypercalls.waitedMs).toBeGreaterThan(0);
  });
});
