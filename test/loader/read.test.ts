import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, ModuleInvalidError } from '../../host/errors.ts';
import { DEFAULT_MAX_MODULE_BYTES, readModuleSource } from '../../host/loader/read.ts';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wasmvisor-read-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const filled = (n: number): Uint8Array<ArrayBuffer> => new Uint8Array(n).map((_, i) => i & 0xff);

describe('readModuleSource', () => {
  it('defaults the cap to 16 MiB', () => {
    expect(DEFAULT_MAX_MODULE_BYTES).toBe(16 * 1024 * 1024);
  });

  it('admits bytes at exactly the cap and refuses cap + 1', async () => {
    await expect(readModuleSource(filled(100), 100)).resolves.toHaveLength(100);
    await expect(readModuleSource(filled(101), 100)).rejects.toThrow(ModuleInvalidError);
    await expect(readModuleSource(filled(101), 100)).rejects.toThrow('module bytes is 101 bytes, over the module size cap of 100 bytes');
    await expect(readModuleSource(filled(101).buffer, 100)).rejects.toThrow(ModuleInvalidError);
  });

  it('admits a file at exactly the cap and refuses cap + 1, naming path, size and cap', async () => {
    const atCap = join(dir, 'at-cap.wasm');
    const overCap = join(dir, 'over-cap.wasm');
    await writeFile(atCap, filled(4096));
    await writeFile(overCap, filled(4097));
    const read = await readModuleSource(atCap, 4096);
    expect(read).toEqual(filled(4096));
    await expect(readModuleSource(overCap, 4096)).rejects.toThrow(ModuleInvalidError);
    await expect(readModuleSource(overCap, 4096)).rejects.toThrow(`module file ${overCap} is 4097 bytes, over the 4096-byte limit`);
    // Exactly its size, so the loader can transfer it to a worker whole (not a view of a bigger buffer).
    expect(read.byteOffset).toBe(0);
    expect(read.buffer.byteLength).toBe(4096);
    await expect(readModuleSource(pathToFileURL(atCap), 4096)).resolves.toHaveLength(4096);
    await expect(readModuleSource(pathToFileURL(overCap), 4096)).rejects.toThrow(ModuleInvalidError);
  });

  it('reads an empty file (the cap 0 edge)', async () => {
    const empty = join(dir, 'empty.wasm');
    await writeFile(empty, new Uint8Array(0));
    await expect(readModuleSource(empty, 0)).resolves.toHaveLength(0);
  });

  it('reports an unreadable file with the path and the OS reason', async () => {
    const missing = join(dir, 'missing.wasm');
    const error = await readModuleSource(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModuleInvalidError);
    expect((error as ModuleInvalidError).message).toContain(`cannot read module file ${missing}`);
    expect((error as ModuleInvalidError).message).toContain('ENOENT');
  });

  it('refuses a directory without reading it', async () => {
    const sub = join(dir, 'a-directory.wasm');
    await mkdir(sub);
    await expect(readModuleSource(sub)).rejects.toThrow(new ModuleInvalidError(`module file ${sub} is a directory, not a regular file`));
  });

  it.skipIf(process.platform === 'win32')('refuses a FIFO without opening it (opening would block until a writer appears)', async () => {
    const fifo = join(dir, 'pipe.wasm');
    execFileSync('mkfifo', [fifo]);
    await expect(readModuleSource(fifo)).rejects.toThrow(new ModuleInvalidError(`module file ${fifo} is a FIFO, not a regular file`));
  });

  it.skipIf(process.platform === 'win32')('with pipes (the command line), reads a FIFO up to the cap and refuses one byte more as ERR_MODULE_INVALID', async () => {
    const fifo = join(dir, 'piped.wasm');
    execFileSync('mkfifo', [fifo]);
    const feed = (n: number) => new Promise<void>((resolve, reject) => {
      const w = createWriteStream(fifo);
      w.on('error', reject);
      w.end(Buffer.from(filled(n)), () => resolve());
    });
    const [atCap] = await Promise.all([readModuleSource(fifo, 4096, { pipes: true }), feed(4096)]);
    expect(atCap).toEqual(filled(4096));
    const [over] = await Promise.all([readModuleSource(fifo, 4096, { pipes: true }).catch((e: unknown) => e), feed(4097).catch(() => undefined)]);
    expect(over).toEqual(new ModuleInvalidError(`module file ${fifo} gave more than 4096 bytes, over the 4096-byte limit`));
    expect((over as ModuleInvalidError).code).toBe('ERR_MODULE_INVALID');
  });

  it('returns a private copy: mutating the source afterwards changes nothing', async () => {
    const original = filled(16);
    const buffer = Buffer.from(original);
    const fromBuffer = await readModuleSource(buffer);
    const arrayBuffer = original.slice().buffer;
    const fromArrayBuffer = await readModuleSource(arrayBuffer);
    buffer.fill(0xee);
    new Uint8Array(arrayBuffer).fill(0xee);
    expect(fromBuffer).toEqual(original);
    expect(fromArrayBuffer).toEqual(original);
    expect(fromBuffer.buffer).not.toBe(buffer.buffer);
  });

  it('copies only the view, not the whole underlying buffer', async () => {
    const big = filled(64);
    const read = await readModuleSource(big.subarray(8, 24));
    expect(read).toEqual(big.subarray(8, 24));
    expect(read.buffer.byteLength).toBe(16);
  });

  it('refuses bad arguments with InvalidArgumentError', async () => {
    await expect(readModuleSource(filled(1), -1)).rejects.toThrow(InvalidArgumentError);
    await expect(readModuleSource(filled(1), 1.5)).rejects.toThrow(InvalidArgumentError);
    await expect(readModuleSource(new URL('https://example.com/x.wasm'))).rejects.toThrow(InvalidArgumentError);
    await expect(readModuleSource(42 as unknown as string)).rejects.toThrow(InvalidArgumentError);
  });
});
