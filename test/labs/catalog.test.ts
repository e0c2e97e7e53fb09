/**
 * The labs as data: every lab is complete (concept, guests, expectation), and every lab whose
 * feature this build has is live. The second rule is what turns a "coming" lab live: when the
 * integrity work lands (hv.attest, a signature policy, the audit log), this test fails until the
 * lab's attack is written.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LABS } from '../../host/labs/catalog.ts';
import { FEATURES, featurePresent } from '../../host/labs/features.ts';
import { isLive } from '../../host/labs/runner.ts';
import { ErrorCodes } from '../../host/errors.ts';
import { HvStatus } from '../../host/abi/codes.ts';
import { guest } from '../helpers.ts';

const KNOWN_CODES = new Set<string>([...ErrorCodes, ...Object.keys(HvStatus).map((k) => `HV_STATUS_${k}`)]);

describe('the lab catalog', () => {
  it('has the labs the issue asks for, in order, with unique ids', () => {
    expect(LABS.map((l) => l.id)).toEqual([
      'memory-isolation',
      'narrow-interface',
      'bounds-checks',
      'zero-initialisation',
      'cpu-exhaustion',
      'memory-exhaustion',
      'io-flooding',
      'network',
      'storage',
      'restricted-access',
      'code-integrity',
      'attestation',
      'audit',
    ]);
    expect(LABS.map((l) => l.order)).toEqual(LABS.map((_, i) => i + 1));
  });

  it.each(LABS.map((l) => [l.id, l] as const))('%s is complete', (_id, lab) => {
    expect(lab.concept.length).toBeGreaterThanOrEqual(2);
    expect(lab.concept.length).toBeLessThanOrEqual(3);
    for (const p of lab.concept) expect(p.length).toBeGreaterThan(150);
    expect(lab.id).toMatch(/^[a-z0-9-]{1,64}$/);
    expect(KNOWN_CODES.has(lab.expect.code)).toBe(true);
    if (lab.expect.audit.code !== undefined) expect(KNOWN_CODES.has(lab.expect.audit.code)).toBe(true);
    if (lab.expect.violation) expect(KNOWN_CODES.has(lab.expect.violation.status)).toBe(true);
    expect(lab.expect.audit.action).toMatch(/^[a-z]+\.[a-z]+$/);
    expect(lab.minutes).toBeGreaterThan(0);
    for (const g of lab.guests) expect(existsSync(guest(g))).toBe(true);
    if (lab.defenceOff) expect(lab.defenceOff.text.length).toBeGreaterThan(50);
  });

  it.each(LABS.map((l) => [l.id, l] as const))('%s is live exactly when its feature is in this build', (_id, lab) => {
    // Feature detection reads the code (a method on the Hypervisor, a class), never a flag.
    if (featurePresent(lab.feature)) {
      expect(lab.run, `${lab.id}: ${FEATURES[lab.feature].what} is in this build, so the lab must be live: write its run()`).toBeTypeOf('function');
      expect(isLive(lab)).toBe(true);
    } else {
      expect(isLive(lab)).toBe(false);
    }
  });

  it('every guest a lab runs is declared by the lab and shipped in the package', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { files: string[] };
    const shipped = new Set<string>();
    for (const entry of pkg.files) {
      const m = /^build\/guests\/\{([^}]+)\}\.wasm$/.exec(entry);
      if (m) for (const name of m[1]!.split(',')) shipped.add(name);
    }
    for (const lab of LABS) {
      const source = readFileSync(new URL(`../../host/labs/labs/${lab.id}.ts`, import.meta.url), 'utf8');
      const used = new Set([...source.matchAll(/ctx\.guest\('([a-z0-9-]+)'\)/g)].map((m) => m[1]!));
      for (const name of used) expect(lab.guests, `${lab.id} runs ${name}`).toContain(name);
      for (const name of lab.guests) expect(shipped.has(name), `${name} (lab ${lab.id}) is in package.json files`).toBe(true);
    }
  });

  it('the features of the integrity work are detected from the Hypervisor itself', () => {
    // Until host/security lands these are absent; the test above then keeps the three labs coming.
    for (const id of ['signatures', 'attestation', 'audit-log'] as const) expect(typeof FEATURES[id].present()).toBe('boolean');
    for (const id of ['partitions', 'network', 'encrypted-storage', 'rbac', 'fuel-and-caps'] as const) expect(featurePresent(id)).toBe(true);
  });
});
