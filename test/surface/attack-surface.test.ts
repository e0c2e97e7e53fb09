/**
 * The attack surface is tracked by the build: docs/attack-surface.json is regenerated from the
 * code on every run and must equal the committed file. A difference means a way in was added,
 * removed or changed: the file on disk is rewritten (so `git diff` shows what changed) and the
 * test fails until the change is reviewed against docs/THREAT-MODEL.md and committed.
 * `npm run attack-surface` (WASMVISOR_RECORD_SURFACE=1) records a reviewed change and passes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HvCall } from '../../host/abi/codes.ts';
import { WASI_SIGNATURES } from '../../host/wasi/imports.ts';
import { CLI_ACCESS, SURFACE_FILE, cliOptions, generateAttackSurface } from './generate.ts';

describe('docs/attack-surface.json', () => {
  it('matches the surface generated from the code (review a change, update docs/THREAT-MODEL.md, commit the file)', async () => {
    const generated = await generateAttackSurface();
    let committed = '';
    try {
      committed = readFileSync(SURFACE_FILE, 'utf8');
    } catch {
      // absent: written below, and the test fails until it is committed
    }
    if (committed !== generated) {
      writeFileSync(SURFACE_FILE, generated);
      if (process.env.WASMVISOR_RECORD_SURFACE === '1') return;
      expect.fail(
        'the attack surface changed (docs/attack-surface.json has been regenerated: see `git diff docs/attack-surface.json`). ' +
          'Review the change, update docs/THREAT-MODEL.md for the new or changed way in, then commit docs/attack-surface.json.',
      );
    }
  });

  it('lists every hypercall code, every WASI function and classifies every CLI option', async () => {
    const surface = JSON.parse(await generateAttackSurface()) as { hypercalls: { calls: { name: string; shape: string }[] }; wasi: { functions: unknown[] } };
    expect(surface.hypercalls.calls.map((c) => c.name)).toEqual(Object.keys(HvCall));
    expect(surface.hypercalls.calls.every((c) => c.shape.length > 0)).toBe(true);
    expect(surface.wasi.functions).toHaveLength(WASI_SIGNATURES.size);
    const options = [...(await cliOptions())].flatMap(([command, table]) => [...table.keys()].map((o) => `${command} --${o}`));
    expect(options.length).toBeGreaterThan(10);
    expect(options.filter((o) => !(o in CLI_ACCESS))).toEqual([]);
  });
});
