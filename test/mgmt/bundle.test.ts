/**
 * The package's import graph: `import { Hypervisor } from 'wasmvisor'` (dist/index.js) and the
 * CLI (dist/cli.js) never import fastify or the certificate code; only dist/mgmt.js does, and the
 * CLI loads it by URL for serve, token and cert. (Imports of an ES module are all loaded before it
 * runs, so a bundle that names a package in an import statement loads it.)
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (f: string) => readFileSync(new URL(`../../dist/${f}`, import.meta.url), 'utf8');
const imports = (text: string) => [...text.matchAll(/^import\s[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]!);

describe('bundles', () => {
  it('the library and the CLI import no management-plane package; dist/mgmt.js does', () => {
    for (const f of ['index.js', 'cli.js', 'worker.js']) {
      const list = imports(read(f));
      expect(list.length, f).toBeGreaterThan(0);
      for (const pkg of ['fastify', '@peculiar/x509', 'reflect-metadata']) expect(list, `${f} imports ${pkg}`).not.toContain(pkg);
      expect(read(f)).not.toMatch(/import\(["']\.\/mgmt\.js["']\)/);
    }
    // The worker does not load the schema library either: importing TypeBox costs a worker's
    // start hundreds of milliseconds on a loaded host, and a worker never validates a spec.
    expect(imports(read('worker.js'))).not.toContain('@sinclair/typebox');
    const mgmt = imports(read('mgmt.js'));
    expect(mgmt).toContain('fastify');
    expect(mgmt).toContain('@peculiar/x509');
  });
});
