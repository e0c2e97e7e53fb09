/**
 * The policy: its file format (schema errors name the field and the file), admission of signed and
 * pinned modules, and grants — as a unit and through real partitions.
 */
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Hypervisor } from '../../host/hypervisor.ts';
import { IntegrityError, InvalidArgumentError, PolicyDeniedError } from '../../host/errors.ts';
import { encodePublicKey, generateKeyPair } from '../../host/security/keys.ts';
import { Policy } from '../../host/security/policy.ts';
import { signModule } from '../../host/security/signature.ts';
import { measure } from '../../host/loader/measure.ts';
import { toHex } from '../../host/security/wire.ts';
import { collect, guest, runToExit } from '../helpers.ts';

const hello = new Uint8Array(readFileSync(guest('hello')));
const acme = generateKeyPair();
const other = generateKeyPair();
const tmp = () => mkdtempSync(path.join(tmpdir(), 'wv-policy-'));
const keyHex = (k = acme) => toHex(encodePublicKey(k.publicKey));

const hvs: Hypervisor[] = [];
function hypervisor(options: ConstructorParameters<typeof Hypervisor>[0]): Hypervisor {
  const hv = new Hypervisor({ dataDir: tmp(), ...options });
  hvs.push(hv);
  return hv;
}
afterEach(async () => {
  await Promise.all(hvs.splice(0).map((h) => h.close()));
});

