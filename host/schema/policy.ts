/**
 * Schema of a security policy file (host/security/policy.ts loads and applies it): trusted
 * publisher keys, pinned measurements and the most each module may be granted. A policy file,
 * `new Hypervisor({ policy })`, `wasmvisor run --policy` and the management API's policy body are
 * all checked against `PolicySchema`; the package exports it as `wasmvisor/schema/policy.json`.
 */
import { Type, type Static } from '@sinclair/typebox';
import { CLOSED, NAME_PATTERN, SHA256_PATTERN } from './kinds.ts';

/** Devices a policy can grant (the names of `devices` in a partition spec). */
export const GRANTABLE_DEVICES = ['console', 'clock', 'entropy', 'block', 'net', 'attestation'] as const;
export type GrantableDevice = (typeof GRANTABLE_DEVICES)[number];

export const GrantsSchema = Type.Object(
  {
    // Not `uniqueItems`: TypeBox checks it by hashing the items recursively, which a deeply
    // nested hostile value turns into a stack overflow (test/security/policy.test.ts).
    devices: Type.Optional(
      Type.Array(Type.Union(GRANTABLE_DEVICES.map((d) => Type.Literal(d))), { maxItems: GRANTABLE_DEVICES.length, description: 'Devices the module may be granted.' }),
    ),
    memoryPages: Type.Optional(Type.Integer({ minimum: 1, maximum: 65536, description: 'Most 64 KiB pages of linear memory (limits.memoryPages).' })),
    fuel: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'Largest fuel budget; a spec without limits.fuel (unlimited) is then refused.' })),
    blockMiB: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: 'Largest disk (devices.block.sizeMiB).' })),
    netSegments: Type.Optional(Type.Array(Type.String({ pattern: NAME_PATTERN }), { maxItems: 256, description: 'Switch segments the NIC may join.' })),
    netHost: Type.Optional(Type.Boolean({ description: 'May the NIC talk to the host (devices.net.host)? Left out: not bounded.' })),
    wasi: Type.Optional(Type.Boolean({ description: 'May the module use WASI (a `wasi` section in its spec)? Left out: not bounded.' })),
    preopens: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), {
        maxItems: 256,
        description: 'Host folders (relative to the policy file) whose contents, or any folder inside them, may seed a WASI preopen.',
      }),
    ),
  },
  CLOSED,
);
export type Grants = Static<typeof GrantsSchema>;

export const PolicyKeySchema = Type.Object(
  {
    publicKey: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, description: 'The key: hex of the 33-byte 0x01 ‖ key form, an OpenSSH line, or PEM.' })),
    file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'A file holding the key (relative to the policy file).' })),
    keyId: Type.Optional(Type.String({ pattern: '^(?:[0-9a-fA-F]{2}){1,256}$', description: "Key id (hex) signatures name this key by. Default: wasmsign2's id derived from the key." })),
  },
  CLOSED,
);

export const PublisherSchema = Type.Object(
  {
    keys: Type.Array(PolicyKeySchema, { minItems: 1, maxItems: 64 }),
    grants: Type.Optional(GrantsSchema),
  },
  CLOSED,
);

export const ModuleRuleSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 256, description: 'A label for messages and the audit log.' })),
    grants: Type.Optional(GrantsSchema),
  },
  CLOSED,
);

export const PolicySchema = Type.Object(
  {
    version: Type.Optional(Type.Literal(1)),
    publishers: Type.Optional(Type.Record(Type.String({ pattern: NAME_PATTERN }), PublisherSchema, { ...CLOSED, maxProperties: 256 })),
    modules: Type.Optional(Type.Record(Type.String({ pattern: SHA256_PATTERN }), ModuleRuleSchema, { ...CLOSED, maxProperties: 65536 })),
    requireSignature: Type.Optional(Type.Boolean({ description: 'A pinned module must also be signed by a trusted publisher. Default false.' })),
    allowPartialSignatures: Type.Optional(Type.Boolean({ description: 'Admit a signature that covers only some parts of the module. Default false.' })),
    defaultGrants: Type.Optional(GrantsSchema),
  },
  { ...CLOSED, title: 'Wasmvisor security policy', description: 'Trusted publisher keys, pinned module measurements, and the most each module may be granted (docs/SECURITY.md).' },
);
/** A policy document (the parsed JSON of a policy file). */
export type PolicyDocument = Static<typeof PolicySchema>;
