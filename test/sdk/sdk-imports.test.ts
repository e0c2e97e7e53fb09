/**
 * Every AssemblyScript guest built with the SDK must import exactly `hv.hypercall` (nothing from
 * `env`: abort is routed to HV_CALL_ABORT) and export `memory` and `_start` (a reactor, marked
 * `// wasmvisor:reactor`, exports `_initialize` instead).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildGuests } from '../../scripts/build-guests.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const asGuests = readdirSync(path.join(root, 'guests'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -'.ts'.length))
  .sort();

describe('SDK guests import only hv.hypercall', () => {
  beforeAll(async () => {
    // Cached: a no-op unless guests/, assembly/ or asconfig.json changed.
    await buildGuests({ quiet: true });
  }, 300_000);

  it('finds AssemblyScript guests', () => {
    expect(asGuests.length).toBeGreaterThan(0);
  });

  it.each(asGuests)('%s', (name) => {
    const bytes = readFileSync(path.join(root, 'build', 'guests', `${name}.wasm`));
    const mod = new WebAssembly.Module(bytes);
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: 'hv', name: 'hypercall', kind: 'function' }]);
    const exports = WebAssembly.Module.exports(mod);
    expect(exports).toContainEqual({ name: 'memory', kind: 'memory' });
    const reactor = /^\/\/ wasmvisor:reactor$/m.test(readFileSync(path.join(root, 'guests', `${name}.ts`), 'utf8'));
    expect(exports).toContainEqual({ name: reactor ? '_initialize' : '_start', kind: 'function' });
    expect(exports.some((e) => e.name === (reactor ? '_start' : '_initialize'))).toBe(false);
  });
});