describe('policy files', () => {
  it('not JSON, wrong types, unknown keys: ERR_INVALID_ARGUMENT naming the file and the field', () => {
    const dir = tmp();
    const file = (name: string, text: string) => {
      const f = path.join(dir, name);
      writeFileSync(f, text);
      return f;
    };
    const notJson = file('a.json', '{ "publishers": ');
    expect(() => Policy.fromFile(notJson)).toThrow(InvalidArgumentError);
    expect(() => Policy.fromFile(notJson)).toThrow(new RegExp(`policy file ${notJson} is not JSON`));
    const wrongType = file('b.json', JSON.stringify({ publishers: { acme: { keys: [{ publicKey: keyHex() }], grants: { memoryPages: '16' } } } }));
    expect(() => Policy.fromFile(wrongType)).toThrow(new RegExp(`policy file ${wrongType}: publishers.acme.grants.memoryPages: expected an integer from 1 to 65536, got the string "16"`));
    const typo = file('c.json', JSON.stringify({ requireSignatures: true }));
    expect(() => Policy.fromFile(typo)).toThrow(/requireSignatures: unknown key; did you mean requireSignature\?/);
    const badDevice = file('d.json', JSON.stringify({ defaultGrants: { devices: ['console', 'gpu'] } }));
    expect(() => Policy.fromFile(badDevice)).toThrow(/defaultGrants.devices\[1\]/);
    const badPin = file('e.json', JSON.stringify({ modules: { abc: {} } }));
    expect(() => Policy.fromFile(badPin)).toThrow(/modules.abc: unknown key/);
    expect(() => Policy.fromFile(path.join(dir, 'missing.json'))).toThrow(/cannot read policy file/);
    const keyAndFile = file('f.json', JSON.stringify({ publishers: { a: { keys: [{ publicKey: keyHex(), file: 'x' }] } } }));
    expect(() => Policy.fromFile(keyAndFile)).toThrow(/publishers.a.keys\[0\]: give exactly one of publicKey and file/);
    const badKey = file('g.json', JSON.stringify({ publishers: { a: { keys: [{ publicKey: '01abcd' }] } } }));
    expect(() => Policy.fromFile(badKey)).toThrow(/publishers.a.keys\[0\].publicKey is not an Ed25519 public key/);
  });

  it('a key given twice in one object, or a pin given in two letter cases, is refused naming it (JSON.parse would keep the last)', () => {
    const refused = (text: string, message: RegExp) => {
      expect(() => Policy.fromJson(text, { source: 'p.json' }), text).toThrow(InvalidArgumentError);
      expect(() => Policy.fromJson(text, { source: 'p.json' }), text).toThrow(message);
    };
    refused('{"requireSignature": true, "requireSignature": false}', /^policy file p\.json: key "requireSignature" is given twice$/);
    // The same key spelt with an escape is the same key.
    refused('{"requireSignature": true, "requireSignatur\\u0065": false}', /key "requireSignature" is given twice/);
    refused(`{"publishers": {"acme": {"keys": [{"publicKey": "${keyHex()}", "keyId": "01", "keyId": "02"}]}}}`, /publishers\.acme\.keys\[0\]: key "keyId" is given twice/);
    refused(`{"publishers": {"acme": {"keys": [{"publicKey": "${keyHex()}"}]}, "acme": {"keys": [{"publicKey": "${keyHex()}"}]}}}`, /publishers: key "acme" is given twice/);
    refused('{"defaultGrants": {"memoryPages": 1}, "modules": {}, "defaultGrants": {"memoryPages": 65536}}', /key "defaultGrants" is given twice/);
    // The same pin in two letter cases is the same module twice.
    const lower = 'ab'.repeat(32);
    refused(JSON.stringify({ modules: { [lower]: { grants: { memoryPages: 1 } }, [lower.toUpperCase()]: {} } }), new RegExp(`modules: ${lower} and ${lower.toUpperCase()} pin the same module`));
    // The same key in two different objects, or as a string value, is no duplicate.
    const ok = `{"defaultGrants": {"wasi": true, "devices": ["console"]}, "publishers": {"wasi": {"keys": [{"publicKey": "${keyHex()}"}], "grants": {"wasi": false, "devices": ["console", "clock"]}}}}`;
    expect(Policy.fromJson(ok, { source: 'p.json' }).summary().publishers).toBe(1);
    expect(() => Policy.fromJson('{"modules": {}, "publishers": {"a\\"b": {"keys": []}}}', { source: 'p.json' })).not.toThrow(/given twice/);
  });

  it('each documented bound of the file at its edge and one past it, the refusal naming the bound', () => {
    const keys = Array.from({ length: 65 }, () => toHex(encodePublicKey(generateKeyPair().publicKey)));
    const fits = (doc: unknown) => expect(() => Policy.fromJson(JSON.stringify(doc), { source: 'p.json' })).not.toThrow();
    const refused = (doc: unknown, message: string) => expect(() => Policy.fromJson(JSON.stringify(doc), { source: 'p.json' })).toThrow(message);
    const publishers = (n: number) => ({ publishers: Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, { keys: [{ file: `k${i}.pub` }] }])) });
    // 256 publishers pass the schema (their key files are then read: missing here), 257 do not.
    expect(() => Policy.fromJson(JSON.stringify(publishers(256)), { source: 'p.json', baseDir: tmp() })).toThrow(/cannot read key file .*k0\.pub/);
    refused(publishers(257), 'publishers: expected an object of at most 256 keys, got an object of 257 keys');
    fits({ publishers: { a: { keys: keys.slice(0, 64).map((publicKey) => ({ publicKey })) } } });
    refused({ publishers: { a: { keys: keys.map((publicKey) => ({ publicKey })) } } }, 'publishers.a.keys: expected an array of 1 to 64 items: objects, got an array of 65');
    refused({ publishers: { a: { keys: [] } } }, 'publishers.a.keys: expected an array of 1 to 64 items: objects, got an array of 0');
    fits({ publishers: { ['a'.repeat(64)]: { keys: [{ publicKey: keys[0] }] } } });
    refused({ publishers: { ['a'.repeat(65)]: { keys: [{ publicKey: keys[0] }] } } }, `publishers.${'a'.repeat(65)}: unknown key (a key here must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$)`);
    refused({ modules: { abc: {} } }, 'modules.abc: unknown key (a key here must match ^[0-9a-fA-F]{64}$)');
    fits({ publishers: { a: { keys: [{ publicKey: keys[0], keyId: 'ab'.repeat(256) }] } } });
    refused({ publishers: { a: { keys: [{ publicKey: keys[0], keyId: 'ab'.repeat(257) }] } } }, 'publishers.a.keys[0].keyId: expected a string matching');
    fits({ modules: { ['a'.repeat(64)]: { name: 'x'.repeat(256) } } });
    refused({ modules: { ['a'.repeat(64)]: { name: 'x'.repeat(257) } } }, '.name: expected a string of at most 256 characters');
    fits({ version: 1 });
    refused({ version: 2 }, 'version: expected 1, got the number 2');
  });

  it('a key file that cannot be read (missing, a directory, a device, too big) is refused naming the policy and the field', () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'folder'));
    writeFileSync(path.join(dir, 'big'), new Uint8Array(70_000));
    for (const [file, why] of [
      ['missing.pub', /cannot read key file .*missing\.pub: ENOENT/],
      ['folder', /key file .*folder is a directory, not a regular file/],
      ['/dev/zero', /key file \/dev\/zero is a device, not a regular file/],
      ['big', /key file .*big is 70000 bytes, over the 65536-byte limit/],
    ] as const) {
      const text = JSON.stringify({ publishers: { acme: { keys: [{ publicKey: keyHex() }, { file }] } } });
      expect(() => Policy.fromJson(text, { source: 'p.json', baseDir: dir }), file).toThrow(InvalidArgumentError);
      expect(() => Policy.fromJson(text, { source: 'p.json', baseDir: dir }), file).toThrow(/^policy p\.json: publishers\.acme\.keys\[1\]\.file: /);
      expect(() => Policy.fromJson(text, { source: 'p.json', baseDir: dir }), file).toThrow(why);
    }
  });

  it('hostile text: deep nesting, huge arrays, wrong shapes: always ERR_INVALID_ARGUMENT, never a crash', () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    const inputs = [
      '',
      'null',
      '[]',
      '"policy"',
      `{"defaultGrants":{"devices":${deep(100_000)}}}`,
      `{"publishers":${deep(50_000)}}`,
      JSON.stringify({ publishers: { a: { keys: Array.from({ length: 100_000 }, () => ({ publicKey: 'x' })) } } }),
      JSON.stringify({ modules: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [String(i).repeat(64).slice(0, 64), { grants: { memoryPages: -1 } }])) }),
      JSON.stringify({ defaultGrants: { preopens: ['x'.repeat(5000)] } }),
      '{"__proto__":{"polluted":true}}',
    ];
    for (const text of inputs) {
      expect(() => Policy.fromJson(text, { source: 'p.json' }), text.slice(0, 40)).toThrow(InvalidArgumentError);
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('key files are relative to the policy file; the hash changes with any rule', () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'acme.pub'), encodePublicKey(acme.publicKey));
    writeFileSync(path.join(dir, 'p.json'), JSON.stringify({ publishers: { acme: { keys: [{ file: 'acme.pub' }] } } }));
    const p = Policy.fromFile(path.join(dir, 'p.json'));
    const q = Policy.fromDocument({ publishers: { acme: { keys: [{ publicKey: keyHex() }] } } });
    expect(p.hash).toBe(q.hash);
    expect(Policy.fromDocument({ publishers: { acme: { keys: [{ publicKey: keyHex() }] } }, requireSignature: true }).hash).not.toBe(q.hash);
    expect(Policy.fromDocument({ publishers: { acme: { keys: [{ publicKey: keyHex() }], grants: { fuel: 5 } } } }).hash).not.toBe(q.hash);
  });
});

