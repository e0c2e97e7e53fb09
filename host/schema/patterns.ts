/**
 * Names and digests that several layers check, as plain values with no import, so that code
 * which runs inside a partition's worker (host/security/guest-report.ts) or loads no schema
 * (host/mgmt/rbac.ts, tls.ts, server.ts's client-certificate check) checks with the same ones as the schemas, without loading the
 * schema library there (kinds.ts registers TypeBox kinds when it loads; test/mgmt/bundle.test.ts
 * keeps TypeBox out of worker.js). kinds.ts re-exports them.
 */

/**
 * The longest name, in characters, of a partition or a switch segment (a pool's derived names
 * included), and so of the names that stand for one or share its pattern: a scope's
 * `/partitions/<name>`, a token's name, a role's name.
 */
export const MAX_NAME_LENGTH = 64;

/** Those names: 1-64 letters, digits, `.`, `_`, `-`, not starting with a punctuation mark. */
export const NAME_PATTERN = `^[A-Za-z0-9][A-Za-z0-9._-]{0,${MAX_NAME_LENGTH - 1}}$`;

/**
 * The longest name of a certificate the local CA issues (its subject's CN, a client
 * certificate's principal): X.509's own bound on a common name (RFC 5280, ub-common-name), which
 * happens to equal MAX_NAME_LENGTH but is not tied to it.
 */
export const MAX_CERT_NAME_LENGTH = 64;

/** Those names (issued by `cert create`, taken from a client's certificate): a name's characters and spaces. */
export const CERT_NAME_PATTERN = `^[A-Za-z0-9][A-Za-z0-9._ -]{0,${MAX_CERT_NAME_LENGTH - 1}}$`;

/** A SHA-256 digest in hex (any case). */
export const SHA256_PATTERN = '^[0-9a-fA-F]{64}$';
