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
import { hash } from 'node:crypto';
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
      // Loops and one string, not map/filter/join: this runs for every partition created (its
      // spec and each device are hashed), so it is on the warm start's path (issue #15).
      let out: string;
      if (Array.isArray(value)) {
        out = '[';
        for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + write(value[i], depth + 1);
        return out + ']';
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new InvalidArgumentError('canonical JSON: only plain objects can be canonicalized');
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      out = '{';
      let first = true;
      for (const k of keys) {
        const member = record[k];
        if (member === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(k)}:${write(member, depth + 1)}`;
        first = false;
      }
      return out + '}';
    }
    default:
      throw new InvalidArgumentError(`canonical JSON: a ${typeof value} cannot be canonicalized`);
  }
}

/** SHA-256 (lowercase hex) of the canonical JSON of `value`. */
export function canonicalHash(value: unknown): string {
  // One-shot (UTF-8, as Hash#update hashes a string): no Hash object per spec and device (issue #15).
  return hash('sha256', canonicalJson(value), 'hex');
}
