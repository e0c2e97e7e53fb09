/**
 * Text a guest or a module controls (an abort message, an import or export name, a reason
 * built from either), made inert for printing: wherever the host prints such text — an error
 * message, a CLI line, an inspect report — it goes through `escapeText` (or `guestText`), so it
 * can neither start a new line, nor move the cursor, recolour or retitle a terminal, nor
 * reorder what follows (bidirectional overrides).
 *
 * Invariants:
 * - The result has no C0 or C1 control character, no DEL, no line or paragraph separator and no
 *   bidirectional formatting character; every other character is kept as is.
 * - Escapes are shown as `\n`, `\r`, `\t`, `\xNN` (below U+0100) or `\u{NNNN}`. A backslash is
 *   not escaped: the function is idempotent (escaping twice changes nothing), so layers may
 *   each escape what they print without double escaping. The price is that a guest can write
 *   a literal `\x1b`, which prints as those four harmless characters.
 */

/** Characters that must not reach an output raw (see the invariants above). */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const code = ch.codePointAt(0)!;
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** `text` with every unsafe character escaped: one inert line. */
export function escapeText(text: string): string {
  return text.replace(UNSAFE, escapeOne);
}

/** Most characters of guest text an error message quotes; the rest is cut, and says so. */
export const MAX_GUEST_TEXT = 1024;

/**
 * Guest- or module-controlled text as a message quotes it: at most `max` characters (a longer
 * text is cut and marked with how much was left out), then escaped.
 */
export function guestText(text: string, max: number = MAX_GUEST_TEXT): string {
  const clipped = text.length > max ? `${text.slice(0, max)}… (${text.length - max} more characters)` : text;
  return escapeText(clipped);
}

/** Most characters of a caller's string an error message quotes. */
export const MAX_QUOTED = 80;

/**
 * A value a caller gave (an argument, a file's field, a command-line word), as an error message
 * quotes it. A string is shown in double quotes with JSON's escapes, cut after `max` characters
 * (the cut is marked with how much was left out) and then escaped like guest text; any other value
 * is named by its type, with its value when that is a short scalar. Never throws: a BigInt, a
 * cyclic object or a revoked proxy is named, not serialised.
 */
export function quoted(value: unknown, max: number = MAX_QUOTED): string {
  switch (typeof value) {
    case 'string':
      return escapeText(value.length > max ? `${JSON.stringify(value.slice(0, max))}… (${value.length - max} more characters)` : JSON.stringify(value));
    case 'undefined':
      return 'nothing';
    case 'number':
      return Number.isNaN(value) ? 'NaN' : `the number ${String(value)}`;
    case 'bigint':
      return `the bigint ${value}n`;
    case 'boolean':
      return String(value);
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default:
      break;
  }
  if (value === null) return 'null';
  try {
    if (Array.isArray(value)) return `an array of ${value.length}`;
    if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of ${value.byteLength} bytes`;
  } catch {
    // a revoked proxy: Array.isArray throws on it
  }
  return 'an object';
}
