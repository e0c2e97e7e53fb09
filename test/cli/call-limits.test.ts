/**
 * `wasmvisor call` at the size edges (issue #10, item 1): an input past 16 MiB works; past the
 * largest call (64 MiB) it is refused with a typed error line and exit 2, never exit 70. And
 * `--placement` and `--isolate` on run and call.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MAX_CALL_BYTES } from '../../host/limits/sizes.ts';
import { guest } from '../helpers.ts';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function run(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

describe('wasmvisor call with large inputs', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-call-'));

  it('a 17 MiB --input file reaches the export whole (exit 0)', async () => {
    const file = path.join(dir, 'in17.bin');
    const input = Buffer.alloc(17 * 1024 * 1024 + 3, 0x61);
    writeFileSync(file, input);
    const r = await run(['call', '--input-file', file, guest('limits'), 'digest']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.readUInt32LE(0)).toBe(input.length);
  }, 60_000);

  it('an input over 64 MiB is refused with ERR_INVALID_ARGUMENT naming the limit (exit 2)', async () => {
    const file = path.join(dir, 'in65.bin');
    writeFileSync(file, Buffer.alloc(MAX_CALL_BYTES + 1));
    const r = await run(['call', '--input-file', file, guest('limits'), 'digest']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: the call input is more than 67108864 bytes; a call takes at most 67108864/);
  }, 60_000);

  it('an endless input (/dev/zero) is read only past the limit, then refused the same way (exit 2)', async () => {
    const r = await run(['call', '--input-file', '/dev/zero', guest('limits'), 'digest']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERR_INVALID_ARGUMENT: the call input is more than 67108864 bytes; a call takes at most 67108864/);
  }, 60_000);
});

describe('wasmvisor --placement', () => {
  it('run --placement shared --stats: the guest runs on a shared worker and the stats say so; a bad value is exit 2', async () => {
    const r = await run(['run', '--placement', 'shared', '--stats', guest('hello'), 'x']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toContain('arg[0]=x');
    expect(r.stderr).toMatch(/^  scheduler +shared worker: \d+ slices, \d+ preemptions, \d+ waits, [\d.]+ ms waiting for a slice$/m);
    const bad = await run(['run', '--placement', 'remote', guest('hello')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^ERR_INVALID_ARGUMENT: --placement: expected .*dedicated.*shared.*, got "remote"/);
  }, 60_000);

  it('call --placement shared: the export answers from a shared worker', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-call-'));
    const file = path.join(dir, 'in.bin');
    writeFileSync(file, Buffer.alloc(1000, 1));
    const r = await run(['call', '--input-file', file, '--placement', 'shared', guest('limits'), 'digest']);
    expect(r.code).toBe(0);
    expect(r.stdout.readUInt32LE(0)).toBe(1000);
  }, 60_000);
});

describe('wasmvisor --isolate', () => {
  it('run --isolate process --stats: the guest runs in a partition process and the stats say so; a bad value is exit 2', async () => {
    const r = await run(['run', '--isolate', 'process', '--stats', guest('hello'), 'x']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toContain('arg[0]=x');
    expect(r.stderr).toMatch(/^  scheduler +partition process: \d+ slices, \d+ preemptions, \d+ waits, [\d.]+ ms waiting for a slice$/m);
    const bad = await run(['run', '--isolate', 'vm', guest('hello')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^ERR_INVALID_ARGUMENT: --isolate: expected "thread" or "process", got "vm"/);
  }, 120_000);

  it('run --isolate process --placement shared --stats: the guest runs on a shared partition process and the stats say so', async () => {
    const r = await run(['run', '--isolate', 'process', '--placement', 'shared', '--stats', guest('hello'), 'y']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toContain('arg[0]=y');
    expect(r.stderr).toMatch(/^  scheduler +shared partition process: \d+ slices, \d+ preemptions, \d+ waits, [\d.]+ ms waiting for a slice$/m);
  }, 120_000);

  it('call --isolate process: the export answers from a partition process', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-call-'));
    const file = path.join(dir, 'in.bin');
    writeFileSync(file, Buffer.alloc(1000, 1));
    const r = await run(['call', '--input-file', file, '--isolate', 'process', guest('limits'), 'digest']);
    expect(r.code).toBe(0);
    expect(r.stdout.readUInt32LE(0)).toBe(1000);
  }, 120_000);
});
