import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { guest } from '../helpers.ts';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'wv-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function wasmvisor(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('wasmvisor run --disk and delete', () => {
  it('keeps a named partition’s disk across runs, refuses a resize, and deletes it', async () => {
    const counter = guest('counter');
    const run = (...extra: string[]) => wasmvisor('run', counter, '--name', 'c', '--data-dir', dir, ...extra);
    expect(await run('--disk', '1')).toMatchObject({ code: 0, stdout: 'counter: 1\n' });
    expect(await run('--disk', '1')).toMatchObject({ code: 0, stdout: 'counter: 2\n' });
    const resized = await run('--disk', '2');
    expect(resized.code).toBe(2);
    expect(resized.stderr).toMatch(/^ERR_INVALID_ARGUMENT: .*not resized/m);
    expect((await run('--disk', '0')).code).toBe(2);
    const del = await wasmvisor('delete', 'c', '--data-dir', dir);
    expect(del).toMatchObject({ code: 0 });
    expect(del.stdout).toMatch(/scrubbed and removed, key removed/);
    expect(existsSync(path.join(dir, 'images', 'c.img'))).toBe(false);
    expect(await wasmvisor('delete', 'c', '--data-dir', dir)).toMatchObject({ code: 0, stdout: expect.stringMatching(/nothing to delete/) });
    expect(await run('--disk', '1')).toMatchObject({ code: 0, stdout: 'counter: 1\n' });
    expect((await wasmvisor('delete', '--data-dir', dir)).code).toBe(2);
    expect((await wasmvisor('delete', '../x', '--data-dir', dir)).code).toBe(2);
  });
});
