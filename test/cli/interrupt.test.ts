/**
 * Ctrl-C (SIGINT) and SIGTERM during a local `run` or `call`: the first signal stops the
 * partition and the command ends as a stopped run does — the guest's output so far, the
 * verdict, the --json report, the hypervisor closed (audit log written) — with 128 + the
 * signal's number, as a shell shows a process the signal killed. Before, the signal killed the
 * process outright: no verdict, no report, the last audit records lost.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { guest } from '../helpers.ts';
import { CLI, cli, lines } from './harness.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'wasmvisor-interrupt-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

interface Interrupted {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawns the CLI, waits until `ready` is on its stdout or stderr, sends `signal`, collects the rest. */
function interrupt(args: string[], ready: string, signal: NodeJS.Signals, input?: string): Promise<Interrupted> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000, killSignal: 'SIGKILL', env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    let sent = false;
    const look = (): void => {
      if (!sent && (stdout + stderr).includes(ready)) {
        sent = true;
        child.kill(signal);
      }
    };
    child.stdout.setEncoding('utf8').on('data', (c: string) => ((stdout += c), look()));
    child.stderr.setEncoding('utf8').on('data', (c: string) => ((stderr += c), look()));
    child.stdin.on('error', () => {});
    // stdin stays open: the guest would wait for more input forever.
    if (input !== undefined) child.stdin.write(input);
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code, signal: sig, stdout, stderr }));
  });
}

/** Waits until the audit log in `dir` has a record of `action` (the command wrote it: its signal handlers are in place). */
async function audited(dir: string, action: string): Promise<void> {
  const log = path.join(dir, 'audit', 'audit-000001.jsonl');
  while (!(existsSync(log) && readFileSync(log, 'utf8').includes(`"${action}"`))) await new Promise((r) => setTimeout(r, 20));
}

describe('a signal during a local run or call', () => {
  it('run: SIGINT stops the partition; its output, the verdict and the --json report come out; the audit log has its end; exit 130', async () => {
    const dir = path.join(dataDir, 'run-int');
    const r = await interrupt(['run', '--json', '--audit', '--data-dir', dir, guest('echo')], 'echo: hi', 'SIGINT', 'hi\n');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(130);
    expect(r.stdout).toBe('echo: hi\n');
    const err = lines(r.stderr);
    expect(err[0]).toBe('wasmvisor: SIGINT: stopping the partition (again to end at once)');
    expect(err.at(-2)).toMatch(/^ERR_KILLED: /);
    expect(JSON.parse(err.at(-1)!)).toMatchObject({ command: 'run', state: 'killed', exitStatus: 130, error: { code: 'ERR_KILLED' } });
    // The hypervisor was closed, not killed: the run's end is on the record, and the log verifies.
    const shown = await cli(['audit', 'show', '--data-dir', dir, '--action', 'partition.exit', '--json']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('partition.exit');
    expect((await cli(['audit', 'verify', '--data-dir', dir])).code).toBe(0);
  });

  it('run: SIGTERM stops a spinning guest without a time budget; exit 143', async () => {
    const r = await interrupt(['run', '--timeout', '0', guest('attack-spin')], 'spinning', 'SIGTERM');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(143);
    expect(r.stdout).toBe('spinning\n');
    const err = lines(r.stderr);
    expect(err[0]).toBe('wasmvisor: SIGTERM: stopping the partition (again to end at once)');
    expect(err.at(-1)).toMatch(/^ERR_KILLED: /);
  });

  it('call: SIGINT while a call spins ends the command with its report; exit 130', async () => {
    const dir = path.join(dataDir, 'call-int');
    const child = spawn(process.execPath, [CLI, 'call', '--json', '--audit', '--data-dir', dir, '--timeout', '0', guest('transform'), 'spin'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, killSignal: 'SIGKILL', env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.resume();
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await Promise.race([audited(dir, 'partition.start'), closed.then((code) => Promise.reject(new Error(`the command ended (${code}) before its partition started`)))]);
    child.kill('SIGINT');
    expect(await closed).toBe(130);
    expect(JSON.parse(stdout)).toMatchObject({ command: 'call', export: 'spin', exitStatus: 130 });
  });
});
