/**
 * The one schema for specs and options, through the library's real entry points
 * (new Hypervisor, createPartition, call, createPool), and the JSON Schema the package exports.
 */
import { readFileSync } from 'node:fs';
import { Kind, type TSchema } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Hypervisor, type PartitionSpec } from '../../host/index.ts';
import { CallOptionsSchema, HypervisorOptionsSchema, ManifestSchema, MAX_TIMER_MS, PartitionSpecSchema, PolicySchema, RestartPolicySchema, explain, jsonSchemas } from '../../host/schema/index.ts';
import { guest } from '../helpers.ts';

const hv = new Hypervisor({ dataDir: '/nonexistent/never-touched' });
afterAll(() => hv.close());

async function refusal(spec: unknown): Promise<string> {
  const error = await hv.createPartition(spec as PartitionSpec).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  return (error as Error).message;
}

describe('partition spec: typos, types and ranges are refused naming the path', () => {
  it("the issue's examples", async () => {
    const module = guest('hello');
    expect(await refusal({ name: 'a', module, device: { console: true } })).toBe('partition spec "a": device: unknown key; did you mean devices?');
    expect(await refusal({ name: 'a', module, limits: { timeout: 10 } })).toBe('partition spec "a": limits.timeout: unknown key; did you mean timeoutMs?');
    expect(await refusal({ name: 'a', module, devices: { console: { linesPerSec: 5 } } })).toBe(
      'partition spec "a": devices.console.linesPerSec: unknown key; did you mean linesPerSecond?',
    );
    expect(await refusal({ name: 'a', module, limits: { memoryPages: '16' } })).toBe(
      'partition spec "a": limits.memoryPages: expected an integer from 1 to 65536, got the string "16"',
    );
    expect(() => new Hypervisor({ datadir: '/tmp/x' } as never)).toThrow('Hypervisor options: datadir: unknown key; did you mean dataDir?');
  });

  it('every nested spec: rate limits, cpu, restart, wasi, block, net', async () => {
    const module = guest('hello');
    expect(await refusal({ name: 'a', module, limits: { hypercallRate: { opsPerSec: 1 } } })).toContain('limits.hypercallRate.opsPerSec: unknown key; did you mean opsPerSecond?');
    expect(await refusal({ name: 'a', module, limits: { cpu: { maxPercent: 101 } } })).toContain('limits.cpu.maxPercent: expected an integer from 1 to 100, got the number 101');
    expect(await refusal({ name: 'a', module, restart: { mode: 'always' } })).toContain('restart.mode: expected "never" or "on-failure", got the string "always"');
    expect(await refusal({ name: 'a', module, restart: { backoff: 5 } })).toContain('restart.backoff: unknown key; did you mean backoffMs?');
    expect(await refusal({ name: 'a', module, wasi: { preopens: [{ guestPath: '/d', hostpath: '.' }] } })).toContain('wasi.preopens[0].hostpath: unknown key; did you mean hostPath?');
    expect(await refusal({ name: 'a', module, wasi: { quotas: { maxFds: 2 } } })).toContain('wasi.quotas.maxFds: expected an integer from 3 to 65536, got the number 2');
    expect(await refusal({ name: 'a', module, devices: { block: { sizeMib: 1 } } })).toContain('devices.block.sizeMiB: is required; devices.block.sizeMib: unknown key; did you mean sizeMiB?');
    expect(await refusal({ name: 'a', module, devices: { net: { segment: 'blue', hosts: true } } })).toContain('devices.net.hosts: unknown key; did you mean host?');
    expect(await refusal({ name: 'a', module, devices: { console: 'yes' } })).toContain('devices.console: expected a boolean or an object, got the string "yes"');
    expect(await refusal({ name: 'a', module, kind: 'daemon' })).toContain('kind: expected "command" or "reactor", got the string "daemon"');
    expect(await refusal({ name: 'a b', module })).toContain(`name: expected 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got the string "a b"`);
    expect(await refusal({ name: 'a', module: 5 })).toContain('module: expected a path, a Uint8Array, an ArrayBuffer or a URL, got the number 5');
    expect(await refusal(null)).toContain('(root): expected an object, got null');
  });

  it('cross-field rules stay with the resolvers and name the path too', async () => {
    const module = guest('hello');
    expect(await refusal({ name: 'a', module, limits: { hypercallRate: { burstOps: 5 } } })).toBe('limits.hypercallRate.burstOps: needs limits.hypercallRate.opsPerSecond');
    expect(await refusal({ name: 'a', module, args: ['x'.repeat(70_000)] })).toContain('args: take more than 65536 bytes together');
  });

  it('hypervisor options: each option is checked, defaultLimits as strictly as limits', () => {
    expect(() => new Hypervisor({ defaultLimits: { memoryPage: 1 } } as never)).toThrow('Hypervisor options: defaultLimits.memoryPage: unknown key; did you mean memoryPages?');
    expect(() => new Hypervisor({ storageKey: new Uint8Array(31) })).toThrow('storageKey: expected a Uint8Array of 32 bytes, got a Uint8Array of 31 bytes');
    expect(() => new Hypervisor({ allowList: new Set(['nope']) })).toThrow('allowList[0]: expected 64 hexadecimal digits (a SHA-256), got the string "nope"');
    expect(() => new Hypervisor({ allowList: ['nope'] })).toThrow(/allowList\[0\]/);
    expect(() => new Hypervisor({ dataDir: '' })).toThrow('dataDir: expected a non-empty string, got the string ""');
    expect(() => new Hypervisor({ maxModuleBytes: 7 })).toThrow('maxModuleBytes: expected an integer from 8 to 1073741824, got the number 7');
  });

  it('the security fields: policy, audit, actor, spec.signature, devices.attestation', async () => {
    const module = guest('hello');
    expect(() => new Hypervisor({ polcy: {} } as never)).toThrow('Hypervisor options: polcy: unknown key; did you mean policy?');
    expect(() => new Hypervisor({ policy: 5 } as never)).toThrow('Hypervisor options: policy: expected a Policy, an object or a path, got the number 5');
    expect(() => new Hypervisor({ policy: { publisher: {} } } as never)).toThrow('Hypervisor options: policy.publisher: unknown key; did you mean publishers?');
    expect(() => new Hypervisor({ policy: { requireSignature: 'yes' } } as never)).toThrow('policy.requireSignature: expected a boolean, got the string "yes"');
    expect(() => new Hypervisor({ audit: { durabilty: 'record' } } as never)).toThrow('Hypervisor options: audit.durabilty: unknown key; did you mean durability?');
    expect(() => new Hypervisor({ audit: { maxFileBytes: 4095 } })).toThrow('audit.maxFileBytes: expected an integer from 4096 to 1073741824, got the number 4095');
    expect(() => new Hypervisor({ audit: 'yes' } as never)).toThrow('audit: expected a boolean, an object or an AuditSink (an object with record and note functions), got the string "yes"');
    expect(() => new Hypervisor({ actor: '' })).toThrow('Hypervisor options: actor: expected a string of 1 to 256 characters, got the string ""');
    expect(() => new Hypervisor({ actor: 'x'.repeat(257) })).toThrow('actor: expected a string of 1 to 256 characters');
    expect(await refusal({ name: 'a', module, signature: 5 })).toContain('signature: expected a Uint8Array or a path, got the number 5');
    expect(await refusal({ name: 'a', module, signatures: 'a.sig' })).toContain('signatures: unknown key; did you mean signature?');
    expect(await refusal({ name: 'a', module, devices: { attestation: 'yes' } })).toContain('devices.attestation: expected a boolean, got the string "yes"');
    expect(await refusal({ name: 'a', module, devices: { attestaton: true } })).toContain('devices.attestaton: unknown key; did you mean attestation?');
  });

  it('call and pool options are checked the same way', async () => {
    await expect(hv.createPool({ name: 'p', module: guest('transform') }, { size: 0 })).rejects.toThrow('pool options: size: expected an integer from 1 to 1024, got the number 0');
    const p = await hv.createPartition({ name: 'opts', module: guest('transform'), kind: 'reactor' });
    await p.start();
    await expect(p.call('upper', 'x', { timeout: 5 } as never)).rejects.toThrow('call options of upper: timeout: unknown key; did you mean timeoutMs?');
    await expect(p.call('upper', 'x', { signal: {} } as never)).rejects.toThrow('signal: expected an AbortSignal, got an object');
    await p.destroy();
  });
});

