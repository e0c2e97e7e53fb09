/**
 * Patterns that several layers check with, as plain strings and with no import, so that code
 * which runs inside a partition's worker (host/security/guest-report.ts) checks with the same one
 * as the schemas without loading the schema library there (kinds.ts registers TypeBox kinds when
 * it loads; test/mgmt/bundle.test.ts keeps TypeBox out of worker.js). kinds.ts re-exports them.
 */

/** A SHA-256 digest in hex (any case). */
export const SHA256_PATTERN = '^[0-9a-fA-F]{64}$';
