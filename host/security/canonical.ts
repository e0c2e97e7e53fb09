/**
 * Canonical JSON: the one byte form in which Wasmvisor hashes and signs structured data (policy
 * hashes, spec hashes, measured-boot events, attestation reports). Object keys are sorted by
 * UTF-16 code units, there is no whitespace, strings and numbers are written as JSON.stringify
 * writes them. Only null, booleans, finite numbers, strings, arrays and plain objects are allowed;
 * `undefined` object members are left out (as JSON.stringify does).
 *
 * Depth is capped (MAX_DEPTH): the values hashed here come from the host or have passed a schema
 * check with a fixed, shallow shape, and the cap keeps a hostile value from costing stack.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.ts';

export const MAX_DEPTH = 32;

export function canonicalJson(value: unknown): string {
  return write(value, 0);
}

function write(value: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw new InvalidArgumentError(`canonical JSON: nested deeper than ${MAX_DEPTH} levels`);
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new InvalidArgumentError(`canonical JSON: ${value} is not a finite number`);
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => write(v, depth + 1)).join(',')}]`;
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new InvalidArgumentError('canonical JSON: only plain objects can be canonicalized');
      const entries = Object.keys(value)
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${write((value as Record<string, unknown>)[k], depth + 1)}`);
      return `{${entries.join(',')}}`;
    }
    default:
      throw new InvalidArgumentError(`canonical JSON: a ${typeof value} cannot be canonicalized`);
  }
}

/** SHA-256 (lowercase hex) of the canonical JSON of `value`. */
export function canonicalHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}
