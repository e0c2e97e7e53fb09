import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Hypervisor, type Violation } from '../../host/index.ts';
import { collect, guest, hypervisor } from '../helpers.ts';
import { wat } from '../loader/wat.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** A WASI guest that calls fd_write with an iovec array at the very end of its 64 KiB memory, then exits with the errno. */
const FAULTING = wat(`(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1 1)
  (func (export "_start")
    (call $proc_exit (call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 0)))
    unreachable))`);

describe('WASI inside a real partition', () => {
  it('a bad pointer costs the guest EFAULT (21) and raises a violation; the host is fine', async () => {
    guest('hello');
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'fault', module: FAULTING, devices: { console: true }, wasi: {} });
    const violations: Violation[] = [];
    p.on('violation', (v) => violations.push(v));
    const out = collect(p);
    await p.start();
    const exit = await p.exited;
    await hv.close();
    expect(exit).toMatchObject({ state: 'exited', code: 21, reason: 'exit' });
    expect(out.stdout).toEqual([]);
    expect(violations).toEqual([expect.objectContaining({ partition: 'fault', call: 'wasi.fd_write', status: 'EFAULT' })]);
    expect(exit.metrics.faults).toBe(1);
    expect(exit.metrics.wasiCalls).toBe(2);
  });

  it('a reactor partition gets WASI too: each call writes through fd_write and opens a file in its preopen', async () => {
    const reactor = wat(String.raw`(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "hi\0a")
      (data (i32.const 16) "\00\00\00\00\03\00\00\00")
      (data (i32.const 32) "log")
      ;; hello: writes "hi" and a newline to stdout and appends them to /sandbox/log; returns path_open's errno.
      (func (export "hello") (result i32) (local $e i32)
        (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
        (local.set $e (call $path_open (i32.const 3) (i32.const 0) (i32.const 32) (i32.const 3)
          (i32.const 1) (i64.const 0x40) (i64.const 0) (i32.const 1) (i32.const 40)))
        (if (local.get $e) (then (return (local.get $e))))
        (drop (call $fd_write (i32.load (i32.const 40)) (i32.const 16) (i32.const 1) (i32.const 24)))
        (drop (call $fd_close (i32.load (i32.const 40))))
        (i32.const 0))
      )`);
    const hv = hypervisor();
    const p = await hv.createPartition({ name: 'wasi-reactor', kind: 'reactor', module: reactor, devices: { console: true }, wasi: { preopens: [{ guestPath: '/sandbox' }] } });
    const out = collect(p);
    await p.start();
    // A non-zero return (path_open's errno) would reject the call with ERR_GUEST_CALL.
    await p.call('hello');
    await p.call('hello');
    await p.stop();
    await hv.close();
    expect(out.stdout).toEqual(['hi', 'hi']);
  });

  it('wasmvisor run: host stdin lines reach WASI fd 0; the exit code is the program\'s', async () => {
    guest('hello');
    const result = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(process.execPath, [path.join(root, 'dist/cli.js'), 'run', path.join(root, 'guests/c/misc.wasm')], { timeout: 15_000 }, (error, stdout) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout });
      });
      child.stdin!.end('alpha\nbeta gamma\n');
    });
    expect(result.code).toBe(7);
    expect(result.stdout).toContain('read 5: alpha\nread 10: beta gamma\neof\n');
  });
});
