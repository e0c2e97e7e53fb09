import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
    // An image gone while its key stays (a volume not mounted, a file removed by hand): the delete
    // drops the key and says there was no image to scrub, rather than claiming it scrubbed one.
    rmSync(path.join(dir, 'images', 'c.img'));
    expect((await run('--disk', '1')).code).toBe(74);
    expect(await wasmvisor('delete', 'c', '--data-dir', dir)).toMatchObject({ code: 0, stdout: `deleted the disk of c: its image ${path.join(dir, 'images', 'c.img')} was already missing; key removed\n` });
    expect(await run('--disk', '1')).toMatchObject({ code: 0, stdout: 'counter: 1\n' });
    expect((await wasmvisor('delete', '--data-dir', dir)).code).toBe(2);
    expect((await wasmvisor('delete', '../x', '--data-dir', dir)).code).toBe(2);
  });

  it('disks lists the disks of a data directory, as a table or JSON, without opening a key', async () => {
    const d = mkdtempSync(path.join(dir, 'disks-'));
    expect(await wasmvisor('disks', '--data-dir', d)).toMatchObject({ code: 0, stdout: `no disks in ${d}\n` });
    for (const name of ['alpha', 'beta']) {
      expect(await wasmvisor('run', guest('counter'), '--name', name, '--data-dir', d, '--disk', name === 'alpha' ? '1' : '2')).toMatchObject({ code: 0 });
    }
    const json = await wasmvisor('disks', '--data-dir', d, '--json');
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { dataDir: string; disks: Record<string, unknown>[] };
    expect(parsed.dataDir).toBe(d);
    expect(parsed.disks).toEqual([
      expect.objectContaining({ name: 'alpha', path: path.join(d, 'images', 'alpha.img'), sizeBytes: 1 << 20, key: 'keystore', inUse: null, problem: null, format: 2 }),
      expect.objectContaining({ name: 'beta', path: path.join(d, 'images', 'beta.img'), sizeBytes: 2 << 20, key: 'keystore', inUse: null, problem: null, format: 2 }),
    ]);
    for (const disk of parsed.disks) {
      expect(disk.allocatedBytes).toBeGreaterThan(0); // the counter wrote a sector
      expect(Number.isNaN(Date.parse(disk.modified as string))).toBe(false);
      expect(disk.imageId).toMatch(/^[0-9a-f]{32}$/);
    }
    const table = await wasmvisor('disks', '--data-dir', d);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME +SIZE +ON DISK +CREATED \(UTC\) +MODIFIED \(UTC\) +KEY +STATUS +PATH$/);
    expect(lines[1]).toMatch(new RegExp(`^alpha +1\\.0 MiB +.* keystore +ok +${path.join(d, 'images', 'alpha.img')}$`));
    expect(lines[2]).toMatch(/^beta +2\.0 MiB /);
    // A key whose image is missing is listed with the problem (and its path), not hidden.
    rmSync(path.join(d, 'images', 'beta.img'));
    const after = JSON.parse((await wasmvisor('disks', '--data-dir', d, '--json')).stdout) as { disks: Record<string, unknown>[] };
    expect(after.disks[1]).toMatchObject({ name: 'beta', problem: 'the image is missing; its key is in the keystore', sizeBytes: null });
    expect((await wasmvisor('disks', 'extra', '--data-dir', d)).code).toBe(2);
    expect((await wasmvisor('disks', '--nope')).code).toBe(2);
  });

  it('disks prints a file name an attacker chose as one inert line (escapes, bidi overrides)', async () => {
    const d = mkdtempSync(path.join(dir, 'disks-hostile-'));
    mkdirSync(path.join(d, 'images'));
    // A name that would clear the screen, start a new line and reverse the rest of the row.
    const hostile = 'x\x1b[2Jy\nz\u202efdp.img';
    writeFileSync(path.join(d, 'images', hostile), 'not an image');
    const table = await wasmvisor('disks', '--data-dir', d);
    expect(table.code).toBe(0);
    expect(table.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u);
    const rows = table.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(2);
    expect(rows[1]).toContain('x\\x1b[2Jy\\nz\\u{202e}fdp');
  });
});
