/**
 * `wasmvisor run --env`: the WASI environment's bound (MAX_WASI_BLOCK_BYTES, as environ_sizes_get
 * counts it) holds through the CLI: at the edge a real WASI guest reads it; one byte past is
 * ERR_INVALID_ARGUMENT (exit 2) naming wasi.env, and nothing runs.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MAX_WASI_BLOCK_BYTES } from '../../host/limits/sizes.ts';
import { cli } from './harness.ts';

const HELLO_C = fileURLToPath(new URL('../../guests/c/hello.wasm', import.meta.url));

/** Four --env flags of 64 KiB each with their NULs (an argv string may be at most 128 KiB), GREETING first; `extra` bytes more on the last. */
function envFlags(extra = 0): string[] {
  const size = MAX_WASI_BLOCK_BYTES / 4;
  return Array.from({ length: 4 }, (_, i) => {
    const key = i === 0 ? 'GREETING=' : `V${i}=`;
    return ['--env', key + 'e'.repeat(size - 1 - key.length + (i === 3 ? extra : 0))];
  }).flat();
}

describe('run --env at the WASI environment bound', () => {
  it('at the edge the guest reads it; one byte past is ERR_INVALID_ARGUMENT naming wasi.env, exit 2', async () => {
    const ok = await cli(['run', HELLO_C, ...envFlags()]);
    expect(ok.stderr).not.toMatch(/ERR_/);
    expect(ok.code).toBe(0);
    expect(ok.stdout.split('\n')[0]).toBe(`${'e'.repeat(MAX_WASI_BLOCK_BYTES / 4 - 1 - 'GREETING='.length)} from wasi`);
    const past = await cli(['run', HELLO_C, ...envFlags(1)]);
    expect(past.code).toBe(2);
    expect(past.stdout).toBe('');
    expect(past.stderr).toMatch(new RegExp(`^ERR_INVALID_ARGUMENT: .*wasi\\.env: takes ${MAX_WASI_BLOCK_BYTES + 1} bytes together`));
  });
});
