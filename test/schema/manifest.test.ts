/** Manifest files: hv.createPartition(await loadManifest('app.json')). */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Hypervisor, loadManifest } from '../../host/index.ts';
import { MAX_MANIFEST_BYTES } from '../../host/schema/manifest.ts';
import { collect, guest, runToExit } from '../helpers.ts';
import { HV_ABI_MAJOR, HV_ABI_MINOR } from '../../host/abi/codes.ts';

/** What the hello guest prints about the ABI it runs on. */
const ABI_LINE = `ABI version ${HV_ABI_MAJOR}.${HV_ABI_MINOR}`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'wv-manifest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
copyFileSync(guest('hello'), path.join(dir, 'hello.wasm'));

function write(name: string, content: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

async function problem(file: string | URL): Promise<string> {
  const error = await loadManifest(file).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  return (error as Error).message;
}

describe('loadManifest', () => {
  it('gives a spec createPartition runs: module and preopens relative to the manifest, name from the file', async () => {
    mkdirSync(path.join(dir, 'data'), { recursive: true });
    const file = write('hello-app.json', {
      $schema: 'node_modules/wasmvisor/schema/manifest.json',
      module: 'hello.wasm',
      args: ['from', 'manifest'],
      devices: { console: true },
      limits: { memoryPages: 16, timeoutMs: 5000 },
      wasi: { preopens: [{ guestPath: '/data', hostPath: 'data' }] },
    });
    const spec = await loadManifest(file);
    expect(spec).toMatchObject({ name: 'hello-app', module: path.join(dir, 'hello.wasm'), wasi: { preopens: [{ guestPath: '/data', hostPath: path.join(dir, 'data') }] } });
    expect(spec).not.toHaveProperty('$schema');
    const hv = new Hypervisor();
    try {
      const { wasi: _wasi, ...withoutWasi } = spec;
      const p = await hv.createPartition(withoutWasi);
      const out = collect(p);
      expect(await runToExit(p)).toMatchObject({ state: 'exited', code: 0 });
      expect(out.stdout).toEqual(['Hello from a Wasmvisor partition!', ABI_LINE, 'arg[0]=from', 'arg[1]=manifest']);
    } finally {
      await hv.close();
    }
  });

  it('a file: URL works too, and an explicit name wins', async () => {
    const file = write('named.json', { name: 'other', module: './hello.wasm' });
    expect(await loadManifest(pathToFileURL(file))).toMatchObject({ name: 'other', module: path.join(dir, 'hello.wasm') });
  });

  it('a sha256 pin is kept: a different module is refused at createPartition', async () => {
    const file = write('pinned.json', { module: 'hello.wasm', sha256: 'f'.repeat(64) });
    const hv = new Hypervisor();
    try {
      await expect(hv.createPartition(await loadManifest(file))).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    } finally {
      await hv.close();
    }
  });

  it('errors name the file and the path inside it', async () => {
    const typo = write('typo.json', { module: 'hello.wasm', devices: { console: { linesPerSec: 5 } } });
    expect(await problem(typo)).toBe(`manifest ${typo}: devices.console.linesPerSec: unknown key; did you mean linesPerSecond?`);
    const bytes = write('bytes.json', { module: 'hello.wasm', limits: { memoryPages: '16' } });
    expect(await problem(bytes)).toBe(`manifest ${bytes}: limits.memoryPages: expected an integer from 1 to 65536, got the string "16"`);
    const noModule = write('nomodule.json', { name: 'x' });
    expect(await problem(noModule)).toBe(`manifest ${noModule}: module: is required`);
  });

  it('not JSON: the line and column', async () => {
    const bad = write('bad.json', '{\n  "module": "hello.wasm",\n  "limits": { memoryPages: 1 }\n}\n');
    expect(await problem(bad)).toMatch(new RegExp(`^manifest ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not valid JSON: .* at line 3, column 15$`));
  });

  it('bounded: a missing file, a folder, a file over the limit, a bad name', async () => {
    expect(await problem(path.join(dir, 'missing.json'))).toMatch(/missing\.json: cannot be read: ENOENT/);
    expect(await problem(dir)).toMatch(/: not a regular file$/);
    // A FIFO opens at once (O_NONBLOCK) and is refused: opened plainly it would wait for a writer for good.
    const fifo = path.join(dir, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    expect(await problem(fifo)).toMatch(/fifo\.json: not a regular file$/);
    // 35 bytes of JSON around the argument: the edge is exactly MAX_MANIFEST_BYTES, one past it is refused.
    const big = write('big.json', `{"module":"hello.wasm","args":["${'x'.repeat(MAX_MANIFEST_BYTES - 34)}"]}`);
    expect(await problem(big)).toContain(`more than the ${MAX_MANIFEST_BYTES} a manifest may have`);
    const edge = write('edge.json', `{"module":"hello.wasm","args":["${'x'.repeat(MAX_MANIFEST_BYTES - 35)}"]}`);
    expect((await loadManifest(edge)).args![0]!.length).toBe(MAX_MANIFEST_BYTES - 35);
    const badName = write('not a name!.json', { module: 'hello.wasm' });
    expect(await problem(badName)).toContain('name: is required (the file name "not a name!" is not a valid partition name)');
  });
});
