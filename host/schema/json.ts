/**
 * The JSON Schema documents the package exports (`wasmvisor/schema/*.json`, and `jsonSchemas`
 * from the library), derived from the TypeBox schemas the runtime checks with, so the two never
 * differ. JSON cannot hold bytes, URLs, AbortSignals or Infinity: those alternatives are dropped
 * (a property that is nothing else disappears), and what remains is plain draft-07 JSON Schema.
 * Walks host-written schemas only (bounded depth), never caller data.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { JS_ONLY_KINDS } from './kinds.ts';
import { HypervisorOptionsSchema } from './hypervisor.ts';
import { ManifestSchema } from './manifest.ts';
import { PartitionSpecSchema } from './partition.ts';
import { PolicySchema } from './policy.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function jsOnly(schema: TSchema): boolean {
  return JS_ONLY_KINDS.has(schema[Kind] as string);
}

function convert(schema: TSchema): Json | undefined {
  if (jsOnly(schema)) return undefined;
  const out: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'anyOf' && Array.isArray(value)) {
      const kept = (value as TSchema[]).map(convert).filter((v): v is Json => v !== undefined);
      if (kept.length === 0) return undefined;
      if (kept.length === 1 && typeof kept[0] === 'object' && kept[0] !== null && !Array.isArray(kept[0])) {
        // One alternative left: it replaces the union, keeping the union's own annotations.
        Object.assign(out, kept[0]);
        continue;
      }
      out.anyOf = kept;
    } else if ((key === 'properties' || key === 'patternProperties') && typeof value === 'object' && value !== null) {
      out[key] = convertEach(value as Record<string, TSchema>);
    } else if (key === 'required' && Array.isArray(value)) {
      out.required = (value as string[]).filter((name) => {
        const sub = (schema.properties as Record<string, TSchema> | undefined)?.[name];
        return sub !== undefined && convert(sub) !== undefined;
      });
      if ((out.required as string[]).length === 0) delete out.required;
    } else if ((key === 'items' || key === 'additionalProperties' || key === 'not') && typeof value === 'object' && value !== null) {
      const converted = convert(value as TSchema);
      if (converted !== undefined) out[key] = converted;
    } else {
      out[key] = JSON.parse(JSON.stringify(value)) as Json;
    }
  }
  return out;
}

/** Each schema of a `properties` (or `patternProperties`) map converted; JavaScript-only ones dropped. */
function convertEach(map: Record<string, TSchema>): { [key: string]: Json } {
  const out: { [key: string]: Json } = {};
  for (const [name, sub] of Object.entries(map)) {
    const converted = convert(sub);
    if (converted !== undefined) out[name] = converted;
  }
  return out;
}

/**
 * A TypeBox schema as plain JSON Schema, with the JavaScript-only alternatives removed and no
 * `$schema`: for embedding in another document (the management API's OpenAPI document).
 */
export function plainJsonSchema(schema: TSchema): { [key: string]: Json } {
  const converted = convert(schema);
  if (converted === undefined || typeof converted !== 'object' || converted === null || Array.isArray(converted)) {
    throw new Error('a schema with no JSON form');
  }
  return converted;
}

/** A TypeBox schema as a plain JSON Schema (draft-07) document, with the JavaScript-only alternatives removed. */
export function toJsonSchema(schema: TSchema, id?: string): { [key: string]: Json } {
  return { $schema: 'http://json-schema.org/draft-07/schema#', ...(id !== undefined ? { $id: id } : {}), ...plainJsonSchema(schema) };
}

/**
 * The exported documents, by file name (the package ships each as `schema/<name>`):
 * `manifest.json` for manifest files, `partition-spec.json` for a spec in JSON (a management
 * API body), `hypervisor-options.json` for the hypervisor's options, `policy.json` for security
 * policy files (`run --policy`, `new Hypervisor({ policy })`, the management API's policy).
 */
export function jsonSchemas(): Record<'manifest.json' | 'partition-spec.json' | 'hypervisor-options.json' | 'policy.json', { [key: string]: Json }> {
  return {
    'manifest.json': toJsonSchema(ManifestSchema),
    'partition-spec.json': toJsonSchema(PartitionSpecSchema),
    'hypervisor-options.json': toJsonSchema(HypervisorOptionsSchema),
    'policy.json': toJsonSchema(PolicySchema),
  };
}
