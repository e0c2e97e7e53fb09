import { IntegrityError, InvalidArgumentError } from '../errors.ts';
import { quoted } from '../escape.ts';

/** What a module's measurement must satisfy to be admitted. Both checks apply when both are set. */
export interface IntegrityOptions {
  /** Pinned SHA-256 (64 hex digits, any case): the measurement must equal it. */
  expectedSha256?: string;
  /**
   * Admitted measurements (64 hex digits each, any case). Enforced whenever given: an empty
   * set admits nothing (fail closed: a list emptied by mistake must not open the door).
   */
  allowList?: ReadonlySet<string>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/i;

/**
 * Throws InvalidArgumentError if a pin or an allow-list entry is not 64 hex digits. A
 * malformed pin can never match, so it is a configuration mistake to report as such, not
 * a module to refuse with ERR_INTEGRITY. Separate from `checkIntegrity` so the pipeline
 * can reject bad options before it reads anything.
 */
export function validateIntegrityOptions(options: IntegrityOptions): void {
  const { expectedSha256, allowList } = options;
  if (expectedSha256 !== undefined && !SHA256_HEX.test(expectedSha256)) {
    throw new InvalidArgumentError(`expectedSha256 must be 64 hex digits, got ${quoted(expectedSha256)}`);
  }
  for (const entry of allowList ?? []) {
    if (!SHA256_HEX.test(entry)) throw new InvalidArgumentError(`allow-list entry must be 64 hex digits, got ${quoted(entry)}`);
  }
}

/**
 * Admits or refuses a measurement (lowercase hex SHA-256, from `measure`). Throws
 * IntegrityError when a pinned hash differs (the message shows both) or when the
 * measurement is not on the allow list (if one is given, even empty); InvalidArgumentError for malformed options.
 * Comparison is case-insensitive: hex case carries no meaning.
 */
export function checkIntegrity(measurement: string, options: IntegrityOptions): void {
  validateIntegrityOptions(options);
  const actual = measurement.toLowerCase();
  const { expectedSha256, allowList } = options;
  if (expectedSha256 !== undefined && expectedSha256.toLowerCase() !== actual) {
    throw new IntegrityError(`module measurement sha256:${actual} does not match the pinned sha256:${expectedSha256.toLowerCase()}`);
  }
  if (allowList !== undefined) {
    const admitted = [...allowList].some((entry) => entry.toLowerCase() === actual);
    if (!admitted) throw new IntegrityError(`module measurement sha256:${actual} is not on the allow list (${allowList.size} entries)`);
  }
}