describe('timeouts: the accepted range is what a timer honours (#10.10)', () => {
  it('every timer-fed field is bounded by MAX_TIMER_MS = 2^31 - 1', () => {
    expect(MAX_TIMER_MS).toBe(2 ** 31 - 1);
    const limits = PartitionSpecSchema.properties.limits.properties;
    const timeout = (s: TSchema) => (s.anyOf as TSchema[])[0]!;
    for (const s of [limits.timeoutMs, limits.callTimeoutMs, CallOptionsSchema.properties.timeoutMs]) expect(timeout(s).maximum).toBe(MAX_TIMER_MS);
    for (const s of [RestartPolicySchema.properties.backoffMs, RestartPolicySchema.properties.maxBackoffMs]) expect(s.maximum).toBeLessThanOrEqual(MAX_TIMER_MS);
  });

  it('limits.timeoutMs: 2^31 - 1 runs (not a 1 ms timer), 2^31 is refused, 0 and Infinity mean none', async () => {
    for (const timeoutMs of [MAX_TIMER_MS, 0, Infinity]) {
      const p = await hv.createPartition({ name: `t${timeoutMs}`, module: guest('hello'), devices: { console: true }, limits: { timeoutMs } });
      await p.start();
      const exit = await p.exited;
      await p.destroy();
      expect(exit, `timeoutMs ${timeoutMs}`).toMatchObject({ state: 'exited', code: 0 });
    }
    for (const timeoutMs of [MAX_TIMER_MS + 1, -1, 1.5, NaN, -Infinity]) {
      expect(await refusal({ name: 'x', module: guest('hello'), limits: { timeoutMs } })).toMatch(
        /limits\.timeoutMs: expected a number of ms: an integer from 0 to 2147483647 \(about 24\.8 days\), or 0 or Infinity for none, got /,
      );
    }
    expect(await refusal({ name: 'x', module: guest('hello'), limits: { callTimeoutMs: 2 ** 31 } })).toContain('limits.callTimeoutMs: expected a number of ms');
    expect(() => new Hypervisor({ defaultLimits: { timeoutMs: 2 ** 31 } })).toThrow('defaultLimits.timeoutMs: expected a number of ms');
  });

  it('a call: timeoutMs 2^31 - 1 and 0 are honoured (the call completes), 2^31 is refused', async () => {
    const p = await hv.createPartition({ name: 'calls', module: guest('transform'), kind: 'reactor', limits: { callTimeoutMs: MAX_TIMER_MS } });
    await p.start();
    expect(new TextDecoder().decode(await p.call('upper', 'abc'))).toBe('ABC');
    expect(new TextDecoder().decode(await p.call('upper', 'abc', { timeoutMs: MAX_TIMER_MS }))).toBe('ABC');
    expect(new TextDecoder().decode(await p.call('upper', 'abc', { timeoutMs: 0 }))).toBe('ABC');
    await expect(p.call('upper', 'abc', { timeoutMs: MAX_TIMER_MS + 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('timeoutMs: expected a number of ms') });
    await p.destroy();
  });
});

/** Every object schema reachable from `schema`, with its path. */
function objects(schema: TSchema, at = '(root)', out: [string, TSchema][] = []): [string, TSchema][] {
  if (schema[Kind] === 'Object') {
    out.push([at, schema]);
    for (const [k, v] of Object.entries(schema.properties as Record<string, TSchema>)) objects(v, `${at}.${k}`, out);
  }
  if (schema[Kind] === 'Record') for (const v of Object.values(schema.patternProperties as Record<string, TSchema>)) objects(v, `${at}.*`, out);
  for (const v of (schema.anyOf as TSchema[] | undefined) ?? []) objects(v, at, out);
  if (schema.items) objects(schema.items as TSchema, `${at}[]`, out);
  return out;
}

describe('the schema tree', () => {
  it('every object in every exported schema is closed: a typo can never be ignored', () => {
    expect(objects(PartitionSpecSchema).length).toBeGreaterThan(15);
    for (const root of [PartitionSpecSchema, HypervisorOptionsSchema, ManifestSchema, CallOptionsSchema, PolicySchema]) {
      const all = objects(root);
      expect(all.length).toBeGreaterThan(0);
      for (const [at, s] of all) expect(s.additionalProperties, at).toBe(false);
    }
  });
});

describe('the exported JSON Schema', () => {
  const docs = jsonSchemas();
  const ajv = new Ajv({ strict: true, allErrors: true, strictTypes: false });
  const manifest = ajv.compile(docs['manifest.json']);

  it('is what the build ships in dist/schema, and compiles in strict Ajv (what fastify uses)', () => {
    for (const [name, doc] of Object.entries(docs)) {
      expect(JSON.parse(readFileSync(new URL(`../../dist/schema/${name}`, import.meta.url), 'utf8')), name).toEqual(doc);
      expect(() => ajv.compile(doc), name).not.toThrow();
    }
    const text = JSON.stringify(docs);
    expect(text).not.toContain('uint8array');
    expect(text).not.toContain('Wasmvisor:');
    expect(Object.keys(docs['hypervisor-options.json'].properties as object)).not.toContain('storageKey');
  });

  it('agrees with the runtime check on every JSON manifest (property test)', () => {
    const value = fc.oneof(fc.integer({ min: -5, max: 70_000 }), fc.double(), fc.string({ maxLength: 6 }), fc.boolean(), fc.constant(null), fc.constant(2 ** 31), fc.constant(2 ** 31 - 1));
    const key = fc.constantFrom('memoryPages', 'timeoutMs', 'callTimeoutMs', 'fuel', 'maxPercent', 'linesPerSecond', 'segment', 'sizeMiB', 'mode', 'timeout', 'console', 'x');
    const limits = fc.dictionary(key, value, { maxKeys: 3 });
    const manifestValue = fc.record(
      {
        name: fc.oneof(fc.constant('app'), fc.string({ maxLength: 4 })),
        module: fc.oneof(fc.constant('app.wasm'), fc.constant(''), fc.integer()),
        limits: fc.oneof(limits, fc.record({ cpu: limits }), value),
        devices: fc.oneof(fc.record({ console: fc.oneof(fc.boolean(), limits) }, { requiredKeys: [] }), fc.record({ net: fc.oneof(fc.constant(false), limits) }), value),
        restart: fc.oneof(fc.constantFrom('never', 'on-failure', 'sometimes'), limits),
        kind: fc.constantFrom('command', 'reactor', 'daemon'),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(manifestValue, (m) => {
        const ours = explain(ManifestSchema, m).length === 0;
        expect(manifest(m), JSON.stringify(m)).toBe(ours);
      }),
      { numRuns: 2000 },
    );
  });
});
