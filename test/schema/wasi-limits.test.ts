/**
 * WASI argv and environment bounds (host/limits/sizes.ts: MAX_WASI_STRINGS strings and
 * MAX_WASI_BLOCK_BYTES bytes each, as args_sizes_get / environ_sizes_get count them) through every
 * layer that takes a spec: the schema and its total check, hv.createPartition with a real WASI
 * guest that reads them, and the management API's create. At the edge it works; one past it is
 * ERR_INVALID_ARGUMENT naming the field, before anything runs or is stored.
 */
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Hypervisor } from '../../host/index.ts';
import { MAX_WASI_BLOCK_BYTES, MAX_WASI_STRINGS } from '../../host/limits/sizes.ts';
import { check } from '../../host/schema/check.ts';
import { PartitionSpecSchema } from '../../host/schema/partition.ts';
import { checkWasiBlocks, wasiBlockBytes } from '../../host/schema/wasi.ts';
import { ApiPartitionSpec } from '../../host/mgmt/schemas.ts';
import { collect, hypervisor, runToExit } from '../helpers.ts';
import { startHost, type Harness } from '../mgmt/harness.ts';

const HELLO_C = fileURLToPath(new URL('../../guests/c/hello.wasm', import.meta.url));

/** `count` strings of `size` bytes each with their NULs, `prefix` first; `extra` bytes more on the last. */
function strings(count: number, prefix: (i: number) => string, extra = 0): string[] {
  const size = MAX_WASI_BLOCK_BYTES / count;
  return Array.from({ length: count }, (_, i) => {
    const p = prefix(i);
    return p + 'x'.repeat(size - 1 - p.length + (i === count - 1 ? extra : 0));
  });
}
const args = (extra = 0) => strings(64, () => '', extra);
const envList = (extra = 0) => strings(64, (i) => (i === 0 ? 'GREETING=' : `V${i}=`), extra);

/** The spec's checks, as hv.createPartition runs them (the schema, then the totals). */
function accept(wasi: unknown): void {
  const spec = check(PartitionSpecSchema, { name: 'p', module: 'm.wasm', wasi }, 'partition spec "p"');
  checkWasiBlocks(spec.wasi!);
}

describe('WASI args and env: the spec checks', () => {
  it('the fixtures sit exactly at the byte edge', () => {
    expect(wasiBlockBytes(args())).toBe(MAX_WASI_BLOCK_BYTES);
    expect(wasiBlockBytes(args(1))).toBe(MAX_WASI_BLOCK_BYTES + 1);
    expect(wasiBlockBytes(envList())).toBe(MAX_WASI_BLOCK_BYTES);
    // UTF-8, not UTF-16: é is two bytes, 😀 four, a lone surrogate three (its replacement).
    expect(wasiBlockBytes(['é', '😀', '\ud800'])).toBe(2 + 1 + 4 + 1 + 3 + 1);
  });

  it('total bytes: at the limit accepted, one past refused naming the field, its size and the limit', () => {
    accept({ args: args() });
    accept({ env: envList() });
    accept({ env: Object.fromEntries(envList().map((e) => e.split('=') as [string, string])) });
    expect(() => accept({ args: args(1) })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: `wasi.args: takes ${MAX_WASI_BLOCK_BYTES + 1} bytes together (each string's UTF-8 bytes and its NUL), over the limit of ${MAX_WASI_BLOCK_BYTES}` }));
    expect(() => accept({ env: envList(1) })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/^wasi\.env: takes 262145 bytes together/) }));
    const record = Object.fromEntries(envList(1).map((e) => e.split('=') as [string, string]));
    expect(() => accept({ env: record })).toThrow(expect.objectContaining({ message: expect.stringMatching(/^wasi\.env: takes 262145 bytes/) }));
    // Multi-byte text counts its UTF-8 bytes: 87381 three-byte characters and a NUL are the edge.
    accept({ args: ['€'.repeat(87381)] });
    expect(() => accept({ args: ['€'.repeat(87381), ''] })).toThrow(expect.objectContaining({ message: expect.stringMatching(/^wasi\.args: takes 262145 bytes/) }));
  });

  it('counts: MAX_WASI_STRINGS strings accepted, one more refused by the schema, for args and env', () => {
    const empty = Array.from({ length: MAX_WASI_STRINGS }, () => '');
    accept({ args: empty });
    expect(() => accept({ args: [...empty, ''] })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('wasi.args') }));
    expect(() => accept({ env: [...Array.from({ length: MAX_WASI_STRINGS }, () => 'A='), 'A='] })).toThrow(expect.objectContaining({ message: expect.stringContaining('wasi.env') }));
    expect(() => checkWasiBlocks({ args: [...empty, ''] })).toThrow(expect.objectContaining({ message: `wasi.args: ${MAX_WASI_STRINGS + 1} strings, over the limit of ${MAX_WASI_STRINGS}` }));
    expect(() => checkWasiBlocks({ env: Object.fromEntries(Array.from({ length: MAX_WASI_STRINGS + 1 }, (_, i) => [`K${i}`, ''])) })).toThrow(
      expect.objectContaining({ message: `wasi.env: ${MAX_WASI_STRINGS + 1} strings, over the limit of ${MAX_WASI_STRINGS}` }),
    );
  });

  it('one string longer than the whole block is refused by the schema itself', () => {
    expect(() => check(PartitionSpecSchema, { name: 'p', module: 'm', wasi: { args: ['x'.repeat(MAX_WASI_BLOCK_BYTES)] } }, 'spec')).toThrow(/wasi\.args\[0\]/);
    check(PartitionSpecSchema, { name: 'p', module: 'm', wasi: { args: ['x'.repeat(MAX_WASI_BLOCK_BYTES - 1)] } }, 'spec');
  });

  it('an argument with a NUL is refused naming it, as an environment string is: the guest gets each NUL-terminated, so it would be cut there', () => {
    for (const [spec, where] of [
      [{ wasi: { args: ['ok', 'a\u0000b'] } }, 'wasi.args[1]'],
      [{ args: ['a\u0000b'] }, 'args[0]'],
    ] as const) {
      expect(() => check(PartitionSpecSchema, { name: 'p', module: 'm', ...spec }, 'spec')).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining(`spec: ${where}: expected a string without NUL characters`) }),
      );
      expect(() => check(ApiPartitionSpec, { name: 'p', ...spec }, 'body: spec')).toThrow(expect.objectContaining({ message: expect.stringContaining(`body: spec: ${where}: expected a string without NUL characters`) }));
    }
    check(PartitionSpecSchema, { name: 'p', module: 'm', args: ['', 'a b'], wasi: { args: ['', '\u00e9'] } }, 'spec');
  });

  it('the management API spec carries the same bounds (its schema is the library\'s)', () => {
    expect(() => check(ApiPartitionSpec, { name: 'p', wasi: { args: Array.from({ length: MAX_WASI_STRINGS + 1 }, () => '') } }, 'body: spec')).toThrow(/body: spec: wasi\.args/);
    check(ApiPartitionSpec, { name: 'p', wasi: { args: args() } }, 'body: spec');
  });
});

