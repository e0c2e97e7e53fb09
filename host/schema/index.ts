/**
 * One schema for everything that comes from outside: the partition spec and every spec nested
 * in it (limits, devices, rate limits, restart policy, wasi), the hypervisor's options, call
 * options, and manifest files; `check` turns a mismatch into ERR_INVALID_ARGUMENT naming the
 * path. The TypeScript types are derived from these schemas, and so is the exported JSON Schema.
 */
export { check, explain } from './check.ts';
export { MAX_TIMER_MS, NAME_PATTERN, SHA256_PATTERN } from './kinds.ts';
export * from './limits.ts';
export * from './devices.ts';
export * from './wasi.ts';
export * from './partition.ts';
export * from './hypervisor.ts';
export { ManifestSchema, loadManifest, MAX_MANIFEST_BYTES, type Manifest } from './manifest.ts';
export { jsonSchemas, toJsonSchema } from './json.ts';
