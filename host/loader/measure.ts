import { hash } from 'node:crypto';

/**
 * The module's measurement: lowercase hex SHA-256 of the ORIGINAL bytes, as read, before
 * any rewrite. Pins, allow lists, the cache key and (later) attestation all name a module
 * by this value, so it must not depend on the policy the module is loaded under.
 */
export function measure(bytes: Uint8Array): string {
  // One-shot: a Hash object costs several times the hash of a small module (issue #15).
  return hash('sha256', bytes, 'hex');
}