describe('WASI args and env: a real guest at the edge', () => {
  let hv: Hypervisor;
  afterEach(async () => {
    await hv?.close();
  });

  it('hv.createPartition: 256 KiB of argv and 256 KiB of environment reach the guest; one byte more is refused before it runs', async () => {
    hv = hypervisor({ defaultLimits: { memoryPages: 64, timeoutMs: 30_000 } });
    const p = await hv.createPartition({ name: 'edge', module: HELLO_C, devices: { console: { maxLineBytes: 65536 } }, wasi: { args: args(), env: envList() } });
    const out = collect(p);
    const exit = await runToExit(p);
    expect(exit.code).toBe(63); // hello exits with argc - 1
    expect(out.stdout[0]).toBe(`${envList()[0]!.slice('GREETING='.length)} from wasi`);
    expect(out.stdout.at(-1)).toBe(`arg 63: ${args().at(-1)}`);
    await expect(hv.createPartition({ name: 'past-args', module: HELLO_C, wasi: { args: args(1) } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/^wasi\.args: takes 262145 bytes/) });
    await expect(hv.createPartition({ name: 'past-env', module: HELLO_C, wasi: { env: envList(1) } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/^wasi\.env: takes 262145 bytes/) });
    expect(hv.partitions().map((x) => x.name)).toEqual(['edge']);
  });
});

describe('WASI args and env: the management API', () => {
  let h: Harness;
  let owner: string;
  beforeAll(async () => {
    h = await startHost();
    owner = (await h.token('Owner', '/', 'owner')).token;
  }, 30_000);
  afterAll(async () => {
    await h?.close();
  });
  const body = (name: string, wasi: unknown) => ({ spec: { name, devices: { console: { maxLineBytes: 65536 } }, limits: { memoryPages: 64 }, wasi }, module: readFileSync(HELLO_C).toString('base64') });

  it('at the edge it is declared; one past is 400 ERR_INVALID_ARGUMENT naming the field, and nothing is declared', async () => {
    const c = h.client(owner);
    const ok = await c.request('POST', '/partitions', body('edge', { args: args(), env: envList() }));
    expect(ok.status, ok.body.toString()).toBe(201);
    for (const [name, wasi, message] of [
      ['past-args', { args: args(1) }, /^body: spec\.wasi\.args: takes 262145 bytes together/],
      ['past-env', { env: envList(1) }, /^body: spec\.wasi\.env: takes 262145 bytes together/],
      ['past-count', { args: Array.from({ length: MAX_WASI_STRINGS + 1 }, () => '') }, /^body: spec\.wasi\.args: /],
    ] as const) {
      const r = await c.request('POST', '/partitions', body(name, wasi));
      expect(r.status, name).toBe(400);
      const error = JSON.parse(r.body.toString()).error;
      expect(error.code).toBe('ERR_INVALID_ARGUMENT');
      expect(error.message).toMatch(message);
      expect((await c.request('GET', `/partitions/${name}`)).status).toBe(404);
    }
  });
});
