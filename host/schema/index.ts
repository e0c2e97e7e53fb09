/**
 * One schema for everything that comes from outside: the partition spec and every spec nested
 * in it (limits, devices, rate limits, restart policy, wasi), the hypervisor's options, call
 * options, manifest files and security policy files; `check` turns a mismatch into ERR_INVALID_ARGUMENT naming the
 * path. The TypeScript types are derived from these schemas, and so is the exported JSON Schema.
 *
 * Adding a field (a new limit, a device option, `sched`, a WASI preopen mode, a hypervisor
 * option): declare it once in the file of its area here — limits.ts, devices.ts, wasi.ts,
 * partition.ts (top-level spec fields), hypervisor.ts (options), policy.ts (policy files) — with its type, range and a
 * `description` (it becomes the JSON Schema's documentation); keep objects closed (CLOSED).
 * Put its default and any rule that joins fields in the resolver that consumes it, not here.
 * The check, the types, the manifest format and `wasmvisor/schema/*.json` then follow; a CLI flag
 * for it parses with `numberIn(schema)` / `stringIn(schema)` (host/cli/options.ts) so the
 * command line accepts exactly the same range. Another area's own schema (a policy file, an API
 * body) is a TypeBox schema too, checked with `check()` for the same error messages.
 */
export { check, explain } from './check.ts';
export { MAX_NAME_LENGTH, MAX_TIMER_MS, NAME_PATTERN, SHA256_PATTERN } from './kinds.ts';
export * from './limits.ts';
export * from './devices.ts';
export * from './wasi.ts';
export * from './partition.ts';
export * from './hypervisor.ts';
export { PolicySchema, GrantsSchema, PolicyKeySchema, PublisherSchema, ModuleRuleSchema, GRANTABLE_DEVICES, type PolicyDocument, type Grants, type GrantableDevice } from './policy.ts';
export { ManifestSchema, loadManifest, MAX_MANIFEST_BYTES, type Manifest } from './manifest.ts';
export { jsonSchemas, plainJsonSchema, toJsonSchema } from './json.ts';
