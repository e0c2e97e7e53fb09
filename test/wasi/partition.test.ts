import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Hypervisor, type Violation } from '../../host/index.ts';
import { collect, guest } from '../helpers.ts';
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
    const hv = new Hypervisor();
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
