/**
 * Guests in other languages (docs/GUESTS.md): include/hv.h is exactly what the generator makes
 * from host/abi/codes.ts; docs/ABI.md states the code's version; the committed C and Rust example
 * binaries do what their sources say (run through the real CLI); the Rust example's constants
 * are the ABI's; and, where Debian's clang and rustc are installed, the sources rebuild to the
 * committed bytes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import * as codes from '../../host/abi/codes.ts';
import { cli, lines } from '../cli/harness.ts';
// @ts-expect-error: a plain .mjs build script without declarations
import { renderHeader } from '../../scripts/gen-hv-header.mjs';

vi.setConfig({ testTimeout: 90_000 });

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string): string => readFileSync(path.join(root, file), 'utf8');
const C_HELLO = path.join(root, 'examples/c/hello.wasm');
const RUST_UPPER = path.join(root, 'examples/rust/upper.wasm');

describe('include/hv.h', () => {
  it('is what scripts/gen-hv-header.mjs makes from host/abi/codes.ts (run it after changing codes.ts)', async () => {
    expect(read('include/hv.h')).toBe(await (renderHeader as () => Promise<string>)());
  });

  it('defines every ABI number with its value, and nothing else', () => {
    const defined = new Map<string, string>();
    for (const m of read('include/hv.h').matchAll(/^#define (HV_\w+) (.+)$/gm)) defined.set(m[1]!, m[2]!);
    const prefix = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
    const expected = new Map<string, number | string>();
    for (const [name, value] of Object.entries(codes)) {
      if (typeof value === 'number' || typeof value === 'string') expected.set(name, value);
      else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) expected.set(`${prefix(name)}_${k}`, v as number);
    }
    const cValue = (text: string): number | string => (text.startsWith('"') ? (JSON.parse(text) as string) : Number(text.replace(/u$/, '').replace(/^\((.*)\)$/, '$1')));
    for (const [name, value] of expected) expect(defined.has(name) ? cValue(defined.get(name)!) : undefined, name).toBe(value);
    for (const name of defined.keys()) expect(expected.has(name), `${name} is not in codes.ts`).toBe(true);
    expect(read('include/hv.h')).toContain('__attribute__((import_module("hv"), import_name("hypercall")))');
  });
});

describe('docs/ABI.md states the version the code reports', () => {
  const text = read('docs/ABI.md');
  const version = `${codes.HV_ABI_MAJOR}.${codes.HV_ABI_MINOR}`;
  it(`its title, its HV_ABI_VERSION value and its version table say ${version}`, () => {
    expect(/^# Wasmvisor hypercall ABI — version (\d+\.\d+)$/m.exec(text)?.[1]).toBe(version);
    const hex = `0x${codes.HV_ABI_VERSION.toString(16).padStart(8, '0')}`;
    const stated = [...text.matchAll(/HV_ABI_VERSION`? = `?(0x[0-9a-fA-F]+)/g)].map((m) => m[1]);
    expect(stated.length).toBeGreaterThan(0);
    for (const v of stated) expect(v, 'HV_ABI_VERSION in docs/ABI.md').toBe(hex);
    expect(/This document describes (\d+\.\d+)\./.exec(text)?.[1]).toBe(version);
    const rows = [...text.matchAll(/^\| (\d+\.\d+) \|/gm)].map((m) => m[1]);
    expect(rows.at(-1), 'the last row of the version table').toBe(version);
  });
});

describe('docs/GUESTS.md', () => {
  it('shows the C and Rust examples exactly as they are built and tested', () => {
    const guide = read('docs/GUESTS.md');
    const block = (lang: string) => new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(guide)?.[1];
    expect(block('c')).toBe(read('examples/c/hello.c'));
    expect(block('rust')).toBe(read('examples/rust/upper.rs'));
  });
});

describe.concurrent('the C example (examples/c/hello.c)', () => {
  it('greets each argument, reports the ABI version and its devices, echoes input upper-cased, exits with the argument count', async () => {
    const r = await cli(['run', C_HELLO, 'Ada', 'Grace'], { input: 'one\ntwo\n' });
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual([`Hello from C on ABI ${codes.HV_ABI_MAJOR}.${codes.HV_ABI_MINOR}`, 'Hello, Ada!', 'Hello, Grace!', 'devices: console clock entropy', '> ONE', '> TWO']);
    expect(r.code).toBe(2);
  });

  it('imports only hv.hypercall and exports memory and _start', () => {
    const m = new WebAssembly.Module(readFileSync(C_HELLO));
    expect(WebAssembly.Module.imports(m)).toEqual([{ module: 'hv', name: 'hypercall', kind: 'function' }]);
    expect(WebAssembly.Module.exports(m).map((e) => e.name).sort()).toEqual(['_start', 'memory']);
  });

  it('without a console its first write is denied and it aborts, as the source says', async () => {
    const r = await cli(['run', '--devices', 'none', C_HELLO]);
    expect(r.code).toBe(134);
    expect(lines(r.stderr).at(-1)).toBe('ERR_GUEST_TRAP: guest aborted: console write failed');
  });
});

describe.concurrent('the Rust example (examples/rust/upper.rs)', () => {
  it('upper-cases the input of a call, also past one 64 KiB window', async () => {
    expect((await cli(['call', RUST_UPPER, 'upper', '--input', 'hello, rust'])).stdout).toBe('HELLO, RUST');
    const big = 'abc'.repeat(50_000); // 150 000 bytes: three INPUT_READ windows
    const r = await cli(['call', RUST_UPPER, 'upper'], { input: big });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(big.toUpperCase());
  });

  it('its constants are the ABI\'s', () => {
    const text = read('examples/rust/upper.rs');
    const constants = [...text.matchAll(/^const (HV_\w+): i32 = (0x[0-9a-f]+|\d+);$/gm)];
    expect(constants.length).toBe(4);
    const table: Record<string, number> = { ...Object.fromEntries(Object.entries(codes.HvCall).map(([k, v]) => [`HV_CALL_${k}`, v])), HV_MAX_TRANSFER: codes.HV_MAX_TRANSFER };
    for (const [, name, value] of constants) expect(Number(value), name).toBe(table[name!]);
    expect(text).toContain('#[link(wasm_import_module = "hv")]');
  });

  it('imports only hv.hypercall and exports memory and upper', () => {
    const m = new WebAssembly.Module(readFileSync(RUST_UPPER));
    expect(WebAssembly.Module.imports(m)).toEqual([{ module: 'hv', name: 'hypercall', kind: 'function' }]);
    expect(WebAssembly.Module.exports(m).filter((e) => e.kind !== 'global').map((e) => e.name).sort()).toEqual(['memory', 'upper']);
  });
});

// Debian's toolchains are not on CI (the binaries are committed); where they are, the committed
// bytes must be what the sources build to.
const toolchains = existsSync('/usr/bin/clang') && existsSync('/usr/bin/rustc') && existsSync('/usr/bin/wasm-ld');
describe.skipIf(!toolchains)('with Debian clang and rustc installed', () => {
  it('the committed example binaries are what scripts/build-examples.sh builds from the sources', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wv-examples-'));
    // clang runs any wasm-opt it finds on PATH (binaryen's, under node_modules/.bin here), and
    // Rust embeds source paths in panic locations: built as the script builds, from the root
    // with relative paths and Debian's PATH only.
    const env = { ...process.env, PATH: '/usr/bin:/bin' };
    try {
      execFileSync('/usr/bin/clang', ['--target=wasm32', '-nostdlib', '-Oz', '-I', 'include', '-Wl,--no-entry', '-Wl,--export=_start', '-Wl,--strip-all', '-o', path.join(dir, 'hello.wasm'), 'examples/c/hello.c'], { env, cwd: root });
      execFileSync('/usr/bin/rustc', ['--target', 'wasm32-unknown-unknown', '--crate-type', 'cdylib', '--edition', '2021', '-C', 'opt-level=z', '-C', 'panic=abort', '-C', 'strip=symbols', '-o', path.join(dir, 'upper.wasm'), 'examples/rust/upper.rs'], { env, cwd: root });
      expect(readFileSync(path.join(dir, 'hello.wasm')).equals(readFileSync(C_HELLO)), 'examples/c/hello.wasm').toBe(true);
      expect(readFileSync(path.join(dir, 'upper.wasm')).equals(readFileSync(RUST_UPPER)), 'examples/rust/upper.wasm').toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
