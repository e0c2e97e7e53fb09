/**
 * The package's import graph: `import { Hypervisor } from 'wasmvisor'` (dist/index.js) and the
 * CLI (dist/cli.js) never import fastify or the certificate code, neither directly nor through the
 * chunks they share; only dist/mgmt.js does, and the CLI loads it by URL for serve, token and cert.
 * (Imports of an ES module are all loaded before it runs, so a bundle that names a package in an
 * import statement loads it.) And each module exists once across the entry points: an error thrown
 * by 'wasmvisor/mgmt' is an instance of the classes 'wasmvisor' exports.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const dist = new URL('../../dist/', import.meta.url);
const read = (f: string) => readFileSync(new URL(f, dist), 'utf8');
const imports = (text: string) => [...text.matchAll(/^import\s[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]!);
/** What a bundle imports, through the chunks it imports (transitively). */
function closure(entry: string): { packages: Set<string>; files: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const f = queue.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const spec of imports(read(f))) {
      if (spec.startsWith('./')) queue.push(spec.slice(2));
      else packages.add(spec);
    }
  }
  return { packages, files };
}

describe('bundles', () => {
  it('the library and the CLI import no management-plane package, even through shared chunks; dist/mgmt.js does', () => {
    for (const f of ['index.js', 'cli.js', 'worker.js']) {
      const { packages, files } = closure(f);
      expect(packages.size, f).toBeGreaterThan(0);
      for (const pkg of ['fastify', '@peculiar/x509', 'reflect-metadata']) expect([...packages], `${f} imports ${pkg}`).not.toContain(pkg);
      for (const file of files) expect(read(file)).not.toMatch(/import\(["']\.\/mgmt\.js["']\)/);
    }
    // The worker (one per partition, in its own thread) stays one self-contained file, and it does
    // not carry the schema library: loading TypeBox costs a worker's start hundreds of
    // milliseconds on a loaded host, and a worker never validates a spec.
    expect([...closure('worker.js').files]).toEqual(['worker.js']);
    expect(read('worker.js')).not.toContain('@sinclair/typebox');
    // So does the loader's worker (off-thread validation and compile: its own thread and realm).
    expect([...closure('loader-worker.js').files]).toEqual(['loader-worker.js']);
    const mgmt = closure('mgmt.js').packages;
    expect(mgmt).toContain('fastify');
    expect(mgmt).toContain('@peculiar/x509');
  });

  it('each class exists once across the bundles: instanceof holds between wasmvisor and wasmvisor/mgmt', async () => {
    const defined = readdirSync(dist).filter((f) => f.endsWith('.js') && !['worker.js', 'transform.js', 'loader-worker.js'].includes(f) && /var WasmvisorError = class/.test(read(f)));
    expect(defined).toHaveLength(1);
    expect(defined[0]).toMatch(/^chunk-/);
    const lib = (await import(new URL('index.js', dist).href)) as typeof import('../../host/index.ts');
    const mgmt = (await import(new URL('mgmt.js', dist).href)) as typeof import('../../host/mgmt/index.ts');
    // An error the management plane throws, caught by an embedder holding the library's classes.
    let caught: unknown;
    try {
      mgmt.parseLifetime('7 days');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(lib.WasmvisorError);
    expect(caught).toBeInstanceOf(lib.InvalidArgumentError);
    // Loading the management bundle (fastify and its dependencies) took over 20 s at load 25.
  }, 90_000);
});