describe('admission', () => {
  const policy = Policy.fromDocument({ publishers: { acme: { keys: [{ publicKey: keyHex() }] } } });
  const signed = signModule(hello, acme).module;

  it('admits a module fully signed by a trusted publisher, naming the signer', () => {
    const a = policy.admit(signed);
    expect(a).toMatchObject({ by: 'signature', measurement: measure(signed) });
    expect(a.signers).toEqual([{ publisher: 'acme', keyId: toHex(acme.publicKey.keyId), publicKey: toHex(acme.publicKey.raw), full: true }]);
  });

  it('refuses, one line each: unsigned, unknown key, changed byte, altered signature, partial', () => {
    const refusal = (bytes: Uint8Array, p = policy): string => {
      try {
        p.admit(bytes);
      } catch (error) {
        expect(error).toBeInstanceOf(IntegrityError);
        const message = (error as Error).message;
        expect(message).not.toContain('\n');
        return message;
      }
      throw new Error('admitted');
    };
    expect(refusal(hello)).toMatch(/is not signed and not pinned by the policy$/);
    expect(refusal(signModule(hello, other).module)).toMatch(new RegExp(`is signed only by keys the policy does not trust \\(key ids: ${toHex(other.publicKey.keyId)}\\)`));
    const changed = Uint8Array.from(signed);
    changed[changed.length - 3]! ^= 0x40;
    expect(refusal(changed)).toMatch(/the signature by publisher acme verifies, but the module's content does not match what was signed/);
    const altered = Uint8Array.from(signed);
    // A byte of the Ed25519 signature itself: after the whole key id, the algorithm byte and the
    // signature's one-byte length. (Searching for the key id's first byte alone landed, with some
    // random keys, on a length field, and the refusal was a framing error instead.)
    const keyId = acme.publicKey.keyId;
    const at = Buffer.from(signed).indexOf(Buffer.from(keyId));
    expect(at).toBeGreaterThan(0);
    altered[at + keyId.length + 2 + 10]! ^= 1;
    expect(refusal(altered)).toMatch(/(does not verify|not signed|does not trust)/);
    const delimited = signModule(hello, acme, { delimit: true }).module;
    const extended = new Uint8Array([...delimited, 0, 6, 5, ...new TextEncoder().encode('extra')]);
    expect(refusal(extended)).toMatch(/publisher acme's signature covers only 1 of 2 parts .* partial signatures are refused unless the policy sets allowPartialSignatures/);
    const lenient = Policy.fromDocument({ publishers: { acme: { keys: [{ publicKey: keyHex() }] } }, allowPartialSignatures: true });
    expect(lenient.admit(extended).signers[0]!.full).toBe(false);
  });

  it('pins admit by measurement; requireSignature also wants a signature; the spec pin must match', () => {
    const pinned = Policy.fromDocument({ modules: { [measure(hello)]: { name: 'hello' } } });
    expect(pinned.admit(hello).by).toBe('pin');
    expect(() => pinned.admit(signed)).toThrow(/is not pinned by the policy \(it trusts no publisher keys\)/);
    const strict = Policy.fromDocument({ modules: { [measure(hello)]: {} }, publishers: { acme: { keys: [{ publicKey: keyHex() }] } }, requireSignature: true });
    expect(() => strict.admit(hello)).toThrow(/is pinned, but the policy requires a signature/);
    const both = Policy.fromDocument({ modules: { [measure(signed)]: {} }, publishers: { acme: { keys: [{ publicKey: keyHex() }] } }, requireSignature: true });
    expect(both.admit(signed).by).toBe('pin+signature');
    expect(() => pinned.admit(hello, { sha256: 'ab'.repeat(32) })).toThrow(/does not match the pinned sha256/);
  });

  it('the allow list is a policy: fail closed when empty', () => {
    expect(Policy.fromAllowList([measure(hello)]).admit(hello).by).toBe('pin');
    expect(() => Policy.fromAllowList([]).admit(hello)).toThrow(/is not on the allow list \(0 entries\)/);
    expect(() => Policy.fromAllowList(['nope'])).toThrow(InvalidArgumentError);
  });

  it('a detached signature admits the unchanged module', () => {
    const { signature } = signModule(hello, acme, { detached: true });
    expect(policy.admit(hello, { detachedSignature: signature }).by).toBe('signature');
  });
});

describe('grants', () => {
  const ask = {
    partition: 'p',
    devices: ['console'],
    memoryPages: 16,
    memoryPagesDefault: false,
    fuel: 1000,
    blockMiB: null,
    netSegment: null,
    netHost: false,
    wasi: false,
    preopenHostPaths: [],
  };
  const withGrants = (grants: object) => Policy.fromDocument({ publishers: { acme: { keys: [{ publicKey: keyHex() }], grants } } });
  const admitted = (p: Policy) => p.admit(signModule(hello, acme).module);

  it('each grant at its edge and one past it', () => {
    const cases: [object, object, RegExp][] = [
      [{ devices: ['console'] }, { devices: ['console', 'clock'] }, /publisher acme does not grant the clock device \(grants: console\)/],
      [{ memoryPages: 16 }, { memoryPages: 17 }, /grants at most 16 memory pages; the spec asks for 17$/],
      [{ memoryPages: 16 }, { memoryPages: 256, memoryPagesDefault: true }, /asks for 256 \(the default: set limits.memoryPages, --memory\)/],
      [{ fuel: 1000 }, { fuel: 1001 }, /grants a fuel budget of at most 1000; the spec asks for 1001/],
      [{ fuel: 1000 }, { fuel: null }, /the spec asks for none \(unlimited/],
      [{ blockMiB: 8 }, { blockMiB: 9 }, /grants a disk of at most 8 MiB; the spec asks for 9/],
      [{ netSegments: ['blue'] }, { netSegment: 'red' }, /does not grant network segment red \(grants: blue\)/],
      [{ netHost: false }, { netSegment: 'blue', netHost: true }, /does not grant devices.net.host/],
      [{ wasi: false }, { wasi: true }, /does not grant WASI/],
    ];
    for (const [grants, over, message] of cases) {
      const p = withGrants(grants);
      expect(() => p.checkGrants(admitted(p), ask)).not.toThrow();
      expect(() => p.checkGrants(admitted(p), { ...ask, ...over })).toThrow(PolicyDeniedError);
      expect(() => p.checkGrants(admitted(p), { ...ask, ...over })).toThrow(message);
    }
  });

  it('preopens: only folders inside a granted one (symlinks resolved)', () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'data', 'inner'), { recursive: true });
    mkdirSync(path.join(dir, 'secret'));
    const p = Policy.fromDocument({ publishers: { acme: { keys: [{ publicKey: keyHex() }], grants: { preopens: ['data'] } } } }, { baseDir: dir });
    const a = admitted(p);
    expect(() => p.checkGrants(a, { ...ask, wasi: true, preopenHostPaths: [path.join(dir, 'data'), path.join(dir, 'data', 'inner')] })).not.toThrow();
    expect(() => p.checkGrants(a, { ...ask, wasi: true, preopenHostPaths: [path.join(dir, 'secret')] })).toThrow(/does not grant seeding a WASI preopen from .*secret/);
    expect(() => p.checkGrants(a, { ...ask, wasi: true, preopenHostPaths: [path.join(dir, 'data-other')] })).toThrow(PolicyDeniedError);
  });

  it('the first rule that grants everything wins: a pin with narrow grants, a publisher with wide ones', () => {
    const signed = signModule(hello, acme).module;
    const p = Policy.fromDocument({
      modules: { [measure(signed)]: { grants: { devices: [] } } },
      publishers: { acme: { keys: [{ publicKey: keyHex() }], grants: { devices: ['console'] } } },
    });
    const a = p.admit(signed);
    expect(a.rules.map((r) => r.label)).toEqual([expect.stringMatching(/^pinned module/), 'publisher acme']);
    expect(p.checkGrants(a, ask).label).toBe('publisher acme');
    expect(() => p.checkGrants(a, { ...ask, devices: ['clock'] })).toThrow(/^partition p: pinned module sha256:[0-9a-f]{16}… does not grant the clock device \(grants: none\)$/);
  });
});

describe('a hypervisor with a policy', () => {
  const dir = tmp();
  writeFileSync(path.join(dir, 'acme.pub'), encodePublicKey(acme.publicKey));
  writeFileSync(path.join(dir, 'policy.json'), JSON.stringify({ publishers: { acme: { keys: [{ file: 'acme.pub' }], grants: { devices: ['console'], memoryPages: 64 } } } }));
  const policyFile = path.join(dir, 'policy.json');
  const signed = signModule(hello, acme).module;

  it('runs a signed module within its grants', async () => {
    const hv = hypervisor({ policy: policyFile });
    const p = await hv.createPartition({ name: 'ok', module: signed, args: ['x'], limits: { memoryPages: 64 }, devices: { console: true } });
    const out = collect(p);
    expect((await runToExit(p)).code).toBe(0);
    expect(out.stdout[0]).toBe('Hello from a Wasmvisor partition!');
    await p.destroy();
  });

  it('refuses before any guest code runs: unsigned, foreign key, changed byte, over the grants', async () => {
    const hv = hypervisor({ policy: policyFile });
    const spec = { limits: { memoryPages: 64 }, devices: { console: true } };
    const changed = Uint8Array.from(signed);
    changed[changed.length - 2]! ^= 1;
    await expect(hv.createPartition({ name: 'a', module: hello, ...spec })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await expect(hv.createPartition({ name: 'b', module: signModule(hello, other).module, ...spec })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await expect(hv.createPartition({ name: 'c', module: changed, ...spec })).rejects.toThrow(/changed after signing/);
    await expect(hv.createPartition({ name: 'd', module: signed, ...spec, devices: { console: true, clock: true } })).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' });
    await expect(hv.createPartition({ name: 'e', module: signed, devices: { console: true } })).rejects.toThrow(/grants at most 64 memory pages; the spec asks for 256 \(the default/);
    expect(hv.partitions()).toEqual([]);
    expect(hv.memoryUsage().reservedBytes).toBe(0);
  });

  it('a detached signature (bytes or file) admits the unsigned file; without a policy it is refused as unusable', async () => {
    const hv = hypervisor({ policy: policyFile });
    const sigFile = path.join(dir, 'hello.sig');
    writeFileSync(sigFile, signModule(hello, acme, { detached: true }).signature);
    const p = await hv.createPartition({ name: 'det', module: guest('hello'), signature: sigFile, limits: { memoryPages: 64 }, devices: { console: true } });
    expect((await runToExit(p)).code).toBe(0);
    await p.destroy();
    await expect(hypervisor({}).createPartition({ name: 'x', module: hello, signature: sigFile })).rejects.toThrow(/spec.signature needs a policy/);
  });

  it('allowList and policy together are refused; setPolicy changes what new partitions need', async () => {
    expect(() => new Hypervisor({ dataDir: tmp(), allowList: [], policy: policyFile })).toThrow(/give either policy or allowList/);
    const hv = hypervisor({});
    const p = await hv.createPartition({ name: 'free', module: hello });
    await hv.setPolicy(policyFile);
    await expect(hv.createPartition({ name: 'now', module: hello })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    expect(p.state).toBe('created');
    const events = hv.eventLog().events.filter((e) => e.type.startsWith('policy.'));
    expect(events.map((e) => e.type)).toEqual(['policy.load', 'policy.change']);
    await hv.setPolicy(null);
    expect(hv.policy).toBeNull();
  });

  it('inspect reports the policy verdict: the signature, and the grants for the limits, WASI and devices given, as createPartition', async () => {
    const hv = hypervisor({ policy: policyFile });
    expect((await hv.inspect(signed, { memoryPages: 64 })).verdict.admitted).toBe(true);
    expect((await hv.inspect(signed, { memoryPages: 64 }, { devices: { console: true } })).verdict.admitted).toBe(true);
    expect((await hv.inspect(hello, { memoryPages: 64 })).verdict).toMatchObject({ admitted: false, code: 'ERR_INTEGRITY' });
    // Over the grants: what createPartition refuses, inspect says it would refuse. It used to say
    // "admitted" (it checked only the signature), including for the default of 256 pages.
    const denied = async (limits: object, options: object, message: RegExp) => {
      expect((await hv.inspect(signed, limits, options)).verdict).toMatchObject({ admitted: false, code: 'ERR_POLICY_DENIED', message: expect.stringMatching(message) });
    };
    await denied({}, {}, /^partition \(inspected\): publisher acme grants at most 64 memory pages; the spec asks for 256 \(the default: set limits.memoryPages, --memory\)$/);
    await denied({ memoryPages: 65 }, {}, /grants at most 64 memory pages; the spec asks for 65$/);
    await denied({ memoryPages: 64 }, { devices: { console: true, clock: true } }, /does not grant the clock device \(grants: console\)$/);
    await expect(hv.createPartition({ name: 'x', module: signed })).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' });
    await expect(hv.createPartition({ name: 'y', module: signed, limits: { memoryPages: 64 }, devices: { console: true, clock: true } })).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED' });
  });

  it('inspect refuses a detached signature without a policy, as createPartition does (it weighed nothing and said admitted)', async () => {
    const hv = hypervisor({});
    const refusal = { code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/signature needs a policy with publisher keys/) };
    await expect(hv.inspect(hello, {}, { signature: new Uint8Array(8) })).rejects.toMatchObject(refusal);
    await expect(hv.createPartition({ name: 'z', module: hello, signature: new Uint8Array(8) })).rejects.toMatchObject(refusal);
    expect((await hv.inspect(hello)).verdict.admitted).toBe(true);
  });
});
